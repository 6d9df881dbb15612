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

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/receive"
	"github.com/sendconn/sendconn/pkg/transport/routing"
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

// Retry is the retry and expiry schedule (Set-TransportService's names).
type Retry struct {
	TransientFailureRetryCount    int
	TransientFailureRetryInterval time.Duration
	MessageRetryInterval          time.Duration
	MessageExpirationTimeout      time.Duration
}

// Options configure a Server.
type Options struct {
	ServerName string
	ServerSite string
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
	Logger          *slog.Logger
	Now             func() time.Time
}

// Server is a running transport.
type Server struct {
	opts      Options
	log       *slog.Logger
	src       Source
	queue     *queue.Queue
	deliverer *delivery.Deliverer
	receiver  *receive.Server
	config    atomic.Pointer[routingConfig]
	retry     atomic.Pointer[Retry]

	wake     chan struct{}
	mu       sync.Mutex
	inFlight map[string]bool // message IDs being delivered
	perConn  map[string]chan struct{}
	outbound chan struct{}
	workers  sync.WaitGroup
}

// routingConfig is one snapshot ready to route with.
type routingConfig struct {
	snap  *Snapshot
	index *routing.Index
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
	s := &Server{
		opts:     opts,
		log:      opts.Logger,
		src:      src,
		wake:     make(chan struct{}, 1),
		inFlight: map[string]bool{},
		perConn:  map[string]chan struct{}{},
		outbound: make(chan struct{}, opts.MaxOutboundConnections),
	}
	snap, err := src.Snapshot(ctx)
	if err != nil {
		return nil, fmt.Errorf("read configuration: %w", err)
	}
	s.install(snap)
	s.SetRetry(opts.Retry)
	q, err := queue.Open(opts.QueueDir, queue.Options{Now: opts.Now})
	if err != nil {
		return nil, err
	}
	s.queue = q
	opts.Delivery.Logger = opts.Logger
	s.deliverer = delivery.New(opts.Delivery)
	rc := opts.Receive
	rc.Logger = opts.Logger
	rc.IsStorageError = func(err error) bool { return errors.Is(err, queue.ErrStorage) }
	rc.Now = opts.Now
	s.receiver = receive.New(rc, spool{s})
	return s, nil
}

// install builds the routing index for snap and makes it current.
func (s *Server) install(snap *Snapshot) {
	local := routing.Local{Name: s.opts.ServerName, Site: s.opts.ServerSite}
	s.config.Store(&routingConfig{snap: snap, index: routing.NewIndex(snap.Connectors, snap.Domains, local)})
}

// spool adapts the queue to the receiving side and wakes the scheduler.
type spool struct{ s *Server }

func (sp spool) Put(from string, rcpts []string, meta map[string]string, body io.Reader) (string, error) {
	m, err := sp.s.queue.Put(from, rcpts, meta, body)
	if err != nil {
		return "", err
	}
	sp.s.poke()
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
	errc := make(chan error, 1)
	go func() { errc <- s.receiver.Serve(ln) }()
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
func (s *Server) SetRetry(r Retry) { s.retry.Store(&r) }

// Reload reads the store now (SIGHUP).
func (s *Server) Reload(ctx context.Context) { s.reload(ctx, true) }

func (s *Server) reloadLoop(ctx context.Context) {
	t := time.NewTicker(s.opts.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.reload(ctx, false)
		}
	}
}

// reload swaps in a new snapshot when the store revision moved. A store
// that cannot be read keeps the last good configuration.
func (s *Server) reload(ctx context.Context, force bool) {
	cur := s.config.Load()
	if !force {
		rev, err := s.src.Revision(ctx)
		if err != nil {
			s.log.Warn("cannot read the store; keeping the last good configuration", "err", err, "revision", cur.snap.Revision)
			return
		}
		if rev == cur.snap.Revision {
			return
		}
	}
	snap, err := s.src.Snapshot(ctx)
	if err != nil {
		s.log.Warn("cannot read the store; keeping the last good configuration", "err", err, "revision", cur.snap.Revision)
		return
	}
	s.install(snap)
	s.log.Info("configuration reloaded", "revision", snap.Revision, "connectors", len(snap.Connectors))
	s.rerouteWaiting()
	s.poke()
}

// rerouteWaiting makes every recipient that waits for a retry due now: a
// new configuration may route it (the Unreachable queue) or route it
// elsewhere (a connector removed or disabled).
func (s *Server) rerouteWaiting() {
	now := s.opts.Now()
	for _, m := range s.queue.Messages() {
		changed := false
		for i := range m.Recipients {
			r := &m.Recipients[i]
			if r.Status == queue.Pending && r.NextAttempt.After(now) {
				r.NextAttempt = now
				changed = true
			}
		}
		if changed {
			if err := s.queue.Update(m); err != nil {
				s.log.Error("queue update failed", "queue_id", m.ID, "err", err)
			}
		}
	}
}

// scheduleLoop starts a delivery for every message with a due recipient,
// when woken by a new message or a reload, and at least once a second for
// retries that came due.
func (s *Server) scheduleLoop(ctx, runCtx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		s.dispatchDue(runCtx)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

func (s *Server) dispatchDue(ctx context.Context) {
	now := s.opts.Now()
	for _, m := range s.queue.Messages() {
		if !hasDue(m, now) {
			continue
		}
		s.mu.Lock()
		busy := s.inFlight[m.ID]
		if !busy {
			s.inFlight[m.ID] = true
		}
		s.mu.Unlock()
		if busy {
			continue
		}
		select {
		case s.outbound <- struct{}{}:
		case <-ctx.Done():
			s.done(m.ID)
			return
		}
		s.workers.Add(1)
		go func(id string) {
			defer s.workers.Done()
			defer func() { <-s.outbound }()
			defer s.done(id)
			s.attempt(ctx, id)
		}(m.ID)
	}
}

func (s *Server) done(id string) {
	s.mu.Lock()
	delete(s.inFlight, id)
	s.mu.Unlock()
}

func hasDue(m *queue.Message, now time.Time) bool {
	for _, r := range m.Recipients {
		if r.Status == queue.Pending && !r.NextAttempt.After(now) {
			return true
		}
	}
	return false
}

// attempt routes the due recipients of one message and delivers each
// connector's group, then records the results.
func (s *Server) attempt(ctx context.Context, id string) {
	m, err := s.queue.Get(id)
	if err != nil {
		return // removed meanwhile
	}
	now := s.opts.Now()
	cfg := s.config.Load()
	var due []string
	byAddr := map[string]*queue.Recipient{}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status == queue.Pending && !r.NextAttempt.After(now) {
			due = append(due, r.Address)
			byAddr[r.Address] = r
		}
	}
	groups, unroutable := cfg.index.Bifurcate(due, m.Size)
	for _, u := range unroutable {
		r := byAddr[u.Recipient]
		if u.Route.Outcome == routing.Rejected {
			s.fail(m, r, u.Route.Reply())
			continue
		}
		// Unreachable: wait for a configuration that routes it; a reload
		// makes it due at once.
		s.retryLater(m, r, routing.NoMatchingConnector, now)
		s.log.Info("recipient unreachable", "queue_id", m.ID, "rcpt", r.Address, "reason", routing.NoMatchingConnector)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, g := range groups {
		conn := *g.Connector
		rcpts := g.Recipients
		g := g
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := s.acquireConnector(ctx, conn.Guid)
			if release == nil {
				return
			}
			defer release()
			hop := delivery.Hop{Connector: conn, ACL: cfg.snap.ACLs[conn.Guid], Domain: g.Domain}
			results := s.deliverer.Deliver(ctx, hop, delivery.Message{
				ID: m.ID, From: m.From, Recipients: rcpts, Size: m.Size,
				Open: func() (io.ReadCloser, error) { return s.queue.Body(m.ID) },
			})
			mu.Lock()
			defer mu.Unlock()
			for _, res := range results {
				r := byAddr[res.Recipient]
				switch res.Status {
				case delivery.Delivered:
					r.Status, r.LastError = queue.Delivered, res.Reply
					r.Attempts++
					s.log.Info("delivered", "queue_id", m.ID, "rcpt", r.Address, "connector", conn.Name, "host", res.Host, "reply", res.Reply)
				case delivery.Permanent:
					r.Attempts++
					s.fail(m, r, res.Reply)
				default:
					s.retryLater(m, r, res.Reply, s.opts.Now())
					s.log.Info("delivery deferred", "queue_id", m.ID, "rcpt", r.Address, "connector", conn.Name,
						"reply", res.Reply, "attempts", r.Attempts, "next_attempt", r.NextAttempt.Format(time.RFC3339))
				}
			}
		}()
	}
	wg.Wait()
	s.record(m)
}

// retryLater schedules the next attempt: TransientFailureRetryCount quick
// retries, then MessageRetryInterval, until the message expires.
func (s *Server) retryLater(m *queue.Message, r *queue.Recipient, reply string, now time.Time) {
	rt := *s.retry.Load()
	r.Attempts++
	r.LastError = reply
	if rt.MessageExpirationTimeout > 0 && now.Sub(m.Received) >= rt.MessageExpirationTimeout {
		s.fail(m, r, "550 4.4.7 Message expired; last error: "+reply)
		return
	}
	wait := rt.MessageRetryInterval
	if r.Attempts <= rt.TransientFailureRetryCount && rt.TransientFailureRetryInterval > 0 {
		wait = rt.TransientFailureRetryInterval
	}
	r.NextAttempt = now.Add(wait)
}

// fail records a permanent failure. The message stays in the queue with
// the failure until delivery status notifications exist, so nothing is
// dropped without a trace.
func (s *Server) fail(m *queue.Message, r *queue.Recipient, reply string) {
	r.Status, r.LastError = queue.Failed, reply
	s.log.Warn("recipient failed permanently", "queue_id", m.ID, "rcpt", r.Address, "from", m.From, "reply", reply)
}

// record writes the new recipient state; a message whose recipients were
// all delivered leaves the queue.
func (s *Server) record(m *queue.Message) {
	allDelivered := true
	for _, r := range m.Recipients {
		if r.Status != queue.Delivered {
			allDelivered = false
		}
	}
	var err error
	if allDelivered {
		err = s.queue.Remove(m.ID)
	} else {
		err = s.queue.Update(m)
	}
	if err != nil {
		s.log.Error("queue update failed; the message will be retried", "queue_id", m.ID, "err", err)
	}
}

// acquireConnector bounds the deliveries through one connector; nil when
// ctx ended first.
func (s *Server) acquireConnector(ctx context.Context, guid string) func() {
	s.mu.Lock()
	sem, ok := s.perConn[guid]
	if !ok {
		sem = make(chan struct{}, s.opts.MaxPerConnectorConnections)
		s.perConn[guid] = sem
	}
	s.mu.Unlock()
	select {
	case sem <- struct{}{}:
		return func() { <-sem }
	case <-ctx.Done():
		return nil
	}
}
