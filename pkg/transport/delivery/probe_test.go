package delivery

import (
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
)

// A STARTTLS+AUTH smart host passes every stage and no mail is sent.
func TestProbeSucceeds(t *testing.T) {
	ca := testsmtp.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1")
	srv := testsmtp.Start(t, testsmtp.Options{TLS: &cert, Users: map[string]string{"svc": "s3cret"}})
	c := smartHostConnector(t, srv)
	c.TlsAuthLevel = connector.TLSCertificateValidation
	c.SmartHostAuthMechanism = connector.AuthBasicRequireTLS
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("s3cret")}
	ps, err := deliverer(t, ca).Probe(context.Background(), hop(c))
	if err != nil || len(ps) != 1 {
		t.Fatalf("Probe = %+v, %v", ps, err)
	}
	p := ps[0]
	if !p.OK || p.Stage != StageDone || p.Reply != "" || !strings.HasPrefix(p.TLS, "TLS 1.") ||
		p.Certificate == nil || p.Auth != "PLAIN as svc" || !strings.Contains(p.Banner, "smarthost.test") {
		t.Errorf("probe %+v", p)
	}
	if !contains(p.Extensions, "AUTH") {
		t.Errorf("extensions after TLS %v", p.Extensions)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("a probe sent %d messages", n)
	}
}

// A certificate for another name under DomainValidation: the probe stops
// at the certificate, says why, and still shows what was presented.
func TestProbeReportsTheCertificateFailure(t *testing.T) {
	ca := testsmtp.NewCA(t)
	cert := ca.Issue(t, "wrong.example")
	srv := testsmtp.Start(t, testsmtp.Options{TLS: &cert})
	c := smartHostConnector(t, srv)
	c.TlsAuthLevel = connector.TLSDomainValidation
	c.TlsDomain = "relay.contoso.com"
	ps, err := deliverer(t, ca).Probe(context.Background(), hop(c))
	if err != nil || len(ps) != 1 {
		t.Fatalf("Probe = %+v, %v", ps, err)
	}
	p := ps[0]
	if p.OK || p.Stage != StageCertificate || !strings.HasPrefix(p.Reply, "454 4.7.5") ||
		p.Certificate == nil || p.Certificate.DNSNames[0] != "wrong.example" {
		t.Errorf("probe %+v", p)
	}
}

func TestProbeConnectFailure(t *testing.T) {
	srv := testsmtp.Start(t, testsmtp.Options{})
	c := smartHostConnector(t, srv)
	c.SmartHosts = []connector.SmartHost{{IP: netip.MustParseAddr("127.0.0.2")}} // nothing listens there
	ps, err := deliverer(t, nil).Probe(context.Background(), hop(c))
	if err != nil || len(ps) != 1 || ps[0].OK || ps[0].Stage != StageConnect || !strings.HasPrefix(ps[0].Reply, "441 4.4.1") {
		t.Errorf("Probe = %+v, %v", ps, err)
	}
}

func contains(xs []string, x string) bool {
	for _, s := range xs {
		if s == x {
			return true
		}
	}
	return false
}
