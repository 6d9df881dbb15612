package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
)

// DefaultLockTimeout bounds the wait for another process's lock (bbolt) or
// for one answer from etcd.
const DefaultLockTimeout = 5 * time.Second

// DefaultOrganizationDomain is organization.domain's default.
const DefaultOrganizationDomain = "SENDCONN"

// Options tune a store.
type Options struct {
	// LockTimeout bounds the wait for a lock held by another process
	// (bbolt: then ErrBusy) or for each request to etcd (then
	// ErrUnavailable), so that a command never hangs on a stuck store.
	// Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the clock for WhenCreated/WhenChanged and the server
	// registry; nil means time.Now.
	Now func() time.Time
	// OrganizationDomain names the organization's Exchange Servers group in
	// the default access lists a schema 1 store's connectors get when it is
	// migrated. Empty means DefaultOrganizationDomain.
	OrganizationDomain string
	// Etcd is how to reach an etcd:// or etcds:// store; a bbolt store
	// ignores it.
	Etcd EtcdOptions
}

// EtcdOptions hold an etcd store's TLS and authentication settings: the
// things that do not belong in a spec, which is shown in logs and errors.
type EtcdOptions struct {
	// CAFile is a PEM bundle to verify etcd's certificates with; empty
	// means the system's roots. Setting it (or CertFile) turns TLS on for
	// an etcd:// spec too: a CA given for nothing would be a silent
	// downgrade to plain text.
	CAFile string
	// CertFile and KeyFile are a client certificate, for an etcd that runs
	// with --client-cert-auth. Both or neither.
	CertFile, KeyFile string
	// Username and the password (Password, or the first line of
	// PasswordFile; not both) log in to an etcd with authentication
	// enabled. The password is a Secret so that printing Options cannot
	// show it.
	Username     string
	Password     connector.Secret
	PasswordFile string
}

func (o Options) withDefaults() Options {
	if o.LockTimeout <= 0 {
		o.LockTimeout = DefaultLockTimeout
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.OrganizationDomain == "" {
		o.OrganizationDomain = DefaultOrganizationDomain
	}
	return o
}

// Backend is an opened store: the configuration, the server registry, and
// what a long-running server needs to follow changes.
type Backend interface {
	Store
	Registry
	// Watch returns a channel that receives (coalesced, never blocking the
	// store) after the configuration may have changed, until ctx ends, when
	// it is closed. It can also fire when nothing changed, for instance
	// once the watch is set up, or after it had to be restarted and could
	// not tell what it missed, so a receiver re-reads and compares
	// Revision. Registry heartbeats do not fire it. A nil channel (bbolt)
	// means the backend cannot watch: poll Revision instead.
	Watch(ctx context.Context) <-chan struct{}
	// String is the spec without secrets, for logs and errors.
	String() string
	// Close releases connections. Withdraw registrations first.
	Close() error
}

var (
	_ Backend = (*Bolt)(nil)
	_ Backend = (*etcdBackend)(nil)
)

var schemeRE = regexp.MustCompile(`^([A-Za-z][A-Za-z0-9+.-]*)://`)

// Open opens the store a spec names:
//
//	/var/lib/sendconn/sendconn.db            a bbolt file (a plain path)
//	bbolt:///var/lib/sendconn/sendconn.db    the same, as a URL (absolute path)
//	etcd://10.0.0.1:2379,10.0.0.2:2379/sendconn
//	etcds://etcd.contoso.com:2379/sendconn   etcd over TLS
//
// An etcd spec names one or more endpoints (port 2379 when left out) and a
// key prefix; two sendconn organizations can share an etcd cluster under
// different prefixes. Credentials never go in the spec: they are in
// opts.Etcd, so that String() can be logged. Like OpenBolt, Open reaches
// nothing yet; the first operation does, bounded by opts.LockTimeout.
func Open(spec string, opts Options) (Backend, error) {
	m := schemeRE.FindStringSubmatch(spec)
	if m == nil {
		if spec == "" {
			return nil, errors.New("open store: the store spec is empty")
		}
		b := OpenBolt(spec, opts)
		return b, nil
	}
	switch scheme := strings.ToLower(m[1]); scheme {
	case "bbolt":
		path := spec[len(m[0]):]
		if !strings.HasPrefix(path, "/") || filepath.Clean(path) == "/" {
			return nil, fmt.Errorf("open store %q: a bbolt URL needs an absolute file path, as in bbolt:///var/lib/sendconn/sendconn.db", spec)
		}
		b := OpenBolt(path, opts)
		b.spec = spec
		return b, nil
	case "etcd", "etcds":
		return openEtcd(spec, scheme == "etcds", spec[len(m[0]):], opts)
	default:
		return nil, fmt.Errorf("open store %q: unknown scheme %q: use a file path, bbolt:///path, etcd://host:port/prefix or etcds://host:port/prefix", redactSpec(spec), m[1])
	}
}

// parseEtcdSpec splits "host:port[,host:port]/prefix" (what follows the
// scheme) into endpoints and the key prefix ("/prefix").
func parseEtcdSpec(rest string, secure bool) (endpoints []string, prefix string, err error) {
	if strings.Contains(rest, "@") {
		return nil, "", errors.New("credentials do not belong in the spec (it is logged): give them in the etcd settings")
	}
	hosts, path, ok := strings.Cut(rest, "/")
	if !ok || path == "" {
		return nil, "", errors.New("it needs a key prefix, as in etcd://127.0.0.1:2379/sendconn")
	}
	if strings.ContainsAny(rest, "?#") {
		return nil, "", errors.New("it takes no query or fragment")
	}
	if hosts == "" {
		return nil, "", errors.New("it names no endpoint")
	}
	scheme := "http://"
	if secure {
		scheme = "https://"
	}
	for _, h := range strings.Split(hosts, ",") {
		host, port, err := net.SplitHostPort(h)
		if err != nil {
			// No port: etcd's client port.
			host, port = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"), "2379"
		}
		if n, err := strconv.Atoi(port); host == "" || strings.ContainsAny(host, " /[]") || err != nil || n <= 0 || n > 65535 {
			return nil, "", fmt.Errorf("endpoint %q is not host:port", h)
		}
		endpoints = append(endpoints, scheme+net.JoinHostPort(host, port))
	}
	if strings.HasSuffix(path, "/") {
		return nil, "", errors.New("the key prefix must not end with /")
	}
	for _, seg := range strings.Split(path, "/") {
		switch seg {
		case "":
			return nil, "", errors.New("the key prefix has an empty segment")
		case ".", "..":
			return nil, "", fmt.Errorf("the key prefix has a %q segment", seg)
		case "config", "servers", "alive":
			// The store's own sub-prefixes: a store under /a/config
			// would be read as part of the store under /a.
			return nil, "", fmt.Errorf("the key prefix must not have a segment named %q (the store uses it under the prefix)", seg)
		}
		for _, r := range seg {
			if r < 0x20 || r == 0x7f {
				return nil, "", errors.New("the key prefix has a control character")
			}
		}
	}
	return endpoints, "/" + path, nil
}

// redactSpec hides a URL's user information, in case someone put a
// password there.
func redactSpec(spec string) string {
	m := schemeRE.FindStringIndex(spec)
	if m == nil {
		return spec
	}
	rest := spec[m[1]:]
	if i := strings.LastIndexByte(rest, '@'); i >= 0 {
		return spec[:m[1]] + "…" + rest[i:]
	}
	return spec
}
