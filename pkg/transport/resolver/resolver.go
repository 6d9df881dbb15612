// Package resolver is the transport's DNS stub resolver: it finds the next
// hops of DNS-routed Send connectors (MX) and the addresses of smart hosts
// and MX hosts (A/AAAA), by asking the configured recursive servers itself.
// It does not use the system resolver because delivery needs what that one
// hides: NXDOMAIN apart from NODATA (implicit MX), the null MX, and
// temporary failures apart from permanent ones, so that a message is
// retried rather than bounced when DNS is merely down.
//
// The rules, after RFC 5321 §5.1, RFC 7505 and RFC 2308:
//
//   - Queries go over UDP with EDNS0 (1232-byte buffer, the DNS flag day 2020
//     size that avoids IP fragmentation). A truncated UDP answer is never
//     used, because it may be missing records: the query is repeated over
//     TCP to the same server.
//   - Servers are tried in order, each Config.Attempts times on a timeout,
//     network error or malformed answer. SERVFAIL, REFUSED and other RCODEs
//     but NOERROR and NXDOMAIN move straight to the next server, since a
//     resolver that just failed a name usually fails it again at once
//     (RFC 9520 has it cache the failure).
//   - CNAMEs are followed inside the answer and, where the answer stops at a
//     target without its records, by querying the target; at most eight
//     links, and a loop is InvalidData. The rcode of an answer with a chain
//     is about the last name (RFC 6604).
//   - LookupMX sorts by preference and shuffles equal preferences on every
//     call, to spread load as RFC 5321 §5.1 asks. No MX records (NODATA)
//     gives the implicit MX: the domain itself at preference 0. A null MX
//     (target ".") is error kind NullMX if it is all there is, and ignored
//     beside real MX records. Duplicate hosts are kept once, at their best
//     preference.
//   - LookupHost asks A and AAAA in parallel and returns IPv4 addresses,
//     then IPv6, each in the server's order. If one family has addresses
//     the other family's failure is ignored, so a broken AAAA answer does
//     not stop delivery over IPv4. An IP literal ("192.0.2.1", "[::1]",
//     "[IPv6:2001:db8::1]") is returned without a query.
//   - Answers are cached per queried name and type: positive ones for the
//     smallest TTL of the records used (CNAMEs included, at most one hour),
//     NXDOMAIN and NODATA for min(SOA TTL, SOA MINIMUM) (at most five
//     minutes; without an SOA, not at all). Failures are never cached, nor
//     is a TTL of 0. Concurrent identical queries share one exchange.
//   - Names are ASCII and compared case-insensitively; IDNA is the caller's.
//   - Cancelling the context ends the lookup at once with a Temporary error
//     that wraps ctx.Err().
//
// Every error is an *Error; KindOf tells the kinds apart.
package resolver

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"
)

const (
	ednsBufferSize  = 1232
	maxCNAMELinks   = 8
	maxPositiveTTL  = 3600 // seconds
	maxNegativeTTL  = 300  // seconds
	defaultTimeout  = 5 * time.Second
	defaultAttempts = 2
	defaultCacheMax = 10000
)

// Config configures a Resolver. Only Servers is required.
type Config struct {
	// Servers are the recursive servers, tried in order: "host:port" or a
	// bare IP (port 53), IPv6 as "[::1]:53". They must be IP addresses;
	// a resolver cannot resolve its own servers.
	Servers []string
	// Timeout bounds one query attempt (a TCP retry after truncation gets
	// its own). 0 means 5s.
	Timeout time.Duration
	// Attempts is how many times a server is tried before the next one.
	// 0 means 2.
	Attempts int
	// Now is the cache's clock, for tests. nil means time.Now.
	Now func() time.Time
	// MaxCacheEntries bounds the cache. 0 means 10000; negative disables
	// caching.
	MaxCacheEntries int
}

// Resolver looks up MX and address records. It is safe for concurrent use.
type Resolver struct {
	servers  []string
	timeout  time.Duration
	attempts int
	now      func() time.Time
	cache    *cache // nil: no caching
	flight   flight
	// shuffle randomises MX hosts of equal preference; a field so that
	// tests could make it deterministic.
	shuffle func(n int, swap func(i, j int))
}

// New returns a Resolver for cfg. It fails if there is no server or a
// server is not an IP address with an optional port.
func New(cfg Config) (*Resolver, error) {
	if len(cfg.Servers) == 0 {
		return nil, errors.New("resolver: no servers")
	}
	if cfg.Timeout < 0 || cfg.Attempts < 0 {
		return nil, errors.New("resolver: negative timeout or attempts")
	}
	r := &Resolver{
		timeout:  cfg.Timeout,
		attempts: cfg.Attempts,
		now:      cfg.Now,
		shuffle:  rand.Shuffle,
	}
	for _, s := range cfg.Servers {
		addr, err := parseServer(s)
		if err != nil {
			return nil, err
		}
		r.servers = append(r.servers, addr)
	}
	if r.timeout == 0 {
		r.timeout = defaultTimeout
	}
	if r.attempts == 0 {
		r.attempts = defaultAttempts
	}
	if r.now == nil {
		r.now = time.Now
	}
	switch n := cfg.MaxCacheEntries; {
	case n == 0:
		r.cache = newCache(defaultCacheMax)
	case n > 0:
		r.cache = newCache(n)
	}
	return r, nil
}

func parseServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Port() != 0 {
		return ap.String(), nil
	}
	if a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]")); err == nil {
		return netip.AddrPortFrom(a, 53).String(), nil
	}
	return "", fmt.Errorf("resolver: bad server %q: want an ip address with an optional port", s)
}

// MX is one next hop for a domain, in delivery order.
type MX struct {
	Host       string // lower case, without the trailing dot
	Preference uint16
	// Implicit is set on the single entry made up when the domain has no
	// MX records: the domain itself (RFC 5321 §5.1).
	Implicit bool
}

// LookupMX returns the mail exchangers of domain in the order to try them.
// See the package documentation for the rules.
func (r *Resolver) LookupMX(ctx context.Context, domain string) ([]MX, error) {
	name, err := canonicalName(domain)
	if err != nil {
		return nil, &Error{Kind: InvalidData, Name: domain, Qtype: "MX", Err: err}
	}
	display := strings.TrimSuffix(name, ".")
	a, err := r.resolve(ctx, name, dns.TypeMX, nil)
	if err != nil {
		return nil, renamed(err, display, "MX")
	}
	if a.nxdomain {
		return nil, &Error{Kind: NXDomain, Name: display, Qtype: "MX", Server: a.server, Rcode: "NXDOMAIN"}
	}
	if len(a.rrs) == 0 {
		return []MX{{Host: display, Preference: 0, Implicit: true}}, nil
	}

	var (
		mxs     []MX
		index   = make(map[string]int)
		nullMX  bool
		invalid error
	)
	for _, rr := range a.rrs {
		mx, ok := rr.(*dns.MX)
		if !ok {
			continue
		}
		if mx.Mx == "." {
			// Strictly the null MX is preference 0 only, but a root
			// target is unusable at any preference.
			nullMX = true
			continue
		}
		host, err := canonicalName(mx.Mx)
		if err != nil {
			invalid = fmt.Errorf("mx target %q: %w", mx.Mx, err)
			continue
		}
		host = strings.TrimSuffix(host, ".")
		if i, dup := index[host]; dup {
			mxs[i].Preference = min(mxs[i].Preference, mx.Preference)
			continue
		}
		index[host] = len(mxs)
		mxs = append(mxs, MX{Host: host, Preference: mx.Preference})
	}
	if len(mxs) == 0 {
		if nullMX {
			return nil, &Error{Kind: NullMX, Name: display, Qtype: "MX", Server: a.server}
		}
		if invalid == nil {
			invalid = errors.New("mx answer without mx records")
		}
		return nil, &Error{Kind: InvalidData, Name: display, Qtype: "MX", Server: a.server, Err: invalid}
	}
	slices.SortStableFunc(mxs, func(x, y MX) int { return int(x.Preference) - int(y.Preference) })
	for i := 0; i < len(mxs); {
		j := i + 1
		for j < len(mxs) && mxs[j].Preference == mxs[i].Preference {
			j++
		}
		if j-i > 1 {
			group := mxs[i:j]
			r.shuffle(len(group), func(a, b int) { group[a], group[b] = group[b], group[a] })
		}
		i = j
	}
	return mxs, nil
}

// LookupHost returns the IPv4 then the IPv6 addresses of host, or host
// itself if it is an IP literal. See the package documentation.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	if addr, ok, err := parseLiteral(host); ok {
		if err != nil {
			return nil, &Error{Kind: InvalidData, Name: host, Qtype: "A/AAAA", Err: err}
		}
		return []netip.Addr{addr}, nil
	}
	name, err := canonicalName(host)
	if err != nil {
		return nil, &Error{Kind: InvalidData, Name: host, Qtype: "A/AAAA", Err: err}
	}
	display := strings.TrimSuffix(name, ".")

	qtypes := [2]uint16{dns.TypeA, dns.TypeAAAA}
	var results [2]struct {
		a   *answer
		err error
	}
	var wg sync.WaitGroup
	for i, qt := range qtypes {
		wg.Go(func() { results[i].a, results[i].err = r.resolve(ctx, name, qt, nil) })
	}
	wg.Wait()

	var addrs []netip.Addr
	for _, res := range results {
		if res.err != nil {
			continue
		}
		for _, rr := range res.a.rrs {
			var addr netip.Addr
			var ok bool
			switch rr := rr.(type) {
			case *dns.A:
				addr, ok = netip.AddrFromSlice(rr.A.To4())
			case *dns.AAAA:
				addr, ok = netip.AddrFromSlice(rr.AAAA.To16())
			}
			if ok && !slices.Contains(addrs, addr) {
				addrs = append(addrs, addr)
			}
		}
	}
	if len(addrs) > 0 {
		return addrs, nil
	}

	// No address: the most telling reason wins. NXDOMAIN is the
	// authority's word; a failure of either query means we cannot know
	// that there is no address.
	for i, res := range results {
		if res.err == nil && res.a.nxdomain {
			q := dns.Type(qtypes[i]).String()
			return nil, &Error{Kind: NXDomain, Name: display, Qtype: q, Server: res.a.server, Rcode: "NXDOMAIN"}
		}
	}
	for _, kind := range []Kind{Temporary, InvalidData} {
		for i, res := range results {
			if KindOf(res.err) == kind {
				return nil, renamed(res.err, display, dns.Type(qtypes[i]).String())
			}
		}
	}
	for _, res := range results {
		if res.err != nil {
			return nil, renamed(res.err, display, "A/AAAA")
		}
	}
	return nil, &Error{Kind: NoAddress, Name: display, Qtype: "A/AAAA", Server: results[0].a.server}
}

// parseLiteral recognises an IP address, bare or as an RFC 5321 address
// literal in brackets. ok is false if s is not meant as a literal.
func parseLiteral(s string) (addr netip.Addr, ok bool, err error) {
	if inner, found := strings.CutPrefix(s, "["); found {
		inner, found = strings.CutSuffix(inner, "]")
		if !found {
			return netip.Addr{}, true, errors.New("unterminated address literal")
		}
		if len(inner) >= 5 && strings.EqualFold(inner[:5], "ipv6:") {
			inner = inner[5:]
		}
		addr, err := netip.ParseAddr(inner)
		if err != nil {
			return netip.Addr{}, true, fmt.Errorf("bad address literal: %w", err)
		}
		return addr, true, nil
	}
	if addr, err := netip.ParseAddr(s); err == nil {
		return addr, true, nil
	}
	return netip.Addr{}, false, nil
}

// canonicalName validates name and returns it lower case and fully
// qualified, the form used for queries and as the cache key.
func canonicalName(name string) (string, error) {
	if name == "" || name == "." {
		return "", errors.New("empty domain name")
	}
	// Host names are letters, digits and hyphens (RFC 1123); underscores
	// occur in the wild and are harmless. Anything else, such as an
	// address literal or an escape, is a caller's mistake, not a name to
	// send to the servers.
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 0x80:
			return "", errors.New("non-ascii domain name (idna is not supported)")
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.':
		default:
			return "", fmt.Errorf("bad character %q in domain name", c)
		}
	}
	fqdn := dns.Fqdn(strings.ToLower(name))
	if _, ok := dns.IsDomainName(fqdn); !ok || strings.HasPrefix(fqdn, ".") {
		return "", errors.New("invalid domain name")
	}
	return fqdn, nil
}

// renamed returns err with the name and type the caller asked for, rather
// than those of the query that failed (a CNAME target, say). Errors may be
// shared between callers of one exchange, so it copies.
func renamed(err error, name, qtype string) error {
	e, ok := errors.AsType[*Error](err)
	if !ok {
		return &Error{Kind: Temporary, Name: name, Qtype: qtype, Err: err}
	}
	c := *e
	c.Name, c.Qtype = name, qtype
	return &c
}

// answer is what is known about one name and type after CNAME chasing.
// It is shared between callers and the cache: read-only once made.
type answer struct {
	rrs      []dns.RR // records of the type at the end of the chain; none: negative
	nxdomain bool     // negative and the name does not exist; else NODATA
	server   string
	ttl      uint32 // seconds it may be cached; 0: not at all

	// Set only by fetch, when the answer stopped at a CNAME target whose
	// records it did not include: the chain continues at next.
	next  string
	chain []string // the names the chain went through, ending with next
}

// resolve returns the answer for name (canonical) and qtype, following
// CNAMEs across queries. visited holds the names this resolution has
// already been through, for loop and length checks.
func (r *Resolver) resolve(ctx context.Context, name string, qtype uint16, visited []string) (*answer, error) {
	key := cacheKey{name: name, qtype: qtype}
	if a, ok := r.cache.get(key, r.now()); ok {
		return a, nil
	}
	a, err := r.flight.do(ctx, key, func(ctx context.Context) (*answer, error) {
		a, err := r.fetch(ctx, name, qtype)
		if err == nil && a.next == "" {
			r.cache.put(key, a, r.now())
		}
		return a, err
	})
	if err != nil || a.next == "" {
		return a, err
	}

	// The chase happens outside the shared exchange, so that two chains
	// through the same names in opposite order cannot wait on each other.
	qt := dns.Type(qtype).String()
	seen := append(slices.Clone(visited), name)
	for _, n := range a.chain {
		if slices.Contains(seen, n) {
			return nil, &Error{Kind: InvalidData, Name: name, Qtype: qt, Server: a.server, Err: fmt.Errorf("cname loop at %s", strings.TrimSuffix(n, "."))}
		}
		seen = append(seen, n)
	}
	if len(seen)-1 > maxCNAMELinks {
		return nil, &Error{Kind: InvalidData, Name: name, Qtype: qt, Server: a.server, Err: fmt.Errorf("cname chain longer than %d", maxCNAMELinks)}
	}
	sub, err := r.resolve(ctx, a.next, qtype, seen)
	if err != nil {
		return nil, err
	}
	res := &answer{rrs: sub.rrs, nxdomain: sub.nxdomain, server: sub.server, ttl: min(a.ttl, sub.ttl)}
	r.cache.put(key, res, r.now())
	return res, nil
}

// fetch asks the servers about name and qtype and interprets the answer.
func (r *Resolver) fetch(ctx context.Context, name string, qtype uint16) (*answer, error) {
	msg, server, err := r.exchange(ctx, name, qtype)
	if err != nil {
		return nil, err
	}
	a, err := interpret(msg, name, qtype)
	if err != nil {
		return nil, &Error{Kind: InvalidData, Name: name, Qtype: dns.Type(qtype).String(), Server: server, Err: err}
	}
	a.server = server
	return a, nil
}

// interpret reads a NOERROR or NXDOMAIN answer to name and qtype.
func interpret(msg *dns.Msg, name string, qtype uint16) (*answer, error) {
	cur := name
	ttl := uint32(maxPositiveTTL)
	var chain []string
	for {
		var (
			recs     []dns.RR
			target   string
			cnameTTL uint32
		)
		for _, rr := range msg.Answer {
			h := rr.Header()
			if h.Class != dns.ClassINET || !strings.EqualFold(h.Name, cur) {
				continue
			}
			if h.Rrtype == qtype {
				recs = append(recs, rr)
			} else if c, ok := rr.(*dns.CNAME); ok && target == "" {
				target, cnameTTL = c.Target, h.Ttl
			}
		}
		if len(recs) > 0 {
			for _, rr := range recs {
				ttl = min(ttl, rr.Header().Ttl)
			}
			return &answer{rrs: recs, ttl: ttl}, nil
		}
		if target == "" {
			break
		}
		t, err := canonicalName(target)
		if err != nil {
			return nil, fmt.Errorf("cname target %q: %w", target, err)
		}
		if t == name || slices.Contains(chain, t) {
			return nil, fmt.Errorf("cname loop at %s", strings.TrimSuffix(t, "."))
		}
		if chain = append(chain, t); len(chain) > maxCNAMELinks {
			return nil, fmt.Errorf("cname chain longer than %d", maxCNAMELinks)
		}
		ttl = min(ttl, cnameTTL)
		cur = t
	}

	var soa *dns.SOA
	for _, rr := range msg.Ns {
		if s, ok := rr.(*dns.SOA); ok && dns.IsSubDomain(strings.ToLower(s.Hdr.Name), cur) {
			soa = s
			break
		}
	}
	if cur != name && msg.Rcode == dns.RcodeSuccess && soa == nil {
		// The server stopped at a target it did not vouch for.
		return &answer{next: cur, chain: chain, ttl: ttl}, nil
	}
	a := &answer{nxdomain: msg.Rcode == dns.RcodeNameError}
	if soa != nil {
		a.ttl = min(ttl, soa.Hdr.Ttl, soa.Minttl, maxNegativeTTL)
	}
	return a, nil
}

// exchange sends the question to the servers in turn until one gives a
// NOERROR or NXDOMAIN answer.
func (r *Resolver) exchange(ctx context.Context, name string, qtype uint16) (*dns.Msg, string, error) {
	qt := dns.Type(qtype).String()
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(ednsBufferSize, false)

	var last *Error
	for _, server := range r.servers {
	attempts:
		for range r.attempts {
			if err := ctx.Err(); err != nil {
				return nil, "", &Error{Kind: Temporary, Name: name, Qtype: qt, Err: err}
			}
			m.Id = dns.Id()
			resp, err := r.exchangeServer(ctx, server, m)
			if err != nil {
				last = err
				last.Name, last.Qtype = name, qt
				if ctx.Err() != nil {
					return nil, "", last
				}
				continue
			}
			switch resp.Rcode {
			case dns.RcodeSuccess, dns.RcodeNameError:
				return resp, server, nil
			}
			last = &Error{Kind: Temporary, Name: name, Qtype: qt, Server: server, Rcode: dns.RcodeToString[resp.Rcode]}
			if last.Rcode == "" {
				last.Rcode = fmt.Sprintf("RCODE%d", resp.Rcode)
			}
			break attempts
		}
	}
	return nil, "", last
}

// exchangeServer asks one server over UDP and, if the answer is truncated,
// again over TCP.
func (r *Resolver) exchangeServer(ctx context.Context, server string, m *dns.Msg) (*dns.Msg, *Error) {
	resp, err := r.exchangeOnce(ctx, "udp", server, m)
	if err != nil || !resp.Truncated {
		return resp, err
	}
	resp, err = r.exchangeOnce(ctx, "tcp", server, m)
	if err == nil && resp.Truncated {
		return nil, &Error{Kind: InvalidData, Server: server, Err: errors.New("truncated answer over tcp")}
	}
	return resp, err
}

// aLongTimeAgo is a deadline in the past, to unblock reads at once.
var aLongTimeAgo = time.Unix(1, 0)

// exchangeOnce makes one attempt over one transport, within r.timeout.
func (r *Resolver) exchangeOnce(ctx context.Context, network, server string, m *dns.Msg) (*dns.Msg, *Error) {
	actx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	fail := func(err error) *Error {
		if cerr := ctx.Err(); cerr != nil {
			err = cerr
		}
		return &Error{Kind: Temporary, Server: server, Err: err}
	}

	var d net.Dialer
	nc, err := d.DialContext(actx, network, server)
	if err != nil {
		return nil, fail(err)
	}
	defer nc.Close()
	deadline, _ := actx.Deadline()
	nc.SetDeadline(deadline)
	// The deadline covers the timeout; this covers cancellation.
	stop := context.AfterFunc(actx, func() { nc.SetDeadline(aLongTimeAgo) })
	defer stop()

	co := &dns.Conn{Conn: nc}
	if err := co.WriteMsg(m); err != nil {
		return nil, fail(err)
	}
	buf := make([]byte, dns.MaxMsgSize)
	for {
		n, err := co.Read(buf)
		if err != nil {
			return nil, fail(err)
		}
		resp := new(dns.Msg)
		uerr := resp.Unpack(buf[:n])
		matches := uerr == nil && resp.Id == m.Id && resp.Response &&
			len(resp.Question) == 1 && resp.Question[0].Qtype == m.Question[0].Qtype &&
			strings.EqualFold(resp.Question[0].Name, m.Question[0].Name)
		if matches {
			return resp, nil
		}
		if uerr != nil && network == "udp" && resp.Id == m.Id && resp.Response && resp.Truncated {
			// A truncated answer cut mid-record: only its TC bit counts.
			return &dns.Msg{MsgHdr: resp.MsgHdr}, nil
		}
		if network == "udp" && (uerr != nil || resp.Id != m.Id) {
			// Likely a late answer to an earlier attempt or a spoof:
			// keep waiting for ours until the deadline.
			continue
		}
		if uerr == nil {
			uerr = errors.New("answer does not match the question")
		}
		return nil, &Error{Kind: InvalidData, Server: server, Err: uerr}
	}
}
