// Package delivery carries one message to one Send connector's next hop:
// it picks and fails over between smart hosts (or the MX hosts of the
// recipient domain), applies the connector's TLS and authentication rules,
// decides which principal the remote end is, passes the headers through the
// header firewall for that principal, and reports a result per recipient.
//
// It holds no state about the queue: the caller decides what a result
// means for retries. It does keep a small pool of open connections per
// connector so that up to SmtpMaxMessagesPerConnection messages share one
// SMTP session, as a Send connector does.
package delivery

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	msgheader "github.com/sendconn/sendconn/pkg/transport/internal/header"
	"github.com/sendconn/sendconn/pkg/transport/organization"
	"github.com/sendconn/sendconn/pkg/transport/protocollog"
	"github.com/sendconn/sendconn/pkg/transport/resolver"
	"github.com/sendconn/sendconn/pkg/transport/smtpclient"
)

// Status is the outcome for one recipient.
type Status int

const (
	Delivered Status = iota
	Transient        // try again later
	Permanent        // will never work: a 5xx, or a rule that cannot be met
)

func (s Status) String() string {
	return [...]string{"Delivered", "Transient", "Permanent"}[s]
}

// Result is what happened to one recipient.
type Result struct {
	Recipient string
	Status    Status
	Reply     string // the remote end's reply, or ours in the same form ("451 4.4.0 …")
	Host      string // the host that gave the answer, when there was one
	// RemoteDSN says the next hop offered DSN and took the recipient's
	// RFC 3461 parameters with it, so success notices are its business.
	RemoteDSN bool
}

// Message is what Deliver sends.
type Message struct {
	ID         string
	From       string
	Recipients []string
	Size       int64
	// Return, EnvelopeID and DSN are the RFC 3461 parameters the sender
	// gave (RET, ENVID; NOTIFY and ORCPT per recipient, in the order of
	// Recipients, or nil when none has any), passed on to a next hop that
	// offers DSN.
	Return     string
	EnvelopeID string
	DSN        []RecipientDSN
	// Open returns the stored message (header and body); Deliver closes it.
	Open func() (io.ReadCloser, error)
}

// RecipientDSN is one recipient's NOTIFY and ORCPT.
type RecipientDSN struct {
	Notify []string
	ORCPT  string
}

// Hop is the connector a group of recipients was routed to, with the
// access list that decides the header firewall.
type Hop struct {
	Connector connector.SendConnector
	ACL       permissions.ACL
	// Domain is the recipient domain, for DNS connectors and
	// DomainValidation without TlsDomain.
	Domain string
	// Fingerprint is Fingerprint(Connector, ACL), which callers that
	// deliver through the same configuration many times compute once.
	// Empty means it is computed for this delivery.
	Fingerprint string
	// Relay, when not empty, makes this the intra-organization hop: this
	// server is not a source server of Connector, so the message goes to
	// one of these servers (tried in order), which delivers it through
	// Connector. The hop is mutual TLS with the organization certificate
	// and passes every header, whatever the connector says.
	Relay []organization.Peer
	// Proxies, when not empty, are the frontend servers (tried in order)
	// whose proxy opens the connection to Connector's next hops, so that
	// the mail leaves from a frontend's address (FrontendProxyEnabled).
	Proxies []organization.Peer
}

// Fingerprint identifies a connector's whole configuration together with
// its permissions and password. Idle sessions are pooled per fingerprint,
// so a connector changed in any way never reuses a session set up under
// its old rules — not even within the second WhenChanged records.
func Fingerprint(c connector.SendConnector, acl permissions.ACL) string {
	h := sha256.New()
	enc := json.NewEncoder(h)
	_ = enc.Encode(c)
	_ = enc.Encode(acl)
	if c.AuthenticationCredential != nil {
		h.Write([]byte(c.AuthenticationCredential.Password.Reveal()))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Resolver finds next hops. *resolver.Resolver is the real one; its
// errors (a *resolver.Error) decide between bouncing and retrying.
type Resolver interface {
	LookupHost(ctx context.Context, host string) ([]netip.Addr, error)
	LookupMX(ctx context.Context, domain string) ([]resolver.MX, error) // in the order to try
}

// Config is the delivery side's part of the configuration.
type Config struct {
	ServerFQDN   string         // EHLO name when a connector has no Fqdn
	RootCAs      *x509.CertPool // nil: system roots
	Certificates []tls.Certificate
	// Resolver answers for every connector; ExternalResolver, when set,
	// for those with UseExternalDNSServersEnabled (dns.external-servers).
	Resolver         Resolver
	ExternalResolver Resolver
	// Self are the addresses this server receives mail on, so that an MX
	// pointing back here is recognised (SMTPSEND.DNS.MxLoopback).
	Self   []netip.AddrPort
	Logger *slog.Logger
	// ProtocolLog is the SMTP send protocol log; connectors with
	// ProtocolLoggingLevel Verbose write their sessions to it.
	ProtocolLog *protocollog.Log
	// OnSession, when set, hears of every session set up for delivery:
	// the connector and "tls", "plain", "tls_failed" (STARTTLS or the
	// certificate check failed) or "failed" (anything else), for metrics.
	OnSession func(connector, outcome string)
	// DialTimeout bounds a TCP connect; 0 means 30 s.
	DialTimeout time.Duration
	// Organization is this server's certificate for the hops to other
	// servers of the organization and the CA that vouches for them; nil
	// when this server works alone. OrganizationPrincipal is the
	// principal those servers are (<Domain>\Exchange Servers).
	Organization          *organization.TLS
	OrganizationPrincipal permissions.Principal
	// Dial replaces net.Dialer for tests; nil uses a Dialer with the
	// connector's SourceIPAddress.
	Dial func(ctx context.Context, local netip.Addr, addr string) (net.Conn, error)
}

// Deliverer sends messages. It is safe for concurrent use.
type Deliverer struct {
	cfg    Config
	mu     sync.Mutex
	idle   map[string][]*session // by pool key
	spread atomic.Uint32         // rotates the first smart host tried
}

// New returns a Deliverer.
func New(cfg Config) *Deliverer {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Resolver == nil {
		cfg.Resolver = systemResolver()
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = 30 * time.Second
	}
	return &Deliverer{cfg: cfg, idle: map[string][]*session{}}
}

// session is an open, greeted, secured and authenticated connection that
// can carry another message.
type session struct {
	c         *smtpclient.Client
	host      string
	principal permissions.Principal
	org       bool // a hop to another server of the organization
	messages  int
	idleSince time.Time
	plog      *protocollog.Session // nil unless the connector logs Verbose
}

// end closes the session, politely (QUIT) or not, and says so in the
// protocol log.
func (s *session) end(quit bool) {
	if quit {
		_ = s.c.Quit()
	} else {
		_ = s.c.Close()
	}
	s.plog.Disconnected("Local")
}

// hostError is a failure of one next-hop host: the next one is tried.
type hostError struct {
	reply string
	perm  bool // the failure would repeat on every host (e.g. 5xx to MAIL FROM)
}

func (e *hostError) Error() string { return e.reply }

// Deliver sends msg to hop's next hop and reports per recipient.
func (d *Deliverer) Deliver(ctx context.Context, hop Hop, msg Message) []Result {
	c := &hop.Connector
	if c.MaxMessageSize >= 0 && msg.Size > int64(c.MaxMessageSize) {
		return all(msg.Recipients, Permanent, "550 5.3.4 ROUTING.SizeLimit; message too large for this connector", "")
	}
	hosts, err := d.nextHops(ctx, hop)
	if err != nil {
		var he *hostError
		if errors.As(err, &he) && he.perm {
			return all(msg.Recipients, Permanent, he.reply, "")
		}
		return all(msg.Recipients, Transient, err.Error(), "")
	}
	var last error
	for _, h := range hosts {
		results, err := d.deliverVia(ctx, hop, h, msg)
		if err == nil {
			return results
		}
		last = err
		var he *hostError
		if errors.As(err, &he) && he.perm {
			return all(msg.Recipients, Permanent, he.reply, h.name)
		}
		d.cfg.Logger.Info("next hop failed, trying the next", "connector", c.Name, "host", h.name, "addr", h.addr, "err", err)
		if ctx.Err() != nil {
			break
		}
	}
	reply := "451 4.4.0 no next hop could be reached"
	if last != nil {
		reply = asReply(last)
	}
	return all(msg.Recipients, Transient, reply, "")
}

// Close closes the idle connections.
func (d *Deliverer) Close() {
	d.mu.Lock()
	idle := d.idle
	d.idle = map[string][]*session{}
	d.mu.Unlock()
	for _, ss := range idle {
		for _, s := range ss {
			s.end(true)
		}
	}
}

type nextHop struct {
	name   string // as configured or found in DNS
	addr   string // host:port
	tlsFor string // the name a certificate must be valid for
	org    bool   // another server of the organization (Hop.Relay)
}

// nextHops lists the addresses to try in order: smart hosts spread by
// rotating the first one, each name's addresses in the order DNS gave
// them; for DNS connectors the MX hosts by preference (shuffled within
// one), less preferred than this server's own MX cut off.
func (d *Deliverer) nextHops(ctx context.Context, hop Hop) ([]nextHop, error) {
	c := &hop.Connector
	if len(hop.Relay) > 0 {
		var hops []nextHop
		for _, p := range hop.Relay {
			hops = append(hops, nextHop{name: p.Name, addr: p.Address, tlsFor: p.Fqdn, org: true})
		}
		return hops, nil
	}
	res := d.cfg.Resolver
	if c.UseExternalDNSServersEnabled && d.cfg.ExternalResolver != nil {
		res = d.cfg.ExternalResolver
	}
	// candidates in the order to try; pref only matters for MX hosts.
	type candidate struct {
		name string
		pref int
	}
	var names []candidate
	if c.DNSRoutingEnabled() {
		mx, err := res.LookupMX(ctx, hop.Domain)
		if err != nil {
			return nil, dnsFailure(c, hop.Domain, err)
		}
		for _, m := range mx {
			names = append(names, candidate{m.Host, int(m.Preference)})
		}
	} else {
		start := int(d.spread.Add(1)) % len(c.SmartHosts)
		for i := range c.SmartHosts {
			h := c.SmartHosts[(start+i)%len(c.SmartHosts)]
			if h.IsIP() {
				names = append(names, candidate{h.IP.String(), 0})
			} else {
				names = append(names, candidate{h.Host, 0})
			}
		}
	}
	type resolved struct {
		candidate
		ips []netip.Addr
	}
	var found []resolved
	var lookupErr error
	selfPref := -1
	for _, n := range names {
		var ips []netip.Addr
		if ip, err := netip.ParseAddr(n.name); err == nil {
			ips = []netip.Addr{ip}
		} else if ips, err = res.LookupHost(ctx, n.name); err != nil {
			if lookupErr == nil || resolver.KindOf(err) == resolver.Temporary {
				lookupErr = err
			}
			d.cfg.Logger.Info("next hop did not resolve", "connector", c.Name, "host", n.name, "err", err)
			continue
		}
		if c.DNSRoutingEnabled() && d.isSelf(n.name, ips, c.Port) && (selfPref < 0 || n.pref < selfPref) {
			selfPref = n.pref
		}
		found = append(found, resolved{n, ips})
	}
	var hops []nextHop
	for _, f := range found {
		// RFC 5321 §5.1: when this server is one of the MX hosts, it and
		// every host no better than it are not next hops; if that leaves
		// none, the domain's MX records point back here.
		if selfPref >= 0 && f.pref >= selfPref {
			continue
		}
		for _, ip := range f.ips {
			hops = append(hops, nextHop{name: f.name, addr: net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(c.Port)), tlsFor: f.name})
		}
	}
	if len(hops) > 0 {
		return hops, nil
	}
	switch {
	case lookupErr != nil && resolver.KindOf(lookupErr) == resolver.Temporary:
		return nil, fmt.Errorf("451 4.4.0 DNS query failed: %v", lookupErr)
	case lookupErr != nil && !c.DNSRoutingEnabled():
		// A smart host that does not resolve is the admin's to fix, not
		// the recipient's fault: keep the mail.
		return nil, fmt.Errorf("451 4.4.0 DNS query failed: %v", lookupErr)
	case lookupErr != nil:
		return nil, dnsFailure(c, hop.Domain, lookupErr)
	case selfPref >= 0:
		return nil, &hostError{perm: true, reply: "554 5.4.4 SMTPSEND.DNS.MxLoopback; DNS records for the destination computer are misconfigured: the MX records of " + hop.Domain + " point back at this server"}
	}
	return nil, errors.New("451 4.4.0 no next hop address")
}

// dnsFailure turns a failed lookup for a recipient domain into the reply
// Exchange gives: permanent for a domain that does not exist or has no
// usable records, unless the connector's ErrorPolicies downgrade DNS
// failures, and transient for a lookup that merely failed.
func dnsFailure(c *connector.SendConnector, domain string, err error) error {
	var reply string
	kind := resolver.KindOf(err)
	var re *resolver.Error
	if errors.As(err, &re) && (kind == resolver.NXDomain || kind == resolver.NoAddress) && !strings.EqualFold(re.Name, domain) {
		// An MX host, not the domain, is missing: the domain's DNS data
		// is wrong.
		kind = resolver.InvalidData
	}
	switch kind {
	case resolver.Temporary:
		return fmt.Errorf("451 4.4.0 DNS query failed: %v", err)
	case resolver.NullMX:
		// The domain says it takes no mail (RFC 7505 §4.2): no policy
		// makes waiting worthwhile.
		return &hostError{perm: true, reply: "556 5.1.10 SMTPSEND.DNS.NullMX; " + domain + " does not accept mail (null MX)"}
	case resolver.NXDomain:
		reply = "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain " + domain
	case resolver.NoAddress:
		reply = "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; no mail host address for " + domain
	default:
		reply = "554 5.4.4 SMTPSEND.DNS.InvalidData; DNS data for " + domain + " is unusable: " + err.Error()
	}
	if c.ErrorPolicies&connector.DowngradeDnsFailures != 0 {
		return fmt.Errorf("451 4.4.0 DNS query failed. The error was: %s", strings.TrimPrefix(reply, "554 5.4.4 "))
	}
	return &hostError{perm: true, reply: reply}
}

// isSelf reports whether a next hop is this server: its name is ours, or
// it resolves to an address and port this server receives mail on.
func (d *Deliverer) isSelf(name string, ips []netip.Addr, port int) bool {
	if d.cfg.ServerFQDN != "" && strings.EqualFold(strings.TrimSuffix(name, "."), d.cfg.ServerFQDN) {
		return true
	}
	for _, ip := range ips {
		for _, self := range d.cfg.Self {
			if self.Port() == uint16(port) && self.Addr().Unmap() == ip.Unmap() {
				return true
			}
		}
	}
	return false
}

// deliverVia sends msg through one host. An error means the host failed
// and the next may be tried; results mean the host answered for the
// recipients.
func (d *Deliverer) deliverVia(ctx context.Context, hop Hop, h nextHop, msg Message) ([]Result, error) {
	key := poolKey(hop, h)
	s := d.takeIdle(key)
	reused := s != nil
	if !reused {
		var err error
		if s, err = d.connect(ctx, hop, h); err != nil {
			return nil, err
		}
	}
	results, reusable, err := d.transaction(hop, s, msg)
	if reused && errors.Is(err, errSessionLost) {
		// The pooled session had died (the remote end timed it out):
		// nothing of this message reached it, so try a fresh one.
		s.end(false)
		if s, err = d.connect(ctx, hop, h); err != nil {
			return nil, err
		}
		results, reusable, err = d.transaction(hop, s, msg)
	}
	s.messages++
	if err != nil || !reusable || s.messages >= hop.Connector.SmtpMaxMessagesPerConnection {
		s.end(err == nil)
	} else {
		d.putIdle(key, s, hop.Connector.ConnectionInactivityTimeOut.Duration())
	}
	return results, err
}

func poolKey(hop Hop, h nextHop) string {
	fp := hop.Fingerprint
	if fp == "" {
		fp = Fingerprint(hop.Connector, hop.ACL)
	}
	return fp + "|" + h.addr
}

// probeIdleAfter is how long a pooled session may have idled before its
// reuse is preceded by a NOOP. A younger one is used at once: a NOOP per
// message would cost a round trip each, and a session that died anyway
// fails at MAIL, which deliverVia retries on a fresh connection.
const probeIdleAfter = 2 * time.Second

// takeIdle takes a pooled session for key, if there is a live one. The
// pool lock is not held across the NOOP.
func (d *Deliverer) takeIdle(key string) *session {
	for {
		d.mu.Lock()
		ss := d.idle[key]
		if len(ss) == 0 {
			d.mu.Unlock()
			return nil
		}
		s := ss[len(ss)-1]
		d.idle[key] = ss[:len(ss)-1]
		d.mu.Unlock()
		if time.Since(s.idleSince) < probeIdleAfter {
			return s
		}
		if err := s.c.Noop(); err != nil {
			s.end(false)
			continue
		}
		return s
	}
}

func (d *Deliverer) putIdle(key string, s *session, timeout time.Duration) {
	s.idleSince = time.Now()
	d.mu.Lock()
	d.idle[key] = append(d.idle[key], s)
	d.mu.Unlock()
	// Close it after the connector's inactivity timeout unless a message
	// took it first.
	time.AfterFunc(timeout, func() {
		d.mu.Lock()
		ss := d.idle[key]
		for i, x := range ss {
			if x == s {
				d.idle[key] = append(ss[:i:i], ss[i+1:]...)
				d.mu.Unlock()
				s.end(true)
				return
			}
		}
		d.mu.Unlock()
	})
}

// connect opens, greets, secures and authenticates a session to h under
// the connector's rules. Any failure is a hostError: the next host may do
// better.
func (d *Deliverer) connect(ctx context.Context, hop Hop, h nextHop) (*session, error) {
	obs := &observation{}
	s, err := d.connectObserved(ctx, hop, h, obs)
	if d.cfg.OnSession != nil {
		outcome := "failed"
		switch {
		case err == nil && s.c.TLS() != nil:
			outcome = "tls"
		case err == nil:
			outcome = "plain"
		case obs.stage == StageSTARTTLS || obs.stage == StageCertificate:
			outcome = "tls_failed"
		}
		d.cfg.OnSession(hop.Connector.Name, outcome)
	}
	return s, err
}

// connectObserved is connect, telling obs (when not nil) how far it got
// and what it saw, for test-connector.
func (d *Deliverer) connectObserved(ctx context.Context, hop Hop, h nextHop, obs *observation) (*session, error) {
	if obs == nil {
		obs = &observation{}
	}
	c := &hop.Connector
	timeout := c.ConnectionInactivityTimeOut.Duration()
	obs.stage = StageConnect
	var plog *protocollog.Session
	if c.ProtocolLoggingLevel == connector.LoggingVerbose {
		plog = d.cfg.ProtocolLog.NewSession(c.Name, h.addr)
	}
	plog.Connecting()
	if h.org {
		return d.connectOrganization(ctx, hop, h, plog)
	}
	conn, egress, via, err := d.dialHop(ctx, hop, h)
	if err != nil {
		reply := fmt.Sprintf("441 4.4.1 connection to %s failed: %v", h.addr, err)
		plog.Info(reply, "Failed connection")
		return nil, &hostError{reply: reply}
	}
	obs.egress, obs.frontend = egress, via
	plog.Connected(egress)
	if via != "" {
		plog.Info("frontend "+via, "Connected through the frontend proxy")
	}
	obs.stage = StageBanner
	client, err := smtpclient.NewClient(conn, timeout)
	if err != nil {
		_ = conn.Close()
		plog.Info(asReply(err), "Greeting failed")
		plog.Disconnected("Local")
		return nil, &hostError{reply: asReply(err)}
	}
	obs.banner = client.Greeting()
	logTranscript(client, plog)
	fail := func(reply string) (*session, error) {
		_ = client.Quit()
		plog.Info(reply, "Session failed")
		plog.Disconnected("Local")
		return nil, &hostError{reply: reply}
	}
	ehloName := c.Fqdn
	if ehloName == "" {
		ehloName = d.cfg.ServerFQDN
	}
	obs.stage = StageEHLO
	if err := client.Hello(ehloName, c.ForceHELO); err != nil {
		return fail(asReply(err))
	}
	obs.extensions = client.Extensions()
	offered, _ := client.Extension("STARTTLS")
	switch {
	case !c.IgnoreSTARTTLS && offered:
		obs.stage = StageSTARTTLS
		cfg, verifiedName := d.tlsConfig(hop, h)
		verify := cfg.VerifyConnection
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			// Seen before it is judged, so a rejected certificate can
			// still be shown.
			obs.tls = &cs
			if verify != nil {
				return verify(cs)
			}
			return nil
		}
		if err := client.StartTLS(cfg, ehloName, c.ForceHELO); err != nil {
			if isCertError(err) {
				obs.stage = StageCertificate
				return fail(fmt.Sprintf("454 4.7.5 Certificate validation failure: %v", err))
			}
			return fail(fmt.Sprintf("454 4.7.0 STARTTLS failed: %v", err))
		}
		obs.extensions = client.Extensions()
		if st := client.TLS(); st != nil && len(st.PeerCertificates) > 0 {
			plog.Certificate(st.PeerCertificates[0])
		}
		if c.SmartHostAuthMechanism == connector.AuthBasicRequireTLS && !verifiedName {
			obs.stage = StageCertificate
			// The chain was checked above only when the connector's
			// TlsAuthLevel asked; credentials need the name as well.
			if err := verifyChain(client.TLS(), d.cfg.RootCAs, h.tlsFor); err != nil {
				return fail(fmt.Sprintf("454 4.7.5 Certificate validation failure: %v", err))
			}
		}
	case c.RequireTLS:
		return fail("451 5.7.3 STARTTLS is required to send mail")
	}
	principal := permissions.AnonymousLogon
	obs.stage = StageAuth
	switch c.SmartHostAuthMechanism {
	case connector.AuthBasic, connector.AuthBasicRequireTLS:
		if c.SmartHostAuthMechanism == connector.AuthBasicRequireTLS && client.TLS() == nil {
			return fail("451 4.7.0 BasicAuthRequireTLS: the smart host offers no TLS, credentials not sent")
		}
		mech, err := authenticate(client, c.AuthenticationCredential)
		if err != nil {
			return fail(asReply(err))
		}
		obs.auth = mech + " as " + c.AuthenticationCredential.UserName
	case connector.AuthExternalAuthoritative:
		principal = permissions.ExternallySecuredServers
		obs.auth = "none (ExternalAuthoritative: the smart host is trusted)"
	default:
		obs.auth = "none"
	}
	obs.stage = StageDone
	plog.Info(hop.ACL.Effective(principal).SessionPermissions(), "Set Session Permissions")
	return &session{c: client, host: h.name, principal: principal, plog: plog}, nil
}

// dialHop connects to a next hop, through a frontend's proxy when the hop
// has any. It returns the address the next hop sees the connection come
// from, and the frontend's name when there was one.
func (d *Deliverer) dialHop(ctx context.Context, hop Hop, h nextHop) (conn net.Conn, egress, via string, err error) {
	local := hop.Connector.SourceIPAddress
	if len(hop.Proxies) == 0 {
		conn, err := d.dial(ctx, local, h.addr)
		if err != nil {
			return nil, "", "", err
		}
		return conn, conn.LocalAddr().String(), "", nil
	}
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return d.dial(ctx, local, addr) }
	var errs []error
	for _, p := range hop.Proxies {
		pctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout+handshakeAllowance)
		conn, egress, err := organization.DialProxy(pctx, dial, d.cfg.Organization, p.Address, p.Fqdn, h.addr)
		cancel()
		if err == nil {
			d.cfg.Logger.Debug("connected through frontend", "connector", hop.Connector.Name, "frontend", p.Name, "host", h.addr, "egress", egress)
			return conn, egress, p.Name, nil
		}
		var pe *organization.ProxyError
		if errors.As(err, &pe) {
			// The frontend is fine; the next hop is not.
			return nil, "", "", err
		}
		errs = append(errs, fmt.Errorf("frontend %s: %w", p.Name, err))
	}
	return nil, "", "", errors.Join(errs...)
}

// handshakeAllowance is the time a TLS handshake with another server of
// the organization may take on top of the TCP connect.
const handshakeAllowance = 30 * time.Second

// connectOrganization opens the session of an intra-organization hop:
// mutual TLS from the first byte, EHLO as this server, no AUTH (the
// certificate is the proof), and the peer is the organization's servers
// group.
func (d *Deliverer) connectOrganization(ctx context.Context, hop Hop, h nextHop, plog *protocollog.Session) (*session, error) {
	timeout := hop.Connector.ConnectionInactivityTimeOut.Duration()
	dial := func(ctx context.Context, _, addr string) (net.Conn, error) { return d.dial(ctx, netip.Addr{}, addr) }
	dctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout+handshakeAllowance)
	conn, err := organization.DialSMTP(dctx, dial, d.cfg.Organization, h.addr, h.tlsFor)
	cancel()
	if err != nil {
		reply := fmt.Sprintf("441 4.4.1 connection to organization server %s (%s) failed: %v", h.name, h.addr, err)
		plog.Info(reply, "Failed connection")
		return nil, &hostError{reply: reply}
	}
	plog.Connected(conn.LocalAddr().String())
	client, err := smtpclient.NewClient(conn, timeout)
	if err != nil {
		_ = conn.Close()
		plog.Disconnected("Local")
		return nil, &hostError{reply: asReply(err)}
	}
	logTranscript(client, plog)
	if err := client.Hello(d.cfg.ServerFQDN, false); err != nil {
		_ = client.Quit()
		plog.Disconnected("Local")
		return nil, &hostError{reply: asReply(err)}
	}
	return &session{c: client, host: h.name, principal: d.cfg.OrganizationPrincipal, org: true, plog: plog}, nil
}

// logTranscript writes the session to the protocol log, when the
// connector logs Verbose, with the AUTH exchange redacted.
func logTranscript(client *smtpclient.Client, plog *protocollog.Session) {
	if plog == nil {
		return
	}
	plog.Received("220 " + client.Greeting())
	client.Transcript = func(dir byte, line string) {
		switch {
		case dir == '<':
			plog.Received(line)
		case line == smtpclient.Redacted:
			plog.SentAuth()
		default:
			plog.Sent(line)
		}
	}
}

func (d *Deliverer) dial(ctx context.Context, local netip.Addr, addr string) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, d.cfg.DialTimeout)
	defer cancel()
	if d.cfg.Dial != nil {
		return d.cfg.Dial(ctx, local, addr)
	}
	dialer := net.Dialer{}
	if local.IsValid() && !local.IsUnspecified() {
		dialer.LocalAddr = &net.TCPAddr{IP: local.AsSlice()}
	}
	return dialer.DialContext(ctx, "tcp", addr)
}

// tlsConfig builds the STARTTLS configuration for the connector's
// TlsAuthLevel, and reports whether it already verifies the certificate
// for h's name.
func (d *Deliverer) tlsConfig(hop Hop, h nextHop) (*tls.Config, bool) {
	c := &hop.Connector
	roots := d.cfg.RootCAs
	cfg := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: true, // verification is ours, below, per TlsAuthLevel
		Certificates:       d.clientCertificates(c),
	}
	if ip, err := netip.ParseAddr(h.tlsFor); err != nil || !ip.IsValid() {
		cfg.ServerName = h.tlsFor // SNI for names only
	}
	switch c.TlsAuthLevel {
	case connector.TLSCertificateValidation:
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(&cs, roots, "") }
	case connector.TLSDomainValidation:
		domain := c.TlsDomain
		if domain == "" {
			domain = hop.Domain
		}
		cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(&cs, roots, domain) }
	default:
		if c.SmartHostAuthMechanism == connector.AuthBasicRequireTLS {
			cfg.VerifyConnection = func(cs tls.ConnectionState) error { return verifyChain(&cs, roots, h.tlsFor) }
			return cfg, true
		}
	}
	return cfg, false
}

// clientCertificates offers the certificate TlsCertificateName names (the
// one expiring last among matches), or else one whose subject matches the
// connector's Fqdn, or none.
func (d *Deliverer) clientCertificates(c *connector.SendConnector) []tls.Certificate {
	var best *tls.Certificate
	for i := range d.cfg.Certificates {
		cert := &d.cfg.Certificates[i]
		leaf := cert.Leaf
		if leaf == nil {
			continue
		}
		match := false
		if !c.TlsCertificateName.IsZero() {
			match = (c.TlsCertificateName.Issuer == "" || strings.EqualFold(leaf.Issuer.String(), c.TlsCertificateName.Issuer)) &&
				(strings.EqualFold(leaf.Subject.String(), c.TlsCertificateName.Subject) ||
					strings.EqualFold(leaf.Subject.CommonName, c.TlsCertificateName.SubjectCN()))
		} else if c.Fqdn != "" {
			match = leaf.VerifyHostname(c.Fqdn) == nil
		}
		if match && (best == nil || leaf.NotAfter.After(best.Leaf.NotAfter)) {
			best = cert
		}
	}
	if best == nil {
		return nil
	}
	return []tls.Certificate{*best}
}

// verifyChain checks the peer's chain against roots and, when name is
// given, that the certificate is valid for it (wildcards as x509 allows).
func verifyChain(cs *tls.ConnectionState, roots *x509.CertPool, name string) error {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return errors.New("no certificate presented")
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), DNSName: name}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	_, err := cs.PeerCertificates[0].Verify(opts)
	return err
}

func isCertError(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify) ||
		strings.Contains(err.Error(), "certificate")
}

// authenticate uses PLAIN when offered, else LOGIN.
func authenticate(client *smtpclient.Client, cred *connector.Credential) (mech string, err error) {
	if cred == nil {
		return "", errors.New("530 5.7.0 the connector has no credential")
	}
	ok, mechs := client.Extension("AUTH")
	if !ok {
		return "", errors.New("530 5.7.0 the smart host offers no AUTH")
	}
	offered := strings.Fields(strings.ToUpper(mechs))
	has := func(m string) bool {
		for _, o := range offered {
			if o == m {
				return true
			}
		}
		return false
	}
	switch {
	case has(sasl.Plain):
		return sasl.Plain, client.Auth(sasl.NewPlainClient("", cred.UserName, cred.Password.Reveal()))
	case has(sasl.Login):
		return sasl.Login, client.Auth(sasl.NewLoginClient(cred.UserName, cred.Password.Reveal()))
	}
	return "", fmt.Errorf("504 5.7.4 the smart host offers neither PLAIN nor LOGIN (offers %s)", mechs)
}

// transaction sends one message over an open session. reusable says the
// session may carry another message.
func (d *Deliverer) transaction(hop Hop, s *session, msg Message) (results []Result, reusable bool, err error) {
	c := &hop.Connector
	client := s.c
	if max := client.MaxSize(); max > 0 && msg.Size > max {
		return all(msg.Recipients, Permanent, fmt.Sprintf("550 5.3.4 SMTPSEND.OverAdvertisedSize; message size %d exceeds the %d bytes %s accepts", msg.Size, max, s.host), s.host), true, nil
	}
	remoteDSN, _ := client.Extension("DSN")
	// The body is opened and its header filtered before the envelope goes
	// out: once DATA is accepted, a message that cannot be read can only
	// be abandoned by dropping the connection.
	body, err := msg.Open()
	if err != nil {
		return nil, true, fmt.Errorf("451 4.3.0 open queued message: %v", err)
	}
	defer body.Close()
	policy := permissions.SendPolicy(hop.ACL.Effective(s.principal), c.CloudServicesMailEnabled)
	if s.org {
		// Between servers of the organization every header passes, as
		// on Exchange's intra-organization connectors; the server that
		// makes the last hop applies this connector's firewall.
		policy = permissions.Policy{}
	}
	wire, err := firewalled(body, msg.Size, policy)
	if err != nil {
		return nil, true, fmt.Errorf("451 4.3.0 read queued message: %v", err)
	}
	rcpts := make([]smtpclient.RcptParams, len(msg.Recipients))
	for i, rcpt := range msg.Recipients {
		rcpts[i].To = rcpt
		if i < len(msg.DSN) {
			rcpts[i].Notify, rcpts[i].ORCPT = msg.DSN[i].Notify, msg.DSN[i].ORCPT
		}
	}
	env, err := client.SendEnvelope(msg.From, smtpclient.MailParams{Size: msg.Size, Return: msg.Return, EnvelopeID: msg.EnvelopeID}, rcpts)
	if err != nil {
		// No reply to some command: the session is gone before anything
		// of this message was accepted.
		return nil, false, fmt.Errorf("%w: %w", errSessionLost, &hostError{reply: asReply(err)})
	}
	if r := env.Mail; r.Code != 250 {
		switch {
		case r.Permanent():
			_ = client.Reset()
			return nil, false, &hostError{reply: r.Error(), perm: true}
		case r.Code == 421:
			return nil, false, fmt.Errorf("%w: %w", errSessionLost, &hostError{reply: r.Error()})
		}
		_ = client.Reset()
		return nil, false, &hostError{reply: r.Error()}
	}
	var accepted []string
	for i, r := range env.Rcpt {
		if r.Code == 250 || r.Code == 251 {
			accepted = append(accepted, msg.Recipients[i])
			continue
		}
		status := Transient
		if r.Permanent() {
			status = Permanent
		}
		results = append(results, Result{Recipient: msg.Recipients[i], Status: status, Reply: r.Error(), Host: s.host})
	}
	if len(accepted) == 0 {
		return results, client.Reset() == nil, nil
	}
	if r := env.Data; r.Code != 354 {
		status := Transient
		if r.Permanent() {
			status = Permanent
		}
		return append(results, all(accepted, status, r.Error(), s.host)...), client.Reset() == nil, nil
	}
	reply, err := client.SendData(wire)
	if err != nil {
		var r *smtpclient.Reply
		if errors.As(err, &r) {
			status := Transient
			if r.Permanent() {
				status = Permanent
			}
			return append(results, all(accepted, status, r.Error(), s.host)...), true, nil
		}
		// The connection broke during DATA: whether the remote end took
		// the message is unknown; retrying risks a duplicate, never a loss.
		return nil, false, &hostError{reply: asReply(err)}
	}
	delivered := all(accepted, Delivered, reply.Error(), s.host)
	for i := range delivered {
		delivered[i].RemoteDSN = remoteDSN
	}
	return append(results, delivered...), true, nil
}

// errSessionLost marks a transaction that failed at MAIL because the
// session was gone; deliverVia retries it once on a new connection when the
// session came from the pool.
var errSessionLost = errors.New("session lost")

// firewalled returns the message as it may leave: the header block filtered
// under p, the body streamed as stored. Only the header is read into memory.
//
// The read buffer fits the message, up to 64 KB: most mail is a few
// kilobytes, and a 64 KB buffer for each would be most of the garbage a
// delivery makes.
func firewalled(r io.Reader, size int64, p permissions.Policy) (io.Reader, error) {
	br := bufio.NewReaderSize(r, int(min(max(size+1, 4<<10), 64<<10)))
	hdr, err := msgheader.Read(br, 0)
	if err != nil {
		return nil, err
	}
	return io.MultiReader(bytes.NewReader(permissions.Filter(hdr, p)), br), nil
}

func all(rcpts []string, st Status, reply, host string) []Result {
	out := make([]Result, len(rcpts))
	for i, r := range rcpts {
		out[i] = Result{Recipient: r, Status: st, Reply: reply, Host: host}
	}
	return out
}

// asReply renders an error as an SMTP-style reply for queue state and
// logs.
func asReply(err error) string {
	var r *smtpclient.Reply
	if errors.As(err, &r) {
		return r.Error()
	}
	var he *hostError
	if errors.As(err, &he) {
		return he.reply
	}
	msg := err.Error()
	if len(msg) > 4 && msg[3] == ' ' && (msg[0] == '4' || msg[0] == '5') {
		return msg
	}
	return "451 4.4.0 " + msg
}

// systemResolver asks the servers in /etc/resolv.conf, for a Deliverer
// configured without a resolver of its own.
func systemResolver() Resolver {
	servers, err := resolver.ServersFromResolvConf("/etc/resolv.conf")
	if err == nil {
		r, rerr := resolver.New(resolver.Config{Servers: servers})
		if rerr == nil {
			return r
		}
		err = rerr
	}
	return brokenResolver{err: &resolver.Error{Kind: resolver.Temporary, Name: "/etc/resolv.conf", Err: err}}
}

// brokenResolver fails every lookup with the reason there is no resolver,
// transiently, so mail waits for the configuration to be fixed.
type brokenResolver struct{ err error }

func (b brokenResolver) LookupHost(context.Context, string) ([]netip.Addr, error) { return nil, b.err }
func (b brokenResolver) LookupMX(context.Context, string) ([]resolver.MX, error)  { return nil, b.err }
