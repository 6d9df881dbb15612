// Package transport is sendconn serve: it ties the receiving side, the
// durable queue, routing and delivery together, keeps the routing
// configuration current while it runs, and shuts down without losing what
// it acknowledged.
//
// One message's way through it (docs/flow.md tells it in full):
// receive.Server accepts it and queue.Put makes it durable before the 250;
// the scheduler here routes each due recipient with the current
// routing.Index, groups them per connector, and delivery.Deliverer sends
// each group in one SMTP transaction; the results go back into the queue
// as per-recipient state, and a message leaves the queue once every
// recipient has been delivered.
package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/receive"
	"github.com/sendconn/sendconn/pkg/transport/routing"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// Snapshot is the configuration the transport routes with, read in one
// store transaction.
type Snapshot struct {
	Revision   uint64
	Connectors []connector.SendConnector
	ACLs       map[string]permissions.ACL // by connector Guid
	Domains    []connector.AcceptedDomain
}

// Source is what the transport needs from the store: a cheap revision
// check, and a full snapshot when it changed. Nothing is held open
// between calls.
type Source interface {
	Revision(ctx context.Context) (uint64, error)
	Snapshot(ctx context.Context) (*Snapshot, error)
}

// Watcher is a Source that tells of changes (etcd's watch) instead of
// being polled. Changes returns nil when it cannot, and the transport
// polls.
type Watcher interface {
	Changes(ctx context.Context) <-chan struct{}
}

// watchedPoll is how often a watched store is still polled, in case a
// change notice was lost.
const watchedPoll = 30 * time.Second

// Retry is the retry, expiry and notification schedule
// (Set-TransportService's names).
type Retry struct {
	TransientFailureRetryCount    int
	TransientFailureRetryInterval time.Duration
	MessageRetryInterval          time.Duration
	// OutboundConnectionFailureRetryInterval replaces MessageRetryInterval
	// once the quick retries are used up when no next hop could be
	// reached at all; 0 means MessageRetryInterval.
	OutboundConnectionFailureRetryInterval time.Duration
	MessageExpirationTimeout               time.Duration
	// DelayNotificationTimeout is how long a message waits before its
	// sender gets the one delay notice; 0 sends none.
	DelayNotificationTimeout time.Duration
}

// Options configure a Server.
type Options struct {
	ServerName string
	ServerSite string
	// ServerFQDN names this server in the notifications it writes
	// (Reporting-MTA, postmaster@); empty means ServerName.
	ServerFQDN string
	QueueDir   string
	Receive    receive.Config
	Delivery   delivery.Config
	Retry      Retry
	// MaxOutboundConnections bounds deliveries in flight in all;
	// MaxPerConnectorConnections those through one connector.
	MaxOutboundConnections     int
	MaxPerConnectorConnections int
	// ReloadInterval is how often the store revision is checked; 0 means
	// 1 s, which keeps a change within the 2 s the admin is promised.
	ReloadInterval  time.Duration
	ShutdownTimeout time.Duration
	// Metrics, when set, receives the Prometheus series of
	// docs/metrics.md.
	Metrics prometheus.Registerer
	// Tracking, when set, is the message tracking log (RECEIVE, SEND,
	// DEFER, FAIL, EXPIRE, DSN events).
	Tracking *tracking.Log
	// Organization, when set, makes this server one of several.
	Organization *Organization
	Logger       *slog.Logger
	Now          func() time.Time
}

// Server is a running transport.
type Server struct {
	opts      Options
	log       *slog.Logger
	src       Source
	queue     *queue.Queue
	deliverer *delivery.Deliverer
	receiver  *receive.Server
	// orgReceiver serves the organization listener; nil without one.
	orgReceiver *receive.Server
	config      atomic.Pointer[routingConfig]
	spread      atomic.Uint32 // rotates among equally near servers
	retry       atomic.Pointer[Retry]

	wake     chan struct{}
	mu       sync.Mutex
	inFlight map[string]bool // message IDs claimed by a worker or an admin operation
	// retryRequested holds, per message, the recipients Retry-Queue made
	// due at once (in memory only).
	retryRequested map[string][]int
	active         map[hopKey]int // deliveries in progress per queue
	perConn        map[string]chan struct{}
	outbound       chan struct{}
	workers        sync.WaitGroup

	suspended *suspendedQueues
	metrics   *metrics
	started   time.Time
	due       *dueList
}

// routingConfig is one snapshot ready to route with.
type routingConfig struct {
	snap      *Snapshot
	index     *routing.Index
	installed time.Time
	// fingerprints holds delivery.Fingerprint per connector Guid,
	// computed once per snapshot rather than once per delivery.
	fingerprints map[string]string
	// org and peers are the organization and the registry's view of it
	// the index was built with; both nil when this server works alone.
	org        *Organization
	peers      *peerView
	self, site string
}

// New opens the queue (which only one process may hold) and reads the
// configuration once; both must work for serve to start.
func New(ctx context.Context, opts Options, src Source) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.ReloadInterval <= 0 {
		opts.ReloadInterval = time.Second
	}
	if opts.MaxOutboundConnections <= 0 {
		opts.MaxOutboundConnections = 1000
	}
	if opts.MaxPerConnectorConnections <= 0 {
		opts.MaxPerConnectorConnections = 20
	}
	if opts.ServerFQDN == "" {
		opts.ServerFQDN = opts.ServerName
	}
	s := &Server{
		opts:           opts,
		log:            opts.Logger,
		src:            src,
		wake:           make(chan struct{}, 1),
		inFlight:       map[string]bool{},
		retryRequested: map[string][]int{},
		active:         map[hopKey]int{},
		perConn:        map[string]chan struct{}{},
		outbound:       make(chan struct{}, opts.MaxOutboundConnections),
		started:        opts.Now(),
		due:            newDueList(),
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	s.install(snap, s.currentPeers())
	s.SetRetry(opts.Retry)
	q, err := queue.Open(opts.QueueDir, queue.Options{Now: opts.Now})
	if err != nil {
		return nil, err
	}
	s.queue = q
	if s.suspended, err = loadSuspendedQueues(opts.QueueDir); err != nil {
		_ = q.Close()
		return nil, err
	}
	s.scheduleAll()
	s.metrics = newMetrics(opts.Metrics, s)
	opts.Delivery.Logger = opts.Logger
	onSession := opts.Delivery.OnSession
	opts.Delivery.OnSession = func(connector, outcome string) {
		s.metrics.session(connector, outcome)
		if onSession != nil {
			onSession(connector, outcome)
		}
	}
	if org := opts.Organization; org != nil {
		opts.Delivery.Organization, opts.Delivery.OrganizationPrincipal = org.TLS, org.Principal
	}
	s.deliverer = delivery.New(opts.Delivery)
	rc := opts.Receive
	rc.Logger = opts.Logger
	rc.IsStorageError = func(err error) bool { return errors.Is(err, queue.ErrStorage) }
	rc.Now = opts.Now
	s.receiver = receive.New(rc, spool{s})
	if org := opts.Organization; org != nil && org.Listener != nil {
		orc := rc
		orc.Organization = true
		orc.TLS = nil // TLS from the first byte: the listener did it
		orc.Users, orc.AllowInsecureAuth = nil, false
		s.orgReceiver = receive.New(orc, spool{s})
	}
	return s, nil
}

// currentPeers is the registry's view now; nil when this server works
// alone.
func (s *Server) currentPeers() *peerView {
	org := s.opts.Organization
	if org == nil || org.Peers == nil {
		return nil
	}
	return newPeerView(org.Peers())
}

// install builds the routing index for snap and the organization's
// servers and makes it current.
func (s *Server) install(snap *Snapshot, peers *peerView) {
	local := peers.local(s.opts.ServerName, s.opts.ServerSite)
	fps := make(map[string]string, len(snap.Connectors))
	for _, c := range snap.Connectors {
		fps[c.Guid] = delivery.Fingerprint(c, snap.ACLs[c.Guid])
	}
	s.config.Store(&routingConfig{
		snap: snap, index: routing.NewIndex(snap.Connectors, snap.Domains, local),
		installed: s.opts.Now(), fingerprints: fps,
		org: s.opts.Organization, peers: peers, self: s.opts.ServerName, site: s.opts.ServerSite,
	})
}

// Status is what a running server says about itself: which configuration
// it routes with, so an administrator (or a script) can tell whether a
// change has been picked up.
type Status struct {
	Server         string
	Fqdn           string
	StartedAt      time.Time
	StoreRevision  uint64
	Connectors     int
	ConfigLoadedAt time.Time
	QueuedMessages int
}

// Status reports the server's state.
func (s *Server) Status() Status {
	cfg := s.config.Load()
	return Status{
		Server:         s.opts.ServerName,
		Fqdn:           s.opts.ServerFQDN,
		StartedAt:      s.started,
		StoreRevision:  cfg.snap.Revision,
		Connectors:     len(cfg.snap.Connectors),
		ConfigLoadedAt: cfg.installed,
		QueuedMessages: s.queue.Len(),
	}
}

// spool adapts the queue to the receiving side and wakes the scheduler.
type spool struct{ s *Server }

func (sp spool) Put(env receive.Envelope, body io.Reader) (string, error) {
	qe := queue.Envelope{From: env.From, Meta: env.Meta, Return: env.Return, EnvelopeID: env.EnvelopeID}
	for _, r := range env.Recipients {
		qe.Recipients = append(qe.Recipients, queue.Recipient{Address: r.Address, Notify: r.Notify, ORCPT: r.ORCPT})
	}
	m, err := sp.s.queue.PutEnvelope(qe, body)
	if err != nil {
		return "", err
	}
	sp.s.metrics.messageReceived()
	sp.s.track(m, tracking.Event{
		EventID: "RECEIVE", Source: "SMTP",
		ClientIP: env.Meta["client-ip"], ClientHostname: env.Meta["helo"],
		Recipients: addresses(m.Recipients),
	})
	sp.s.schedule(m)
	return m.ID, nil
}

func (s *Server) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run serves on ln until ctx is cancelled, then shuts down within
// ShutdownTimeout: receiving stops at once, deliveries in flight get the
// deadline to finish, and the queue is closed intact.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	runCtx, stopDeliveries := context.WithCancel(context.Background())
	defer stopDeliveries()
	errc := make(chan error, 2)
	go func() { errc <- s.receiver.Serve(ln) }()
	if s.orgReceiver != nil {
		go func() {
			if err := s.orgReceiver.Serve(s.opts.Organization.Listener); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("organization listener: %w", err)
			}
		}()
	}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); s.reloadLoop(ctx) }()
	go func() { defer bg.Done(); s.scheduleLoop(ctx, runCtx) }()
	s.log.Info("serving", "listen", ln.Addr().String(), "queue", s.opts.QueueDir, "revision", s.config.Load().snap.Revision)

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	deadline := s.opts.ShutdownTimeout
	if deadline <= 0 {
		deadline = 30 * time.Second
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	s.log.Info("shutting down", "deadline", deadline.String())
	if err := s.receiver.Shutdown(shutdownCtx); err != nil {
		_ = s.receiver.Close()
	}
	if s.orgReceiver != nil {
		if err := s.orgReceiver.Shutdown(shutdownCtx); err != nil {
			_ = s.orgReceiver.Close()
		}
	}
	bg.Wait()
	done := make(chan struct{})
	go func() { s.workers.Wait(); close(done) }()
	select {
	case <-done:
	case <-shutdownCtx.Done():
		// Abandon what is still in flight: it stays queued and is sent
		// again after the restart (a duplicate at worst).
		stopDeliveries()
		<-done
	}
	s.deliverer.Close()
	if err := s.queue.Close(); err != nil && serveErr == nil {
		serveErr = err
	}
	return serveErr
}

// SetRetry changes the retry schedule of a running server (a reloaded
// configuration file); it applies from the next attempt.
func (s *Server) SetRetry(r Retry) {
	s.retry.Store(&r)
	if s.queue != nil {
		s.scheduleAll() // expiry and delay notices move with the schedule
	}
}

// Reload reads the store now (SIGHUP).
func (s *Server) Reload(ctx context.Context) { s.reload(ctx, true) }

// reloadLoop keeps the configuration current: at a watch's notice, or by
// polling the store revision, and whenever the registry's view of the
// organization's servers changes (a server went down or came back).
func (s *Server) reloadLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.ReloadInterval)
	defer t.Stop()
	var changes <-chan struct{}
	if w, ok := s.src.(Watcher); ok {
		changes = w.Changes(ctx)
	}
	lastPoll := s.opts.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil // the watch ended: poll
				continue
			}
			s.reload(ctx, false)
			lastPoll = s.opts.Now()
		case <-t.C:
			if changes == nil || s.opts.Now().Sub(lastPoll) >= watchedPoll {
				s.reload(ctx, false)
				lastPoll = s.opts.Now()
			}
			s.refreshPeers()
		}
	}
}

// refreshPeers rebuilds the routing index when the organization's servers
// changed, and looks again at the mail that waits, which a server that
// came back may now take.
func (s *Server) refreshPeers() {
	org := s.opts.Organization
	if org == nil || org.Peers == nil {
		return
	}
	cur := s.config.Load()
	gen, peers := org.Peers()
	if cur.peers != nil && gen == cur.peers.generation {
		return
	}
	s.install(cur.snap, newPeerView(gen, peers))
	s.log.Info("organization servers changed", "generation", gen, "servers", len(peers))
	s.rerouteWaiting()
	s.poke()
}

// reload swaps in a new snapshot when the store revision moved. A store
// that cannot be read keeps the last good configuration.
func (s *Server) reload(ctx context.Context, force bool) {
	cur := s.config.Load()
	if !force {
		rev, err := s.src.Revision(ctx)
		if err != nil {
			s.metrics.reload(err)
			s.log.Warn("cannot read the store; keeping the last good configuration", "err", err, "revision", cur.snap.Revision)
			return
		}
		if rev == cur.snap.Revision {
			return
		}
	}
	snap, err := s.src.Snapshot(ctx)
	s.metrics.reload(err)
	if err != nil {
		s.log.Warn("cannot read the store; keeping the last good configuration", "err", err, "revision", cur.snap.Revision)
		return
	}
	s.install(snap, s.currentPeers())
	s.log.Info("configuration reloaded", "revision", snap.Revision, "connectors", len(snap.Connectors))
	s.rerouteWaiting()
	s.poke()
}

// rerouteWaiting makes every recipient that waits for a retry due now: a
// new configuration may route it (the Unreachable queue) or route it
// elsewhere (a connector removed or disabled). Like Retry-Queue, the
// request lives in memory: rewriting every queued message on each
// configuration change would cost a durable write per message.
func (s *Server) rerouteWaiting() {
	now := s.opts.Now()
	for _, m := range s.queue.Messages() {
		var waiting []int
		for i, r := range m.Recipients {
			if r.Status == queue.Pending && r.NextAttempt.After(now) {
				waiting = append(waiting, i)
			}
		}
		if len(waiting) > 0 {
			s.requestRetry(m.ID, waiting, now)
		}
	}
}
