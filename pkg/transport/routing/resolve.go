package routing

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/sendconn/sendconn/pkg/connector"
)

// Outcome is what the transport does with a recipient.
type Outcome uint8

const (
	// Routed: deliver through Route.Connector.
	Routed Outcome = iota
	// Unreachable: hold the recipient in the Unreachable queue and route it
	// again when the configuration changes; Route's code is the NDR it gets
	// if it expires there.
	Unreachable
	// Rejected: fail the recipient now with Route's code.
	Rejected
)

var outcomeNames = [...]string{"Routed", "Unreachable", "Rejected"}

func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "Outcome(" + strconv.Itoa(int(o)) + ")"
}

// Exchange's names for the reasons a recipient is not routed.
const (
	ReasonSizeLimit      = "ROUTING.SizeLimit"
	ReasonInvalidAddress = "ROUTING.InvalidAddress"
	ReasonExpired        = "QUEUE.Expired"
)

// NoMatchingConnector is the LastError Exchange shows on the Unreachable
// queue, and the reason its expiry NDR quotes.
const NoMatchingConnector = "A matching connector cannot be found to route the external recipient"

// Route is the answer for one recipient.
type Route struct {
	Outcome Outcome
	// Connector is the chosen connector, nil unless Outcome is Routed. It
	// points into the Index's own copy of the configuration: read it, do
	// not modify it.
	Connector *connector.SendConnector
	// AddressSpace is the chosen connector's address space that matched.
	AddressSpace connector.AddressSpace
	// Proximity says whether this server is a source server of Connector;
	// if not, the message is relayed to one.
	Proximity Proximity

	// When Outcome is not Routed, the SMTP reply an NDR or the Unreachable
	// queue carries: Code, Enhanced status, Exchange's reason name and the
	// text after it. Reply joins them.
	Code     int    // 550
	Enhanced string // "5.3.4"
	Reason   string // ReasonSizeLimit, ReasonInvalidAddress or ReasonExpired
	Text     string // "message size exceeds fixed maximum size for route"
}

// Reply is the full SMTP reply, e.g. "550 5.3.4 ROUTING.SizeLimit; message
// size exceeds fixed maximum size for route"; empty when routed.
func (r Route) Reply() string {
	if r.Outcome == Routed {
		return ""
	}
	s := strconv.Itoa(r.Code) + " " + r.Enhanced + " " + r.Reason
	if r.Text != "" {
		s += "; " + r.Text
	}
	return s
}

var (
	routeUnreachable = Route{Outcome: Unreachable, Code: 550, Enhanced: "4.4.7", Reason: ReasonExpired,
		Text: "message expired in unreachable destination queue. Reason: " + NoMatchingConnector}
	routeTooLarge = Route{Outcome: Rejected, Code: 550, Enhanced: "5.3.4", Reason: ReasonSizeLimit,
		Text: "message size exceeds fixed maximum size for route"}
	routeNoDomain = Route{Outcome: Rejected, Code: 550, Enhanced: "5.1.2", Reason: ReasonInvalidAddress,
		Text: "the recipient address has no domain"}
	routeBadDomain = Route{Outcome: Rejected, Code: 550, Enhanced: "5.1.2", Reason: ReasonInvalidAddress,
		Text: "the recipient domain is not a valid domain name"}
)

// Resolve picks the connector for a recipient domain and a message of size
// bytes. The domain may be in any case and in U-labels; it is normalized as
// connector.NormalizeDomain does. A nil Index routes nothing.
func (ix *Index) Resolve(domain string, size int64) Route {
	var buf [maxDomainLength]byte
	r, _ := ix.resolve(&buf, domain, size, nil)
	return r
}

// ResolveAddress is Resolve for a bare recipient address: the domain is what
// follows the last '@'.
func (ix *Index) ResolveAddress(address string, size int64) Route {
	var buf [maxDomainLength]byte
	r, _ := ix.resolveAddress(&buf, address, size, nil)
	return r
}

func domainOf(address string) (string, bool) {
	at := strings.LastIndexByte(address, '@')
	if at < 0 || at == len(address)-1 {
		return "", false
	}
	return address[at+1:], true
}

// resolve normalizes domain into buf, which the caller keeps on its stack
// so that neither the name nor the lookups allocate, and returns the route
// with the normalized name (nil when the domain is invalid). A non-nil tr
// records the walk for Explain; the route is the same either way.
func (ix *Index) resolve(buf *[maxDomainLength]byte, domain string, size int64, tr *trace) (Route, []byte) {
	name, ok := canonicalDomain(buf, domain)
	if !ok {
		return routeBadDomain, nil
	}
	if ix == nil {
		return routeUnreachable, name
	}
	return ix.lookup(name, size, tr), name
}

// lookup walks the levels of name from the most specific; see the package
// documentation for the order. It is the only implementation of selection:
// Resolve, ResolveAddress, Bifurcate and Explain all come here. With a
// trace (Explain) the walk does not stop at the level that chooses: it goes
// on to record every less specific level that matches too, and returns the
// route the first choice made, which is the one it returns without a trace.
func (ix *Index) lookup(name []byte, size int64, tr *trace) Route {
	matched, isLocal := false, false
	for i := 0; ; {
		if n := ix.names[string(name[i:])]; n != nil {
			if i == 0 {
				if r, ok := n.exact.pick(size, &matched, tr); ok {
					return r
				}
				isLocal = isLocal || n.isLocal
			}
			if r, ok := n.subtree.pick(size, &matched, tr); ok {
				return r
			}
			isLocal = isLocal || n.localSub
		}
		dot := bytes.IndexByte(name[i:], '.')
		if dot < 0 {
			break
		}
		i += dot + 1
	}
	if isLocal {
		if r, ok := ix.accepted.pick(size, &matched, tr); ok {
			return r
		}
	}
	if r, ok := ix.all.pick(size, &matched, tr); ok {
		return r
	}
	if tr != nil {
		tr.isLocal = isLocal
		if tr.chosen != nil {
			return tr.chosen.route()
		}
	}
	if matched {
		return routeTooLarge
	}
	return routeUnreachable
}

// pick returns the level's first candidate that takes a message of size
// bytes, and records in matched whether the level had any candidate. With
// a trace it records the level and its choice instead, and reports no
// choice, so that the walk goes on.
func (lv *level) pick(size int64, matched *bool, tr *trace) (Route, bool) {
	if len(lv.cands) == 0 {
		return Route{}, false
	}
	*matched = true
	if lv.largest.Allows(size) {
		for i := range lv.cands {
			c := &lv.cands[i]
			if c.maxSize.Allows(size) {
				if tr != nil {
					tr.visit(lv, i)
					return Route{}, false
				}
				return c.route(), true
			}
		}
	}
	if tr != nil {
		tr.visit(lv, -1)
	}
	return Route{}, false
}

// route is the route that choosing c makes.
func (c *candidate) route() Route {
	return Route{Outcome: Routed, Connector: c.conn, AddressSpace: c.space, Proximity: c.proximity}
}

// maxDomainLength is the longest name connector.NormalizeDomain accepts.
const maxDomainLength = 255

// canonicalDomain writes the normalized form of domain into buf. ASCII
// names are checked here, with the rules of connector.NormalizeDomain, so
// the common case allocates nothing; anything else (U-labels, names that
// could be IP addresses, names this check refuses) is left to
// connector.NormalizeDomain, which has the last word.
func canonicalDomain(buf *[maxDomainLength]byte, domain string) ([]byte, bool) {
	if n, ok := asciiDomain(buf, domain); ok {
		return buf[:n], true
	}
	d, err := connector.NormalizeDomain(domain)
	if err != nil || len(d) > maxDomainLength {
		return nil, false
	}
	return buf[:copy(buf[:], d)], true
}

// asciiDomain lower-cases domain into buf when it is plainly a valid ASCII
// domain name with at least one letter or hyphen, which rules out the IP
// addresses NormalizeDomain refuses. A false result means "ask
// NormalizeDomain", not "invalid".
func asciiDomain(buf *[maxDomainLength]byte, domain string) (int, bool) {
	if len(domain) == 0 || len(domain) > maxDomainLength {
		return 0, false
	}
	nonDigit := false
	start := 0
	for i := 0; i <= len(domain); i++ {
		if i == len(domain) || domain[i] == '.' {
			label := buf[start:i]
			if len(label) == 0 || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
				return 0, false
			}
			if i < len(domain) {
				buf[i] = '.'
			}
			start = i + 1
			continue
		}
		c := domain[i]
		switch {
		case c >= 'a' && c <= 'z' || c == '-':
			nonDigit = true
		case c >= 'A' && c <= 'Z':
			c += 'a' - 'A'
			nonDigit = true
		case c >= '0' && c <= '9':
		default:
			return 0, false
		}
		buf[i] = c
	}
	return len(domain), nonDigit
}
