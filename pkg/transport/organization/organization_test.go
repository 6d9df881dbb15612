package organization

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
)

// testOrg is an organization CA that issues a certificate per server
// name.
type testOrg struct{ ca *testsmtp.CA }

func newTestOrg(t *testing.T) *testOrg { return &testOrg{ca: testsmtp.NewCA(t)} }

func (o *testOrg) tls(t *testing.T, name string) *TLS {
	return &TLS{Certificate: o.ca.Issue(t, name), Roots: o.ca.Pool}
}

func listen(t *testing.T, tl *TLS, proxy *Proxy) *Listener {
	t.Helper()
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Listen(raw, tl, proxy, nil)
	t.Cleanup(func() { l.Close() })
	return l
}

func TestSMTPSessionsReachAcceptWithThePeersName(t *testing.T) {
	org := newTestOrg(t)
	l := listen(t, org.tls(t, "b.contoso.com"), nil)
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		got <- PeerName(c.(*tls.Conn).ConnectionState())
	}()
	c, err := DialSMTP(context.Background(), nil, org.tls(t, "a.contoso.com"), l.Addr().String(), "b.contoso.com")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if name := <-got; name != "a.contoso.com" {
		t.Errorf("peer name %q, want a.contoso.com", name)
	}
}

func TestDialRefusesAServerWithTheWrongName(t *testing.T) {
	org := newTestOrg(t)
	l := listen(t, org.tls(t, "b.contoso.com"), nil)
	if _, err := DialSMTP(context.Background(), nil, org.tls(t, "a.contoso.com"), l.Addr().String(), "c.contoso.com"); err == nil {
		t.Fatal("connected to b.contoso.com as if it were c.contoso.com")
	}
}

func TestProxyConnectsAndReportsTheEgress(t *testing.T) {
	org := newTestOrg(t)
	target, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	seen := make(chan string, 1)
	go func() {
		c, err := target.Accept()
		if err != nil {
			return
		}
		seen <- c.RemoteAddr().String()
		_, _ = io.WriteString(c, "220 far end\r\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "echo "+line)
		c.Close()
	}()
	l := listen(t, org.tls(t, "f.contoso.com"), &Proxy{})
	c, egress, err := DialProxy(context.Background(), nil, org.tls(t, "a.contoso.com"), l.Addr().String(), "f.contoso.com", target.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if from := <-seen; from != egress {
		t.Errorf("the far end saw %s, the frontend reported %s", from, egress)
	}
	br := bufio.NewReader(c)
	if greeting, _ := br.ReadString('\n'); greeting != "220 far end\r\n" {
		t.Errorf("greeting %q", greeting)
	}
	_, _ = io.WriteString(c, "EHLO a\r\n")
	if echo, _ := br.ReadString('\n'); echo != "echo EHLO a\r\n" {
		t.Errorf("echo %q", echo)
	}
}

func TestProxyRefusals(t *testing.T) {
	org := newTestOrg(t)
	closed, _ := net.Listen("tcp", "127.0.0.1:0")
	deadAddr := closed.Addr().String()
	closed.Close()

	notFrontend := listen(t, org.tls(t, "h.contoso.com"), nil)
	_, _, err := DialProxy(context.Background(), nil, org.tls(t, "a.contoso.com"), notFrontend.Addr().String(), "h.contoso.com", deadAddr)
	var pe *ProxyError
	if !errors.As(err, &pe) || !strings.Contains(pe.Reply, "not a frontend") {
		t.Errorf("a server that is not a frontend: %v", err)
	}

	frontend := listen(t, org.tls(t, "f.contoso.com"), &Proxy{DialTimeout: 2 * time.Second})
	_, _, err = DialProxy(context.Background(), nil, org.tls(t, "a.contoso.com"), frontend.Addr().String(), "f.contoso.com", deadAddr)
	if !errors.As(err, &pe) || !strings.HasPrefix(pe.Reply, "451 ") {
		t.Errorf("a target that refuses: %v", err)
	}

	// A client of another CA gets no further than the handshake.
	other := newTestOrg(t)
	_, _, err = DialProxy(context.Background(), nil, other.tls(t, "x.contoso.com"), frontend.Addr().String(), "f.contoso.com", deadAddr)
	if err == nil || errors.As(err, &pe) {
		t.Errorf("an outsider used the proxy: %v", err)
	}
}

func TestMalformedProxyRequest(t *testing.T) {
	org := newTestOrg(t)
	frontend := listen(t, org.tls(t, "f.contoso.com"), &Proxy{})
	client := org.tls(t, "a.contoso.com")
	for _, req := range []string{"CONNECT\r\n", "CONNECT host\r\n", "GET / HTTP/1.0\r\n", "CONNECT a b:25\r\n"} {
		c, err := tls.Dial("tcp", frontend.Addr().String(), client.ClientConfig("f.contoso.com", ProtoProxy))
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(c, req)
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(line, "451 malformed") {
			t.Errorf("%q: answer %q", req, line)
		}
	}
}
