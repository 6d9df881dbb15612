// Package testdns runs a real, authoritative DNS server on loopback for the
// transport's tests, so that the resolver and delivery are exercised over
// actual UDP and TCP exchanges rather than against a mocked interface. It
// is not internal so that the CLI's end-to-end scripts can run it too; it
// is test infrastructure, not part of sendconn's API.
//
// A Server listens on 127.0.0.1 only, on one ephemeral port for both UDP and
// TCP, and serves the zone text it was given (RFC 1035 master file syntax,
// with $ORIGIN and $TTL; $INCLUDE is refused so a test cannot read files). It
// answers the way an authoritative server does, because the resolver's rules
// (implicit MX, negative caching from the SOA, CNAME chasing) depend on those
// details:
//
//   - a name with records of the asked type: NOERROR with those records;
//   - a name that exists (including an empty non-terminal) without records of
//     the asked type: NOERROR, no answer (NODATA), the zone's SOA in the
//     authority section;
//   - a name below the zone apex that does not exist: NXDOMAIN with the SOA;
//   - a CNAME: the CNAME, then the target's records if the target is served
//     here too, following chains (a loop stops when it comes round), with
//     the rcode of the last name;
//   - a name in no zone served here: REFUSED, as an authoritative-only
//     server would.
//
// The SOA in a negative answer carries min(SOA TTL, SOA MINIMUM) as its TTL,
// as RFC 2308 §3 asks. Answers are AA; there is no recursion, no wildcard
// and no delegation handling (NS records below an apex are plain data).
//
// Several zones may be given in one text: every SOA starts a zone at its
// owner, and every record must lie inside one of them.
//
// Failures are scripted per name (any type): ServFail, Drop (no answer, to
// simulate a timeout) and Truncate (UDP answers carry TC=1 and no records;
// TCP answers are whole). UDP answers too large for the client's advertised
// EDNS0 size (512 without EDNS0) are truncated the regular way.
package testdns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Query is one question the server received, for tests to assert what went
// over the wire.
type Query struct {
	Name  string // lower-case and fully qualified, with the trailing dot
	Qtype string // "MX", "A", ...
	Net   string // "udp" or "tcp"
}

// Server is a running DNS server. Its methods are safe for concurrent use.
type Server struct {
	// Addr is "127.0.0.1:port", the same port for UDP and TCP.
	Addr string

	udp, tcp *dns.Server
	served   sync.WaitGroup
	close    sync.Once
	closeErr error

	mu      sync.Mutex
	zones   *zoneSet
	scripts map[string]script
	queries []Query
}

type script int

const (
	scriptServFail script = iota + 1
	scriptDrop
	scriptTruncate
)

// Start starts a server for zone and closes it when the test ends. A zone
// that does not parse fails the test at once.
func Start(t testing.TB, zone string) *Server {
	t.Helper()
	s, err := Listen(zone)
	if err != nil {
		t.Fatalf("testdns: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("testdns: close: %v", err)
		}
	})
	return s
}

// Listen starts a server for zone; the caller must Close it. It exists for
// helpers that outlive a testing.TB, such as a test binary re-executed as a
// long-running command.
func Listen(zone string) (*Server, error) {
	zs, err := parseZones(zone)
	if err != nil {
		return nil, err
	}
	pc, ln, err := listenLoopback()
	if err != nil {
		return nil, err
	}
	s := &Server{
		Addr:    pc.LocalAddr().String(),
		zones:   zs,
		scripts: make(map[string]script),
	}
	h := dns.HandlerFunc(s.serve)
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: h, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: h, NotifyStartedFunc: notify}
	failed := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.served.Add(1)
		go func() {
			defer s.served.Done()
			if err := srv.ActivateAndServe(); err != nil {
				failed <- err
			}
		}()
	}
	// Shutdown refuses a server that has not started yet, so Listen only
	// returns once both are serving.
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			pc.Close()
			ln.Close()
			return nil, fmt.Errorf("serve: %w", err)
		}
	}
	return s, nil
}

// listenLoopback binds UDP and TCP to the same ephemeral port on 127.0.0.1.
// The kernel picks the UDP port; the TCP one may be taken by someone else,
// so it retries with a fresh port a few times.
func listenLoopback() (net.PacketConn, net.Listener, error) {
	var lastErr error
	for range 20 {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			return nil, nil, fmt.Errorf("listen udp: %w", err)
		}
		port := pc.LocalAddr().(*net.UDPAddr).Port
		ln, err := net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err == nil {
			return pc, ln, nil
		}
		pc.Close()
		lastErr = err
	}
	return nil, nil, fmt.Errorf("listen tcp on the udp port: %w", lastErr)
}

// Close stops the server and waits for it to stop serving. Calling it again
// returns the first result.
func (s *Server) Close() error {
	s.close.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.closeErr = errors.Join(s.udp.ShutdownContext(ctx), s.tcp.ShutdownContext(ctx))
		s.served.Wait()
	})
	return s.closeErr
}

// SetZone replaces everything served with zone, atomically: a query sees
// either the old records or the new ones. Scripted failures are kept.
func (s *Server) SetZone(zone string) error {
	zs, err := parseZones(zone)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.zones = zs
	s.mu.Unlock()
	return nil
}

// ServFail makes the server answer SERVFAIL for name, whatever the type,
// until Clear.
func (s *Server) ServFail(name string) { s.setScript(name, scriptServFail) }

// Drop makes the server never answer queries for name, so that clients
// time out, until Clear.
func (s *Server) Drop(name string) { s.setScript(name, scriptDrop) }

// Truncate makes UDP answers for name carry TC=1 and no records, until
// Clear; TCP answers stay complete, so a client must retry over TCP.
func (s *Server) Truncate(name string) { s.setScript(name, scriptTruncate) }

// Clear undoes ServFail, Drop or Truncate for name. A name has at most one
// of them: the last one set.
func (s *Server) Clear(name string) {
	s.mu.Lock()
	delete(s.scripts, canonical(name))
	s.mu.Unlock()
}

func (s *Server) setScript(name string, sc script) {
	s.mu.Lock()
	s.scripts[canonical(name)] = sc
	s.mu.Unlock()
}

// Queries returns the questions received so far, oldest first, including
// dropped ones.
func (s *Server) Queries() []Query {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.queries)
}

// ResetQueries forgets the questions received so far, so a test can assert
// on the queries of one step only.
func (s *Server) ResetQueries() {
	s.mu.Lock()
	s.queries = nil
	s.mu.Unlock()
}

func canonical(name string) string { return strings.ToLower(dns.Fqdn(name)) }

func (s *Server) serve(w dns.ResponseWriter, req *dns.Msg) {
	network := "udp"
	if _, ok := w.RemoteAddr().(*net.TCPAddr); ok {
		network = "tcp"
	}
	resp := new(dns.Msg)
	resp.SetReply(req)
	if len(req.Question) != 1 {
		resp.Rcode = dns.RcodeFormatError
		w.WriteMsg(resp)
		return
	}
	q := req.Question[0]
	name := canonical(q.Name)

	s.mu.Lock()
	s.queries = append(s.queries, Query{Name: name, Qtype: dns.Type(q.Qtype).String(), Net: network})
	sc := s.scripts[name]
	zones := s.zones
	s.mu.Unlock()

	switch {
	case sc == scriptDrop:
		return
	case sc == scriptServFail:
		resp.Rcode = dns.RcodeServerFailure
	case q.Qclass != dns.ClassINET:
		resp.Rcode = dns.RcodeRefused
	default:
		zones.answer(resp, name, q.Qtype)
	}

	udpSize := dns.MinMsgSize
	if opt := req.IsEdns0(); opt != nil {
		udpSize = max(int(opt.UDPSize()), dns.MinMsgSize)
		resp.SetEdns0(uint16(udpSize), false)
	}
	if network == "udp" {
		if sc == scriptTruncate {
			resp.Truncated = true
			resp.Answer, resp.Ns = nil, nil
		} else {
			resp.Truncate(udpSize)
		}
	}
	w.WriteMsg(resp)
}

// zone is the data of one zone, keyed by lower-case owner name.
type zone struct {
	apex  string
	soa   *dns.SOA
	names map[string][]dns.RR
	// exists holds every name that exists in the zone: owners and the empty
	// non-terminals between them and the apex (RFC 8020: those are NODATA,
	// not NXDOMAIN).
	exists map[string]bool
}

type zoneSet struct {
	zones []*zone // longest apex first, so the first match is the closest
}

func parseZones(text string) (*zoneSet, error) {
	// With origin "." a name without a trailing dot is taken as absolute
	// unless the text sets $ORIGIN, which is what tests usually mean.
	zp := dns.NewZoneParser(strings.NewReader(text), ".", "")
	zp.SetDefaultTTL(3600)
	var rrs []dns.RR
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		rrs = append(rrs, rr)
	}
	if err := zp.Err(); err != nil {
		return nil, fmt.Errorf("parse zone: %w", err)
	}

	byApex := make(map[string]*zone)
	zs := &zoneSet{}
	for _, rr := range rrs {
		soa, ok := rr.(*dns.SOA)
		if !ok {
			continue
		}
		apex := canonical(soa.Hdr.Name)
		if byApex[apex] != nil {
			return nil, fmt.Errorf("parse zone: more than one soa for %s", apex)
		}
		z := &zone{apex: apex, soa: soa, names: make(map[string][]dns.RR), exists: map[string]bool{apex: true}}
		byApex[apex] = z
		zs.zones = append(zs.zones, z)
	}
	if len(zs.zones) == 0 {
		return nil, errors.New("parse zone: no soa record: a zone needs one at its apex")
	}
	slices.SortFunc(zs.zones, func(a, b *zone) int {
		return dns.CountLabel(b.apex) - dns.CountLabel(a.apex)
	})

	for _, rr := range rrs {
		owner := canonical(rr.Header().Name)
		z := zs.find(owner)
		if z == nil {
			return nil, fmt.Errorf("parse zone: %s is outside every zone", owner)
		}
		z.names[owner] = append(z.names[owner], rr)
		for n := owner; n != z.apex; {
			z.exists[n] = true
			off, end := dns.NextLabel(n, 0)
			if end {
				break
			}
			n = n[off:]
		}
	}
	return zs, nil
}

// find returns the zone name belongs to, or nil.
func (zs *zoneSet) find(name string) *zone {
	for _, z := range zs.zones {
		if dns.IsSubDomain(z.apex, name) {
			return z
		}
	}
	return nil
}

// answer fills resp for an IN question for name (canonical) and qtype.
func (zs *zoneSet) answer(resp *dns.Msg, name string, qtype uint16) {
	z := zs.find(name)
	if z == nil {
		resp.Rcode = dns.RcodeRefused
		return
	}
	resp.Authoritative = true
	seen := make(map[string]bool)
	for {
		seen[name] = true
		var cname *dns.CNAME
		found := false
		for _, rr := range z.names[name] {
			if qtype == dns.TypeANY || rr.Header().Rrtype == qtype {
				resp.Answer = append(resp.Answer, dns.Copy(rr))
				found = true
			} else if c, ok := rr.(*dns.CNAME); ok {
				cname = c
			}
		}
		if found {
			return
		}
		if cname == nil {
			if !z.exists[name] {
				resp.Rcode = dns.RcodeNameError
			}
			soa := dns.Copy(z.soa).(*dns.SOA)
			soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
			resp.Ns = append(resp.Ns, soa)
			return
		}
		resp.Answer = append(resp.Answer, dns.Copy(cname))
		target := canonical(cname.Target)
		next := zs.find(target)
		if seen[target] || next == nil {
			// A loop is the client's to detect; a target served elsewhere
			// is the client's to look up.
			return
		}
		z, name = next, target
	}
}
