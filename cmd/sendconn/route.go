package main

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/store"
	"github.com/sendconn/sendconn/pkg/transport"
	"github.com/sendconn/sendconn/pkg/transport/resolver"
	"github.com/sendconn/sendconn/pkg/transport/routing"
)

// routeRow is one recipient as route prints it: the routing package's
// explanation, and with --resolve the next hops DNS gives.
type routeRow struct {
	routing.Explanation
	server   string   // the server routing, for queue identities
	nextHops []string // --resolve
	// relay says the server is not a source server of the chosen
	// connector and, being one of several, relays to one that is.
	relay bool
}

func (r *routeRow) routed() bool { return r.Route.Outcome == routing.Routed }

// nextHop is where the chosen connector sends: the recipient domain's MX
// hosts or the smart-host list, as the queue's NextHopDomain names it.
func (r *routeRow) nextHop() string {
	switch r.Route.Outcome {
	case routing.Routed:
		if r.relay {
			return "source servers " + strings.Join(r.Route.Connector.SourceTransportServers, ", ")
		}
		if r.Route.Connector.DNSRoutingEnabled() {
			return "MX of " + r.Domain
		}
		return connector.SmartHostsString(r.Route.Connector.SmartHosts)
	case routing.Unreachable:
		return "Unreachable queue"
	}
	return ""
}

// deliveryType and queue are Get-Queue's DeliveryType and Identity of the
// queue serve would hold the recipient in.
func (r *routeRow) deliveryType() string {
	switch {
	case r.routed() && r.relay:
		return transport.RelayToSourceServers
	case r.routed() && r.Route.Connector.DNSRoutingEnabled():
		return transport.DNSConnectorDelivery
	case r.routed():
		return transport.SmartHostConnectorDelivery
	case r.Route.Outcome == routing.Unreachable:
		return transport.UnreachableDelivery
	}
	return ""
}

func (r *routeRow) queue() string {
	switch {
	case r.routed() && r.relay:
		return r.server + `\` + r.Route.Connector.Name
	case r.routed() && r.Route.Connector.DNSRoutingEnabled():
		return r.server + `\` + r.Domain
	case r.routed():
		return r.server + `\` + connector.SmartHostsString(r.Route.Connector.SmartHosts)
	case r.Route.Outcome == routing.Unreachable:
		return r.server + `\Unreachable`
	}
	return ""
}

// reason says why a recipient is not routed: the Unreachable queue's
// LastError, or the reason name and text of the NDR.
func (r *routeRow) reason() string {
	switch r.Route.Outcome {
	case routing.Unreachable:
		return routing.NoMatchingConnector
	case routing.Rejected:
		return r.Route.Reason + "; " + r.Route.Text
	}
	return ""
}

func (r *routeRow) candidates() []string {
	out := make([]string, len(r.Candidates))
	for i, c := range r.Candidates {
		out[i] = c.Connector + ": " + c.Outcome + " (" + c.Detail + ")"
	}
	return out
}

// listLines is a list that -o list prints one item per line, each aligned
// under the first, as Format-List shows a multi-line value: a list of
// candidates on one line would not be read. The other formats get the
// plain list.
type listLines struct {
	items  []string
	indent int
}

func (l listLines) String() string {
	return strings.Join(l.items, "\n"+strings.Repeat(" ", l.indent))
}

// newRouteKind describes route's output. NextHops exists only with
// --resolve; in -o list the lists are printed one item per line, indented
// by *indent, which the caller sets once the columns are known.
func newRouteKind(format string, resolve bool, indent *int) *objectKind {
	row := func(obj any) *routeRow { return obj.(*routeRow) }
	list := func(items []string) any {
		if format == "list" {
			return listLines{items: items, indent: *indent}
		}
		return items
	}
	k := &objectKind{
		Name:        "routes",
		DefaultView: []string{"Recipient", "Connector", "AddressSpace", "Cost", "Outcome", "NextHop"},
		Identity:    func(obj any) string { return row(obj).Recipient },
		Columns: []column{
			{Name: "Recipient", Get: func(obj any) any { return row(obj).Recipient }},
			{Name: "Domain", Get: func(obj any) any { return row(obj).Domain }},
			{Name: "Connector", Get: func(obj any) any {
				if r := row(obj); r.routed() {
					return r.Route.Connector.Name
				}
				return ""
			}},
			{Name: "AddressSpace", Get: func(obj any) any {
				if r := row(obj); r.routed() {
					return r.Route.AddressSpace.String()
				}
				return ""
			}},
			{Name: "Cost", Get: func(obj any) any {
				if r := row(obj); r.routed() {
					return r.Route.AddressSpace.Cost
				}
				return nil
			}},
			{Name: "Proximity", Get: func(obj any) any {
				if r := row(obj); r.routed() {
					return r.Route.Proximity.String()
				}
				return ""
			}},
			{Name: "Outcome", Get: func(obj any) any { return row(obj).Route.Outcome.String() }},
			{Name: "Reason", Get: func(obj any) any { return row(obj).reason() }},
			{Name: "Reply", Get: func(obj any) any { return row(obj).Route.Reply() }},
			{Name: "NextHop", Get: func(obj any) any { return row(obj).nextHop() }},
			{Name: "NextHops", Get: func(obj any) any { return list(row(obj).nextHops) }, Alias: !resolve},
			{Name: "DeliveryType", Get: func(obj any) any { return row(obj).deliveryType() }},
			{Name: "Queue", Get: func(obj any) any { return row(obj).queue() }},
			{Name: "Candidates", Get: func(obj any) any { return list(row(obj).candidates()) }},
		},
	}
	if resolve {
		k.DefaultView = append(k.DefaultView, "NextHops")
	}
	return k
}

type routeOptions struct {
	size    string
	resolve bool
	server  string
	out     outputOptions
}

func newRouteCmd(app *App) *cobra.Command {
	o := &routeOptions{}
	cmd := &cobra.Command{
		Use:   "route RECIPIENT... [--size SIZE] [--resolve] [flags]",
		Short: "Explain which Send connector each recipient would use, and why",
		Long: `Explain which Send connector mail to each RECIPIENT would leave through, and
why. It reads the connectors and accepted domains from the store the way
serve does and runs them through serve's own routing code, for this server
(server.name, server.site), so the answer is the one serve would give. It
sends nothing, and works whether serve runs or not.

The rules, in order: the most specific address space wins (exact domain,
then *.domain, then *.parent up to the top-level domain, then '--' for
Authoritative and InternalRelay accepted domains, then '*'), whatever the
costs; within one level the lowest cost, then the nearest source servers,
then the lowest connector name. Connectors whose MaxMessageSize is below
--size are skipped. Disabled connectors, scoped connectors of another site,
and connectors without a next hop or source server never take part.

Outcome is Routed; Unreachable when no connector matches (serve holds the
mail in the Unreachable queue until one does; Reason says so); or Rejected
for an address without a valid domain, or a --size that no matching
connector allows (Reply is the NDR serve sends). The table shows the result;
-o list also shows every connector as a candidate, the chosen one first, and
why each other one lost: less specific, higher cost, proximity, name, too
small, disabled, scoped away, no next hop, no source server, no matching
address space, wrong address type.

--resolve also looks the next hops up in DNS as serve would
(dns.internal-servers, default /etc/resolv.conf; dns.external-servers for
connectors with UseExternalDNSServersEnabled): each smart host's addresses,
or the recipient domain's MX hosts with their preferences and addresses. A
failed lookup is shown in NextHops, not treated as an error. Exits 0 when
every recipient was explained, whatever its outcome. See docs/route.md.

With several servers (docs/multi-server.md), sites come from the server
registry, and --server explains the routing of another server: which
connectors it may use, and whether it sends itself or relays to a source
server (DeliveryType SmtpRelayToConnectorSourceServers). Connectors none of
whose source servers is a registered server are then left out ("unknown
source servers").`,
		Example: `  sendconn route bob@sales.contoso.com
  sendconn route bob@sales.contoso.com julia@fabrikam.com -o list
  sendconn route julia@fabrikam.com --size 20MB --resolve -o list
  cut -d, -f1 recipients.csv | sendconn route - -o csv --property Recipient,Connector,Outcome
  sendconn route julia@fabrikam.com --server EX02 -o list`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRoute(cmd.Context(), app, o, args)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.size, "size", "", "explain for a message of this size, e.g. 20MB (B, KB, MB, GB, TB; 1 KB = 1024 B); connectors whose MaxMessageSize is smaller are skipped (default: any size)")
	annotate(fs.Lookup("size"), syntaxAnnotation, "size")
	fs.BoolVar(&o.resolve, "resolve", false, "look up the next hops in DNS: smart hosts' addresses, or the MX hosts with preferences and addresses")
	fs.StringVar(&o.server, "server", "", "explain the routing of this registered server (default: server.name)")
	addOutputFlags(fs, &o.out)
	return cmd
}

func runRoute(ctx context.Context, app *App, o *routeOptions, args []string) error {
	indent := 0
	kind := newRouteKind(o.out.Format, o.resolve, &indent)
	if err := o.out.validate(kind); err != nil {
		return err
	}
	cols, err := o.out.selectColumns(kind)
	if err != nil {
		return err
	}
	for _, c := range cols {
		if c.Name == "NextHops" && !o.resolve {
			return usageErrorf("property NextHops needs --resolve")
		}
		indent = max(indent, len(c.Name))
	}
	indent += len(" : ")
	var size int64
	if o.size != "" {
		s, err := connector.ParseByteSize(o.size)
		if err != nil {
			return usageErrorf("--size %q: %v", o.size, err)
		}
		if s.IsUnlimited() {
			return usageErrorf("--size %q: give a message size, such as 20MB", o.size)
		}
		size = s.Bytes()
	}
	if len(args) == 0 {
		return usageErrorf("route needs a recipient address, or '-' to read them from standard input")
	}
	rcpts, _, err := identityArgs(app.IO.In, args, "")
	if err != nil {
		return err
	}
	if len(rcpts) == 0 {
		return nil // an empty pipe: nothing to explain
	}
	// The snapshot serve reads, in one read transaction, and the index
	// serve builds from it.
	snap, err := storeSource{s: app.store(), orgDomain: app.cfg.OrganizationDomain}.Snapshot(ctx)
	if err != nil {
		return err
	}
	local, multi, err := routingLocal(ctx, app, o.server)
	if err != nil {
		return err
	}
	ix := routing.NewIndex(snap.Connectors, snap.Domains, local)
	rows := make([]routeRow, len(rcpts))
	var dns *hopResolvers
	if o.resolve {
		dns = newHopResolvers(app.cfg)
	}
	for i, rcpt := range rcpts {
		rows[i] = routeRow{Explanation: ix.Explain(rcpt, size), server: local.Name}
		rows[i].relay = multi && rows[i].routed() && rows[i].Route.Proximity != routing.LocalServer
		if dns != nil && rows[i].routed() {
			rows[i].nextHops = dns.nextHops(ctx, rows[i].Route.Connector, rows[i].Domain)
		}
	}
	return app.printObjects(kind, pointersTo(rows), o.out)
}

// hopResolvers are the resolvers serve's deliverer uses: the internal one
// (dns.internal-servers, else /etc/resolv.conf) and, when
// dns.external-servers is set, the one for connectors with
// UseExternalDNSServersEnabled. A resolver that cannot be built is an
// error shown in every lookup it would have made.
type hopResolvers struct {
	internal, external       *resolver.Resolver
	internalErr, externalErr error
}

func newHopResolvers(cfg *Config) *hopResolvers {
	h := &hopResolvers{}
	servers := cfg.DNSInternalServers
	if len(servers) == 0 {
		var err error
		if servers, err = resolver.ServersFromResolvConf("/etc/resolv.conf"); err != nil {
			h.internalErr = fmt.Errorf("dns.internal-servers is not set and /etc/resolv.conf names no usable server: %w", err)
		}
	}
	if h.internalErr == nil {
		if r, err := resolver.New(resolver.Config{Servers: servers}); err != nil {
			h.internalErr = fmt.Errorf("dns.internal-servers: %w", err)
		} else {
			h.internal = r
		}
	}
	if len(cfg.DNSExternalServers) > 0 {
		if r, err := resolver.New(resolver.Config{Servers: cfg.DNSExternalServers}); err != nil {
			h.externalErr = fmt.Errorf("dns.external-servers: %w", err)
		} else {
			h.external = r
		}
	}
	return h
}

func (h *hopResolvers) forConnector(c *connector.SendConnector) (*resolver.Resolver, error) {
	if c.UseExternalDNSServersEnabled && (h.external != nil || h.externalErr != nil) {
		return h.external, h.externalErr
	}
	return h.internal, h.internalErr
}

// nextHops lists where c would connect for domain: "10 mx1.example.test
// [127.0.0.2]" per MX host for DNS routing, "relay.contoso.com [10.0.0.5]"
// per smart host; IP smart hosts as they are.
func (h *hopResolvers) nextHops(ctx context.Context, c *connector.SendConnector, domain string) []string {
	res, err := h.forConnector(c)
	if !c.DNSRoutingEnabled() {
		var out []string
		for _, sh := range c.SmartHosts {
			if sh.IsIP() {
				out = append(out, sh.String())
				continue
			}
			out = append(out, sh.Host+" "+addresses(ctx, res, err, sh.Host))
		}
		return out
	}
	if err != nil {
		return []string{"lookup failed: " + err.Error()}
	}
	mxs, err := res.LookupMX(ctx, domain)
	if err != nil {
		return []string{"lookup failed: " + err.Error()}
	}
	out := make([]string, 0, len(mxs))
	for _, mx := range mxs {
		s := strconv.Itoa(int(mx.Preference)) + " " + mx.Host + " " + addresses(ctx, res, nil, mx.Host)
		if mx.Implicit {
			s += " (no MX records: the domain itself)"
		}
		out = append(out, s)
	}
	return out
}

// addresses is "[192.0.2.1, 2001:db8::1]" for host, or why there are none.
func addresses(ctx context.Context, res *resolver.Resolver, err error, host string) string {
	var ips []netip.Addr
	if err == nil {
		ips, err = res.LookupHost(ctx, host)
	}
	if err != nil {
		return "(lookup failed: " + err.Error() + ")"
	}
	s := make([]string, len(ips))
	for i, ip := range ips {
		s[i] = ip.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

// routingLocal is the routing.Local of the server route explains for, as
// serve builds it: with the registry's sites, and, when the organization
// has several servers (any registered with an organization listener),
// only connectors whose source servers exist. multi says so.
func routingLocal(ctx context.Context, app *App, server string) (local routing.Local, multi bool, err error) {
	local = routing.Local{Name: app.cfg.ServerName, Site: app.cfg.ServerSite}
	servers, err := app.store().Servers(ctx)
	if err != nil {
		return local, false, err
	}
	byName := map[string]store.ServerInfo{}
	for _, s := range servers {
		byName[strings.ToLower(s.Name)] = s
		multi = multi || s.Address != ""
	}
	if server != "" {
		s, ok := byName[strings.ToLower(server)]
		if !ok {
			return local, false, withHint(&store.NotFoundError{Kind: "server", Identity: server}, "list servers with 'sendconn server get'")
		}
		local = routing.Local{Name: s.Name, Site: s.Site}
	}
	local.SiteOf = func(name string) (string, bool) {
		s, ok := byName[strings.ToLower(name)]
		return s.Site, ok && s.Site != ""
	}
	if multi {
		local.Exists = func(name string) bool {
			s, ok := byName[strings.ToLower(name)]
			return ok && slices.Contains(s.Roles, "hub")
		}
	}
	return local, multi, nil
}
