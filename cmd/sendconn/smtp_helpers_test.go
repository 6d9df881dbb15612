package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sendconn/sendconn/pkg/transport/testdns"
)

// smtpsink DIR READYFILE [ADDR]: a smart host for scripts. It listens on
// ADDR (default 127.0.0.1:0, a free loopback port), writes the port to
// READYFILE, and stores each message as DIR/N.eml (envelope lines first,
// as smtp-sink does) until killed. With $SINK_TLS_CERT and $SINK_TLS_KEY
// it offers STARTTLS; with $SINK_USERS (user:password) AUTH after TLS.
func smtpSinkMain() {
	dir, ready := os.Args[1], os.Args[2]
	addr := "127.0.0.1:0"
	if len(os.Args) > 3 {
		addr = os.Args[3]
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fatal(err)
	}
	b := &sinkBackend{dir: dir}
	if u, p, ok := strings.Cut(os.Getenv("SINK_USERS"), ":"); ok {
		b.user, b.pass = u, p
	}
	srv := smtp.NewServer(b)
	srv.Domain = "sink.test"
	if cert := os.Getenv("SINK_TLS_CERT"); cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, os.Getenv("SINK_TLS_KEY"))
		if err != nil {
			fatal(err)
		}
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{pair}}
	}
	go func() { _ = srv.Serve(ln) }()
	_, port, _ := net.SplitHostPort(ln.Addr().String())
	if err := writeAtomic(ready, port); err != nil {
		fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = srv.Close()
	os.Exit(0)
}

type sinkBackend struct {
	dir        string
	user, pass string
	mu         sync.Mutex
	n          int
}

func (b *sinkBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &sinkSession{b: b, c: c}, nil
}

type sinkSession struct {
	b     *sinkBackend
	c     *smtp.Conn
	from  string
	rcpts []string
}

func (s *sinkSession) AuthMechanisms() []string {
	if s.b.user == "" {
		return nil
	}
	return []string{sasl.Plain}
}

func (s *sinkSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != s.b.user || pass != s.b.pass {
			return smtp.ErrAuthFailed
		}
		return nil
	}), nil
}

func (s *sinkSession) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *sinkSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.rcpts = append(s.rcpts, to)
	return nil
}
func (s *sinkSession) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.b.mu.Lock()
	s.b.n++
	n := s.b.n
	s.b.mu.Unlock()
	text := fmt.Sprintf("X-Helo: %s\r\nX-Mail-From: <%s>\r\nX-Rcpt-To: <%s>\r\n%s", s.c.Hostname(), s.from, strings.Join(s.rcpts, ">, <"), data)
	return writeAtomic(filepath.Join(s.b.dir, fmt.Sprintf("%d.eml", n)), text)
}
func (s *sinkSession) Reset()        { s.from, s.rcpts = "", nil }
func (s *sinkSession) Logout() error { return nil }

// smtpsubmit ADDRESS FROM RCPT[,RCPT...] FILE: submit FILE as one message.
func smtpSubmitMain() {
	addr, from, rcpts, file := os.Args[1], os.Args[2], strings.Split(os.Args[3], ","), os.Args[4]
	data, err := os.ReadFile(file)
	if err != nil {
		fatal(err)
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		fatal(err)
	}
	if err := c.Hello("app1.contoso.com"); err != nil {
		fatal(err)
	}
	text := strings.ReplaceAll(string(data), "\n", "\r\n")
	if err := c.SendMail(from, rcpts, strings.NewReader(text)); err != nil {
		fatal(err)
	}
	_ = c.Quit()
	os.Exit(0)
}

// dnsserver ZONEFILE READYFILE: an authoritative DNS server on a free
// 127.0.0.1 port (UDP and TCP) serving ZONEFILE; writes its address to
// READYFILE and serves until killed.
func dnsServerMain() {
	zone, err := os.ReadFile(os.Args[1])
	if err != nil {
		fatal(err)
	}
	srv, err := testdns.Listen(string(zone))
	if err != nil {
		fatal(err)
	}
	if err := writeAtomic(os.Args[2], srv.Addr); err != nil {
		fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	_ = srv.Close()
	os.Exit(0)
}

func writeAtomic(path, content string) error {
	if err := os.WriteFile(path+".tmp", []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}

// gencert DIR NAME...: write a test CA (DIR/ca.pem) and a certificate it
// issued for the names (DIR/cert.pem, DIR/key.pem), so scripts can run
// STARTTLS smart hosts and point tls.ca-file at the CA.
func cmdGenCert(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: gencert DIR NAME...")
	}
	pki := newScriptPKI(ts, args[0], "sendconn test CA")
	pki.issue("cert.pem", "key.pem", args[1:], x509.ExtKeyUsageServerAuth)
}

// scriptPKI is a test CA writing PEM files into a script's directory.
type scriptPKI struct {
	ts     *testscript.TestScript
	dir    string
	ca     *x509.Certificate
	key    *ecdsa.PrivateKey
	serial int64
}

// newScriptPKI makes a CA and writes it to DIR/ca.pem.
func newScriptPKI(ts *testscript.TestScript, dir, name string) *scriptPKI {
	p := &scriptPKI{ts: ts, dir: ts.MkAbs(dir), serial: 1}
	ts.Check(os.MkdirAll(p.dir, 0o755))
	var err error
	p.key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ts.Check(err)
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &p.key.PublicKey, p.key)
	ts.Check(err)
	p.ca, err = x509.ParseCertificate(der)
	ts.Check(err)
	p.write("ca.pem", "CERTIFICATE", der)
	return p
}

// issue writes a certificate for names (DNS names or IP addresses; the
// first is the common name) and its key.
func (p *scriptPKI) issue(certFile, keyFile string, names []string, usage ...x509.ExtKeyUsage) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.ts.Check(err)
	p.serial++
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial), Subject: pkix.Name{CommonName: names[0]},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.ca, &key.PublicKey, p.key)
	p.ts.Check(err)
	keyDER, err := x509.MarshalECPrivateKey(key)
	p.ts.Check(err)
	p.write(certFile, "CERTIFICATE", der)
	p.write(keyFile, "EC PRIVATE KEY", keyDER)
}

func (p *scriptPKI) write(name, typ string, der []byte) {
	p.ts.Check(os.WriteFile(filepath.Join(p.dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
}

// envfile VAR FILE: set VAR to FILE's content, trimmed, so a script can use
// a port or address a background process wrote.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}
