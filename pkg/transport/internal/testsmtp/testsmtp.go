// Package testsmtp runs real SMTP servers on loopback for the transport's
// tests: smart hosts that record what they received, with STARTTLS from a
// throw-away CA, AUTH, and scripted failures.
package testsmtp

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// CA is a certificate authority for one test.
type CA struct {
	Cert *x509.Certificate
	key  *ecdsa.PrivateKey
	Pool *x509.CertPool
}

// NewCA makes a CA.
func NewCA(t testing.TB) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sendconn test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &CA{Cert: cert, key: key, Pool: pool}
}

// Issue makes a server certificate for the names (DNS names or IPs).
func (ca *CA) Issue(t testing.TB, names ...string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		KeyUsage:    x509.KeyUsageDigitalSignature,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

// Message is one transaction a Server accepted.
type Message struct {
	Helo     string
	From     string
	Rcpts    []string
	Data     []byte
	TLS      bool
	AuthUser string
	// With Options.DSN: RET and ENVID of MAIL FROM, and each recipient's
	// NOTIFY (comma-joined) and ORCPT, in RCPT order.
	Ret, EnvID string
	Notify     []string
	ORCPT      []string
}

// Options shape a Server.
type Options struct {
	TLS   *tls.Certificate  // offer STARTTLS with this certificate
	Users map[string]string // offer AUTH PLAIN/LOGIN (after TLS unless InsecureAuth)
	// InsecureAuth offers AUTH without TLS.
	InsecureAuth bool
	// Rcpt, when set, answers RCPT: nil accepts.
	Rcpt func(to string) error
	// Data, when set, answers the end of DATA after the body was read.
	Data func(m *Message) error
	// DropInData closes the connection halfway through the body.
	DropInData bool
	MaxSize    int64
	// DSN advertises RFC 3461 DSN and records the parameters.
	DSN bool
}

// Server is a recording SMTP server on 127.0.0.1.
type Server struct {
	Addr string
	srv  *smtp.Server
	opts Options

	mu       sync.Mutex
	messages []Message
	authSeen []string // user names that tried AUTH
	arrived  chan struct{}
}

// Start runs a server on a free loopback port until the test ends.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	return StartOn(t, "127.0.0.1:0", opts)
}

// StartOn runs a server on addr until the test ends.
func StartOn(t testing.TB, addr string, opts Options) *Server {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Addr: ln.Addr().String(), opts: opts, arrived: make(chan struct{}, 1000)}
	srv := smtp.NewServer(backend{s})
	srv.Domain = "smarthost.test"
	srv.AllowInsecureAuth = opts.InsecureAuth
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.MaxMessageBytes = opts.MaxSize
	srv.EnableDSN = opts.DSN
	srv.ErrorLog = nopLog{}
	if opts.TLS != nil {
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*opts.TLS}}
	}
	s.srv = srv
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Port is the server's port.
func (s *Server) Port() int {
	_, port, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(port)
	return n
}

// Messages returns what arrived so far.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// AuthAttempts lists the user names that tried AUTH.
func (s *Server) AuthAttempts() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.authSeen...)
}

// Wait waits until n messages arrived in all, or fails the test.
func (s *Server) Wait(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.After(timeout)
	for {
		if m := s.Messages(); len(m) >= n {
			return m
		}
		select {
		case <-s.arrived:
		case <-deadline:
			t.Fatalf("%d messages arrived at %s within %v, want %d", len(s.Messages()), s.Addr, timeout, n)
		}
	}
}

type backend struct{ s *Server }

func (b backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: b.s, c: c}, nil
}

type session struct {
	s    *Server
	c    *smtp.Conn
	m    Message
	user string
}

func (se *session) AuthMechanisms() []string {
	if se.s.opts.Users == nil {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	check := func(user, pass string) error {
		se.s.mu.Lock()
		se.s.authSeen = append(se.s.authSeen, user)
		se.s.mu.Unlock()
		if want, ok := se.s.opts.Users[user]; !ok || want != pass {
			return smtp.ErrAuthFailed
		}
		se.user = user
		return nil
	}
	if mech == sasl.Login {
		return &loginServer{check: check}, nil
	}
	return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
}

func (se *session) Mail(from string, opts *smtp.MailOptions) error {
	_, isTLS := se.c.TLSConnectionState()
	se.m = Message{From: from, Helo: se.c.Hostname(), TLS: isTLS, AuthUser: se.user}
	if opts != nil {
		se.m.Ret, se.m.EnvID = string(opts.Return), opts.EnvelopeID
	}
	return nil
}

func (se *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	if se.s.opts.Rcpt != nil {
		if err := se.s.opts.Rcpt(to); err != nil {
			return err
		}
	}
	se.m.Rcpts = append(se.m.Rcpts, to)
	var notify []string
	orcpt := ""
	if opts != nil {
		for _, n := range opts.Notify {
			notify = append(notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			orcpt = string(opts.OriginalRecipientType) + ";" + opts.OriginalRecipient
		}
	}
	se.m.Notify = append(se.m.Notify, strings.Join(notify, ","))
	se.m.ORCPT = append(se.m.ORCPT, orcpt)
	return nil
}

func (se *session) Data(r io.Reader) error {
	if se.s.opts.DropInData {
		buf := make([]byte, 10)
		_, _ = io.ReadFull(r, buf)
		_ = se.c.Conn().Close()
		return errors.New("dropped")
	}
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m := se.m
	m.Data = data
	if se.s.opts.Data != nil {
		if err := se.s.opts.Data(&m); err != nil {
			return err
		}
	}
	se.s.mu.Lock()
	se.s.messages = append(se.s.messages, m)
	se.s.mu.Unlock()
	se.s.arrived <- struct{}{}
	return nil
}

func (se *session) Reset()        { se.m = Message{} }
func (se *session) Logout() error { return nil }

type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		if len(resp) > 0 {
			l.user = string(resp)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

type nopLog struct{}

func (nopLog) Printf(string, ...any) {}
func (nopLog) Println(...any)        {}
