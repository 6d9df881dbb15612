package routing

import (
	"strconv"
	"strings"

	"github.com/sendconn/sendconn/pkg/connector"
)

// Explanation says which connector one recipient uses and why each of the
// others does not get it: what 'sendconn route' prints.
type Explanation struct {
	Recipient string
	// Domain is the recipient domain, normalized; empty when the address
	// has none or it is not a valid domain name.
	Domain string
	// Route is exactly what ResolveAddress returns for the same address and
	// size: Explain runs the same walk.
	Route Route
	// Candidates has every connector of the configuration once (none when
	// the address is invalid): the chosen one first, then the others that
	// match the domain in the order the walk reached them (most specific
	// level first, each level in selection order), so that the next one
	// down is the one that would get the mail if those above it were gone;
	// then the connectors that can never be candidates (disabled, scoped
	// away, no next hop, no source server), and last those that do not
	// match at all, both in configuration order.
	Candidates []Candidate
}

// Candidate is one connector's part in an Explanation.
type Candidate struct {
	Connector string
	Guid      string
	// AddressSpace is the connector's address space that matched the
	// domain: the most specific one, and the cheapest of those at that
	// level. For a connector that can never be a candidate it is the one
	// that would match; empty when none matches.
	AddressSpace connector.AddressSpace
	// Outcome is CandidateChosen or the reason the connector lost, one of
	// the Candidate* constants.
	Outcome string
	// Detail says it in words, e.g. "*.contoso.com matches with 2 labels;
	// * matches with 0 labels" or "MaxMessageSize 10 MB < 20 MB".
	Detail string
}

// Candidate outcomes, in the words 'sendconn route' prints.
const (
	CandidateChosen = "chosen"
	// Lost to the chosen connector on the order of SPEC §2.3.
	CandidateLessSpecific = "less specific" // matched a less specific level
	CandidateHigherCost   = "higher cost"   // same level, dearer address space
	CandidateProximity    = "proximity"     // same cost, source servers farther from this server
	CandidateName         = "name"          // tie broken by the connector name
	// Skipped by the walk.
	CandidateTooSmall = "too small" // MaxMessageSize below the message size
	// Left out of the routing table altogether.
	CandidateDisabled       = "disabled"
	CandidateScopedAway     = "scoped away"            // IsScopedConnector, and no source server is here or in this site
	CandidateNoNextHop      = "no next hop"            // smart-host routing with no usable smart host
	CandidateNoSourceServer = "no source server"       // SourceTransportServers is empty
	CandidateNoSuchServer   = "unknown source servers" // no source server is a transport server of the organization
	// Not matching the recipient.
	CandidateNoMatch   = "no matching address space"
	CandidateWrongType = "wrong address type" // only non-SMTP address spaces
)

// trace records lookup's walk for Explain: every level with candidates it
// reached, most specific first, and the first choice one of them made.
type trace struct {
	levels  []*level
	chosen  *candidate
	win     int // index in levels of the level that chose; -1 for none
	winAt   int // index of chosen in that level's candidates
	isLocal bool
}

// visit records a level the walk reached, and the index of the candidate
// it chose there (-1 for none: every candidate was too small).
func (tr *trace) visit(lv *level, chosen int) {
	tr.levels = append(tr.levels, lv)
	if chosen >= 0 && tr.chosen == nil {
		tr.chosen = &lv.cands[chosen]
		tr.win, tr.winAt = len(tr.levels)-1, chosen
	}
}

// Explain resolves a recipient address as ResolveAddress does, through the
// same code, and says why each connector was or was not chosen. It costs
// allocations and a pass over every connector, so it is for explaining
// ('sendconn route'), not for the transport's hot path. A nil Index routes
// nothing and explains no candidates.
func (ix *Index) Explain(address string, size int64) Explanation {
	var buf [maxDomainLength]byte
	tr := &trace{win: -1}
	r, name := ix.resolveAddress(&buf, address, size, tr)
	e := Explanation{Recipient: address, Domain: string(name), Route: r}
	if ix != nil && name != nil {
		e.Candidates = ix.explainCandidates(tr, e.Domain, size)
	}
	return e
}

func (ix *Index) explainCandidates(tr *trace, domain string, size int64) []Candidate {
	out := make([]Candidate, 0, len(ix.conns))
	seen := make([]bool, len(ix.conns))
	add := func(position int, space connector.AddressSpace, outcome, detail string) {
		seen[position] = true
		c := &ix.conns[position]
		out = append(out, Candidate{Connector: c.Name, Guid: c.Guid, AddressSpace: space, Outcome: outcome, Detail: detail})
	}
	w := tr.chosen
	if w != nil {
		add(w.position, w.space, CandidateChosen,
			matchText(w.space, "matches")+"; cost "+strconv.Itoa(w.space.Cost)+"; proximity "+w.proximity.String())
	}
	for li, lv := range tr.levels {
		for i := range lv.cands {
			c := &lv.cands[i]
			if seen[c.position] {
				continue // a connector competes at its most specific level
			}
			var outcome, detail string
			switch {
			case w == nil || li < tr.win || li == tr.win && i < tr.winAt:
				// Reached before the choice was made: skipped for size.
				outcome, detail = CandidateTooSmall, tooSmallText(c.maxSize, size)
			case li == tr.win:
				outcome, detail = lostTie(c, w)
			default:
				outcome, detail = CandidateLessSpecific, matchText(w.space, "matches")+"; "+matchText(c.space, "matches")
			}
			if outcome != CandidateTooSmall && !c.maxSize.Allows(size) {
				detail += "; also too small: " + tooSmallText(c.maxSize, size)
			}
			add(c.position, c.space, outcome, detail)
		}
	}
	for _, x := range ix.excluded {
		c := &ix.conns[x.position]
		space, ok := bestMatch(c.AddressSpaces, domain, tr.isLocal)
		detail := ix.exclusionText(c, x.reason)
		if ok {
			detail += "; " + matchText(space, "would match")
		} else {
			space = connector.AddressSpace{}
			detail += "; no address space would match " + domain
		}
		add(x.position, space, exclusionOutcomes[x.reason], detail)
	}
	for pos := range ix.conns {
		if !seen[pos] {
			outcome, detail := noMatch(&ix.conns[pos], domain, tr.isLocal)
			add(pos, connector.AddressSpace{}, outcome, detail)
		}
	}
	return out
}

// lostTie says why c, at the chosen connector's level and after it in
// selection order, lost to it.
func lostTie(c, w *candidate) (outcome, detail string) {
	switch {
	case c.space.Cost != w.space.Cost:
		return CandidateHigherCost, "cost " + strconv.Itoa(c.space.Cost) + " > " + strconv.Itoa(w.space.Cost)
	case c.proximity != w.proximity:
		return CandidateProximity, "proximity " + c.proximity.String() + ", the chosen connector's " + w.proximity.String()
	case c.conn.Name != w.conn.Name:
		return CandidateName, "same cost and proximity; " + strconv.Quote(c.conn.Name) + " sorts after " + strconv.Quote(w.conn.Name)
	}
	return CandidateName, "same name, cost and proximity as the chosen connector, which comes first in the configuration"
}

var exclusionOutcomes = [...]string{
	excludedDisabled:       CandidateDisabled,
	excludedNoNextHop:      CandidateNoNextHop,
	excludedNoSourceServer: CandidateNoSourceServer,
	excludedScopedAway:     CandidateScopedAway,
	excludedNoSuchServer:   CandidateNoSuchServer,
}

func (ix *Index) exclusionText(c *connector.SendConnector, reason excludedBy) string {
	switch reason {
	case excludedDisabled:
		return "Enabled is False"
	case excludedNoNextHop:
		return "smart-host routing, but no smart host names a host or a specified IP address"
	case excludedNoSourceServer:
		return "SourceTransportServers is empty"
	case excludedNoSuchServer:
		return "no source server (" + strings.Join(c.SourceTransportServers, ", ") + ") is a transport server of the organization"
	case excludedScopedAway:
		s := "IsScopedConnector is True and no source server (" + strings.Join(c.SourceTransportServers, ", ") + ") is "
		if ix.local.Name != "" {
			s += ix.local.Name
		} else {
			s += "this server"
		}
		if ix.local.Site != "" {
			s += " or in its site " + ix.local.Site
		}
		return s
	}
	return ""
}

// noMatch says why a connector that the walk never reached does not match
// domain.
func noMatch(c *connector.SendConnector, domain string, isLocal bool) (outcome, detail string) {
	var smtp, other []string
	accepted := false
	for _, s := range c.AddressSpaces {
		if !s.IsSMTP() {
			other = append(other, s.String())
			continue
		}
		smtp = append(smtp, s.Address)
		accepted = accepted || s.Scope() == connector.ScopeAccepted
	}
	switch {
	case len(smtp) == 0 && len(other) > 0:
		return CandidateWrongType, "only non-SMTP address spaces, which never match an SMTP recipient: " + strings.Join(other, ", ")
	case len(smtp) == 0:
		return CandidateNoMatch, "no address spaces"
	}
	verb := " does not match "
	if len(smtp) > 1 {
		verb = " do not match "
	}
	detail = strings.Join(smtp, ", ") + verb + domain
	if accepted && !isLocal {
		detail += "; " + domain + " is not an Authoritative or InternalRelay accepted domain"
	}
	return CandidateNoMatch, detail
}

// matchText describes how specifically an address space matches, with
// verb ("matches", "would match"): "*.contoso.com matches with 2 labels".
func matchText(space connector.AddressSpace, verb string) string {
	switch space.Scope() {
	case connector.ScopeAll:
		return "* " + verb + " with 0 labels"
	case connector.ScopeAccepted:
		return "-- " + verb + " as an accepted domain"
	case connector.ScopeSubdomains:
		n := labelCount(space.Domain())
		s := space.Address + " " + verb + " with " + strconv.Itoa(n) + " label"
		if n != 1 {
			s += "s"
		}
		return s
	case connector.ScopeDomain:
		return space.Address + " " + verb + " exactly"
	}
	return space.String()
}

func labelCount(domain string) int { return strings.Count(domain, ".") + 1 }

// bestMatch is the most specific of spaces that matches domain (the
// cheapest of those at one level, the first on a tie), the space a
// connector would compete with. Only for the connectors the index left
// out, which the walk never sees; the fuzz tests hold it to the walk.
func bestMatch(spaces []connector.AddressSpace, domain string, isLocal bool) (connector.AddressSpace, bool) {
	var best connector.AddressSpace
	bestRank := -1
	for _, s := range spaces {
		r, ok := matchRank(s, domain, isLocal)
		if ok && (r > bestRank || r == bestRank && s.Cost < best.Cost) {
			best, bestRank = s, r
		}
	}
	return best, bestRank >= 0
}

// matchRank numbers the walk's levels from the least specific: "*" 0,
// "--" 1, "*.d" twice d's labels, "d" one more than that.
func matchRank(space connector.AddressSpace, domain string, isLocal bool) (int, bool) {
	switch space.Scope() {
	case connector.ScopeAll:
		return 0, true
	case connector.ScopeAccepted:
		return 1, isLocal
	case connector.ScopeSubdomains:
		d, err := connector.NormalizeDomain(space.Domain())
		if err != nil {
			return 0, false
		}
		return 2 * labelCount(d), domain == d || strings.HasSuffix(domain, "."+d)
	case connector.ScopeDomain:
		d, err := connector.NormalizeDomain(space.Address)
		if err != nil {
			return 0, false
		}
		return 2*labelCount(d) + 1, domain == d
	}
	return 0, false
}

// tooSmallText is "MaxMessageSize 10 MB < 20 MB".
func tooSmallText(limit connector.ByteSize, size int64) string {
	return "MaxMessageSize " + shortSize(limit) + " < " + shortSize(connector.ByteSize(size))
}

// shortSize is a size without its byte count: "10 MB", not "10 MB
// (10,485,760 bytes)".
func shortSize(s connector.ByteSize) string {
	short, _, _ := strings.Cut(s.String(), " (")
	return short
}
