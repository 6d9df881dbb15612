package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

func TestOpenSpecs(t *testing.T) {
	for _, c := range []struct {
		spec      string
		endpoints []string
		prefix    string
		path      string
	}{
		{spec: "/var/lib/sendconn/sendconn.db", path: "/var/lib/sendconn/sendconn.db"},
		{spec: "state/sendconn.db", path: "state/sendconn.db"},
		{spec: "bbolt:///var/lib/sendconn/sendconn.db", path: "/var/lib/sendconn/sendconn.db"},
		{spec: "etcd://127.0.0.1:2379/sendconn", endpoints: []string{"http://127.0.0.1:2379"}, prefix: "/sendconn"},
		{spec: "etcd://a.example:2379,b.example/org/sendconn", endpoints: []string{"http://a.example:2379", "http://b.example:2379"}, prefix: "/org/sendconn"},
		{spec: "etcd://[::1]:2379/x", endpoints: []string{"http://[::1]:2379"}, prefix: "/x"},
		{spec: "etcds://etcd.contoso.com:2379/sendconn", endpoints: []string{"https://etcd.contoso.com:2379"}, prefix: "/sendconn"},
	} {
		b, err := Open(c.spec, Options{})
		if err != nil {
			t.Errorf("Open(%q): %v", c.spec, err)
			continue
		}
		if b.String() != c.spec {
			t.Errorf("Open(%q).String() = %q", c.spec, b.String())
		}
		switch b := b.(type) {
		case *Bolt:
			if b.Path() != c.path {
				t.Errorf("Open(%q): path %q", c.spec, b.Path())
			}
		case *etcdBackend:
			if fmt.Sprint(b.endpoints) != fmt.Sprint(c.endpoints) || b.prefix != c.prefix {
				t.Errorf("Open(%q): %v %q", c.spec, b.endpoints, b.prefix)
			}
		}
		b.Close()
	}
	for _, c := range []struct{ spec, want string }{
		{"", "empty"},
		{"mysql://localhost/x", `open store "mysql://localhost/x": unknown scheme "mysql"`},
		{"bbolt://relative/path", "absolute file path"},
		{"etcd://127.0.0.1:2379", "needs a key prefix"},
		{"etcd://127.0.0.1:2379/", "needs a key prefix"},
		{"etcd://127.0.0.1:2379/sendconn/", "must not end with /"},
		{"etcd://127.0.0.1:2379/a//b", "empty segment"},
		{"etcd:///sendconn", "names no endpoint"},
		{"etcd://127.0.0.1:x/sendconn", "not host:port"},
		{"etcd://127.0.0.1:2379/org/config", `segment named "config"`},
		{"etcd://127.0.0.1:2379/sendconn?x=1", "no query"},
		{"etcd://root:hunter2@127.0.0.1:2379/sendconn", "credentials do not belong in the spec"},
	} {
		_, err := Open(c.spec, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Open(%q) = %v, want an error saying %q", c.spec, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Open(%q) shows the password: %v", c.spec, err)
		}
	}
}

func TestOpenEtcdSettings(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("from-file\r\nignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := Open("etcd://127.0.0.1:2379/s", Options{Etcd: EtcdOptions{Username: "u", PasswordFile: pw}})
	if err != nil || b.(*etcdBackend).password != "from-file" {
		t.Errorf("password file: %v", err)
	}
	for _, c := range []struct {
		opts EtcdOptions
		want string
	}{
		{EtcdOptions{Username: "u", PasswordFile: pw, Password: connector.NewSecret("x")}, "not both"},
		{EtcdOptions{Username: "u"}, "both a username and a password"},
		{EtcdOptions{Password: connector.NewSecret("only-pw")}, "both a username and a password"},
		{EtcdOptions{PasswordFile: filepath.Join(dir, "missing")}, "read etcd password file"},
		{EtcdOptions{CAFile: pw}, "holds no PEM certificate"},
		{EtcdOptions{CertFile: pw}, "both a certificate file and a key file"},
	} {
		_, err := Open("etcd://127.0.0.1:2379/s", Options{Etcd: c.opts})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want %q", c.opts, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "only-pw") {
			t.Errorf("error shows the password: %v", err)
		}
	}
	// A CA file turns TLS on even for etcd://.
	b, err = Open("etcd://127.0.0.1:2379/s", Options{Etcd: EtcdOptions{CAFile: "/etc/ssl/certs/ca-certificates.crt"}})
	if err == nil && b.(*etcdBackend).endpoints[0] != "https://127.0.0.1:2379" {
		t.Errorf("CA given, endpoints %v", b.(*etcdBackend).endpoints)
	}
}
