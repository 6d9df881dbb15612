package routing

import (
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

// explainSeeds are FuzzResolveMatchesReference's seeds: the configurations
// the reference model was checked on.
var explainSeeds = []string{
	"",
	"\x03\x00\x01\x01\x01\x00\x01\x00\x01\x01\x02\x00\x04\x01\x00\x01\x01\x03\x01\x00\x00\x02\x01\x01\x04\x02\x00\x02\x01",
	"\x07\x01\x01\x00\x03\x02\x01\x02\x01\x00\x02\x01\x01\x01\x02\x02\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09",
	"\x05\x02\x03\x01\x02\x00\x03\x04\x02\x00\x01\x02\x03\x02\x01\x01\x01\x01\x05\x04\x03\x02\x01\x00\x01\x02\x03",
	"\x06\x04\x07\x00\x01\x02\x01\x01\x00\x02\x01\x03\x01\x00\x01\x02\x02\x04\x00\x00\x03\x01\x01\x01\x01\x01\x01\x01\x02\x03\x10\x02",
	strings.Repeat("\x01", 64),
	strings.Repeat("\x02\x03\x05", 30),
	strings.Repeat("\x07\x00\x01\x02\x03\x04\x05\x06", 12),
}

// explainInputs are the seeds and, from a fixed source, a few thousand more
// byte strings in the shape decodeFuzzCase reads.
func explainInputs() [][]byte {
	var inputs [][]byte
	for _, s := range explainSeeds {
		inputs = append(inputs, []byte(s))
	}
	rng := rand.New(rand.NewPCG(2024, 3))
	for range 3000 {
		b := make([]byte, rng.IntN(160))
		for i := range b {
			b[i] = byte(rng.IntN(256))
		}
		inputs = append(inputs, b)
	}
	return inputs
}

// explainAddresses are the recipients every configuration is explained
// for: each test domain, and addresses without a domain.
func explainAddresses() []string {
	addrs := []string{"postmaster", "bob@", ""}
	for _, d := range fuzzRecipientDomains {
		addrs = append(addrs, "u@"+d)
	}
	return addrs
}

// Explain must say what ResolveAddress does, for every input the
// reference model is checked on, with every size: same route, the same
// connector (the index's own copy), and the chosen candidate first.
func TestExplainAgreesWithResolve(t *testing.T) {
	addrs := explainAddresses()
	for n, data := range explainInputs() {
		func() {
			defer func() {
				if t.Failed() {
					t.Logf("input %d: %q", n, data)
				}
			}()
			fc := decodeFuzzCase(data)
			ix := NewIndex(fc.conns, fc.domains, fc.local)
			for _, addr := range addrs {
				for _, size := range fuzzSizes {
					checkExplain(t, ix, fc, addr, size)
				}
			}
		}()
	}
}

func FuzzExplainMatchesResolve(f *testing.F) {
	for _, s := range explainSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		fc := decodeFuzzCase(data)
		ix := NewIndex(fc.conns, fc.domains, fc.local)
		checkExplain(t, ix, fc, "u@"+fc.domain, fc.size)
	})
}

// checkExplain explains one recipient and holds the explanation to
// ResolveAddress, to the reference model, and to its own rules.
func checkExplain(t *testing.T, ix *Index, fc fuzzCase, addr string, size int64) {
	t.Helper()
	e := ix.Explain(addr, size)
	r := ix.ResolveAddress(addr, size)
	if !sameRoute(e.Route, r) || e.Route.Connector != r.Connector || e.Route.Text != r.Text {
		t.Fatalf("%s, %d bytes: Explain routes %s, ResolveAddress %s", addr, size, describeRoute(e.Route), describeRoute(r))
	}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 || at == len(addr)-1 {
		if len(e.Candidates) != 0 || e.Domain != "" {
			t.Fatalf("%q has no domain but explains domain %q, %d candidates", addr, e.Domain, len(e.Candidates))
		}
		return
	}
	rawDomain := addr[at+1:]
	if want := reference(fc.conns, fc.domains, fc.local, rawDomain, size); !sameRoute(e.Route, want) {
		t.Fatalf("%s, %d bytes: Explain routes %s, the reference %s", addr, size, describeRoute(e.Route), describeRoute(want))
	}
	domain, err := connector.NormalizeDomain(rawDomain)
	if err != nil {
		if len(e.Candidates) != 0 || e.Domain != "" {
			t.Fatalf("%q is invalid but explains domain %q, %d candidates", addr, e.Domain, len(e.Candidates))
		}
		return
	}
	if e.Domain != domain {
		t.Fatalf("%q: domain %q, want %q", addr, e.Domain, domain)
	}
	checkCandidates(t, fc, e, size)
}

// checkCandidates holds the candidate list to the rules Explanation
// documents, and each AddressSpace to the reference model's idea of the
// connector's best matching space.
func checkCandidates(t *testing.T, fc fuzzCase, e Explanation, size int64) {
	t.Helper()
	byGuid := map[string]*connector.SendConnector{}
	for i := range fc.conns {
		byGuid[fc.conns[i].Guid] = &fc.conns[i]
	}
	if len(e.Candidates) != len(fc.conns) {
		t.Fatalf("%s: %d candidates for %d connectors", e.Recipient, len(e.Candidates), len(fc.conns))
	}
	isAccepted := false
	for _, d := range fc.domains {
		if d.DomainType.Local() && d.Covers(e.Domain) {
			isAccepted = true
		}
	}
	seen := map[string]bool{}
	var winner *Candidate
	walked, lostToWinner, tooSmall := 0, 0, 0
	phase := 0 // 0 walk, 1 left out, 2 no match: the documented order
	for i := range e.Candidates {
		c := &e.Candidates[i]
		conn := byGuid[c.Guid]
		if conn == nil || seen[c.Guid] || conn.Name != c.Connector {
			t.Fatalf("%s: candidate %d %q (%s) is unknown or repeated", e.Recipient, i, c.Connector, c.Guid)
		}
		seen[c.Guid] = true
		best, matches := referenceBest(conn, e.Domain, isAccepted)
		p := 0
		switch c.Outcome {
		case CandidateChosen:
			if i != 0 || e.Route.Outcome != Routed || e.Route.Connector.Guid != c.Guid || e.Route.AddressSpace != c.AddressSpace {
				t.Fatalf("%s: candidate %d %q chosen, route %s", e.Recipient, i, c.Connector, describeRoute(e.Route))
			}
			winner = c
		case CandidateLessSpecific, CandidateHigherCost, CandidateProximity, CandidateName:
			lostToWinner++
			if winner == nil {
				t.Fatalf("%s: %q lost (%s) with nobody chosen", e.Recipient, c.Connector, c.Outcome)
			}
			if c.Outcome == CandidateHigherCost && c.AddressSpace.Cost <= winner.AddressSpace.Cost {
				t.Fatalf("%s: %q lost on cost %d to cost %d", e.Recipient, c.Connector, c.AddressSpace.Cost, winner.AddressSpace.Cost)
			}
		case CandidateTooSmall:
			tooSmall++
			if conn.MaxMessageSize.Allows(size) {
				t.Fatalf("%s: %q too small for %d bytes with MaxMessageSize %v", e.Recipient, c.Connector, size, conn.MaxMessageSize)
			}
		case CandidateDisabled, CandidateScopedAway, CandidateNoNextHop, CandidateNoSourceServer:
			p = 1
			if c.Outcome == CandidateDisabled && conn.Enabled {
				t.Fatalf("%s: %q disabled but Enabled", e.Recipient, c.Connector)
			}
		case CandidateNoMatch, CandidateWrongType:
			p = 2
			if matches {
				t.Fatalf("%s: %q does not match, but %v does", e.Recipient, c.Connector, best)
			}
		default:
			t.Fatalf("%s: %q has outcome %q", e.Recipient, c.Connector, c.Outcome)
		}
		if p == 0 {
			walked++
			if !matches {
				t.Fatalf("%s: %q %s but none of its spaces matches", e.Recipient, c.Connector, c.Outcome)
			}
		}
		if p < phase {
			t.Fatalf("%s: %q (%s) comes after a later group", e.Recipient, c.Connector, c.Outcome)
		}
		phase = p
		if p < 2 && c.AddressSpace != best || p == 2 && c.AddressSpace != (connector.AddressSpace{}) {
			t.Fatalf("%s: %q explained with %v, its best match is %v (%v)", e.Recipient, c.Connector, c.AddressSpace, best, matches)
		}
		if c.Detail == "" {
			t.Fatalf("%s: %q (%s) has no detail", e.Recipient, c.Connector, c.Outcome)
		}
	}
	switch e.Route.Outcome {
	case Routed:
		if winner == nil {
			t.Fatalf("%s: routed with nobody chosen", e.Recipient)
		}
	case Rejected: // ROUTING.SizeLimit: every match too small
		if tooSmall == 0 || tooSmall != walked || lostToWinner != 0 {
			t.Fatalf("%s: rejected for size with %d walked, %d too small", e.Recipient, walked, tooSmall)
		}
	case Unreachable:
		if walked != 0 {
			t.Fatalf("%s: unreachable but %d candidates matched", e.Recipient, walked)
		}
	}
}

// referenceBest is the reference model's view of the space a connector
// competes with: the highest referenceRank, the cheapest of equals, the
// first on a tie.
func referenceBest(c *connector.SendConnector, domain string, isAccepted bool) (connector.AddressSpace, bool) {
	var best connector.AddressSpace
	bestRank := -1
	for _, s := range c.AddressSpaces {
		if r, ok := referenceRank(s, domain, isAccepted); ok && (r > bestRank || r == bestRank && s.Cost < best.Cost) {
			best, bestRank = s, r
		}
	}
	return best, bestRank >= 0
}

// describeCandidates prints candidates as "name: outcome (detail)", one
// per line, as 'sendconn route -o list' does.
func describeCandidates(cs []Candidate) string {
	var lines []string
	for _, c := range cs {
		lines = append(lines, c.Connector+": "+c.Outcome+" ("+c.Detail+")")
	}
	return strings.Join(lines, "\n")
}

func TestExplainCases(t *testing.T) {
	org := []connector.AcceptedDomain{
		accepted("contoso.com", connector.Authoritative),
		accepted("*.fabrikam.com", connector.InternalRelay),
		accepted("tailspintoys.com", connector.ExternalRelay),
	}
	x400 := "X400:c=US;a= ;p=Contoso;o=Exchange;"
	for _, tc := range []struct {
		name    string
		conns   []connector.SendConnector
		domains []connector.AcceptedDomain
		rcpt    string
		size    int64
		route   string // routedTo
		want    string // describeCandidates
	}{
		{name: "more specific wins over a cheaper less specific",
			conns: []connector.SendConnector{conn("Internet", "*;1"), conn("Contoso subdomains", "*.contoso.com;5")},
			rcpt:  "bob@sales.contoso.com", route: "Contoso subdomains SMTP:*.contoso.com;5",
			want: `Contoso subdomains: chosen (*.contoso.com matches with 2 labels; cost 5; proximity LocalServer)
Internet: less specific (*.contoso.com matches with 2 labels; * matches with 0 labels)`},
		{name: "exact beats the wildcard of the same domain",
			conns: []connector.SendConnector{conn("wild", "*.contoso.com;1"), conn("exact", "contoso.com;100")},
			rcpt:  "bob@contoso.com", route: "exact SMTP:contoso.com;100",
			want: `exact: chosen (contoso.com matches exactly; cost 100; proximity LocalServer)
wild: less specific (contoso.com matches exactly; *.contoso.com matches with 2 labels)`},
		{name: "cost decides within a level",
			conns: []connector.SendConnector{conn("dear", "*.contoso.com;5"), conn("cheap", "*.contoso.com;2"), conn("all", "*")},
			rcpt:  "bob@sales.contoso.com", route: "cheap SMTP:*.contoso.com;2",
			want: `cheap: chosen (*.contoso.com matches with 2 labels; cost 2; proximity LocalServer)
dear: higher cost (cost 5 > 2)
all: less specific (*.contoso.com matches with 2 labels; * matches with 0 labels)`},
		{name: "then proximity",
			conns: []connector.SendConnector{conn("A-site", "*", sources("EX02")), conn("Z-local", "*")},
			rcpt:  "bob@contoso.com", route: "Z-local SMTP:*;1",
			want: `Z-local: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
A-site: proximity (proximity LocalSite, the chosen connector's LocalServer)`},
		{name: "then the name",
			conns: []connector.SendConnector{conn("Internet B", "*"), conn("Internet A", "*")},
			rcpt:  "bob@contoso.com", route: "Internet A SMTP:*;1",
			want: `Internet A: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
Internet B: name (same cost and proximity; "Internet B" sorts after "Internet A")`},
		{name: "the same name twice",
			conns: []connector.SendConnector{conn("twin", "*"), conn("twin", "*")},
			rcpt:  "bob@contoso.com", route: "twin SMTP:*;1",
			want: `twin: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
twin: name (same name, cost and proximity as the chosen connector, which comes first in the configuration)`},
		{name: "disabled",
			conns: []connector.SendConnector{conn("off", "*.contoso.com", disabled), conn("all", "*"), conn("off elsewhere", "fabrikam.com", disabled)},
			rcpt:  "bob@sales.contoso.com", route: "all SMTP:*;1",
			want: `all: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
off: disabled (Enabled is False; *.contoso.com would match with 2 labels)
off elsewhere: disabled (Enabled is False; no address space would match sales.contoso.com)`},
		{name: "scoped away, no next hop, no source server",
			conns: []connector.SendConnector{
				conn("scoped", "contoso.com", scoped, sources("EX09")),
				conn("broken", "contoso.com", smartHosts(connector.SmartHost{}, unspecifiedIP)),
				conn("orphan", "*.com", sources()),
			},
			rcpt: "bob@contoso.com", route: "Unreachable QUEUE.Expired",
			want: `scoped: scoped away (IsScopedConnector is True and no source server (EX09) is EX01 or in its site Default-First-Site-Name; contoso.com would match exactly)
broken: no next hop (smart-host routing, but no smart host names a host or a specified IP address; contoso.com would match exactly)
orphan: no source server (SourceTransportServers is empty; *.com would match with 1 label)`},
		{name: "too small falls through to a less specific level",
			conns: []connector.SendConnector{conn("small", "*.contoso.com", maxSize(10*mb)), conn("all", "*", maxSize(50*mb))},
			rcpt:  "bob@contoso.com", size: 20 * mb, route: "all SMTP:*;1",
			want: `all: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
small: too small (MaxMessageSize 10 MB < 20 MB)`},
		{name: "a dearer connector that fits wins its level",
			conns: []connector.SendConnector{conn("cheap", "contoso.com;1", maxSize(kb)), conn("dear", "contoso.com;9"), conn("dearest", "contoso.com;10", maxSize(kb))},
			rcpt:  "bob@contoso.com", size: 2 * kb, route: "dear SMTP:contoso.com;9",
			want: `dear: chosen (contoso.com matches exactly; cost 9; proximity LocalServer)
cheap: too small (MaxMessageSize 1 KB < 2 KB)
dearest: higher cost (cost 10 > 9; also too small: MaxMessageSize 1 KB < 2 KB)`},
		{name: "too small everywhere is rejected",
			conns: []connector.SendConnector{conn("exact", "contoso.com", maxSize(10*mb)), conn("all", "*", maxSize(10*mb))},
			rcpt:  "bob@contoso.com", size: 50 * mb, route: "Rejected ROUTING.SizeLimit",
			want: `exact: too small (MaxMessageSize 10 MB < 50 MB)
all: too small (MaxMessageSize 10 MB < 50 MB)`},
		{name: "-- for an authoritative domain",
			conns: []connector.SendConnector{conn("Internet", "*;1"), conn("Org", "--;50")}, domains: org,
			rcpt: "bob@contoso.com", route: "Org SMTP:--;50",
			want: `Org: chosen (-- matches as an accepted domain; cost 50; proximity LocalServer)
Internet: less specific (-- matches as an accepted domain; * matches with 0 labels)`},
		{name: "-- for an internal relay subdomain",
			conns: []connector.SendConnector{conn("Internet", "*;1"), conn("Org", "--;50")}, domains: org,
			rcpt: "bob@a.fabrikam.com", route: "Org SMTP:--;50",
			want: `Org: chosen (-- matches as an accepted domain; cost 50; proximity LocalServer)
Internet: less specific (-- matches as an accepted domain; * matches with 0 labels)`},
		{name: "-- does not cover an external relay domain",
			conns: []connector.SendConnector{conn("Internet", "*;1"), conn("Org", "--;50")}, domains: org,
			rcpt: "bob@tailspintoys.com", route: "Internet SMTP:*;1",
			want: `Internet: chosen (* matches with 0 labels; cost 1; proximity LocalServer)
Org: no matching address space (-- does not match tailspintoys.com; tailspintoys.com is not an Authoritative or InternalRelay accepted domain)`},
		{name: "nothing matches: unreachable",
			conns: []connector.SendConnector{conn("Contoso", "contoso.com, *.contoso.com"), conn("x400", x400, smartHosts(relayHost))},
			rcpt:  "bob@fabrikam.com", route: "Unreachable QUEUE.Expired",
			want: `Contoso: no matching address space (contoso.com, *.contoso.com do not match fabrikam.com)
x400: wrong address type (only non-SMTP address spaces, which never match an SMTP recipient: X400:c=US;a= ;p=Contoso;o=Exchange;;1)`},
		{name: "no domain: rejected, nothing to explain",
			conns: []connector.SendConnector{conn("all", "*")},
			rcpt:  "bob", route: "Rejected ROUTING.InvalidAddress"},
		{name: "invalid domain: rejected, nothing to explain",
			conns: []connector.SendConnector{conn("all", "*")},
			rcpt:  "bob@[192.0.2.1]", route: "Rejected ROUTING.InvalidAddress"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ix := mustIndex(t, tc.conns, tc.domains)
			e := ix.Explain(tc.rcpt, tc.size)
			if got := routedTo(e.Route); got != tc.route {
				t.Errorf("route %s, want %s", got, tc.route)
			}
			if got := describeCandidates(e.Candidates); got != tc.want {
				t.Errorf("candidates:\n%s\nwant:\n%s", got, tc.want)
			}
			if !sameRoute(e.Route, ix.ResolveAddress(tc.rcpt, tc.size)) {
				t.Errorf("Explain and ResolveAddress disagree")
			}
		})
	}
}

func TestExplainUnreachableSaysWhy(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{conn("Contoso", "contoso.com")}, nil)
	e := ix.Explain("bob@Fabrikam.COM", 0)
	if e.Domain != "fabrikam.com" || e.Route.Outcome != Unreachable || !strings.Contains(e.Route.Reply(), NoMatchingConnector) {
		t.Errorf("got domain %q, %v, %q", e.Domain, e.Route.Outcome, e.Route.Reply())
	}
	e = ix.Explain("bob", 0)
	if e.Route.Outcome != Rejected || e.Route.Reply() != "550 5.1.2 ROUTING.InvalidAddress; the recipient address has no domain" {
		t.Errorf("no domain: %v %q", e.Route.Outcome, e.Route.Reply())
	}
}

func TestExplainNilIndex(t *testing.T) {
	var ix *Index
	e := ix.Explain("bob@contoso.com", 1)
	if e.Route.Outcome != Unreachable || e.Domain != "contoso.com" || e.Candidates != nil {
		t.Errorf("nil index: %+v", e)
	}
}

// Explaining is read-only like every other lookup: any number of
// goroutines at once, beside Resolve.
func TestConcurrentExplain(t *testing.T) {
	conns := []connector.SendConnector{conn("exact", "contoso.com", maxSize(kb)), conn("all", "*"), conn("off", "*", disabled)}
	ix := mustIndex(t, conns, contosoAccepted)
	want := describeCandidates(ix.Explain("bob@contoso.com", 2*kb).Candidates)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				if got := describeCandidates(ix.Explain("bob@contoso.com", 2*kb).Candidates); got != want {
					t.Errorf("goroutine %d: %s", g, got)
					return
				}
				ix.Resolve("u"+strconv.Itoa(i)+".contoso.com", 1)
			}
		}()
	}
	wg.Wait()
}

func BenchmarkExplain(b *testing.B) {
	conns, domains := benchConfig(1000)
	ix := NewIndex(conns, domains, testLocal())
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		ix.Explain("bob@"+benchDomains[i%len(benchDomains)], 40*kb)
		i++
	}
}

// Explain shares the lookup with Resolve; the trace it threads through
// must cost the transport's lookups nothing: still no allocation for an
// ASCII domain.
func TestResolveStillDoesNotAllocate(t *testing.T) {
	conns, domains := benchConfig(100)
	ix := NewIndex(conns, domains, testLocal())
	var addrs []string
	for _, d := range benchDomains {
		addrs = append(addrs, "bob@"+d)
	}
	allocs := testing.AllocsPerRun(200, func() {
		for i, d := range benchDomains {
			ix.Resolve(d, 40*kb)
			ix.ResolveAddress(addrs[i], 40*kb)
		}
		ix.ResolveAddress("bob", 40*kb)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per run of lookups", allocs)
	}
}
