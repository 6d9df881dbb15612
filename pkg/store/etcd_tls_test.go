package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// testPKI writes a CA and certificates it issued into dir: NAME.pem and
// NAME.key for each name, valid for 127.0.0.1 and for server and client
// authentication.
func testPKI(t *testing.T, dir string, names ...string) (caFile string) {
	t.Helper()
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "etcd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	caFile = write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range names {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, _ := x509.MarshalECPrivateKey(key)
		write(name+".pem", "CERTIFICATE", der)
		write(name+".key", "EC PRIVATE KEY", keyDER)
	}
	return caFile
}

// TestEtcdOverTLS runs a store on an etcd that serves clients over TLS and
// requires a client certificate from its CA, as a production etcd should.
func TestEtcdOverTLS(t *testing.T) {
	dir := t.TempDir()
	caFile := testPKI(t, dir, "server", "client")
	otherCA := testPKI(t, t.TempDir(), "stranger")
	clientPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	peerPort, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "tls", filepath.Join(dir, "data")
	curl := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	purl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo.CertFile = filepath.Join(dir, "server.pem")
	cfg.ClientTLSInfo.KeyFile = filepath.Join(dir, "server.key")
	cfg.ClientTLSInfo.TrustedCAFile = caFile
	cfg.ClientTLSInfo.ClientCertAuth = true
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.Logger, cfg.LogLevel = "zap", "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		t.Fatal("etcd with TLS did not become ready")
	}
	spec := fmt.Sprintf("etcds://127.0.0.1:%d/tls", clientPort)
	ctx := context.Background()

	good := EtcdOptions{CAFile: caFile, CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client.key")}
	b, err := Open(spec, Options{Etcd: good})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	c := create(t, b, newTestConnector(t, "Over TLS"))
	if err := b.View(ctx, func(tx Tx) error {
		got, err := tx.Connector("Over TLS")
		if err == nil && got.Guid != c.Guid {
			err = fmt.Errorf("read back %s, wrote %s", got.Guid, c.Guid)
		}
		return err
	}); err != nil {
		t.Fatalf("read over TLS: %v", err)
	}

	for name, eo := range map[string]EtcdOptions{
		"no client certificate":          {CAFile: caFile},
		"a CA that did not issue etcd's": {CAFile: otherCA, CertFile: good.CertFile, KeyFile: good.KeyFile},
	} {
		bad, err := Open(spec, Options{Etcd: eo, LockTimeout: time.Second})
		if err != nil {
			t.Fatalf("%s: open: %v", name, err)
		}
		err = bad.View(ctx, func(tx Tx) error { _, err := tx.Connectors(); return err })
		bad.Close()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s: %v, want the store unavailable", name, err)
		}
	}
}
