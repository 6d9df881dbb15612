package delivery

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/resolver"
	"github.com/sendconn/sendconn/pkg/transport/testdns"
)

const testMessage = "Received: from app1 ([10.0.0.5]) by ex01.contoso.com; Mon, 23 Nov 2026 10:00:00 +0000\r\n" +
	"Resent-From: ops@contoso.com\r\n" +
	"X-MS-Exchange-Organization-AuthAs: Internal\r\n" +
	"X-MS-Exchange-Organization-Network-Message-Id:\r\n 6d0c3a1e-0000-4000-8000-000000000001\r\n" +
	"X-MS-Exchange-Forest-RulesExecuted: ex01\r\n" +
	"From: alice@contoso.com\r\n" +
	"To: bob@fabrikam.com\r\n" +
	"Subject: quarterly numbers\r\n" +
	"\r\n" +
	"Received: this line is body, not header\r\n" +
	"X-MS-Exchange-Organization-AuthAs: body too\r\n" +
	".leading dot survives\r\n"

// smartHostConnector is the seed 004 connector pointed at a test server.
func smartHostConnector(t *testing.T, srv *testsmtp.Server) connector.SendConnector {
	t.Helper()
	host, _ := netip.ParseAddr("127.0.0.1")
	c, _, err := connector.New(connector.Defaults{ServerName: "EX01"}, connector.UsageCustom, connector.Patch{
		Name:          connector.Some("Smart host to Internet"),
		AddressSpaces: connector.ListPatch[connector.AddressSpace]{Replace: connector.Some([]connector.AddressSpace{{Type: "SMTP", Address: "*", Cost: 1}})},
		SmartHosts:    connector.ListPatch[connector.SmartHost]{Replace: connector.Some([]connector.SmartHost{{IP: host}})},
		Port:          connector.Some(srv.Port()),
		Fqdn:          connector.Some("mail.contoso.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Guid = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
	return c
}

func message(rcpts ...string) Message {
	return Message{
		ID: "m1", From: "alice@contoso.com", Recipients: rcpts, Size: int64(len(testMessage)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(testMessage)), nil },
	}
}

func deliverer(t *testing.T, ca *testsmtp.CA) *Deliverer {
	t.Helper()
	cfg := Config{ServerFQDN: "ex01.contoso.com", DialTimeout: 5 * time.Second}
	if ca != nil {
		cfg.RootCAs = ca.Pool
	}
	d := New(cfg)
	t.Cleanup(d.Close)
	return d
}

func hop(c connector.SendConnector) Hop {
	return Hop{Connector: c, ACL: permissions.DefaultACL("CONTOSO"), Domain: "fabrikam.com"}
}

func wantStatus(t *testing.T, results []Result, want Status, replyHas string) {
	t.Helper()
	if len(results) == 0 {
		t.Fatal("no results")
	}
	for _, r := range results {
		if r.Status != want || !strings.Contains(r.Reply, replyHas) {
			t.Errorf("%s: %v %q, want %v with %q", r.Recipient, r.Status, r.Reply, want, replyHas)
		}
	}
}

func headerNames(data []byte) []string {
	hdr, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	var names []string
	for _, line := range strings.Split(string(hdr), "\r\n") {
		if name, _, ok := strings.Cut(line, ":"); ok && line[0] != ' ' && line[0] != '\t' {
			names = append(names, name)
		}
	}
	return names
}

func TestAnonymousSmartHostLosesOrganizationHeaders(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	results := deliverer(t, nil).Deliver(context.Background(), hop(c), message("bob@fabrikam.com", "carol@fabrikam.com"))
	wantStatus(t, results, Delivered, "250")
	msgs := srv.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d transactions, want one for both recipients", len(msgs))
	}
	m := msgs[0]
	if m.Helo != "mail.contoso.com" || m.From != "alice@contoso.com" || len(m.Rcpts) != 2 {
		t.Errorf("envelope: helo %q from %q rcpts %v", m.Helo, m.From, m.Rcpts)
	}
	got := strings.Join(headerNames(m.Data), ",")
	if want := "Received,Resent-From,From,To,Subject"; got != want {
		t.Errorf("headers that left: %s\nwant %s", got, want)
	}
	_, body, _ := bytes.Cut(m.Data, []byte("\r\n\r\n"))
	_, wantBody, _ := strings.Cut(testMessage, "\r\n\r\n")
	if string(body) != wantBody {
		t.Errorf("body changed:\n%q\nwant\n%q", body, wantBody)
	}
}

func TestRoutingRightRemovedStripsReceived(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	h := hop(c)
	var err error
	h.ACL, _, err = h.ACL.Remove(permissions.ACE{User: permissions.AnonymousLogon, ExtendedRights: permissions.RightsOf(permissions.SendHeadersRouting)})
	if err != nil {
		t.Fatal(err)
	}
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), h, message("bob@fabrikam.com")), Delivered, "250")
	if got := strings.Join(headerNames(srv.Messages()[0].Data), ","); got != "From,To,Subject" {
		t.Errorf("headers that left: %s", got)
	}
}

func TestExternalAuthoritativeWithOrganizationRight(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	c.SmartHostAuthMechanism = connector.AuthExternalAuthoritative
	h := hop(c)
	h.ACL, _, _ = h.ACL.Add(permissions.ACE{User: permissions.ExternallySecuredServers, ExtendedRights: permissions.RightsOf(permissions.SendHeadersOrganization)})
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), h, message("bob@fabrikam.com")), Delivered, "250")
	got := strings.Join(headerNames(srv.Messages()[0].Data), ",")
	if want := "Received,Resent-From,X-MS-Exchange-Organization-AuthAs,X-MS-Exchange-Organization-Network-Message-Id,From,To,Subject"; got != want {
		t.Errorf("headers that left: %s\nwant %s", got, want)
	}
}

func TestStartTLSWithCertificateValidation(t *testing.T) {
	ca := testsmtp.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1")
	srv := testsmtp.Start(t, testsmtp.Options{TLS: &cert})
	c := smartHostConnector(t, srv)
	c.TlsAuthLevel = connector.TLSCertificateValidation
	c.RequireTLS = true
	wantStatus(t, deliverer(t, ca).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	if m := srv.Messages()[0]; !m.TLS || m.Helo != "mail.contoso.com" {
		t.Errorf("tls %v helo %q", m.TLS, m.Helo)
	}

	// A certificate from a CA we do not trust: transient, nothing sent.
	other := testsmtp.NewCA(t)
	wantStatus(t, deliverer(t, other).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Transient, "454 4.7.5")
	if n := len(srv.Messages()); n != 1 {
		t.Errorf("%d messages after a failed validation, want still 1", n)
	}
}

func TestRequireTLSWithoutSTARTTLSSendsNothing(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	c.RequireTLS = true
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Transient, "451 5.7.3 STARTTLS is required")
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent in clear", n)
	}
}

func TestBasicAuthRequireTLSNeverSendsCredentialsInClear(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{Users: map[string]string{"svc": "pw"}, InsecureAuth: true})
	c := smartHostConnector(t, srv)
	c.SmartHostAuthMechanism = connector.AuthBasicRequireTLS
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("pw")}
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Transient, "credentials not sent")
	if a := srv.AuthAttempts(); len(a) != 0 {
		t.Errorf("AUTH sent without TLS: %v", a)
	}
}

func TestBasicAuth(t *testing.T) {
	ca := testsmtp.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1")
	srv := testsmtp.Start(t, testsmtp.Options{TLS: &cert, Users: map[string]string{"svc": "s3cret"}})
	c := smartHostConnector(t, srv)
	c.SmartHostAuthMechanism = connector.AuthBasicRequireTLS
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("s3cret")}
	wantStatus(t, deliverer(t, ca).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	if m := srv.Messages()[0]; m.AuthUser != "svc" || !m.TLS {
		t.Errorf("auth user %q tls %v", m.AuthUser, m.TLS)
	}

	c.AuthenticationCredential.Password = connector.NewSecret("wrong")
	wantStatus(t, deliverer(t, ca).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Transient, "535")

	// Plain BasicAuth over a server that offers AUTH without TLS.
	plain := testsmtp.Start(t, testsmtp.Options{Users: map[string]string{"svc": "s3cret"}, InsecureAuth: true})
	c = smartHostConnector(t, plain)
	c.SmartHostAuthMechanism = connector.AuthBasic
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("s3cret")}
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
}

func TestPerRecipientReplies(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{Rcpt: func(to string) error {
		switch {
		case strings.HasPrefix(to, "gone@"):
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "No such user"}
		case strings.HasPrefix(to, "full@"):
			return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "Mailbox full"}
		}
		return nil
	}})
	c := smartHostConnector(t, srv)
	results := deliverer(t, nil).Deliver(context.Background(), hop(c), message("gone@fabrikam.com", "ok@fabrikam.com", "full@fabrikam.com"))
	want := map[string]Status{"gone@fabrikam.com": Permanent, "ok@fabrikam.com": Delivered, "full@fabrikam.com": Transient}
	for _, r := range results {
		if want[r.Recipient] != r.Status {
			t.Errorf("%s: %v (%s), want %v", r.Recipient, r.Status, r.Reply, want[r.Recipient])
		}
	}
	if len(results) != 3 {
		t.Errorf("%d results", len(results))
	}
	if m := srv.Messages(); len(m) != 1 || len(m[0].Rcpts) != 1 {
		t.Errorf("transactions: %+v", m)
	}
}

func TestDataRefusedAndDropped(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{Data: func(*testsmtp.Message) error {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "Content rejected"}
	}})
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(smartHostConnector(t, srv)), message("bob@fabrikam.com")), Permanent, "554 5.6.0")

	drop := testsmtp.Start(t, testsmtp.Options{DropInData: true})
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(smartHostConnector(t, drop)), message("bob@fabrikam.com")), Transient, "")
}

func TestOverAdvertisedSize(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{MaxSize: 100})
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(smartHostConnector(t, srv)), message("bob@fabrikam.com")), Permanent, "550 5.3.4 SMTPSEND.OverAdvertisedSize")
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("%d messages sent past the advertised size", n)
	}
}

func TestFailoverToTheNextSmartHost(t *testing.T) {
	// live.test is the test server; dead.test is another loopback
	// address where nothing listens on that port.
	srv := testsmtp.Start(t, testsmtp.Options{})
	dns := testdns.Start(t, `$ORIGIN test.
@ 300 IN SOA ns.test. hostmaster.test. 1 60 60 60 60
dead 300 IN A 127.0.0.2
live 300 IN A 127.0.0.1
`)
	c := smartHostConnector(t, srv)
	c.SmartHosts = []connector.SmartHost{{Host: "dead.test"}, {Host: "live.test"}}
	d := New(Config{ServerFQDN: "ex01.contoso.com", Resolver: newResolver(t, dns), DialTimeout: 2 * time.Second})
	defer d.Close()
	for i := 0; i < 4; i++ { // whichever host the spread starts with
		wantStatus(t, d.Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	}
	if n := len(srv.Messages()); n != 4 {
		t.Errorf("%d delivered, want 4", n)
	}
}

func newResolver(t *testing.T, servers ...*testdns.Server) *resolver.Resolver {
	t.Helper()
	var addrs []string
	for _, s := range servers {
		addrs = append(addrs, s.Addr)
	}
	r, err := resolver.New(resolver.Config{Servers: addrs, Timeout: time.Second, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestConnectionReuse(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	c.SmtpMaxMessagesPerConnection = 2
	var dials atomic.Int32
	d := New(Config{ServerFQDN: "ex01.contoso.com", Dial: func(ctx context.Context, _ netip.Addr, addr string) (net.Conn, error) {
		dials.Add(1)
		var dl net.Dialer
		return dl.DialContext(ctx, "tcp", addr)
	}})
	defer d.Close()
	for i := 0; i < 5; i++ {
		wantStatus(t, d.Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	}
	if n := dials.Load(); n != 3 {
		t.Errorf("%d connections for 5 messages at 2 per connection, want 3", n)
	}
}

func TestConnectorSizeLimit(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	c.MaxMessageSize = 10
	wantStatus(t, deliverer(t, nil).Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Permanent, "5.3.4")
}

// A connector changed within the second WhenChanged records must not reuse
// the idle session its old configuration set up: the new Fqdn is in the
// EHLO of a fresh session.
func TestChangedConnectorGetsAFreshSession(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	d := deliverer(t, nil)
	wantStatus(t, d.Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	changed := c
	changed.Fqdn = "relay.contoso.com"
	if !changed.WhenChanged.Equal(c.WhenChanged) || Fingerprint(changed, nil) == Fingerprint(c, nil) {
		t.Fatal("the test needs an equal WhenChanged and different fingerprints")
	}
	wantStatus(t, d.Deliver(context.Background(), hop(changed), message("carol@fabrikam.com")), Delivered, "250")
	msgs := srv.Messages()
	if len(msgs) != 2 || msgs[0].Helo != "mail.contoso.com" || msgs[1].Helo != "relay.contoso.com" {
		t.Errorf("EHLO names %q, %q; want mail.contoso.com then relay.contoso.com", msgs[0].Helo, msgs[len(msgs)-1].Helo)
	}
	withPassword := c
	withPassword.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("a")}
	otherPassword := withPassword
	otherPassword.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("b")}
	if Fingerprint(withPassword, nil) == Fingerprint(otherPassword, nil) {
		t.Error("a new password keeps the fingerprint")
	}
}

// A pooled session that died while idle (the remote end timed it out) costs
// no deferral: MAIL fails on it, and the message goes through a fresh
// connection at once.
func TestDeadPooledSessionIsReplaced(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	d := deliverer(t, nil)
	wantStatus(t, d.Deliver(context.Background(), hop(c), message("bob@fabrikam.com")), Delivered, "250")
	d.mu.Lock()
	n := 0
	for _, ss := range d.idle {
		for _, s := range ss {
			_ = s.c.Close() // as if the remote end had hung up
			n++
		}
	}
	d.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d pooled sessions, want 1", n)
	}
	wantStatus(t, d.Deliver(context.Background(), hop(c), message("carol@fabrikam.com")), Delivered, "250")
	if got := len(srv.Messages()); got != 2 {
		t.Errorf("%d messages arrived, want 2", got)
	}
}
