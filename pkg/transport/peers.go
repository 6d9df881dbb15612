package transport

import (
	"fmt"
	"net"
	"slices"
	"strings"

	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/organization"
	"github.com/sendconn/sendconn/pkg/transport/routing"
)

// Organization is what a server needs to work with the other servers of
// its organization (docs/multi-server.md). Without it a server works
// alone: it delivers through every connector itself, whatever the
// connector's source servers.
type Organization struct {
	// TLS is this server's organization certificate and the CA.
	TLS *organization.TLS
	// Principal is the organization's servers group,
	// <Domain>\Exchange Servers.
	Principal permissions.Principal
	// Listener is the organization listener (organization.Listen),
	// whose SMTP sessions Run serves; nil when this server only sends.
	Listener net.Listener
	// Frontend says this server is a frontend: it makes the final
	// connection for FrontendProxyEnabled connectors itself.
	Frontend bool
	// Peers returns the organization's servers as the registry sees them
	// now, this one included, and a generation that changes whenever
	// that view does. It is called often and must be cheap.
	Peers func() (generation uint64, peers []organization.Peer)
}

// peerView is one generation of the organization's servers, indexed for
// routing.
type peerView struct {
	generation uint64
	byName     map[string]organization.Peer // folded name
}

func newPeerView(gen uint64, peers []organization.Peer) *peerView {
	v := &peerView{generation: gen, byName: make(map[string]organization.Peer, len(peers))}
	for _, p := range peers {
		v.byName[strings.ToLower(p.Name)] = p
	}
	return v
}

func (v *peerView) get(name string) (organization.Peer, bool) {
	if v == nil {
		return organization.Peer{}, false
	}
	p, ok := v.byName[strings.ToLower(name)]
	return p, ok
}

// local is the routing.Local of this server within the view: sites and
// existence come from the registry.
func (v *peerView) local(name, site string) routing.Local {
	l := routing.Local{Name: name, Site: site}
	if v == nil {
		return l
	}
	l.SiteOf = func(server string) (string, bool) {
		p, ok := v.get(server)
		return p.Site, ok && p.Site != ""
	}
	l.Exists = func(server string) bool {
		p, ok := v.get(server)
		return ok && p.Hub
	}
	return l
}

// relays reports whether g's mail goes to another server of the
// organization rather than out through its connector from here.
func (cfg *routingConfig) relays(g routing.Group) bool {
	return cfg.org != nil && g.Proximity != routing.LocalServer
}

// organizationHop completes hop for the organization: the source servers
// to relay to, or the frontends to leave through. It returns the reply a
// recipient waits with when no server can take the mail now. spread
// rotates the choice among equally near servers.
func (cfg *routingConfig) organizationHop(hop *delivery.Hop, g routing.Group, spread uint32) string {
	switch {
	case cfg.org == nil:
		return ""
	case cfg.relays(g):
		hop.Relay = cfg.sourceServers(g.Connector.SourceTransportServers, spread)
		if len(hop.Relay) == 0 {
			return fmt.Sprintf("451 4.4.0 no source server of connector %q is available (%s)", g.Connector.Name, cfg.describe(g.Connector.SourceTransportServers))
		}
	case g.Connector.FrontendProxyEnabled && !cfg.org.Frontend:
		hop.Proxies = cfg.frontends(spread)
		if len(hop.Proxies) == 0 {
			return fmt.Sprintf("451 4.4.0 FrontendProxyEnabled: no frontend server in site %s is available", cfg.site)
		}
	}
	return ""
}

// sourceServers lists the source servers that can take mail now, those of
// this server's site first; each group is rotated by spread so that the
// load is shared.
func (cfg *routingConfig) sourceServers(names []string, spread uint32) []organization.Peer {
	var near, far []organization.Peer
	for _, n := range names {
		p, ok := cfg.peers.get(n)
		if !ok || !p.Up || !p.Hub || p.Address == "" || strings.EqualFold(p.Name, cfg.self) {
			continue
		}
		if cfg.site != "" && strings.EqualFold(p.Site, cfg.site) {
			near = append(near, p)
		} else {
			far = append(far, p)
		}
	}
	return append(rotate(near, spread), rotate(far, spread)...)
}

// frontends lists the frontend servers of this server's site that are up.
func (cfg *routingConfig) frontends(spread uint32) []organization.Peer {
	var out []organization.Peer
	for _, p := range cfg.peers.byNameSorted() {
		if p.Frontend && p.Up && p.Address != "" && strings.EqualFold(p.Site, cfg.site) {
			out = append(out, p)
		}
	}
	return rotate(out, spread)
}

// describe says what the registry knows of each server named, for the
// reply a waiting recipient shows.
func (cfg *routingConfig) describe(names []string) string {
	var parts []string
	for _, n := range names {
		p, ok := cfg.peers.get(n)
		switch {
		case !ok:
			parts = append(parts, n+": unknown")
		case !p.Up:
			parts = append(parts, n+": down")
		case p.Address == "":
			parts = append(parts, n+": no organization listener")
		default:
			parts = append(parts, n+": up")
		}
	}
	return strings.Join(parts, ", ")
}

func (v *peerView) byNameSorted() []organization.Peer {
	if v == nil {
		return nil
	}
	out := make([]organization.Peer, 0, len(v.byName))
	for _, p := range v.byName {
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b organization.Peer) int {
		return strings.Compare(strings.ToLower(a.Name), strings.ToLower(b.Name))
	})
	return out
}

func rotate(ps []organization.Peer, by uint32) []organization.Peer {
	if len(ps) < 2 {
		return ps
	}
	k := int(by % uint32(len(ps)))
	return append(ps[k:len(ps):len(ps)], ps[:k]...)
}
