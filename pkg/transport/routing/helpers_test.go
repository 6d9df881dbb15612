package routing

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

// The servers of the test organization: EX01 routes; EX02 shares its site;
// EX09 is in another site; EX77's site is unknown.
const (
	thisServer = "EX01"
	thisSite   = "Default-First-Site-Name"
)

var testSites = map[string]string{
	"ex01": thisSite,
	"ex02": thisSite,
	"ex09": "Branch-Site",
}

func testLocal() Local {
	return Local{Name: thisServer, Site: thisSite, SiteOf: func(server string) (string, bool) {
		s, ok := testSites[strings.ToLower(server)]
		return s, ok
	}}
}

const (
	kb = 1024
	mb = 1024 * kb
)

// conn is an enabled DNS-routing connector on this server with the default
// 35 MB limit and the given address spaces, changed by opts.
func conn(name string, spaces string, opts ...func(*connector.SendConnector)) connector.SendConnector {
	as, err := connector.ParseAddressSpaceList(spaces)
	if err != nil {
		panic(err)
	}
	c := connector.SendConnector{
		Guid:                   "guid-" + name,
		Name:                   name,
		AddressSpaces:          as,
		MaxMessageSize:         connector.DefaultMaxMessageSize,
		SourceTransportServers: []string{thisServer},
		Enabled:                true,
	}
	for _, o := range opts {
		o(&c)
	}
	return c
}

func disabled(c *connector.SendConnector) { c.Enabled = false }
func scoped(c *connector.SendConnector)   { c.IsScopedConnector = true }

func sources(servers ...string) func(*connector.SendConnector) {
	return func(c *connector.SendConnector) { c.SourceTransportServers = servers }
}

func maxSize(n connector.ByteSize) func(*connector.SendConnector) {
	return func(c *connector.SendConnector) { c.MaxMessageSize = n }
}

func smartHosts(hosts ...connector.SmartHost) func(*connector.SendConnector) {
	return func(c *connector.SendConnector) { c.SmartHosts = hosts }
}

var (
	relayHost     = connector.SmartHost{Host: "relay.contoso.com"}
	relayIP       = connector.SmartHost{IP: netip.MustParseAddr("192.168.3.2")}
	unspecifiedIP = connector.SmartHost{IP: netip.IPv4Unspecified()}
)

func accepted(domain string, t connector.DomainType) connector.AcceptedDomain {
	return connector.AcceptedDomain{Name: domain, DomainName: domain, DomainType: t}
}

// routedTo names the connector and address space a route chose, or its
// outcome and reason, in one comparable string.
func routedTo(r Route) string {
	if r.Outcome == Routed {
		if r.Connector == nil {
			return "Routed with no connector"
		}
		return r.Connector.Name + " " + r.AddressSpace.String()
	}
	if r.Connector != nil {
		return r.Outcome.String() + " with connector " + r.Connector.Name
	}
	return r.Outcome.String() + " " + r.Reason
}

func mustIndex(t testing.TB, conns []connector.SendConnector, domains []connector.AcceptedDomain) *Index {
	t.Helper()
	return NewIndex(conns, domains, testLocal())
}
