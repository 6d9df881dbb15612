package organization

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// The proxy protocol, inside a ProtoProxy TLS session: the caller sends
// one line, "CONNECT host:port", and the frontend answers "200 <the local
// address of its outbound connection>" and from then on copies bytes both
// ways, or answers "451 <reason>" and closes. The caller then speaks SMTP
// to the far end itself, STARTTLS and AUTH included, so the connector's
// rules are applied end to end and the frontend sees only ciphertext when
// the connector uses TLS; the far end sees the frontend's address.

// requestTimeout bounds the wait for the CONNECT line and for its answer.
const requestTimeout = 30 * time.Second

// maxRequest is longer than any host:port.
const maxRequest = 512

// Proxy is a frontend server's side of the protocol.
type Proxy struct {
	// Dial opens the outbound connection; nil uses a net.Dialer.
	Dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	DialTimeout time.Duration // 0 means 30 s
	Logger      *slog.Logger
}

// serve handles one proxy session on an established TLS connection.
func (p *Proxy) serve(ctx context.Context, c *tls.Conn) {
	defer c.Close()
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	peer := PeerName(c.ConnectionState())
	_ = c.SetDeadline(time.Now().Add(requestTimeout))
	line, err := bufio.NewReaderSize(io.LimitReader(c, maxRequest), maxRequest).ReadString('\n')
	if err != nil {
		log.Info("proxy request not read", "peer", peer, "err", err)
		return
	}
	target, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), "CONNECT ")
	if _, _, err := net.SplitHostPort(target); !ok || err != nil || strings.ContainsAny(target, " \t\x00") {
		fmt.Fprintf(c, "451 malformed proxy request\r\n")
		log.Info("proxy request refused", "peer", peer, "reason", "malformed")
		return
	}
	timeout := p.DialTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	dctx, cancel := context.WithTimeout(ctx, timeout)
	dial := p.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	out, err := dial(dctx, "tcp", target)
	cancel()
	if err != nil {
		fmt.Fprintf(c, "451 %s\r\n", strings.ReplaceAll(err.Error(), "\n", " "))
		log.Info("proxy connection failed", "peer", peer, "target", target, "err", err)
		return
	}
	defer out.Close()
	egress := out.LocalAddr().String()
	if _, err := fmt.Fprintf(c, "200 %s\r\n", egress); err != nil {
		return
	}
	_ = c.SetDeadline(time.Time{})
	log.Info("proxying", "peer", peer, "target", target, "egress", egress)
	pipe(c, out)
}

// pipe copies both ways until either side ends, then closes both, so
// neither end waits on a half-open session.
func pipe(a, b net.Conn) {
	var once sync.Once
	closeBoth := func() { once.Do(func() { a.Close(); b.Close() }) }
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(a, b); closeBoth() }()
	go func() { defer wg.Done(); _, _ = io.Copy(b, a); closeBoth() }()
	wg.Wait()
}

// ProxyError is a frontend's refusal or failure to connect; Reply is its
// answer line.
type ProxyError struct {
	Frontend string
	Reply    string
}

func (e *ProxyError) Error() string {
	return fmt.Sprintf("frontend %s could not connect: %s", e.Frontend, e.Reply)
}

// DialProxy asks the frontend at proxyAddr (whose certificate must be
// valid for proxyFqdn) to connect to target. It returns the connection,
// ready for the far end's greeting, and the address the far end sees.
func DialProxy(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), t *TLS, proxyAddr, proxyFqdn, target string) (net.Conn, string, error) {
	c, err := dialTLS(ctx, dial, t, proxyAddr, proxyFqdn, ProtoProxy)
	if err != nil {
		return nil, "", err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(requestTimeout))
	}
	if _, err := fmt.Fprintf(c, "CONNECT %s\r\n", target); err != nil {
		c.Close()
		return nil, "", fmt.Errorf("frontend %s: %w", proxyFqdn, err)
	}
	// Read the answer a byte at a time: anything after it is the far
	// end's greeting, which belongs to the caller's SMTP client.
	var line []byte
	one := make([]byte, 1)
	for len(line) < maxRequest {
		if _, err := io.ReadFull(c, one); err != nil {
			c.Close()
			return nil, "", fmt.Errorf("frontend %s: %w", proxyFqdn, err)
		}
		line = append(line, one[0])
		if one[0] == '\n' {
			break
		}
	}
	reply := strings.TrimRight(string(line), "\r\n")
	egress, ok := strings.CutPrefix(reply, "200 ")
	if !ok {
		c.Close()
		return nil, "", &ProxyError{Frontend: proxyFqdn, Reply: reply}
	}
	_ = c.SetDeadline(time.Time{})
	return c, egress, nil
}

// DialSMTP opens an intra-organization SMTP session to the server at addr
// whose certificate must be valid for fqdn.
func DialSMTP(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), t *TLS, addr, fqdn string) (net.Conn, error) {
	return dialTLS(ctx, dial, t, addr, fqdn, ProtoSMTP)
}

func dialTLS(ctx context.Context, dial func(ctx context.Context, network, addr string) (net.Conn, error), t *TLS, addr, fqdn, proto string) (*tls.Conn, error) {
	if t == nil {
		return nil, errors.New("no organization certificate is configured (organization.cert)")
	}
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	raw, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, t.ClientConfig(fqdn, proto))
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, fmt.Errorf("organization TLS with %s: %w", fqdn, err)
	}
	if c.ConnectionState().NegotiatedProtocol != proto {
		c.Close()
		return nil, fmt.Errorf("organization TLS with %s: %s is not offered there", fqdn, proto)
	}
	return c, nil
}
