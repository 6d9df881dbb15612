package transport

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/organization"
)

// registry is a fake of the organization's server registry that tests
// change while the servers run.
type registry struct {
	mu    sync.Mutex
	gen   uint64
	peers map[string]organization.Peer
}

func (r *registry) set(p organization.Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.peers == nil {
		r.peers = map[string]organization.Peer{}
	}
	r.peers[p.Name] = p
	r.gen++
}

func (r *registry) setUp(name string, up bool) {
	r.mu.Lock()
	p := r.peers[name]
	r.mu.Unlock()
	p.Up = up
	r.set(p)
}

func (r *registry) view() (uint64, []organization.Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []organization.Peer
	for _, p := range r.peers {
		out = append(out, p)
	}
	return r.gen, out
}

// orgServer is one server of a test organization.
type orgServer struct {
	*running
	name, orgAddr string
	proxied       *atomic.Int32 // connections its frontend proxy made
}

// startOrgServer runs a server of the organization with its organization
// listener and registers it Up.
func startOrgServer(t *testing.T, ca *testsmtp.CA, reg *registry, src Source, name, site string, hub, frontend bool) *orgServer {
	t.Helper()
	fqdn := strings.ToLower(name) + ".contoso.com"
	cert := ca.Issue(t, fqdn)
	otls := &organization.TLS{Certificate: cert, Roots: ca.Pool}
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxied := new(atomic.Int32)
	var proxy *organization.Proxy
	if frontend {
		proxy = &organization.Proxy{Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			proxied.Add(1)
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		}}
	}
	ln := organization.Listen(raw, otls, proxy, nil)
	opts := testOptions(t.TempDir())
	opts.ServerName, opts.ServerSite, opts.ServerFQDN = name, site, fqdn
	opts.Receive.Hostname, opts.Delivery.ServerFQDN = fqdn, fqdn
	opts.Organization = &Organization{TLS: otls, Principal: permissions.ExchangeServers("CONTOSO"), Listener: ln, Frontend: frontend, Peers: reg.view}
	reg.set(organization.Peer{Name: name, Fqdn: fqdn, Site: site, Hub: hub, Frontend: frontend, Address: raw.Addr().String(), Up: true})
	return &orgServer{running: startServer(t, opts, src), name: name, orgAddr: raw.Addr().String(), proxied: proxied}
}

func viaServers(t *testing.T, c connector.SendConnector, servers ...string) connector.SendConnector {
	t.Helper()
	c.SourceTransportServers = servers
	return c
}

// viaB is the common organization of these tests: a sink, a connector
// "Internet via B" to it whose only source server is B, and servers A
// (site1) and B (site2). acl, when not nil, changes the connector's access
// list first.
func viaB(t *testing.T, acl func(permissions.ACL) permissions.ACL) (sink *testsmtp.Server, reg *registry, a *orgServer) {
	t.Helper()
	ca := testsmtp.NewCA(t)
	sink = testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(viaServers(t, smartHost(t, "Internet via B", "*", sink.Port()), "B"))
	if acl != nil {
		guid := src.snap.Connectors[0].Guid
		src.snap.ACLs[guid] = acl(src.snap.ACLs[guid])
	}
	reg = &registry{}
	a = startOrgServer(t, ca, reg, src, "A", "site1", true, true)
	startOrgServer(t, ca, reg, src, "B", "site2", true, true)
	return sink, reg, a
}

func TestRelayToTheConnectorsSourceServer(t *testing.T) {
	// Anonymous may see the Organization headers, so the sink shows
	// which of them survived the hop between A and B.
	sink, _, a := viaB(t, func(acl permissions.ACL) permissions.ACL {
		return append(acl, permissions.ACE{User: permissions.AnonymousLogon, AccessRights: permissions.ExtendedRight,
			ExtendedRights: permissions.RightsOf(permissions.SendHeadersOrganization)})
	})

	if err := submit(a.addr, "x@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	got := sink.Wait(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != 1 {
		t.Fatalf("sink got %d messages, want exactly 1", n)
	}
	data := string(got[0].Data)
	if !strings.Contains(data, "by b.contoso.com (sendconn) with ESMTPSA") || !strings.Contains(data, "by a.contoso.com") {
		t.Errorf("message did not pass A then B:\n%s", data)
	}
	// A stamped it; B, receiving from a server of the organization,
	// kept A's stamp rather than stamping its own.
	if !strings.Contains(data, "X-MS-Exchange-Organization-AuthSource: a.contoso.com") || strings.Contains(data, "AuthSource: b.contoso.com") {
		t.Errorf("organization headers did not travel from A through B:\n%s", data)
	}
	if strings.Count(data, "X-MS-Exchange-Organization-SCL") != 0 {
		t.Errorf("the client's own organization header survived receipt at A:\n%s", data)
	}
}

func TestOrganizationHeadersStrippedOnTheLastHopToAnAnonymousHost(t *testing.T) {
	sink, _, a := viaB(t, nil)
	if err := submit(a.addr, "x@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	data := string(sink.Wait(t, 1, 10*time.Second)[0].Data)
	if !strings.Contains(data, "by b.contoso.com") {
		t.Errorf("not relayed through B:\n%s", data)
	}
	if strings.Contains(data, "X-MS-Exchange-Organization-") {
		t.Errorf("organization headers reached an anonymous smart host:\n%s", data)
	}
}

func TestSourceServerDownKeepsTheMailQueued(t *testing.T) {
	sink, reg, a := viaB(t, nil)
	reg.setUp("B", false)
	waitFor(t, "A sees B down", 10*time.Second, func() bool {
		p, _ := a.srv.config.Load().peers.get("B")
		return !p.Up
	})
	if err := submit(a.addr, "x@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the relay queue in Retry", 10*time.Second, func() bool {
		qs, _ := a.srv.Queues(`A\Internet via B`)
		return len(qs) == 1 && qs[0].DeliveryType == RelayToSourceServers && strings.Contains(qs[0].LastError, "B: down")
	})
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("delivered %d messages while the only source server was down", n)
	}
	reg.setUp("B", true)
	sink.Wait(t, 1, 10*time.Second)
}

func TestFailoverToAnotherSourceServer(t *testing.T) {
	ca := testsmtp.NewCA(t)
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(viaServers(t, smartHost(t, "Internet via B or C", "*", sink.Port()), "B", "C"))
	reg := &registry{}
	a := startOrgServer(t, ca, reg, src, "A", "site1", true, true)
	b := startOrgServer(t, ca, reg, src, "B", "site2", true, true)
	startOrgServer(t, ca, reg, src, "C", "site2", true, true)
	// B dies without the registry knowing yet: A tries it, fails, and
	// goes on to C within the same attempt.
	b.stop(t)
	for i := 0; i < 3; i++ {
		if err := submit(a.addr, "x@fabrikam.com"); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range sink.Wait(t, 3, 10*time.Second) {
		if !strings.Contains(string(m.Data), "by c.contoso.com") {
			t.Errorf("not relayed through C:\n%s", m.Data)
		}
	}
}

func TestFrontendProxyMakesTheLastConnection(t *testing.T) {
	ca := testsmtp.NewCA(t)
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	c := viaServers(t, smartHost(t, "Via frontend", "*", sink.Port()), "A")
	c.FrontendProxyEnabled = true
	src.set(c)
	reg := &registry{}
	a := startOrgServer(t, ca, reg, src, "A", "site1", true, false)
	f := startOrgServer(t, ca, reg, src, "F", "site1", false, true)
	far := startOrgServer(t, ca, reg, src, "G", "site2", false, true)
	if err := submit(a.addr, "x@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	data := string(sink.Wait(t, 1, 10*time.Second)[0].Data)
	if f.proxied.Load() != 1 || far.proxied.Load() != 0 {
		t.Errorf("proxied connections: F (same site) %d, G (other site) %d; want 1 and 0", f.proxied.Load(), far.proxied.Load())
	}
	if !strings.Contains(data, "by a.contoso.com") || strings.Contains(data, "by f.contoso.com") {
		t.Errorf("the frontend should carry A's session, not relay the message:\n%s", data)
	}

	// No frontend in the site: the mail waits.
	reg.setUp("F", false)
	waitFor(t, "A sees F down", 10*time.Second, func() bool {
		p, _ := a.srv.config.Load().peers.get("F")
		return !p.Up
	})
	if err := submit(a.addr, "y@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue in Retry", 10*time.Second, func() bool {
		ms, _ := a.srv.Messages("")
		return len(ms) == 1 && strings.Contains(ms[0].LastError, "no frontend server in site site1")
	})
	reg.setUp("F", true)
	sink.Wait(t, 2, 10*time.Second)
}

func TestOutsiderCannotUseTheOrganizationListener(t *testing.T) {
	ca := testsmtp.NewCA(t)
	other := testsmtp.NewCA(t)
	src := &memSource{}
	reg := &registry{}
	a := startOrgServer(t, ca, reg, src, "A", "site1", true, true)
	for name, certs := range map[string][]tls.Certificate{
		"no certificate":              nil,
		"a certificate of another CA": {other.Issue(t, "b.contoso.com")},
	} {
		conn, err := tls.Dial("tcp", a.orgAddr, &tls.Config{RootCAs: ca.Pool, ServerName: "a.contoso.com", Certificates: certs, NextProtos: []string{organization.ProtoSMTP}})
		if err == nil {
			// TLS 1.3 reports the client's rejection at the first read.
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = conn.Read(make([]byte, 1))
			conn.Close()
		}
		if err == nil {
			t.Errorf("%s: the organization listener talked to it", name)
		}
	}
}

func TestSourceServersNearestFirstAndShared(t *testing.T) {
	peers := []organization.Peer{
		{Name: "A", Site: "site1", Hub: true, Address: "a:1", Up: true},
		{Name: "B", Site: "site2", Hub: true, Address: "b:1", Up: true},
		{Name: "C", Site: "site1", Hub: true, Address: "c:1", Up: true},
		{Name: "D", Site: "site1", Hub: true, Address: "d:1", Up: false},
		{Name: "E", Site: "site2", Hub: true, Address: "e:1", Up: true},
		{Name: "F", Site: "site1", Frontend: true, Address: "f:1", Up: true},
		{Name: "G", Site: "site1", Hub: true, Up: true}, // no organization listener
	}
	cfg := &routingConfig{org: &Organization{}, peers: newPeerView(1, peers), self: "A", site: "site1"}
	names := func(ps []organization.Peer) string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return strings.Join(out, ",")
	}
	all := []string{"A", "B", "C", "D", "E", "F", "G", "H"}
	// This server, down, non-hub, unreachable and unknown servers are
	// never chosen; this site's come first.
	if got := names(cfg.sourceServers(all, 0)); got != "C,B,E" {
		t.Errorf("spread 0: %s, want C,B,E", got)
	}
	// Equals take turns; the site order stays.
	if got := names(cfg.sourceServers(all, 1)); got != "C,E,B" {
		t.Errorf("spread 1: %s, want C,E,B", got)
	}
	if got := names(cfg.sourceServers([]string{"D", "H"}, 0)); got != "" {
		t.Errorf("down and unknown servers chosen: %s", got)
	}
	if got := cfg.describe([]string{"D", "G", "H", "B"}); got != "D: down, G: no organization listener, H: unknown, B: up" {
		t.Errorf("describe: %s", got)
	}
	if got := names(cfg.frontends(0)); got != "F" {
		t.Errorf("frontends of site1: %s, want F", got)
	}
}
