package receive

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"
)

type stored struct {
	from  string
	rcpts []string
	meta  map[string]string
	data  string
	env   Envelope
}

type memSpool struct {
	mu   sync.Mutex
	msgs []stored
	err  error
}

func (m *memSpool) Put(env Envelope, body io.Reader) (string, error) {
	data, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.err != nil {
		return "", m.err
	}
	var rcpts []string
	for _, r := range env.Recipients {
		rcpts = append(rcpts, r.Address)
	}
	m.msgs = append(m.msgs, stored{env.From, rcpts, env.Meta, string(data), env})
	return "q1", nil
}

var errDisk = errors.New("no space left on device")

func start(t *testing.T, cfg Config, sp Spool) string {
	t.Helper()
	_, addr := startServer(t, cfg, sp)
	return addr
}

// startServer is start that also returns the server, for tests that look
// at its connection count.
func startServer(t testing.TB, cfg Config, sp Spool) (*Server, string) {
	t.Helper()
	cfg.Hostname = "ex01.contoso.com"
	cfg.IsStorageError = func(err error) bool { return errors.Is(err, errDisk) }
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout, cfg.DataTimeout = 10*time.Second, 10*time.Second
	}
	s := New(cfg, sp)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { _ = s.Close() })
	return s, ln.Addr().String()
}

func loopback() []netip.Prefix { return []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")} }

const submitted = "X-MS-Exchange-Organization-AuthAs: Internal\r\n" +
	"X-MS-Exchange-Forest-RulesExecuted: spoofed\r\n" +
	"From: app@contoso.com\r\n" +
	"Subject: hello\r\n" +
	"\r\n" +
	"X-MS-Exchange-Organization-AuthAs: stays in the body\r\n"

func send(addr string, auth sasl.Client, rcpts ...string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("app1.contoso.com"); err != nil {
		return err
	}
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	return c.SendMail("app@contoso.com", rcpts, strings.NewReader(submitted))
}

func TestTrustedClientRelaysAndIsStamped(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: loopback(), MaxMessageSize: 1 << 20, MaxRecipients: 10}, sp)
	if err := send(addr, nil, "bob@fabrikam.com", "carol@sales.contoso.com"); err != nil {
		t.Fatal(err)
	}
	if len(sp.msgs) != 1 {
		t.Fatalf("%d messages stored", len(sp.msgs))
	}
	m := sp.msgs[0]
	if m.from != "app@contoso.com" || len(m.rcpts) != 2 || m.meta["client-ip"] != "127.0.0.1" || m.meta["helo"] != "app1.contoso.com" {
		t.Errorf("envelope %+v", m)
	}
	hdr, body, _ := strings.Cut(m.data, "\r\n\r\n")
	if !strings.HasPrefix(hdr, "Received: from app1.contoso.com ([127.0.0.1])\r\n\tby ex01.contoso.com (sendconn) with ESMTP\r\n\tid ") {
		t.Errorf("Received line:\n%s", hdr)
	}
	for _, want := range []string{
		"X-MS-Exchange-Organization-Network-Message-Id: " + m.meta["network-message-id"],
		"X-MS-Exchange-Organization-AuthSource: ex01.contoso.com",
		"X-MS-Exchange-Organization-AuthAs: Anonymous",
		"X-MS-Exchange-Organization-OriginalArrivalTime: ",
		"From: app@contoso.com",
	} {
		if !strings.Contains(hdr, want) {
			t.Errorf("header lacks %q:\n%s", want, hdr)
		}
	}
	for _, spoofed := range []string{"AuthAs: Internal", "Forest-RulesExecuted"} {
		if strings.Contains(hdr, spoofed) {
			t.Errorf("the client's %q survived:\n%s", spoofed, hdr)
		}
	}
	if body != "X-MS-Exchange-Organization-AuthAs: stays in the body\r\n" {
		t.Errorf("body changed: %q", body)
	}
}

func TestUntrustedClientIsRefusedRelay(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")}}, sp)
	err := send(addr, nil, "bob@fabrikam.com")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 7, 1}) || se.Message != "Unable to relay" {
		t.Fatalf("relay from outside the ranges: %v", err)
	}
	if len(sp.msgs) != 0 {
		t.Error("a refused message was stored")
	}
}

func TestAuthenticatedClientRelays(t *testing.T) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("app-secret"), bcrypt.MinCost)
	sp := &memSpool{}
	addr := start(t, Config{Users: []User{{Name: "app1", PasswordHash: string(hash)}}, AllowInsecureAuth: true, AuthFailureDelay: -1}, sp)

	err := send(addr, nil, "bob@fabrikam.com")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("unauthenticated relay where AUTH is offered: %v", err)
	}
	if err := send(addr, sasl.NewPlainClient("", "app1", "wrong"), "bob@fabrikam.com"); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("bad password: %v", err)
	}
	if err := send(addr, sasl.NewLoginClient("app1", "app-secret"), "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	if m := sp.msgs[0]; m.meta["auth-user"] != "app1" || !strings.Contains(m.data, "AuthAs: Internal") || !strings.Contains(m.data, "with ESMTPA") {
		t.Errorf("authenticated message: %+v", m)
	}
}

func TestStorageFailureAcknowledgesNothing(t *testing.T) {
	sp := &memSpool{err: errDisk}
	addr := start(t, Config{RemoteIPRanges: loopback()}, sp)
	err := send(addr, nil, "bob@fabrikam.com")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 452 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 1}) {
		t.Fatalf("disk failure answered %v, want 452 4.3.1", err)
	}
}

func TestSizeAndRecipientLimits(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: loopback(), MaxMessageSize: 50, MaxRecipients: 1}, sp)
	err := send(addr, nil, "bob@fabrikam.com")
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 552 {
		t.Errorf("oversized message: %v", err)
	}
	if err := send(addr, nil, "a@fabrikam.com", "b@fabrikam.com"); !errors.As(err, &se) || se.Code != 452 {
		t.Errorf("too many recipients: %v", err)
	}
	if len(sp.msgs) != 0 {
		t.Errorf("%d messages stored past the limits", len(sp.msgs))
	}
}

func TestConnectionLimit(t *testing.T) {
	addr := start(t, Config{RemoteIPRanges: loopback(), MaxConnections: 1}, &memSpool{})
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	greeting, _ := bufio.NewReader(first).ReadString('\n')
	if !strings.HasPrefix(greeting, "220 ") {
		t.Fatalf("first connection: %q", greeting)
	}
	second, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	line, _ := bufio.NewReader(second).ReadString('\n')
	if !strings.HasPrefix(line, "421 4.3.2 ") {
		t.Errorf("connection over the limit got %q", line)
	}
}

// The RFC 3461 parameters a submitter gives reach the spool, so that the
// notifications later honour them.
func TestDSNParametersAreKept(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: loopback()}, sp)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("app1.contoso.com"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("DSN"); !ok {
		t.Fatal("DSN not advertised")
	}
	if err := c.Mail("app@contoso.com", &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "QQ314159"}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("bob@fabrikam.com", &smtp.RcptOptions{
		Notify:            []smtp.DSNNotify{smtp.DSNNotifyFailure, smtp.DSNNotifyDelayed},
		OriginalRecipient: "Bob@fabrikam.com", OriginalRecipientType: smtp.DSNAddressTypeRFC822,
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("carol@fabrikam.com", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.WriteString(w, submitted)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if len(sp.msgs) != 1 {
		t.Fatalf("%d messages stored", len(sp.msgs))
	}
	env := sp.msgs[0].env
	if env.Return != "HDRS" || env.EnvelopeID != "QQ314159" {
		t.Errorf("RET/ENVID = %q/%q", env.Return, env.EnvelopeID)
	}
	bob, carol := env.Recipients[0], env.Recipients[1]
	if strings.Join(bob.Notify, ",") != "FAILURE,DELAY" || bob.ORCPT != "rfc822;Bob@fabrikam.com" {
		t.Errorf("bob's parameters: %+v", bob)
	}
	if carol.Notify != nil || carol.ORCPT != "" {
		t.Errorf("carol gave no parameters but has %+v", carol)
	}
}
