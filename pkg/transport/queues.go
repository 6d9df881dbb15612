package transport

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/routing"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// Exchange's DeliveryType values for the queues this server has.
const (
	DNSConnectorDelivery       = "DnsConnectorDelivery"
	SmartHostConnectorDelivery = "SmartHostConnectorDelivery"
	UnreachableDelivery        = "Unreachable"
	// RelayToSourceServers is the queue of a connector this server is
	// not a source server of: its mail goes to one that is.
	RelayToSourceServers = "SmtpRelayToConnectorSourceServers"
)

// Queue and message status values, as Get-Queue and Get-Message show them.
const (
	StatusActive    = "Active"
	StatusReady     = "Ready"
	StatusRetry     = "Retry"
	StatusSuspended = "Suspended"
)

const unreachableQueue = "Unreachable"

// unreachableExpiry is the NDR of a recipient that expired waiting for a
// connector.
const unreachableExpiry = "550 4.4.7 QUEUE.Expired; message expired in unreachable destination queue. Reason: " + routing.NoMatchingConnector

// adminRemoval is the NDR of Remove-Message -WithNDR.
const adminRemoval = "550 4.3.2 QUEUE.Admin; message deleted by administrative action"

// hopKey names a delivery queue: Exchange keeps one per next hop, a DNS
// connector's recipient domain or a smart-host connector's host list, and
// per connector. The identity an admin types is <server>\<nextHop>; in
// the rare case of two smart-host connectors with the same host list, it
// names both queues and commands act on both.
type hopKey struct {
	deliveryType string
	nextHop      string
	connector    string // Guid; "" for Unreachable
}

// hopOf names g's queue. A connector this server is not a source server
// of has one relay queue, named after it, whatever its next hops are.
func (cfg *routingConfig) hopOf(g routing.Group) hopKey {
	if cfg.relays(g) {
		return hopKey{RelayToSourceServers, g.Connector.Name, g.Connector.Guid}
	}
	if g.Connector.DNSRoutingEnabled() {
		return hopKey{DNSConnectorDelivery, g.Domain, g.Connector.Guid}
	}
	return hopKey{SmartHostConnectorDelivery, connector.SmartHostsString(g.Connector.SmartHosts), g.Connector.Guid}
}

var unreachableKey = hopKey{UnreachableDelivery, unreachableQueue, ""}

// QueueInfo is one queue as Get-Queue shows it.
type QueueInfo struct {
	Identity         string    `json:"Identity"`
	DeliveryType     string    `json:"DeliveryType"`
	Status           string    `json:"Status"`
	MessageCount     int       `json:"MessageCount"`
	NextHopDomain    string    `json:"NextHopDomain"`
	NextHopConnector string    `json:"NextHopConnector,omitempty"` // connector name
	LastError        string    `json:"LastError,omitempty"`
	RetryCount       int       `json:"RetryCount"`
	LastRetryTime    time.Time `json:"LastRetryTime,omitzero"`
	NextRetryTime    time.Time `json:"NextRetryTime,omitzero"`
}

// MessageInfo is one message in one queue as Get-Message shows it. A
// message whose recipients wait in several queues is listed once per
// queue, as Exchange does.
type MessageInfo struct {
	Identity       string          `json:"Identity"`
	QueueID        string          `json:"QueueId"`
	FromAddress    string          `json:"FromAddress"`
	Status         string          `json:"Status"`
	Queue          string          `json:"Queue"`
	Subject        string          `json:"Subject"`
	Size           int64           `json:"Size"`
	DateReceived   time.Time       `json:"DateReceived"`
	ExpirationTime time.Time       `json:"ExpirationTime,omitzero"`
	LastError      string          `json:"LastError,omitempty"`
	RetryCount     int             `json:"RetryCount"`
	Recipients     []RecipientInfo `json:"Recipients"`
}

// RecipientInfo is one recipient of a listed message.
type RecipientInfo struct {
	Address   string `json:"Address"`
	Status    string `json:"Status"`
	LastError string `json:"LastError,omitempty"`
}

// Admin errors the admin socket maps to its replies.
var (
	ErrNoSuchQueue   = errors.New("queue not found")
	ErrNoSuchMessage = errors.New("message not found")
	ErrOtherServer   = errors.New("identity names another server")
	ErrBusy          = errors.New("message is being delivered; try again")
	ErrInvalidOp     = errors.New("operation not valid for this queue")
)

// placement is where each waiting recipient of m stands now: the queue
// the current configuration routes it to.
type placement struct {
	key       hopKey
	connector string
	rcpts     []int // indices into m.Recipients
}

// place routes m's pending recipients with cfg, as the next attempt
// would, so listings always agree with what delivery will do.
func place(cfg *routingConfig, m *queue.Message) []placement {
	var addrs []string
	byAddr := map[string][]int{}
	for i, r := range m.Recipients {
		if r.Status == queue.Pending {
			addrs = append(addrs, r.Address)
			byAddr[r.Address] = append(byAddr[r.Address], i)
		}
	}
	if len(addrs) == 0 {
		return nil
	}
	take := func(a string) int {
		ix := byAddr[a]
		byAddr[a] = ix[1:]
		return ix[0]
	}
	groups, unroutable := cfg.index.Bifurcate(addrs, m.Size)
	var out []placement
	for _, g := range groups {
		p := placement{key: cfg.hopOf(g), connector: g.Connector.Name}
		for _, a := range g.Recipients {
			p.rcpts = append(p.rcpts, take(a))
		}
		out = append(out, p)
	}
	var un placement
	for _, u := range unroutable {
		i := take(u.Recipient)
		if u.Route.Outcome == routing.Unreachable {
			un.key = unreachableKey
			un.rcpts = append(un.rcpts, i)
		}
	}
	if len(un.rcpts) > 0 {
		out = append(out, un)
	}
	return out
}

// queueIdentity is Exchange's <server>\<NextHopDomain>.
func (s *Server) queueIdentity(k hopKey) string { return s.opts.ServerName + `\` + k.nextHop }

// Queues lists the delivery queues that hold messages, and Unreachable,
// sorted by identity. identity, when not empty, selects one queue.
func (s *Server) Queues(identity string) ([]QueueInfo, error) {
	want, err := s.parseQueueIdentity(identity)
	if err != nil {
		return nil, err
	}
	cfg := s.config.Load()
	now := s.opts.Now()
	byKey := map[hopKey]*QueueInfo{}
	due := map[hopKey]bool{}
	for _, m := range s.queue.Messages() {
		for _, p := range place(cfg, m) {
			if want != "" && !strings.EqualFold(p.key.nextHop, want) {
				continue
			}
			q := byKey[p.key]
			if q == nil {
				q = &QueueInfo{
					Identity: s.queueIdentity(p.key), DeliveryType: p.key.deliveryType,
					NextHopDomain: p.key.nextHop, NextHopConnector: p.connector,
				}
				byKey[p.key] = q
			}
			q.MessageCount++
			for _, i := range p.rcpts {
				r := m.Recipients[i]
				q.RetryCount = max(q.RetryCount, r.Attempts)
				if r.LastError != "" && !r.LastAttempt.Before(q.LastRetryTime) {
					q.LastError, q.LastRetryTime = r.LastError, r.LastAttempt
				}
				switch {
				case m.Suspended:
				case !r.NextAttempt.After(now):
					due[p.key] = true
				case q.NextRetryTime.IsZero() || r.NextAttempt.Before(q.NextRetryTime):
					q.NextRetryTime = r.NextAttempt
				}
			}
		}
	}
	// A queue only waits (Retry) when nothing in it is due before its
	// next retry; a due message makes it Ready, a delivery Active.
	var out []QueueInfo
	s.mu.Lock()
	for k, q := range byKey {
		switch {
		case s.suspended.has(k.nextHop):
			q.Status = StatusSuspended
		case s.active[k] > 0:
			q.Status = StatusActive
		case k == unreachableKey:
			// Unreachable waits for a configuration change, not for a
			// retry time: Exchange shows it Ready.
			q.Status, q.NextRetryTime = StatusReady, time.Time{}
		case q.LastError != "" && !q.NextRetryTime.IsZero() && !due[k]:
			q.Status = StatusRetry
		default:
			q.Status = StatusReady
		}
		out = append(out, *q)
	}
	s.mu.Unlock()
	if want != "" && len(out) == 0 {
		if strings.EqualFold(want, unreachableQueue) || s.suspended.has(want) {
			// An empty queue that an admin may still name.
			st := StatusReady
			if s.suspended.has(want) {
				st = StatusSuspended
			}
			dt := SmartHostConnectorDelivery
			if strings.EqualFold(want, unreachableQueue) {
				want, dt = unreachableQueue, UnreachableDelivery
			}
			return []QueueInfo{{Identity: s.opts.ServerName + `\` + want, DeliveryType: dt, NextHopDomain: want, Status: st}}, nil
		}
		return nil, fmt.Errorf("%s: %w", identity, ErrNoSuchQueue)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Identity != out[j].Identity {
			return out[i].Identity < out[j].Identity
		}
		return out[i].NextHopConnector < out[j].NextHopConnector
	})
	return out, nil
}

// parseQueueIdentity accepts <server>\<NextHopDomain> or the next hop
// alone; "" selects every queue.
func (s *Server) parseQueueIdentity(id string) (string, error) {
	id = strings.TrimSpace(id)
	if id == "" {
		return "", nil
	}
	if server, hop, ok := strings.Cut(id, `\`); ok {
		if !strings.EqualFold(server, s.opts.ServerName) {
			return "", fmt.Errorf("%s: %w (this is %s)", id, ErrOtherServer, s.opts.ServerName)
		}
		id = hop
	}
	if id == "" {
		return "", fmt.Errorf("%q: %w", id, ErrNoSuchQueue)
	}
	return id, nil
}

// parseMessageIdentity accepts <server>\<queue>\<id>, <queue>\<id> or the
// id alone; queue is "" when not given.
func (s *Server) parseMessageIdentity(id string) (queueName, qid string, err error) {
	parts := strings.Split(strings.TrimSpace(id), `\`)
	switch len(parts) {
	case 1:
		return "", parts[0], nil
	case 2:
		return parts[0], parts[1], nil
	case 3:
		if !strings.EqualFold(parts[0], s.opts.ServerName) {
			return "", "", fmt.Errorf("%s: %w (this is %s)", id, ErrOtherServer, s.opts.ServerName)
		}
		return parts[1], parts[2], nil
	}
	return "", "", fmt.Errorf("%s: %w", id, ErrNoSuchMessage)
}

// Messages lists the messages waiting, one entry per message and queue;
// queueIdentity, when not empty, keeps one queue's.
func (s *Server) Messages(queueIdentity string) ([]MessageInfo, error) {
	want, err := s.parseQueueIdentity(queueIdentity)
	if err != nil {
		return nil, err
	}
	cfg := s.config.Load()
	now := s.opts.Now()
	rt := *s.retry.Load()
	var out []MessageInfo
	for _, m := range s.queue.Messages() {
		for _, p := range place(cfg, m) {
			if want != "" && !strings.EqualFold(p.key.nextHop, want) {
				continue
			}
			out = append(out, s.messageInfo(m, p, now, rt))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].QueueID != out[j].QueueID {
			return out[i].QueueID < out[j].QueueID
		}
		return out[i].Queue < out[j].Queue
	})
	return out, nil
}

func (s *Server) messageInfo(m *queue.Message, p placement, now time.Time, rt Retry) MessageInfo {
	mi := MessageInfo{
		Identity:     s.queueIdentity(p.key) + `\` + m.ID,
		QueueID:      m.ID,
		FromAddress:  m.From,
		Queue:        s.queueIdentity(p.key),
		Subject:      m.Meta[metaSubject],
		Size:         m.Size,
		DateReceived: m.Received,
	}
	if mi.FromAddress == "" {
		mi.FromAddress = "<>"
	}
	if rt.MessageExpirationTimeout > 0 {
		mi.ExpirationTime = m.Received.Add(rt.MessageExpirationTimeout)
	}
	waiting := false
	var last time.Time
	for _, i := range p.rcpts {
		r := m.Recipients[i]
		st := StatusReady
		// Unreachable waits for a configuration change, not a retry.
		if r.NextAttempt.After(now) && r.LastError != "" && p.key != unreachableKey {
			st, waiting = StatusRetry, true
		}
		mi.Recipients = append(mi.Recipients, RecipientInfo{Address: r.Address, Status: st, LastError: r.LastError})
		mi.RetryCount = max(mi.RetryCount, r.Attempts)
		if r.LastError != "" && !r.LastAttempt.Before(last) {
			mi.LastError, last = r.LastError, r.LastAttempt
		}
	}
	s.mu.Lock()
	busy := s.inFlight[m.ID]
	s.mu.Unlock()
	switch {
	case m.Suspended:
		mi.Status = StatusSuspended
	case busy:
		mi.Status = StatusActive
	case waiting:
		mi.Status = StatusRetry
	default:
		mi.Status = StatusReady
	}
	return mi
}

// RetryQueue makes every message waiting in the queue due now
// (Retry-Queue). The Unreachable queue can only be resubmitted: its
// messages are routed again, which happens on every attempt anyway.
func (s *Server) RetryQueue(ctx context.Context, identity string, resubmit bool) (int, error) {
	want, err := s.parseQueueIdentity(identity)
	if err != nil {
		return 0, err
	}
	if want == "" {
		return 0, fmt.Errorf("a queue identity is needed: %w", ErrNoSuchQueue)
	}
	if strings.EqualFold(want, unreachableQueue) && !resubmit {
		return 0, fmt.Errorf("the Unreachable queue can only be resubmitted (use --resubmit): %w", ErrInvalidOp)
	}
	if _, err := s.Queues(want); err != nil {
		return 0, err
	}
	if !resubmit {
		n := s.retryNow(want)
		s.log.Info("queue retried by an administrator", "queue", want, "resubmit", false, "messages", n)
		return n, nil
	}
	n, err := s.forQueue(ctx, want, func(m *queue.Message, rcpts []int) bool {
		now := s.opts.Now()
		for _, i := range rcpts {
			if r := &m.Recipients[i]; r.NextAttempt.After(now) {
				r.NextAttempt = now
			}
		}
		// Resubmitted messages are routed afresh at their next look,
		// which the tracking log records as Exchange does.
		var rs []string
		for _, i := range rcpts {
			rs = append(rs, m.Recipients[i].Address)
		}
		s.track(m, tracking.Event{EventID: "RESUBMIT", Source: "ADMIN", Recipients: rs})
		return true
	})
	s.log.Info("queue retried by an administrator", "queue", want, "resubmit", resubmit, "messages", n)
	s.poke()
	return n, err
}

// retryNow makes the waiting recipients of every message in the queue due
// at once. The request is kept in memory only, not written to each
// message: Retry-Queue is a nudge, and after a restart a message keeps its
// stored schedule. That makes it instant on a queue of any size.
func (s *Server) retryNow(hop string) int {
	now := s.opts.Now()
	n := 0
	for _, m := range s.queue.Messages() {
		for _, p := range place(s.config.Load(), m) {
			if !strings.EqualFold(p.key.nextHop, hop) {
				continue
			}
			var waiting []int
			for _, i := range p.rcpts {
				if m.Recipients[i].NextAttempt.After(now) {
					waiting = append(waiting, i)
				}
			}
			if len(waiting) == 0 {
				continue
			}
			s.requestRetry(m.ID, waiting, now)
			n++
		}
	}
	s.poke()
	return n
}

// requestRetry asks for the recipients idx of message id to be tried at
// now, in memory (see retryNow).
func (s *Server) requestRetry(id string, idx []int, now time.Time) {
	s.mu.Lock()
	s.retryRequested[id] = append(s.retryRequested[id], idx...)
	s.mu.Unlock()
	s.due.set(id, now)
}

// takeRetryRequest makes the recipients an administrator asked to retry
// due now in m, the worker's copy.
func (s *Server) takeRetryRequest(m *queue.Message, now time.Time) {
	s.mu.Lock()
	idx := s.retryRequested[m.ID]
	delete(s.retryRequested, m.ID)
	s.mu.Unlock()
	for _, i := range idx {
		if i < len(m.Recipients) && m.Recipients[i].NextAttempt.After(now) {
			m.Recipients[i].NextAttempt = now
		}
	}
}

// SuspendQueue stops deliveries through the queue until ResumeQueue; it
// holds across restarts.
func (s *Server) SuspendQueue(identity string) error {
	want, err := s.parseQueueIdentity(identity)
	if err != nil {
		return err
	}
	if want == "" {
		return fmt.Errorf("a queue identity is needed: %w", ErrNoSuchQueue)
	}
	if strings.EqualFold(want, unreachableQueue) {
		return fmt.Errorf("the Unreachable queue cannot be suspended: %w", ErrInvalidOp)
	}
	qs, err := s.Queues(want)
	if err != nil {
		return err
	}
	if err := s.suspended.add(qs[0].NextHopDomain); err != nil {
		return err
	}
	s.log.Info("queue suspended by an administrator", "queue", qs[0].NextHopDomain)
	return nil
}

// ResumeQueue lets a suspended queue deliver again, at once.
func (s *Server) ResumeQueue(ctx context.Context, identity string) error {
	want, err := s.parseQueueIdentity(identity)
	if err != nil {
		return err
	}
	if !s.suspended.has(want) {
		if _, err := s.Queues(want); err != nil {
			return err
		}
		return nil // not suspended: nothing to do
	}
	name := s.suspended.canonical(want)
	if err := s.suspended.remove(name); err != nil {
		return err
	}
	_, err = s.forQueue(ctx, name, func(m *queue.Message, rcpts []int) bool {
		now := s.opts.Now()
		for _, i := range rcpts {
			m.Recipients[i].NextAttempt = now
		}
		return true
	})
	s.log.Info("queue resumed by an administrator", "queue", name)
	s.poke()
	return err
}

// forQueue applies f to every message with recipients in the queue
// named hop, each under its claim, and records it when f reports a
// change. Messages being delivered are waited for, each up to claimWait.
// Messages are done several at a time, so that their durable updates share
// directory syncs: one at a time, a 50,000-message queue took a minute. A
// message that cannot be changed does not stop the others; the first such
// error is returned with the count of those changed.
func (s *Server) forQueue(ctx context.Context, hop string, f func(m *queue.Message, rcpts []int) bool) (int, error) {
	var (
		n        atomic.Int64
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
		slots    = make(chan struct{}, adminParallelism)
	)
	for _, m := range s.queue.Messages() {
		if !slices.ContainsFunc(place(s.config.Load(), m), func(p placement) bool { return strings.EqualFold(p.key.nextHop, hop) }) {
			continue
		}
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return int(n.Load()), ctx.Err()
		}
		wg.Add(1)
		go func(id string) {
			defer wg.Done()
			defer func() { <-slots }()
			err := s.withMessage(ctx, id, func(cur *queue.Message) error {
				// Placed again under the claim: the message may have
				// moved on while we waited.
				for _, p := range place(s.config.Load(), cur) {
					if strings.EqualFold(p.key.nextHop, hop) && f(cur, p.rcpts) {
						n.Add(1)
						return s.queue.Update(cur)
					}
				}
				return nil
			})
			if err != nil && !errors.Is(err, ErrNoSuchMessage) {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}(m.ID)
	}
	wg.Wait()
	return int(n.Load()), firstErr
}

// adminParallelism is how many messages an admin operation changes at
// once; claimWait how long it waits for one that is being delivered.
const (
	adminParallelism = 32
	claimWait        = 30 * time.Second
)

// withMessage runs f on the message id while holding its claim, waiting
// up to claimWait (or ctx's end) for a delivery in progress to end.
func (s *Server) withMessage(ctx context.Context, id string, f func(m *queue.Message) error) error {
	ctx, cancel := context.WithTimeout(ctx, claimWait)
	defer cancel()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !s.claim(id) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: %w", id, ErrBusy)
		case <-t.C:
		}
	}
	err := func() error {
		defer s.release(id)
		m, err := s.queue.Get(id)
		if errors.Is(err, queue.ErrNotFound) {
			return fmt.Errorf("%s: %w", id, ErrNoSuchMessage)
		}
		if err != nil {
			return err
		}
		return f(m)
	}()
	// After the release: the scheduler skips claimed messages.
	s.reschedule(id)
	return err
}

// SuspendMessage holds a message (all its queues) until ResumeMessage.
func (s *Server) SuspendMessage(ctx context.Context, identity string) error {
	return s.setSuspended(ctx, identity, true)
}

// ResumeMessage releases a suspended message; its waiting recipients are
// tried at once.
func (s *Server) ResumeMessage(ctx context.Context, identity string) error {
	return s.setSuspended(ctx, identity, false)
}

func (s *Server) setSuspended(ctx context.Context, identity string, on bool) error {
	_, id, err := s.parseMessageIdentity(identity)
	if err != nil {
		return err
	}
	err = s.withMessage(ctx, id, func(m *queue.Message) error {
		if m.Suspended == on {
			return nil
		}
		m.Suspended = on
		if !on {
			now := s.opts.Now()
			for i := range m.Recipients {
				if m.Recipients[i].Status == queue.Pending {
					m.Recipients[i].NextAttempt = now
				}
			}
		}
		return s.queue.Update(m)
	})
	if err == nil {
		s.log.Info("message suspension changed by an administrator", "queue_id", id, "suspended", on)
		s.poke()
	}
	return err
}

// RemoveMessage removes a message's waiting recipients (those in the
// named queue when the identity names one, else all of them), with an
// NDR (550 4.3.2 QUEUE.Admin) when withNDR; it returns how many
// recipients were removed.
func (s *Server) RemoveMessage(ctx context.Context, identity string, withNDR bool) (int, error) {
	queueName, id, err := s.parseMessageIdentity(identity)
	if err != nil {
		return 0, err
	}
	n := 0
	err = s.withMessage(ctx, id, func(m *queue.Message) error {
		var idx []int
		for _, p := range place(s.config.Load(), m) {
			if queueName == "" || strings.EqualFold(p.key.nextHop, queueName) {
				idx = append(idx, p.rcpts...)
			}
		}
		if len(idx) == 0 {
			return fmt.Errorf("%s: %w", identity, ErrNoSuchMessage)
		}
		slices.Sort(idx)
		for _, i := range idx {
			r := &m.Recipients[i]
			r.Status, r.LastError, r.Host, r.Notified = queue.Failed, adminRemoval, "", !withNDR
		}
		n = len(idx)
		var removed outcome
		for _, i := range idx {
			s.metrics.recipientFailed("")
			removed.add(m.Recipients[i].Address, adminRemoval)
		}
		s.track(m, tracking.Event{EventID: "FAIL", Source: "ADMIN", Recipients: removed.recipients, RecipientStatus: removed.statuses})
		s.log.Info("message removed by an administrator", "queue_id", m.ID, "rcpts", n, "with_ndr", withNDR)
		_ = s.settle(m, nil) // logged; the queue keeps the state it had
		return nil
	})
	return n, err
}
