package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/store"
	"github.com/sendconn/sendconn/pkg/transport"
	"github.com/sendconn/sendconn/pkg/transport/organization"
)

// heartbeatTTL is how long a server's registration outlives its last
// heartbeat: after it, the others treat it as down.
const heartbeatTTL = 10 * time.Second

// peerRefresh is how often serve reads the registry.
const peerRefresh = time.Second

// member is serve's place in the organization: its registration in the
// store, the registry view it routes with, and its organization listener.
type member struct {
	info  store.ServerInfo
	reg   store.Registration
	peers *peerCache
	ln    *organization.Listener
}

// prepareOrganization, when organization.listen is set, opens the
// organization listener, starts following the registry and returns what
// the transport needs to work with the other servers. Without
// organization.listen the server works alone (it still registers, so that
// 'sendconn server get' lists it). register comes once the transport has
// its queue: a second serve started by mistake must not take over the
// running one's registration.
func prepareOrganization(ctx context.Context, cfg *Config, b store.Backend, fqdn string, logger *slog.Logger) (*member, *transport.Organization, error) {
	m := &member{info: store.ServerInfo{Name: cfg.ServerName, Fqdn: fqdn, Site: cfg.ServerSite, Roles: cfg.ServerRoles, Version: version}}
	var org *transport.Organization
	if cfg.OrganizationListen != "" {
		otls, err := organization.LoadTLS(cfg.OrganizationCAFile, cfg.OrganizationCert, cfg.OrganizationKey)
		if err != nil {
			return nil, nil, err
		}
		raw, err := net.Listen("tcp", cfg.OrganizationListen)
		if err != nil {
			return nil, nil, fmt.Errorf("organization.listen %s: %w", cfg.OrganizationListen, err)
		}
		if m.info.Address, err = advertisedAddress(cfg.OrganizationAddress, raw.Addr()); err != nil {
			raw.Close()
			return nil, nil, err
		}
		frontend := slices.Contains(cfg.ServerRoles, "frontend")
		var proxy *organization.Proxy
		if frontend {
			proxy = &organization.Proxy{Logger: logger}
		}
		m.ln = organization.Listen(raw, otls, proxy, logger)
		m.peers = &peerCache{self: cfg.ServerName}
		org = &transport.Organization{
			TLS:       otls,
			Principal: permissions.ExchangeServers(cfg.OrganizationDomain),
			Listener:  m.ln,
			Frontend:  frontend,
			Peers:     m.peers.view,
		}
		logger.Info("organization listener", "listen", raw.Addr().String(), "address", m.info.Address, "roles", strings.Join(cfg.ServerRoles, ","))
	}
	if m.peers != nil {
		if err := m.peers.refresh(ctx, b); err != nil {
			logger.Warn("cannot read the server registry; routing as if alone until it answers", "err", err)
		}
		go m.peers.follow(ctx, b, logger)
	}
	return m, org, nil
}

// register enters this server in the registry, with a heartbeat until
// leave or ctx's end.
func (m *member) register(ctx context.Context, b store.Backend, logger *slog.Logger) error {
	reg, err := b.Register(ctx, m.info, heartbeatTTL)
	if err != nil {
		return fmt.Errorf("register server %s: %w", m.info.Name, err)
	}
	m.reg = reg
	go func() {
		select {
		case <-reg.Lost():
			logger.Error("another server registered under this server's name; this one is no longer listed (two servers share server.name?)", "server", m.info.Name)
		case <-ctx.Done():
		}
	}()
	return nil
}

// leave withdraws the registration (the others see this server as
// stopped at once, not after the heartbeat lapses) and closes the
// listener.
func (m *member) leave(logger *slog.Logger) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if m.reg != nil {
		if err := m.reg.Withdraw(ctx); err != nil {
			logger.Warn("server registration not withdrawn; the others see it down after its heartbeat lapses", "err", err)
		}
	}
	m.close()
}

func (m *member) close() {
	if m.ln != nil {
		m.ln.Close()
	}
}

// advertisedAddress is the address other servers reach the organization
// listener at: organization.address, or the listening address when it
// names a host.
func advertisedAddress(configured string, listening net.Addr) (string, error) {
	if configured != "" {
		if _, _, err := net.SplitHostPort(configured); err != nil {
			return "", fmt.Errorf("organization.address %q: %w", configured, err)
		}
		return configured, nil
	}
	tcp, ok := listening.(*net.TCPAddr)
	if !ok || tcp.IP.IsUnspecified() {
		return "", fmt.Errorf("organization.listen %s listens on every address: set organization.address to the one other servers reach", listening)
	}
	return listening.String(), nil
}

// peerCache is the registry as the transport routes with it: read every
// peerRefresh, and given a new generation only when something changed.
type peerCache struct {
	self  string
	mu    sync.Mutex
	gen   uint64
	peers []organization.Peer
}

func (c *peerCache) view() (uint64, []organization.Peer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.gen, c.peers
}

func (c *peerCache) refresh(ctx context.Context, b store.Backend) error {
	servers, err := b.Servers(ctx)
	if err != nil {
		return err
	}
	peers := make([]organization.Peer, 0, len(servers))
	for _, s := range servers {
		peers = append(peers, organization.Peer{
			Name: s.Name, Fqdn: s.Fqdn, Site: s.Site, Address: s.Address,
			Hub:      slices.Contains(s.Roles, "hub"),
			Frontend: slices.Contains(s.Roles, "frontend"),
			Up:       s.Status == store.ServerUp || strings.EqualFold(s.Name, c.self),
		})
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !reflect.DeepEqual(peers, c.peers) {
		c.peers = peers
		c.gen++
	}
	return nil
}

// follow keeps the cache current until ctx ends. While the store does not
// answer, the last view stays: the transport routes with what it knew.
func (c *peerCache) follow(ctx context.Context, b store.Backend, logger *slog.Logger) {
	t := time.NewTicker(peerRefresh)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		err := c.refresh(ctx, b)
		switch {
		case err != nil && !failing && ctx.Err() == nil:
			logger.Warn("cannot read the server registry; routing with the last view", "err", err)
			failing = true
		case err == nil && failing:
			logger.Info("server registry readable again")
			failing = false
		}
	}
}
