package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/emersion/go-smtp"
	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sendconn/sendconn/pkg/transport/testdns"
)

// smtpsink DIR READYFILE [ADDR]: a smart host for scripts. It listens on
// ADDR (default 127.0.0.1:0, a free loopback port), writes the port to
// READYFILE, and stores each message as DIR/N.eml (envelope lines first,
// as smtp-sink does) until killed.
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
	srv := smtp.NewServer(&sinkBackend{dir: dir})
	srv.Domain = "sink.test"
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
	dir string
	mu  sync.Mutex
	n   int
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

// envfile VAR FILE: set VAR to FILE's content, trimmed, so a script can use
// a port or address a background process wrote.
func cmdEnvFile(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 2 {
		ts.Fatalf("usage: envfile VAR FILE")
	}
	ts.Setenv(args[0], strings.TrimSpace(ts.ReadFile(args[1])))
}
