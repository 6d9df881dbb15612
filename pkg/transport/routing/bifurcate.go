package routing

import "github.com/sendconn/sendconn/pkg/connector"

// Group is the recipients of one message that leave through one next hop:
// one SMTP transaction.
type Group struct {
	Connector *connector.SendConnector
	// Domain is the recipient domain (normalized) when Connector routes by
	// DNS, since each domain has its own MX next hop and its own queue; it
	// is empty for a smart-host connector, whose recipients all go to the
	// same smart hosts whatever their domain.
	Domain string
	// AddressSpace is the address space that matched the group's first
	// recipient; others in the group may have matched another of the
	// connector's spaces.
	AddressSpace connector.AddressSpace
	Proximity    Proximity
	// Recipients keeps the order they were given in.
	Recipients []string
}

// Unroutable is a recipient no connector takes, with the reason.
type Unroutable struct {
	Recipient string
	Route     Route
}

// Bifurcate splits a message's recipients (bare addresses) by next hop: a
// smart-host connector is one next hop, a DNS connector one per recipient
// domain, as Exchange makes one delivery queue per next hop. Groups come in
// the order of their first recipient, recipients inside a group in the
// order given, and duplicates are kept as given. Recipients with no route
// are returned apart, each with its Route (Outcome Unreachable or Rejected).
func (ix *Index) Bifurcate(recipients []string, size int64) (groups []Group, unroutable []Unroutable) {
	// Two passes: the first finds each recipient's group and counts group
	// sizes; the second fills every group's Recipients from one shared
	// array, so a message costs a handful of allocations, not one per group
	// or per recipient. The fixed arrays keep small messages off the heap.
	var groupBuf [64]int32
	groupOf := groupBuf[:0]
	if len(recipients) > len(groupBuf) {
		groupOf = make([]int32, 0, len(recipients))
	}
	var countBuf [16]int
	counts := countBuf[:0]
	var byHop map[hop]int32
	var name [maxDomainLength]byte
	for _, rcpt := range recipients {
		r, domain := ix.resolveAddress(&name, rcpt, size, nil)
		if r.Outcome != Routed {
			unroutable = append(unroutable, Unroutable{Recipient: rcpt, Route: r})
			groupOf = append(groupOf, -1)
			continue
		}
		if !r.Connector.DNSRoutingEnabled() {
			domain = nil
		}
		g, found := findGroup(groups, byHop, r.Connector, domain)
		if !found {
			if groups == nil {
				groups = make([]Group, 0, min(len(recipients), 8))
			}
			g = int32(len(groups))
			groups = append(groups, Group{Connector: r.Connector, Domain: domainString(rcpt, domain),
				AddressSpace: r.AddressSpace, Proximity: r.Proximity})
			counts = append(counts, 0)
			byHop = indexGroups(groups, byHop)
		}
		counts[g]++
		groupOf = append(groupOf, g)
	}
	if len(groups) == 0 {
		return nil, unroutable
	}
	all := make([]string, len(recipients)-len(unroutable))
	off := 0
	for g := range groups {
		// The full slice expression caps each group at its own share, so
		// appending to one group's Recipients cannot overwrite the next.
		groups[g].Recipients = all[off : off : off+counts[g]]
		off += counts[g]
	}
	for i, g := range groupOf {
		if g >= 0 {
			groups[g].Recipients = append(groups[g].Recipients, recipients[i])
		}
	}
	return groups, unroutable
}

// domainString turns a normalized domain into a string, reusing the
// address's own storage when the address already spells it that way.
func domainString(address string, name []byte) string {
	if len(name) == 0 {
		return ""
	}
	// A U-label domain can be shorter than its A-label form.
	if len(name) <= len(address) {
		if tail := address[len(address)-len(name):]; tail == string(name) {
			return tail
		}
	}
	return string(name)
}

// hop identifies a next hop: a connector, and for a DNS connector the
// recipient domain.
type hop struct {
	conn   *connector.SendConnector
	domain string
}

// mapGroupsAbove is how many groups a linear search handles before a map
// pays for itself; most messages have very few next hops.
const mapGroupsAbove = 8

func findGroup(groups []Group, byHop map[hop]int32, conn *connector.SendConnector, domain []byte) (int32, bool) {
	if byHop != nil {
		g, ok := byHop[hop{conn, string(domain)}]
		return g, ok
	}
	for g := range groups {
		if groups[g].Connector == conn && groups[g].Domain == string(domain) {
			return int32(g), true
		}
	}
	return 0, false
}

// indexGroups keeps byHop in step with groups once there are enough groups
// to want it.
func indexGroups(groups []Group, byHop map[hop]int32) map[hop]int32 {
	if len(groups) <= mapGroupsAbove {
		return nil
	}
	if byHop == nil {
		byHop = make(map[hop]int32, 2*len(groups))
		for g := range groups {
			byHop[hop{groups[g].Connector, groups[g].Domain}] = int32(g)
		}
		return byHop
	}
	last := len(groups) - 1
	byHop[hop{groups[last].Connector, groups[last].Domain}] = int32(last)
	return byHop
}

// resolveAddress is ResolveAddress that also returns the normalized
// domain, written in buf; tr is resolve's.
func (ix *Index) resolveAddress(buf *[maxDomainLength]byte, address string, size int64, tr *trace) (Route, []byte) {
	domain, ok := domainOf(address)
	if !ok {
		return routeNoDomain, nil
	}
	return ix.resolve(buf, domain, size, tr)
}
