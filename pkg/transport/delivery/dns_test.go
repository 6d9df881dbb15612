package delivery

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/testdns"
)

// mxZone is example.test with two MX hosts on their own loopback
// addresses, and the other cases DNS routing must handle.
const mxZone = `$ORIGIN example.test.
@        300 IN SOA ns.example.test. hostmaster.example.test. 1 60 60 60 60
@        300 IN MX 10 mx1
@        300 IN MX 20 mx2
mx1      300 IN A 127.0.0.2
mx2      300 IN A 127.0.0.3
self     300 IN MX 10 ourselves
self     300 IN MX 20 mx2
ourselves 300 IN A 127.0.0.9
loop     300 IN MX 10 ourselves
nullmx   300 IN MX 0 .
plain    300 IN A 127.0.0.2
lame     300 IN MX 10 missing
alias    300 IN CNAME example.test.
`

// dnsConnector is seed 000's "Internet" connector: DNS routing for '*',
// on the test port.
func dnsConnector(t *testing.T, port int) connector.SendConnector {
	t.Helper()
	c, _, err := connector.New(connector.Defaults{ServerName: "EX01"}, connector.UsageInternet, connector.Patch{
		Name:          connector.Some("Internet"),
		AddressSpaces: connector.ListPatch[connector.AddressSpace]{Replace: connector.Some([]connector.AddressSpace{{Type: "SMTP", Address: "*", Cost: 1}})},
		Port:          connector.Some(port),
		Fqdn:          connector.Some("mail.contoso.com"),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Guid = "0a1b2c3d-7425-40de-944b-e07fc1f90ae7"
	return c
}

// sinkOn starts a test server on ip at port (0: any free one).
func sinkOn(t *testing.T, ip string, port int, opts testsmtp.Options) *testsmtp.Server {
	t.Helper()
	return testsmtp.StartOn(t, net.JoinHostPort(ip, fmt.Sprint(port)), opts)
}

func dnsDeliverer(t *testing.T, dns *testdns.Server, self ...netip.AddrPort) *Deliverer {
	t.Helper()
	d := New(Config{ServerFQDN: "ex01.contoso.com", Resolver: newResolver(t, dns), DialTimeout: 2 * time.Second, Self: self})
	t.Cleanup(d.Close)
	return d
}

func dnsHop(c connector.SendConnector, domain string) Hop {
	return Hop{Connector: c, ACL: permissions.DefaultACL("CONTOSO"), Domain: domain}
}

func TestMXDeliveryPrefersTheBestHostAndFailsOver(t *testing.T) {
	dns := testdns.Start(t, mxZone)
	mx2 := sinkOn(t, "127.0.0.3", 0, testsmtp.Options{})
	c := dnsConnector(t, mx2.Port())
	d := dnsDeliverer(t, dns)

	// mx1 is down (nothing on 127.0.0.2 at that port): mx2 takes it.
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "example.test"), message("a@example.test")), Delivered, "250")
	if n := len(mx2.Messages()); n != 1 {
		t.Fatalf("mx2 got %d messages", n)
	}
	// mx1 comes up: the better preference wins from now on.
	mx1 := sinkOn(t, "127.0.0.2", mx2.Port(), testsmtp.Options{})
	d.Close()
	for range 3 {
		wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "example.test"), message("a@example.test")), Delivered, "250")
	}
	if n := len(mx1.Messages()); n != 3 {
		t.Errorf("mx1 got %d of 3 messages", n)
	}
}

func TestImplicitMXAndCNAME(t *testing.T) {
	dns := testdns.Start(t, mxZone)
	sink := sinkOn(t, "127.0.0.2", 0, testsmtp.Options{})
	c := dnsConnector(t, sink.Port())
	d := dnsDeliverer(t, dns)
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "plain.example.test"), message("a@plain.example.test")), Delivered, "250")
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "alias.example.test"), message("a@alias.example.test")), Delivered, "250")
	if n := len(sink.Messages()); n != 2 {
		t.Errorf("%d delivered, want 2", n)
	}
}

func TestDNSFailuresBounceOrWait(t *testing.T) {
	dns := testdns.Start(t, mxZone)
	c := dnsConnector(t, 2525)
	d := dnsDeliverer(t, dns, netip.MustParseAddrPort("127.0.0.9:2525"))
	for _, tc := range []struct {
		domain string
		status Status
		reply  string
	}{
		{"nullmx.example.test", Permanent, "556 5.1.10"},
		{"nxdomain.example.test", Permanent, "554 5.4.4 SMTPSEND.DNS.NonExistentDomain"},
		{"loop.example.test", Permanent, "554 5.4.4 SMTPSEND.DNS.MxLoopback"},
		{"lame.example.test", Permanent, "554 5.4.4 SMTPSEND.DNS.InvalidData"},
	} {
		t.Run(tc.domain, func(t *testing.T) {
			wantStatus(t, d.Deliver(context.Background(), dnsHop(c, tc.domain), message("a@"+tc.domain)), tc.status, tc.reply)
		})
	}

	dns.ServFail("broken.example.test.")
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "broken.example.test"), message("a@broken.example.test")), Transient, "451 4.4.0 DNS query failed")

	c.ErrorPolicies = connector.DowngradeDnsFailures
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "nxdomain.example.test"), message("a@nxdomain.example.test")), Transient, "451 4.4.0 DNS query failed. The error was: SMTPSEND.DNS.NonExistentDomain")
}

// RFC 5321 §5.1: a server that finds itself among the MX hosts drops
// itself and every host no better. self.example.test has this server at
// preference 10 and mx2 at 20, so nothing is left: MxLoopback, and mx2 is
// not tried. Another server, not in the MX set, delivers to mx2.
func TestMXPointingAtThisServer(t *testing.T) {
	dns := testdns.Start(t, mxZone)
	mx2 := sinkOn(t, "127.0.0.3", 0, testsmtp.Options{})
	c := dnsConnector(t, mx2.Port())
	self := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.9"), uint16(mx2.Port()))
	d := dnsDeliverer(t, dns, self)
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "self.example.test"), message("a@self.example.test")), Permanent, "MxLoopback")
	if n := len(mx2.Messages()); n != 0 {
		t.Errorf("a host less preferred than this server got %d messages", n)
	}
	// The same MX set seen from a server that is not 127.0.0.9 delivers
	// to mx2 (ourselves.example.test has nothing listening).
	other := dnsDeliverer(t, dns)
	wantStatus(t, other.Deliver(context.Background(), dnsHop(c, "self.example.test"), message("a@self.example.test")), Delivered, "250")
}

// UseExternalDNSServersEnabled asks dns.external-servers, which may see a
// different zone than the internal ones.
func TestExternalDNSServers(t *testing.T) {
	internal := testdns.Start(t, mxZone)
	external := testdns.Start(t, `$ORIGIN example.test.
@   300 IN SOA ns.example.test. hostmaster.example.test. 1 60 60 60 60
@   300 IN MX 10 outside
outside 300 IN A 127.0.0.4
`)
	sink := sinkOn(t, "127.0.0.4", 0, testsmtp.Options{})
	c := dnsConnector(t, sink.Port())
	c.UseExternalDNSServersEnabled = true
	d := New(Config{ServerFQDN: "ex01.contoso.com", Resolver: newResolver(t, internal), ExternalResolver: newResolver(t, external), DialTimeout: 2 * time.Second})
	defer d.Close()
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "example.test"), message("a@example.test")), Delivered, "250")
	if n := len(sink.Messages()); n != 1 {
		t.Errorf("the external view's MX got %d messages", n)
	}
}

// DomainValidation on a DNS connector checks the certificate against the
// recipient domain (or TlsDomain), not the MX host's name.
func TestDomainValidationUsesTheRecipientDomain(t *testing.T) {
	dns := testdns.Start(t, mxZone)
	ca := testsmtp.NewCA(t)
	good := ca.Issue(t, "example.test")
	sink := sinkOn(t, "127.0.0.2", 0, testsmtp.Options{TLS: &good})
	c := dnsConnector(t, sink.Port())
	c.TlsAuthLevel = connector.TLSDomainValidation
	c.RequireTLS = true
	d := New(Config{ServerFQDN: "ex01.contoso.com", Resolver: newResolver(t, dns), RootCAs: ca.Pool, DialTimeout: 2 * time.Second})
	defer d.Close()
	// The MX host is mx1.example.test; the certificate names the domain.
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "example.test"), message("a@example.test")), Delivered, "250")
	d.Close()
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "plain.example.test"), message("a@plain.example.test")), Transient, "4.7.5")

	c.TlsDomain = "example.test"
	wantStatus(t, d.Deliver(context.Background(), dnsHop(c, "plain.example.test"), message("a@plain.example.test")), Delivered, "250")
	for _, m := range sink.Messages() {
		if !m.TLS {
			t.Error("a message was delivered without TLS")
		}
	}
	if n := len(sink.Messages()); n != 2 {
		t.Errorf("%d delivered, want 2", n)
	}
}
