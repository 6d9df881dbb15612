package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"time"
)

// Stages of a session set-up, in order; a probe reports the one it
// stopped at.
const (
	StageConnect     = "connect"
	StageBanner      = "banner"
	StageEHLO        = "ehlo"
	StageSTARTTLS    = "starttls"
	StageCertificate = "certificate"
	StageAuth        = "auth"
	StageDone        = "done"
)

// observation is what connectObserved saw.
type observation struct {
	stage      string
	banner     string
	extensions []string
	tls        *tls.ConnectionState
	auth       string
	egress     string // the address the next hop saw the connection come from
	frontend   string // the frontend server it went through, if any
}

// Probe is one next hop as test-connector reports it.
type Probe struct {
	Host    string // as configured or found in DNS
	Address string // ip:port
	OK      bool
	// Stage is where the set-up stopped: StageDone when it succeeded.
	Stage      string
	Reply      string // why it failed, in SMTP reply form
	Banner     string
	Extensions []string
	TLS        string // protocol version and cipher suite; "" without TLS
	// Certificate is the leaf the host presented, also when it was
	// rejected.
	Certificate *x509.Certificate
	Auth        string // mechanism and user, or why there was none
	// Frontend is the frontend server the connection went through and
	// Egress the address the host saw it come from.
	Frontend string
	Egress   string
	Duration time.Duration
}

// Probe sets up a session with each next hop of hop exactly as a delivery
// would — connect from SourceIPAddress, banner, EHLO with the connector's
// Fqdn, STARTTLS with its verification, AUTH when configured — and ends
// it with QUIT, sending no mail. An error means the next hops could not be
// found (DNS).
func (d *Deliverer) Probe(ctx context.Context, hop Hop) ([]Probe, error) {
	hosts, err := d.nextHops(ctx, hop)
	if err != nil {
		var he *hostError
		if errors.As(err, &he) {
			return nil, errors.New(he.reply)
		}
		return nil, err
	}
	var out []Probe
	for _, h := range hosts {
		obs := &observation{}
		start := time.Now()
		s, err := d.connectObserved(ctx, hop, h, obs)
		p := Probe{
			Host: h.name, Address: h.addr, OK: err == nil, Stage: obs.stage,
			Banner: obs.banner, Extensions: obs.extensions, Auth: obs.auth,
			Frontend: obs.frontend, Egress: obs.egress, Duration: time.Since(start),
		}
		if obs.tls != nil {
			p.TLS = tls.VersionName(obs.tls.Version) + " " + tls.CipherSuiteName(obs.tls.CipherSuite)
			if len(obs.tls.PeerCertificates) > 0 {
				p.Certificate = obs.tls.PeerCertificates[0]
			}
		}
		if err != nil {
			p.Reply = asReply(err)
		} else {
			_ = s.c.Quit()
		}
		out = append(out, p)
	}
	return out, nil
}
