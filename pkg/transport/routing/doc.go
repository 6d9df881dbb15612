// Package routing decides which Send connector carries each recipient of a
// message, the way Exchange's routing table does (SPEC §2.3).
//
// An Index is built once from a configuration snapshot with NewIndex and is
// then read-only: any number of goroutines may call its methods at once. A
// new configuration means a new Index; nothing is updated in place.
//
//	ix := routing.NewIndex(connectors, acceptedDomains, routing.Local{Name: "EX01", Site: "HQ"})
//	r := ix.Resolve("marketing.contoso.com", size)     // one recipient domain
//	r = ix.ResolveAddress("julia@contoso.com", size)   // one recipient address
//	groups, unroutable := ix.Bifurcate(rcpts, size)    // a whole message
//
// # Candidates
//
// A connector takes part only if it is Enabled, has a usable next hop (DNS
// routing, or at least one smart host that names a host or a specified IP
// address), has at least one source server, and is visible to this server:
// not scoped, or scoped with this server among its source servers or in the
// site of one of them. Exchange drops a connector without source servers
// from its routing table ("RoutingNoSourceBhServers"); so does this package.
//
// # Selection
//
// For a recipient domain D the levels are tried from the most specific:
// the exact entry D, then *.D, then *.parent for each parent of D up to the
// top-level domain, then "--" when an Authoritative or InternalRelay accepted
// domain covers D (a "*.d" accepted domain covers d and its subdomains;
// ExternalRelay domains do not count), then "*". Cost never lets a less
// specific level win over a more specific one.
//
// Within a level candidates are ordered by address-space cost, then by
// proximity (this server is a source server, then a source server is in this
// server's site, then elsewhere), then by connector Name compared ordinally
// byte by byte as stored (so "Zeta" sorts before "alpha"), then by position
// in the configuration, which only matters for a configuration that breaks
// the unique-name rule. Exchange adds the IP-site-link cost to the
// address-space cost; sites here carry no link costs, so that term is zero.
//
// The first candidate in that order whose MaxMessageSize allows the message
// wins. When none at a level does, the next less specific level is tried.
// A connector with several address spaces competes at every level one of
// them matches, each time with that space's cost; two spaces at the same
// level count once, with the lower cost. Non-SMTP address spaces (X400 and
// other types) are kept by the model but never match an SMTP recipient.
//
// # When nothing is chosen
//
// Route.Outcome says what the transport must do with a recipient no
// connector takes:
//
//   - Unreachable: no connector matches the domain at all. As in Exchange
//     the recipient is held in the Unreachable queue with LastError
//     NoMatchingConnector and routed again when the configuration changes;
//     Route's code is the one its NDR carries if it expires there:
//     550 4.4.7 QUEUE.Expired.
//   - Rejected, ROUTING.SizeLimit: some connector matches but none allows a
//     message this large: 550 5.3.4, at once.
//   - Rejected, ROUTING.InvalidAddress: the address has no domain, or its
//     domain is not a valid domain name as connector.NormalizeDomain reads
//     one (address literals such as [192.0.2.1] included): 550 5.1.2, at
//     once. Exchange uses 5.1.2 for this reason name; RFC 3463's 5.1.3
//     (bad mailbox syntax) would fit a malformed local part, which routing
//     never looks at.
//
// # Bifurcation
//
// Bifurcate splits one message's recipients by next hop, as Exchange makes
// one delivery queue per next hop: all recipients routed to a smart-host
// connector form one group, while a DNS-routing connector gets one group per
// recipient domain (Group.Domain), since each domain has its own MX hosts.
//
// # Addresses and domains
//
// A recipient address is given bare (no angle brackets); its domain is
// everything after the last '@'. Domains are matched case-insensitively;
// U-labels are converted to A-labels exactly as connector.NormalizeDomain
// converts address-space domains, so an address space typed in Unicode and
// a recipient written in Unicode meet.
//
// Resolving a recipient costs one map lookup per label of its domain plus a
// constant few, whatever the number of connectors, and allocates nothing
// when the domain is ASCII.
package routing
