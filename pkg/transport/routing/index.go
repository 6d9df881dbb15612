package routing

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/sendconn/sendconn/pkg/connector"
)

// Local describes the server doing the routing.
type Local struct {
	// Name is this server's name, compared case-insensitively with
	// SourceTransportServers.
	Name string
	// Site is this server's site; empty means unknown, so no other server
	// counts as a site neighbour.
	Site string
	// SiteOf reports the site of another server when known. Nil means only
	// this server's own site is known. Site names compare
	// case-insensitively, as AD site names do.
	SiteOf func(server string) (site string, ok bool)
	// Exists reports whether a server is a transport server of the
	// organization. A connector none of whose source servers exists is
	// left out of the routing table, as Exchange does
	// (RoutingNoSourceBhServers). Nil means every server exists: a
	// server that knows of no others routes with every connector.
	Exists func(server string) bool
}

// Proximity is how close a connector's nearest source server is to this
// server.
type Proximity uint8

const (
	LocalServer Proximity = iota // this server is a source server
	LocalSite                    // a source server is in this server's site
	RemoteSite                   // every source server is elsewhere, or its site is unknown
)

var proximityNames = [...]string{"LocalServer", "LocalSite", "RemoteSite"}

func (p Proximity) String() string {
	if int(p) < len(proximityNames) {
		return proximityNames[p]
	}
	return "Proximity(" + strconv.Itoa(int(p)) + ")"
}

// Index answers routing questions for one configuration snapshot. Build it
// with NewIndex; it is never modified afterwards, so concurrent use needs no
// locking.
type Index struct {
	// conns is the index's own deep copy, so Route.Connector stays valid
	// and unchanged whatever the caller later does with its slice.
	conns []connector.SendConnector
	// names holds one node per domain that an exact or "*." address space,
	// or an accepted domain, names.
	names    map[string]*domainNode
	accepted level // "--"
	all      level // "*"

	// excluded are the connectors that cannot be candidates, with the
	// reason, and local the server the index routes for: Explain's, never
	// read by a lookup.
	excluded []exclusion
	local    Local
}

// exclusion is a connector NewIndex left out of every level, and why.
type exclusion struct {
	position int // in conns
	reason   excludedBy
}

// excludedBy is why a connector cannot be a candidate.
type excludedBy uint8

const (
	notExcluded excludedBy = iota
	excludedDisabled
	excludedNoNextHop
	excludedNoSourceServer
	excludedScopedAway
	excludedNoSuchServer
)

// domainNode gathers what is known about one domain name d.
type domainNode struct {
	exact    level // address spaces "d"
	subtree  level // address spaces "*.d"
	isLocal  bool  // d is an Authoritative or InternalRelay accepted domain
	localSub bool  // so is "*.d"
}

// level is one specificity level's candidates, best first.
type level struct {
	cands []candidate
	// largest is the largest MaxMessageSize among cands, so a message too
	// big for the whole level skips it without a scan.
	largest connector.ByteSize
}

type candidate struct {
	conn      *connector.SendConnector
	space     connector.AddressSpace
	maxSize   connector.ByteSize
	proximity Proximity
	position  int // in the configuration, the final tie-break
}

// NewIndex builds the routing index for a configuration: the Send
// connectors, the accepted domains (which give "--" its meaning) and the
// server doing the routing. Connectors that cannot be candidates (see the
// package documentation) are left out here, once, rather than on every
// lookup. Address-space and accepted-domain names that do not normalize are
// ignored: they could never equal a normalized recipient domain.
func NewIndex(conns []connector.SendConnector, domains []connector.AcceptedDomain, local Local) *Index {
	ix := &Index{
		conns: make([]connector.SendConnector, len(conns)),
		names: make(map[string]*domainNode),
		local: local,
	}
	for i := range conns {
		ix.conns[i] = conns[i].Clone()
	}
	for i := range ix.conns {
		c := &ix.conns[i]
		proximity, excluded := candidacy(c, local)
		if excluded != notExcluded {
			ix.excluded = append(ix.excluded, exclusion{position: i, reason: excluded})
			continue
		}
		for _, space := range c.AddressSpaces {
			lv := ix.levelFor(space)
			if lv == nil {
				continue
			}
			lv.add(candidate{conn: c, space: space, maxSize: c.MaxMessageSize, proximity: proximity, position: i})
		}
	}
	for _, d := range domains {
		if !d.DomainType.Local() {
			continue
		}
		name, err := connector.NormalizeWildcardDomain(d.DomainName)
		if err != nil {
			continue
		}
		if parent, ok := strings.CutPrefix(name, "*."); ok {
			ix.node(parent).localSub = true
		} else {
			ix.node(name).isLocal = true
		}
	}
	ix.excluded = slices.Clip(ix.excluded)
	ix.accepted.finish()
	ix.all.finish()
	for _, n := range ix.names {
		n.exact.finish()
		n.subtree.finish()
	}
	return ix
}

// levelFor returns the level an address space belongs to, or nil when it
// can never match an SMTP recipient.
func (ix *Index) levelFor(space connector.AddressSpace) *level {
	switch space.Scope() {
	case connector.ScopeAll:
		return &ix.all
	case connector.ScopeAccepted:
		return &ix.accepted
	case connector.ScopeDomain:
		if d, err := connector.NormalizeDomain(space.Address); err == nil {
			return &ix.node(d).exact
		}
	case connector.ScopeSubdomains:
		if d, err := connector.NormalizeDomain(space.Domain()); err == nil {
			return &ix.node(d).subtree
		}
	}
	return nil
}

func (ix *Index) node(name string) *domainNode {
	n := ix.names[name]
	if n == nil {
		n = &domainNode{}
		ix.names[name] = n
	}
	return n
}

// add appends a candidate, keeping only the cheapest of one connector's
// address spaces at a level. A connector's spaces are added one after the
// other, so its earlier entry at this level, if any, is the last one.
func (lv *level) add(c candidate) {
	if n := len(lv.cands); n > 0 && lv.cands[n-1].position == c.position {
		if c.space.Cost < lv.cands[n-1].space.Cost {
			lv.cands[n-1] = c
		}
		return
	}
	lv.cands = append(lv.cands, c)
}

// finish sorts the level into selection order and trims its slice, so the
// index keeps no spare capacity for its lifetime.
func (lv *level) finish() {
	slices.SortFunc(lv.cands, compareCandidates)
	lv.cands = slices.Clip(lv.cands)
	lv.largest = 0
	for _, c := range lv.cands {
		if c.maxSize.IsUnlimited() {
			lv.largest = connector.Unlimited
			break
		}
		lv.largest = max(lv.largest, c.maxSize)
	}
}

func compareCandidates(a, b candidate) int {
	return cmp.Or(
		cmp.Compare(a.space.Cost, b.space.Cost),
		cmp.Compare(a.proximity, b.proximity),
		strings.Compare(a.conn.Name, b.conn.Name),
		cmp.Compare(a.position, b.position),
	)
}

// candidacy reports whether c can carry mail from this server at all (and
// if not, the first reason why not), and how close its nearest source
// server is.
func candidacy(c *connector.SendConnector, local Local) (Proximity, excludedBy) {
	switch {
	case !c.Enabled:
		return 0, excludedDisabled
	case !hasNextHop(c):
		return 0, excludedNoNextHop
	case len(c.SourceTransportServers) == 0:
		return 0, excludedNoSourceServer
	case !anyExists(c.SourceTransportServers, local):
		return 0, excludedNoSuchServer
	}
	p := proximityOf(c.SourceTransportServers, local)
	if c.IsScopedConnector && p == RemoteSite {
		return 0, excludedScopedAway
	}
	return p, notExcluded
}

// hasNextHop reports whether the connector names somewhere to send to. A
// smart-host list whose entries are all empty can only come from a damaged
// store; Exchange drops such connectors ("RoutingInvalidSmarthosts").
func hasNextHop(c *connector.SendConnector) bool {
	if c.DNSRoutingEnabled() {
		return true
	}
	for _, h := range c.SmartHosts {
		if h.Host != "" || h.IP.IsValid() && !h.IP.IsUnspecified() {
			return true
		}
	}
	return false
}

func anyExists(servers []string, local Local) bool {
	if local.Exists == nil {
		return true
	}
	for _, s := range servers {
		if strings.EqualFold(s, local.Name) || local.Exists(s) {
			return true
		}
	}
	return false
}

func proximityOf(servers []string, local Local) Proximity {
	best := RemoteSite
	for _, s := range servers {
		if local.Name != "" && strings.EqualFold(s, local.Name) {
			return LocalServer
		}
		if best == RemoteSite && local.Site != "" && local.SiteOf != nil {
			if site, ok := local.SiteOf(s); ok && strings.EqualFold(site, local.Site) {
				best = LocalSite
			}
		}
	}
	return best
}
