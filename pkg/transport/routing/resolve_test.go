package routing

import (
	"sync"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

type resolveCase struct {
	name    string
	conns   []connector.SendConnector
	domains []connector.AcceptedDomain
	local   *Local // nil: testLocal()
	domain  string // resolved with Resolve, unless
	rcpt    string // is set or isAddr: resolved with ResolveAddress
	isAddr  bool
	size    int64
	want    string // routedTo of the expected route
}

func runResolveCases(t *testing.T, cases []resolveCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			local := testLocal()
			if tc.local != nil {
				local = *tc.local
			}
			ix := NewIndex(tc.conns, tc.domains, local)
			r, asked := ix.Resolve(tc.domain, tc.size), tc.domain
			if tc.rcpt != "" || tc.isAddr {
				r, asked = ix.ResolveAddress(tc.rcpt, tc.size), tc.rcpt
			}
			if got := routedTo(r); got != tc.want {
				t.Errorf("route for %q (%d bytes) = %s, want %s", asked, tc.size, got, tc.want)
			}
		})
	}
}

var contosoAccepted = []connector.AcceptedDomain{accepted("contoso.com", connector.Authoritative)}

// The seed 003 example, verbatim from SPEC §2.3: with connectors for all
// accepted domains (--), for contoso.com and for *.contoso.com, mail to
// john@fabrikam.com, john@contoso.com and john@sales.contoso.com (an
// accepted domain too) goes to each of them in turn. The organization's
// accepted domains are the seed's four.
func TestSeed003Example(t *testing.T) {
	conns := []connector.SendConnector{
		conn("Connector 1", "--"),
		conn("Connector 2", "contoso.com"),
		conn("Connector 3", "*.contoso.com"),
	}
	domains := []connector.AcceptedDomain{
		accepted("contoso.com", connector.Authoritative),
		accepted("sales.contoso.com", connector.Authoritative),
		accepted("fabrikam.com", connector.Authoritative),
		accepted("contoso.onmicrosoft.com", connector.Authoritative),
	}
	ix := mustIndex(t, conns, domains)
	for rcpt, want := range map[string]string{
		"john@fabrikam.com":            "Connector 1 SMTP:--;1",
		"john@contoso.com":             "Connector 2 SMTP:contoso.com;1",
		"john@sales.contoso.com":       "Connector 3 SMTP:*.contoso.com;1",
		"john@example.org":             "Unreachable QUEUE.Expired",
		"john@contoso.onmicrosoft.com": "Connector 1 SMTP:--;1",
	} {
		if got := routedTo(ix.ResolveAddress(rcpt, 10*kb)); got != want {
			t.Errorf("%s: got %s, want %s", rcpt, got, want)
		}
	}
}

// SPEC §2.3's ladder for julia@marketing.contoso.com. Every level's
// connector costs more than the next less specific one, so cost would pick
// the wrong one if it were allowed to override specificity; removing the
// winner each time walks down the ladder.
func TestSpecificityLadder(t *testing.T) {
	ladder := []connector.SendConnector{
		conn("exact", "marketing.contoso.com;100"),
		conn("wild-self", "*.marketing.contoso.com;90"),
		conn("wild-parent", "*.contoso.com;50"),
		conn("wild-tld", "*.com;20"),
		conn("accepted", "--;10"),
		conn("all", "*;1"),
	}
	domains := []connector.AcceptedDomain{accepted("*.contoso.com", connector.InternalRelay)}
	wants := []string{
		"exact SMTP:marketing.contoso.com;100",
		"wild-self SMTP:*.marketing.contoso.com;90",
		"wild-parent SMTP:*.contoso.com;50",
		"wild-tld SMTP:*.com;20",
		"accepted SMTP:--;10",
		"all SMTP:*;1",
		"Unreachable QUEUE.Expired",
	}
	for i, want := range wants {
		ix := mustIndex(t, ladder[i:], domains)
		if got := routedTo(ix.ResolveAddress("julia@marketing.contoso.com", 1)); got != want {
			t.Errorf("with %d most specific removed: got %s, want %s", i, got, want)
		}
	}
}

func TestMatching(t *testing.T) {
	runResolveCases(t, []resolveCase{
		{name: "exact beats wildcard of the same domain despite cost",
			conns:  []connector.SendConnector{conn("wild", "*.contoso.com;1"), conn("exact", "contoso.com;100")},
			domain: "contoso.com", want: "exact SMTP:contoso.com;100"},
		{name: "wildcard covers the domain itself",
			conns:  []connector.SendConnector{conn("wild", "*.contoso.com"), conn("all", "*")},
			domain: "contoso.com", want: "wild SMTP:*.contoso.com;1"},
		{name: "exact does not cover subdomains",
			conns:  []connector.SendConnector{conn("exact", "contoso.com"), conn("all", "*")},
			domain: "sales.contoso.com", want: "all SMTP:*;1"},
		{name: "wildcard needs a label boundary",
			conns:  []connector.SendConnector{conn("wild", "*.contoso.com"), conn("all", "*")},
			domain: "notcontoso.com", want: "all SMTP:*;1"},
		{name: "wildcard of a sibling does not match",
			conns:  []connector.SendConnector{conn("wild", "*.sales.contoso.com")},
			domain: "marketing.contoso.com", want: "Unreachable QUEUE.Expired"},
		{name: "deep subdomain walks up to the nearest wildcard",
			conns:  []connector.SendConnector{conn("near", "*.b.contoso.com;9"), conn("far", "*.contoso.com;1")},
			domain: "x.y.a.b.contoso.com", want: "near SMTP:*.b.contoso.com;9"},
		{name: "top-level wildcard",
			conns:  []connector.SendConnector{conn("tld", "*.com;5"), conn("all", "*")},
			domain: "fabrikam.com", want: "tld SMTP:*.com;5"},
		{name: "single-label domain",
			conns:  []connector.SendConnector{conn("all", "*;2"), conn("host", "mailhost")},
			domain: "MAILHOST", want: "host SMTP:mailhost;1"},
		{name: "cost decides within a level",
			conns:  []connector.SendConnector{conn("dear", "*.contoso.com;5"), conn("cheap", "*.contoso.com;2")},
			domain: "sales.contoso.com", want: "cheap SMTP:*.contoso.com;2"},
		{name: "nothing matches",
			conns:  []connector.SendConnector{conn("exact", "contoso.com")},
			domain: "fabrikam.com", want: "Unreachable QUEUE.Expired"},
		{name: "no connectors at all",
			domain: "fabrikam.com", want: "Unreachable QUEUE.Expired"},
	})
}

func TestAcceptedDomainsSpace(t *testing.T) {
	conns := []connector.SendConnector{conn("accepted", "--;50"), conn("all", "*;1")}
	runResolveCases(t, []resolveCase{
		{name: "authoritative domain uses -- over a cheaper *",
			conns: conns, domains: contosoAccepted, domain: "contoso.com", want: "accepted SMTP:--;50"},
		{name: "internal relay counts",
			conns: conns, domains: []connector.AcceptedDomain{accepted("contoso.com", connector.InternalRelay)},
			domain: "contoso.com", want: "accepted SMTP:--;50"},
		{name: "external relay does not count",
			conns: conns, domains: []connector.AcceptedDomain{accepted("contoso.com", connector.ExternalRelay)},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "a domain that is not accepted",
			conns: conns, domains: contosoAccepted, domain: "fabrikam.com", want: "all SMTP:*;1"},
		{name: "exact accepted domain does not cover its subdomains",
			conns: conns, domains: contosoAccepted, domain: "sales.contoso.com", want: "all SMTP:*;1"},
		{name: "wildcard accepted domain covers its subdomains",
			conns: conns, domains: []connector.AcceptedDomain{accepted("*.contoso.com", connector.Authoritative)},
			domain: "a.sales.contoso.com", want: "accepted SMTP:--;50"},
		{name: "wildcard accepted domain covers the domain itself",
			conns: conns, domains: []connector.AcceptedDomain{accepted("*.contoso.com", connector.Authoritative)},
			domain: "contoso.com", want: "accepted SMTP:--;50"},
		{name: "accepted domain names are normalized",
			conns: conns, domains: []connector.AcceptedDomain{accepted("Contoso.COM", connector.Authoritative)},
			domain: "contoso.com", want: "accepted SMTP:--;50"},
		{name: "-- alone and not accepted is unreachable",
			conns: []connector.SendConnector{conn("accepted", "--")}, domains: contosoAccepted,
			domain: "fabrikam.com", want: "Unreachable QUEUE.Expired"},
		{name: "a TLD wildcard beats --",
			conns: append([]connector.SendConnector{conn("tld", "*.com;99")}, conns...), domains: contosoAccepted,
			domain: "contoso.com", want: "tld SMTP:*.com;99"},
	})
}

func TestCandidates(t *testing.T) {
	siteOnly := Local{Name: thisServer, Site: thisSite}
	runResolveCases(t, []resolveCase{
		{name: "disabled connector is skipped",
			conns:  []connector.SendConnector{conn("off", "contoso.com", disabled), conn("all", "*")},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "only a disabled connector matches",
			conns:  []connector.SendConnector{conn("off", "*", disabled)},
			domain: "contoso.com", want: "Unreachable QUEUE.Expired"},
		{name: "smart-host connector is a candidate",
			conns:  []connector.SendConnector{conn("relay", "contoso.com", smartHosts(relayIP)), conn("all", "*")},
			domain: "contoso.com", want: "relay SMTP:contoso.com;1"},
		{name: "smart hosts that name nothing are no next hop",
			conns: []connector.SendConnector{
				conn("broken", "contoso.com", smartHosts(connector.SmartHost{}, unspecifiedIP)), conn("all", "*")},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "one usable smart host is enough",
			conns:  []connector.SendConnector{conn("relay", "contoso.com", smartHosts(unspecifiedIP, relayHost))},
			domain: "contoso.com", want: "relay SMTP:contoso.com;1"},
		{name: "no source servers",
			conns:  []connector.SendConnector{conn("orphan", "contoso.com", sources()), conn("all", "*")},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "scoped on this server",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped), conn("all", "*")},
			domain: "contoso.com", want: "scoped SMTP:contoso.com;1"},
		{name: "scoped on this server, name in another case",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("ex01")), conn("all", "*")},
			domain: "contoso.com", want: "scoped SMTP:contoso.com;1"},
		{name: "scoped on a server of this site",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("EX02")), conn("all", "*")},
			domain: "contoso.com", want: "scoped SMTP:contoso.com;1"},
		{name: "scoped to another site is skipped",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("EX09")), conn("all", "*")},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "scoped to a server of unknown site is skipped",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("EX77")), conn("all", "*")},
			domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "scoped, one of several sources in this site",
			conns:  []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("EX09", "EX02")), conn("all", "*")},
			domain: "contoso.com", want: "scoped SMTP:contoso.com;1"},
		{name: "without SiteOf only this server counts",
			conns: []connector.SendConnector{conn("scoped", "contoso.com", scoped, sources("EX02")), conn("all", "*")},
			local: &siteOnly, domain: "contoso.com", want: "all SMTP:*;1"},
		{name: "unscoped connector elsewhere is still a candidate",
			conns:  []connector.SendConnector{conn("remote", "contoso.com", sources("EX09")), conn("all", "*")},
			domain: "contoso.com", want: "remote SMTP:contoso.com;1"},
	})
}

func TestTieBreaks(t *testing.T) {
	runResolveCases(t, []resolveCase{
		{name: "this server beats a site neighbour at equal cost",
			conns:  []connector.SendConnector{conn("A-site", "*", sources("EX02")), conn("Z-local", "*")},
			domain: "contoso.com", want: "Z-local SMTP:*;1"},
		{name: "a site neighbour beats a remote site at equal cost",
			conns:  []connector.SendConnector{conn("A-remote", "*", sources("EX09")), conn("Z-site", "*", sources("EX02"))},
			domain: "contoso.com", want: "Z-site SMTP:*;1"},
		{name: "unknown site counts as remote",
			conns:  []connector.SendConnector{conn("A-unknown", "*", sources("EX77")), conn("Z-site", "*", sources("EX02"))},
			domain: "contoso.com", want: "Z-site SMTP:*;1"},
		{name: "the nearest source server decides",
			conns:  []connector.SendConnector{conn("A-remote", "*", sources("EX09")), conn("Z-mixed", "*", sources("EX09", "EX01"))},
			domain: "contoso.com", want: "Z-mixed SMTP:*;1"},
		{name: "cost beats proximity",
			conns:  []connector.SendConnector{conn("local", "*;2"), conn("remote", "*;1", sources("EX09"))},
			domain: "contoso.com", want: "remote SMTP:*;1"},
		{name: "then the lowest name",
			conns:  []connector.SendConnector{conn("Internet B", "*"), conn("Internet A", "*")},
			domain: "contoso.com", want: "Internet A SMTP:*;1"},
		{name: "names compare ordinally: upper case sorts first",
			conns:  []connector.SendConnector{conn("alpha", "*"), conn("Zeta", "*")},
			domain: "contoso.com", want: "Zeta SMTP:*;1"},
		{name: "the same name twice: the first configured",
			conns:  []connector.SendConnector{conn("twin", "*", maxSize(connector.Unlimited)), conn("twin", "*")},
			domain: "contoso.com", want: "twin SMTP:*;1"},
	})
}

func TestSize(t *testing.T) {
	small, large := maxSize(10*mb), maxSize(50*mb)
	runResolveCases(t, []resolveCase{
		{name: "fits exactly at the limit",
			conns:  []connector.SendConnector{conn("small", "contoso.com", small), conn("all", "*")},
			domain: "contoso.com", size: 10 * mb, want: "small SMTP:contoso.com;1"},
		{name: "one byte over falls through to a less specific level",
			conns:  []connector.SendConnector{conn("small", "contoso.com", small), conn("all", "*", large)},
			domain: "contoso.com", size: 10*mb + 1, want: "all SMTP:*;1"},
		{name: "falls through several levels",
			conns: []connector.SendConnector{
				conn("exact", "a.contoso.com", small), conn("wild", "*.contoso.com", small),
				conn("accepted", "--", small), conn("all", "*", large)},
			domains: []connector.AcceptedDomain{accepted("*.contoso.com", connector.Authoritative)},
			domain:  "a.contoso.com", size: 20 * mb, want: "all SMTP:*;1"},
		{name: "falls through to -- when it is big enough",
			conns: []connector.SendConnector{
				conn("wild", "*.contoso.com", small), conn("accepted", "--", large), conn("all", "*", large)},
			domains: contosoAccepted, domain: "contoso.com", size: 20 * mb, want: "accepted SMTP:--;1"},
		{name: "within a level a dearer connector that fits wins",
			conns:  []connector.SendConnector{conn("cheap", "*.contoso.com;1", small), conn("dear", "*.contoso.com;9", large)},
			domain: "contoso.com", size: 20 * mb, want: "dear SMTP:*.contoso.com;9"},
		{name: "only the cheapest fits, the level is not skipped",
			conns:  []connector.SendConnector{conn("cheap", "*.contoso.com;1", large), conn("dear", "*.contoso.com;9", small), conn("all", "*")},
			domain: "contoso.com", size: 20 * mb, want: "cheap SMTP:*.contoso.com;1"},
		{name: "unlimited takes anything",
			conns:  []connector.SendConnector{conn("big", "*", maxSize(connector.Unlimited))},
			domain: "contoso.com", size: 1 << 50, want: "big SMTP:*;1"},
		{name: "too large for every match",
			conns:  []connector.SendConnector{conn("exact", "contoso.com", small), conn("all", "*", small)},
			domain: "contoso.com", size: 20 * mb, want: "Rejected ROUTING.SizeLimit"},
		{name: "too large for the only match, others do not match",
			conns:  []connector.SendConnector{conn("exact", "contoso.com", small), conn("other", "fabrikam.com", large)},
			domain: "contoso.com", size: 20 * mb, want: "Rejected ROUTING.SizeLimit"},
		{name: "a skipped candidate is no match",
			conns:  []connector.SendConnector{conn("off", "contoso.com", disabled)},
			domain: "contoso.com", size: 20 * mb, want: "Unreachable QUEUE.Expired"},
		{name: "zero-byte limit takes only empty messages",
			conns:  []connector.SendConnector{conn("zero", "*", maxSize(0))},
			domain: "contoso.com", size: 0, want: "zero SMTP:*;1"},
	})
}

func TestAddressSpaces(t *testing.T) {
	runResolveCases(t, []resolveCase{
		{name: "non-SMTP spaces never match",
			conns: []connector.SendConnector{
				conn("x400", "X400:c=US;a= ;p=Contoso;o=Exchange;", smartHosts(relayHost)),
				conn("notes", "NOTES:contoso.com;1", smartHosts(relayHost))},
			domain: "contoso.com", want: "Unreachable QUEUE.Expired"},
		{name: "a connector's SMTP space still matches beside a non-SMTP one",
			conns:  []connector.SendConnector{conn("mixed", "X400:c=US;a= ;p=Contoso;o=Exchange;;1, contoso.com;3", smartHosts(relayHost))},
			domain: "contoso.com", want: "mixed SMTP:contoso.com;3"},
		{name: "several spaces: the most specific one competes",
			conns:  []connector.SendConnector{conn("multi", "contoso.com;50, *;1"), conn("wild", "*.contoso.com;1")},
			domain: "contoso.com", want: "multi SMTP:contoso.com;50"},
		{name: "several spaces: each level with its own cost",
			conns:  []connector.SendConnector{conn("multi", "contoso.com;50, *;1"), conn("all", "*;2")},
			domain: "fabrikam.com", want: "multi SMTP:*;1"},
		{name: "several spaces: a dear space loses its level",
			conns:  []connector.SendConnector{conn("multi", "*.contoso.com;9, *;1"), conn("wild", "*.contoso.com;2")},
			domain: "sales.contoso.com", want: "wild SMTP:*.contoso.com;2"},
		{name: "several spaces at one level count with the lowest cost",
			conns:  []connector.SendConnector{conn("A", "contoso.com;5"), conn("B", "contoso.com;3, contoso.com;1")},
			domain: "contoso.com", want: "B SMTP:contoso.com;1"},
		{name: "too large at the specific space, fits nowhere else",
			conns:  []connector.SendConnector{conn("multi", "contoso.com, *", maxSize(kb))},
			domain: "contoso.com", size: 2 * kb, want: "Rejected ROUTING.SizeLimit"},
	})
}

func TestRecipientNames(t *testing.T) {
	all := []connector.SendConnector{conn("all", "*")}
	idn := []connector.SendConnector{conn("idn", "bücher.example"), conn("all", "*;5")}
	runResolveCases(t, []resolveCase{
		{name: "upper-case ASCII domain", conns: []connector.SendConnector{conn("exact", "contoso.com")},
			rcpt: "Julia@Marketing.CONTOSO.com", want: "Unreachable QUEUE.Expired"},
		{name: "upper-case ASCII domain matches", conns: []connector.SendConnector{conn("wild", "*.contoso.com")},
			rcpt: "Julia@Marketing.CONTOSO.com", want: "wild SMTP:*.contoso.com;1"},
		{name: "U-label recipient meets a U-label address space", conns: idn,
			rcpt: "anna@BÜCHER.example", want: "idn SMTP:xn--bcher-kva.example;1"},
		{name: "A-label recipient meets a U-label address space", conns: idn,
			rcpt: "anna@xn--bcher-kva.example", want: "idn SMTP:xn--bcher-kva.example;1"},
		{name: "U-label domain without an address", conns: idn,
			domain: "bücher.example", want: "idn SMTP:xn--bcher-kva.example;1"},
		{name: "the last @ starts the domain", conns: []connector.SendConnector{conn("exact", "contoso.com")},
			rcpt: `"a@fabrikam.com"@contoso.com`, want: "exact SMTP:contoso.com;1"},
		{name: "numeric labels are a domain", conns: []connector.SendConnector{conn("exact", "123")},
			rcpt: "x@123", want: "exact SMTP:123;1"},
		{name: "no @", conns: all, rcpt: "postmaster", want: "Rejected ROUTING.InvalidAddress"},
		{name: "nothing after @", conns: all, rcpt: "bob@", want: "Rejected ROUTING.InvalidAddress"},
		{name: "empty address", conns: all, rcpt: "", isAddr: true, want: "Rejected ROUTING.InvalidAddress"},
		{name: "empty domain", conns: all, domain: "", want: "Rejected ROUTING.InvalidAddress"},
		{name: "address literal", conns: all, rcpt: "bob@[192.0.2.1]", want: "Rejected ROUTING.InvalidAddress"},
		{name: "bare IPv4 domain", conns: all, rcpt: "bob@192.0.2.1", want: "Rejected ROUTING.InvalidAddress"},
		{name: "space in domain", conns: all, rcpt: "bob@exa mple.com", want: "Rejected ROUTING.InvalidAddress"},
		{name: "trailing dot", conns: all, rcpt: "bob@contoso.com.", want: "Rejected ROUTING.InvalidAddress"},
		{name: "empty label", conns: all, rcpt: "bob@contoso..com", want: "Rejected ROUTING.InvalidAddress"},
		{name: "leading hyphen", conns: all, rcpt: "bob@-contoso.com", want: "Rejected ROUTING.InvalidAddress"},
		{name: "wildcard", conns: all, rcpt: "bob@*.contoso.com", want: "Rejected ROUTING.InvalidAddress"},
		{name: "angle brackets are not stripped", conns: all, rcpt: "<bob@contoso.com>", want: "Rejected ROUTING.InvalidAddress"},
	})
}

func TestRouteReplies(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{conn("small", "contoso.com", maxSize(kb))}, nil)
	for _, tc := range []struct {
		rcpt      string
		size      int64
		outcome   Outcome
		code      int
		enhanced  string
		reply     string
		proximity Proximity
	}{
		{"bob@contoso.com", 1, Routed, 0, "", "", LocalServer},
		{"bob@contoso.com", 2 * kb, Rejected, 550, "5.3.4",
			"550 5.3.4 ROUTING.SizeLimit; message size exceeds fixed maximum size for route", 0},
		{"bob@fabrikam.com", 1, Unreachable, 550, "4.4.7",
			"550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue. Reason: A matching connector cannot be found to route the external recipient", 0},
		{"bob", 1, Rejected, 550, "5.1.2", "550 5.1.2 ROUTING.InvalidAddress; the recipient address has no domain", 0},
		{"bob@a..b", 1, Rejected, 550, "5.1.2", "550 5.1.2 ROUTING.InvalidAddress; the recipient domain is not a valid domain name", 0},
	} {
		r := ix.ResolveAddress(tc.rcpt, tc.size)
		if r.Outcome != tc.outcome || r.Code != tc.code || r.Enhanced != tc.enhanced || r.Reply() != tc.reply || r.Proximity != tc.proximity {
			t.Errorf("%s (%d bytes): got %v %d %q %q %v, want %v %d %q %q %v", tc.rcpt, tc.size,
				r.Outcome, r.Code, r.Enhanced, r.Reply(), r.Proximity, tc.outcome, tc.code, tc.enhanced, tc.reply, tc.proximity)
		}
		if (r.Connector != nil) != (tc.outcome == Routed) {
			t.Errorf("%s: connector %v with outcome %v", tc.rcpt, r.Connector, r.Outcome)
		}
	}
}

func TestRouteProximity(t *testing.T) {
	for _, tc := range []struct {
		servers []string
		want    Proximity
	}{
		{[]string{"EX01"}, LocalServer},
		{[]string{"EX09", "ex01"}, LocalServer},
		{[]string{"EX02"}, LocalSite},
		{[]string{"EX09", "EX02"}, LocalSite},
		{[]string{"EX09"}, RemoteSite},
		{[]string{"EX77"}, RemoteSite},
	} {
		ix := mustIndex(t, []connector.SendConnector{conn("c", "*", sources(tc.servers...))}, nil)
		if got := ix.Resolve("contoso.com", 1).Proximity; got != tc.want {
			t.Errorf("sources %v: proximity %v, want %v", tc.servers, got, tc.want)
		}
	}
}

// The index must not see later changes to the configuration it was built
// from: a reload builds a new index while the old one is still in use.
func TestIndexOwnsItsCopy(t *testing.T) {
	conns := []connector.SendConnector{conn("exact", "contoso.com"), conn("all", "*")}
	domains := []connector.AcceptedDomain{accepted("contoso.com", connector.Authoritative)}
	ix := mustIndex(t, conns, domains)
	conns[0].Enabled = false
	conns[0].Name = "renamed"
	conns[0].AddressSpaces[0].Address = "fabrikam.com"
	conns[1] = conn("other", "*")
	domains[0].DomainName = "fabrikam.com"
	if got := routedTo(ix.Resolve("contoso.com", 1)); got != "exact SMTP:contoso.com;1" {
		t.Errorf("after changing the input: %s", got)
	}
	if got := routedTo(ix.Resolve("fabrikam.com", 1)); got != "all SMTP:*;1" {
		t.Errorf("after changing the input: %s", got)
	}
}

func TestNilIndexRoutesNothing(t *testing.T) {
	var ix *Index
	if got := routedTo(ix.Resolve("contoso.com", 1)); got != "Unreachable QUEUE.Expired" {
		t.Errorf("nil index: %s", got)
	}
	if got := routedTo(ix.ResolveAddress("bob", 1)); got != "Rejected ROUTING.InvalidAddress" {
		t.Errorf("nil index, bad address: %s", got)
	}
	groups, unroutable := ix.Bifurcate([]string{"a@contoso.com"}, 1)
	if len(groups) != 0 || len(unroutable) != 1 {
		t.Errorf("nil index bifurcates into %v, %v", groups, unroutable)
	}
}

func TestConcurrentResolve(t *testing.T) {
	ix := mustIndex(t, []connector.SendConnector{conn("exact", "contoso.com"), conn("all", "*")}, contosoAccepted)
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if got := routedTo(ix.ResolveAddress("Bob@Contoso.com", 1)); got != "exact SMTP:contoso.com;1" {
					t.Errorf("concurrent resolve: %s", got)
					return
				}
				ix.Bifurcate([]string{"a@contoso.com", "b@fabrikam.com", "c"}, 1)
			}
		}()
	}
	wg.Wait()
}

func TestEnumNames(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{Routed.String(), "Routed"}, {Unreachable.String(), "Unreachable"}, {Rejected.String(), "Rejected"},
		{Outcome(9).String(), "Outcome(9)"},
		{LocalServer.String(), "LocalServer"}, {LocalSite.String(), "LocalSite"}, {RemoteSite.String(), "RemoteSite"},
		{Proximity(7).String(), "Proximity(7)"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
