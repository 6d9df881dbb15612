package routing

import (
	"strconv"
	"strings"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

// reference is SPEC §2.3 written as plainly as possible: score every
// address space of every connector against the recipient and keep the best
// that fits. It shares no code with the index beyond the model's own
// helpers, so the two can only agree by both following the rules.
func reference(conns []connector.SendConnector, domains []connector.AcceptedDomain, local Local, rawDomain string, size int64) Route {
	domain, err := connector.NormalizeDomain(rawDomain)
	if err != nil {
		return routeBadDomain
	}
	isAccepted := false
	for _, d := range domains {
		if d.DomainType.Local() && d.Covers(domain) {
			isAccepted = true
		}
	}
	type choice struct {
		rank, cost, pos int
		proximity       Proximity
		name            string
		space           connector.AddressSpace
	}
	better := func(a, b choice) bool {
		if a.rank != b.rank {
			return a.rank > b.rank
		}
		if a.cost != b.cost {
			return a.cost < b.cost
		}
		if a.proximity != b.proximity {
			return a.proximity < b.proximity
		}
		if a.name != b.name {
			return a.name < b.name
		}
		return a.pos < b.pos
	}
	var best *choice
	matched := false
	for i := range conns {
		c := &conns[i]
		if !c.Enabled || len(c.SourceTransportServers) == 0 {
			continue
		}
		usable := len(c.SmartHosts) == 0
		for _, h := range c.SmartHosts {
			if h.Host != "" || (h.IP.IsValid() && !h.IP.IsUnspecified()) {
				usable = true
			}
		}
		if !usable {
			continue
		}
		proximity := RemoteSite
		for _, s := range c.SourceTransportServers {
			if local.Name != "" && strings.EqualFold(s, local.Name) {
				proximity = LocalServer
			} else if local.SiteOf != nil && local.Site != "" && proximity == RemoteSite {
				if site, ok := local.SiteOf(s); ok && strings.EqualFold(site, local.Site) {
					proximity = LocalSite
				}
			}
		}
		if c.IsScopedConnector && proximity == RemoteSite {
			continue
		}
		for _, space := range c.AddressSpaces {
			rank, ok := referenceRank(space, domain, isAccepted)
			if !ok {
				continue
			}
			matched = true
			if !c.MaxMessageSize.Allows(size) {
				continue
			}
			ch := choice{rank: rank, cost: space.Cost, pos: i, proximity: proximity, name: c.Name, space: space}
			if best == nil || better(ch, *best) {
				best = &ch
			}
		}
	}
	switch {
	case best != nil:
		return Route{Outcome: Routed, Connector: &conns[best.pos], AddressSpace: best.space, Proximity: best.proximity}
	case matched:
		return routeTooLarge
	default:
		return routeUnreachable
	}
}

// referenceRank scores how specifically an address space names domain:
// "*" 0, "--" 1, "*.x" twice the labels of x, exact one more than that.
func referenceRank(space connector.AddressSpace, domain string, isAccepted bool) (int, bool) {
	if space.Type != "SMTP" {
		return 0, false
	}
	labels := func(d string) int { return strings.Count(d, ".") + 1 }
	switch a := space.Address; {
	case a == "*":
		return 0, true
	case a == "--":
		return 1, isAccepted
	case strings.HasPrefix(a, "*."):
		x := a[2:]
		return 2 * labels(x), domain == x || strings.HasSuffix(domain, "."+x)
	default:
		return 2*labels(a) + 1, domain == a
	}
}

// fuzzReader hands out small choices from the fuzzer's bytes; past the end
// every choice is the first option.
type fuzzReader struct{ b []byte }

func (r *fuzzReader) pick(n int) int {
	if len(r.b) == 0 {
		return 0
	}
	v := int(r.b[0]) % n
	r.b = r.b[1:]
	return v
}

var (
	fuzzSpaceDomains = []string{"com", "contoso.com", "sales.contoso.com", "a.sales.contoso.com",
		"fabrikam.com", "net", "fabrikam.net", "localhost", "xn--bcher-kva.example"}
	fuzzRecipientDomains = append([]string{"other.org", "b.fabrikam.com", "Sales.Contoso.COM",
		"bücher.example", "x.BÜCHER.example", "bad..domain", "192.0.2.1", "", "a.sales.contoso.com.",
		"LOCALHOST", "x.y.a.sales.contoso.com"}, fuzzSpaceDomains...)
	fuzzNames   = []string{"A", "B", "a", "b", "Internet", "internet"}
	fuzzServers = []string{"EX01", "ex01", "EX02", "EX09", "EX77"}
	fuzzLimits  = []connector.ByteSize{kb, 5 * kb, 10 * kb, connector.Unlimited}
	fuzzSizes   = []int64{0, kb, 4 * kb, 6 * kb, 20 * kb}
)

type fuzzCase struct {
	conns   []connector.SendConnector
	domains []connector.AcceptedDomain
	local   Local
	domain  string
	size    int64
}

func decodeFuzzCase(data []byte) fuzzCase {
	r := &fuzzReader{b: data}
	var fc fuzzCase
	for i := range r.pick(8) {
		c := connector.SendConnector{
			Guid:              strconv.Itoa(i),
			Name:              fuzzNames[r.pick(len(fuzzNames))],
			Enabled:           r.pick(8) != 0,
			IsScopedConnector: r.pick(3) == 0,
			MaxMessageSize:    fuzzLimits[r.pick(len(fuzzLimits))],
		}
		for range r.pick(3) {
			c.SourceTransportServers = append(c.SourceTransportServers, fuzzServers[r.pick(len(fuzzServers))])
		}
		if r.pick(4) == 0 { // most connectors have a source server
			c.SourceTransportServers = nil
		} else if len(c.SourceTransportServers) == 0 {
			c.SourceTransportServers = []string{"EX01"}
		}
		switch r.pick(4) {
		case 1:
			c.SmartHosts = []connector.SmartHost{relayHost}
		case 2:
			c.SmartHosts = []connector.SmartHost{{}, unspecifiedIP}
		}
		for range 1 + r.pick(3) {
			space := connector.AddressSpace{Type: "SMTP", Cost: 1 + r.pick(3)}
			d := fuzzSpaceDomains[r.pick(len(fuzzSpaceDomains))]
			switch r.pick(6) {
			case 0, 1:
				space.Address = d
			case 2:
				space.Address = "*." + d
			case 3:
				space.Address = "*"
			case 4:
				space.Address = "--"
			case 5:
				space.Type, space.Address = "X400", "c=us;p=contoso;"
			}
			c.AddressSpaces = append(c.AddressSpaces, space)
		}
		fc.conns = append(fc.conns, c)
	}
	for range r.pick(4) {
		name := fuzzSpaceDomains[r.pick(len(fuzzSpaceDomains))]
		if r.pick(2) == 0 {
			name = "*." + name
		}
		fc.domains = append(fc.domains, accepted(name, connector.DomainType(r.pick(3))))
	}
	fc.local = testLocal()
	switch r.pick(5) {
	case 1:
		fc.local.SiteOf = nil
	case 2:
		fc.local.Name = ""
	case 3:
		fc.local.Site = ""
	}
	fc.domain = fuzzRecipientDomains[r.pick(len(fuzzRecipientDomains))]
	fc.size = fuzzSizes[r.pick(len(fuzzSizes))]
	return fc
}

func sameRoute(got, want Route) bool {
	if got.Outcome != want.Outcome || got.Reason != want.Reason || got.Code != want.Code ||
		got.Enhanced != want.Enhanced || got.AddressSpace != want.AddressSpace || got.Proximity != want.Proximity {
		return false
	}
	if (got.Connector == nil) != (want.Connector == nil) {
		return false
	}
	return got.Connector == nil || got.Connector.Guid == want.Connector.Guid
}

func describeRoute(r Route) string {
	s := routedTo(r) + " " + r.Proximity.String()
	if r.Connector != nil {
		s += " #" + r.Connector.Guid
	}
	return s
}

func FuzzResolveMatchesReference(f *testing.F) {
	for _, seed := range []string{
		"",
		"\x03\x00\x01\x01\x01\x00\x01\x00\x01\x01\x02\x00\x04\x01\x00\x01\x01\x03\x01\x00\x00\x02\x01\x01\x04\x02\x00\x02\x01",
		"\x07\x01\x01\x00\x03\x02\x01\x02\x01\x00\x02\x01\x01\x01\x02\x02\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09",
		"\x05\x02\x03\x01\x02\x00\x03\x04\x02\x00\x01\x02\x03\x02\x01\x01\x01\x01\x05\x04\x03\x02\x01\x00\x01\x02\x03",
		"\x06\x04\x07\x00\x01\x02\x01\x01\x00\x02\x01\x03\x01\x00\x01\x02\x02\x04\x00\x00\x03\x01\x01\x01\x01\x01\x01\x01\x02\x03\x10\x02",
		strings.Repeat("\x01", 64),
		strings.Repeat("\x02\x03\x05", 30),
		strings.Repeat("\x07\x00\x01\x02\x03\x04\x05\x06", 12),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := decodeFuzzCase(data)
		ix := NewIndex(fc.conns, fc.domains, fc.local)
		got := ix.Resolve(fc.domain, fc.size)
		want := reference(fc.conns, fc.domains, fc.local, fc.domain, fc.size)
		if !sameRoute(got, want) {
			t.Fatalf("domain %q, %d bytes\nconnectors %+v\naccepted %+v\nindex:     %s\nreference: %s",
				fc.domain, fc.size, fc.conns, fc.domains, describeRoute(got), describeRoute(want))
		}
		checkBifurcateAgrees(t, ix, fc.size)
	})
}

// checkBifurcateAgrees splits recipients of every test domain and checks
// each lands where ResolveAddress sends it, in a group of the right hop.
func checkBifurcateAgrees(t *testing.T, ix *Index, size int64) {
	var rcpts []string
	for i, d := range fuzzRecipientDomains {
		rcpts = append(rcpts, "u"+strconv.Itoa(i)+"@"+d, "v"+strconv.Itoa(i)+"@"+d)
	}
	groups, unroutable := ix.Bifurcate(rcpts, size)
	placed := map[string]Route{}
	for _, g := range groups {
		for _, rcpt := range g.Recipients {
			r := ix.ResolveAddress(rcpt, size)
			wantDomain := ""
			if g.Connector.DNSRoutingEnabled() {
				wantDomain, _ = connector.NormalizeDomain(rcpt[strings.LastIndexByte(rcpt, '@')+1:])
			}
			if r.Connector != g.Connector || g.Domain != wantDomain {
				t.Fatalf("%s grouped under %s/%s, resolves to %s, domain %s", rcpt, g.Connector.Name, g.Domain, describeRoute(r), wantDomain)
			}
			placed[rcpt] = r
		}
	}
	for _, u := range unroutable {
		if r := ix.ResolveAddress(u.Recipient, size); !sameRoute(r, u.Route) {
			t.Fatalf("%s unroutable as %s, resolves to %s", u.Recipient, describeRoute(u.Route), describeRoute(r))
		}
		placed[u.Recipient] = u.Route
	}
	if len(placed) != len(rcpts) {
		t.Fatalf("%d of %d recipients placed", len(placed), len(rcpts))
	}
}

// The allocation-free domain check must say exactly what
// connector.NormalizeDomain says, or routing and address spaces would
// disagree about which names are the same.
func FuzzCanonicalDomain(f *testing.F) {
	for _, s := range []string{"contoso.com", "Contoso.COM", "bücher.example", "a..b", "a.", ".a", "-a.com",
		"a-.com", "1.2.3.4", "123", "[::1]", "::1", "xn--bcher-kva.example", "*.contoso.com", "a b",
		strings.Repeat("a", 63) + ".com", strings.Repeat("a", 64) + ".com", strings.Repeat("a.", 127) + "a",
		strings.Repeat("a.", 128) + "a", "ＡＢＣ.com", "a\x00b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var buf [maxDomainLength]byte
		got, ok := canonicalDomain(&buf, s)
		want, err := connector.NormalizeDomain(s)
		if ok != (err == nil) || ok && string(got) != want {
			t.Fatalf("canonicalDomain(%q) = %q, %v; NormalizeDomain = %q, %v", s, got, ok, want, err)
		}
	})
}
