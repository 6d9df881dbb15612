package transport

import (
	"context"
	"io"
	"sync"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/routing"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// scheduleLoop hands every message that has work to a worker: recipients
// due for an attempt, an expiry or a delay notice that fell due, or a
// failure whose notification is still to be queued. The due list says
// which messages those are; the loop sleeps until the earliest of them,
// a wake-up (a new message, a reload, an admin command) or a second at
// most.
func (s *Server) scheduleLoop(ctx, runCtx context.Context) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		s.dispatch(runCtx)
		wait := time.Second
		if at, ok := s.due.next(); ok {
			wait = min(wait, max(at.Sub(s.opts.Now()), 0))
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-t.C:
		}
	}
}

// notifyRetryDelay is how long a message whose notification could not be
// queued (the queue's disk failed) waits before the next try.
const notifyRetryDelay = 10 * time.Second

func (s *Server) dispatch(ctx context.Context) {
	for {
		ids := s.due.popDue(s.opts.Now(), 256)
		if len(ids) == 0 {
			return
		}
		for i, id := range ids {
			// A claimed message is being changed; its holder lists it
			// again when done.
			if !s.claim(id) {
				continue
			}
			select {
			case s.outbound <- struct{}{}:
			case <-ctx.Done():
				s.release(id)
				for _, rest := range ids[i:] {
					s.reschedule(rest)
				}
				return
			}
			s.workers.Add(1)
			go func() {
				defer s.workers.Done()
				defer func() { <-s.outbound }()
				m, stored := s.process(ctx, id)
				s.release(id)
				switch {
				case m != nil && hasUnnotified(m):
					s.due.set(id, s.opts.Now().Add(notifyRetryDelay))
				case !stored:
					// The queue kept the state from before this
					// attempt, whose next attempt is now: go by the
					// state the attempt reached, or a full disk would
					// retry the message in a loop.
					s.schedule(m)
				default:
					s.reschedule(id)
				}
			}()
		}
	}
}

// claim marks a message as taken by one worker or admin operation, so
// that no two change it at once; false if it is taken already.
func (s *Server) claim(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inFlight[id] {
		return false
	}
	s.inFlight[id] = true
	return true
}

func (s *Server) release(id string) {
	s.mu.Lock()
	delete(s.inFlight, id)
	s.mu.Unlock()
}

func needsWork(m *queue.Message, now time.Time, rt Retry) bool {
	if hasUnnotified(m) {
		return true
	}
	if m.Suspended || !hasPending(m) {
		return false
	}
	return expired(m, now, rt) || delayNoticeDue(m, now, rt) || hasDue(m, now)
}

func hasPending(m *queue.Message) bool {
	for _, r := range m.Recipients {
		if r.Status == queue.Pending {
			return true
		}
	}
	return false
}

func hasDue(m *queue.Message, now time.Time) bool {
	for _, r := range m.Recipients {
		if r.Status == queue.Pending && !r.NextAttempt.After(now) {
			return true
		}
	}
	return false
}

// hasUnnotified reports a recipient that failed or expired but whose
// notification is not queued yet (the last try failed, or the process
// stopped in between).
func hasUnnotified(m *queue.Message) bool {
	for _, r := range m.Recipients {
		if (r.Status == queue.Failed || r.Status == queue.Expired) && !r.Notified {
			return true
		}
	}
	return false
}

func expired(m *queue.Message, now time.Time, rt Retry) bool {
	return rt.MessageExpirationTimeout > 0 && now.Sub(m.Received) >= rt.MessageExpirationTimeout
}

// delayNoticeDue: the message has waited DelayNotificationTimeout, at
// least one recipient has been tried and is still waiting, and the sender
// has not been told yet.
func delayNoticeDue(m *queue.Message, now time.Time, rt Retry) bool {
	if m.DelayNotified || rt.DelayNotificationTimeout <= 0 || now.Sub(m.Received) < rt.DelayNotificationTimeout {
		return false
	}
	for _, r := range m.Recipients {
		if r.Status == queue.Pending && r.Attempts > 0 {
			return true
		}
	}
	return false
}

// process does one message's due work and records the outcome; it
// returns the message as it left it (nil if it is gone), and whether the
// queue took that state (false: its disk refused it).
func (s *Server) process(ctx context.Context, id string) (*queue.Message, bool) {
	m, err := s.queue.Get(id)
	if err != nil {
		s.mu.Lock()
		delete(s.retryRequested, id) // removed meanwhile
		s.mu.Unlock()
		return nil, true
	}
	now := s.opts.Now()
	rt := *s.retry.Load()
	s.takeRetryRequest(m, now)
	if !needsWork(m, now, rt) {
		return m, true // listed early, or changed since it was listed
	}
	var relayed []int
	if !m.Suspended && hasPending(m) {
		switch {
		case expired(m, now, rt):
			s.expire(m)
		default:
			if delayNoticeDue(m, now, rt) {
				s.delayNotice(m, now, rt)
			}
			if hasDue(m, now) {
				relayed = s.attempt(ctx, m, now)
			}
		}
	}
	return m, s.settle(m, relayed) == nil
}

// expire ends every pending recipient with Exchange's QUEUE.Expired NDR,
// worded for the queue it waited in.
func (s *Server) expire(m *queue.Message) {
	var expiredOnes outcome
	defer func() {
		if len(expiredOnes.recipients) > 0 {
			s.track(m, tracking.Event{EventID: "EXPIRE", Source: "QUEUE", Recipients: expiredOnes.recipients, RecipientStatus: expiredOnes.statuses})
		}
	}()
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status != queue.Pending {
			continue
		}
		reply := "550 4.4.7 QUEUE.Expired; message expired"
		switch {
		case r.Queue == unreachableQueue:
			reply = unreachableExpiry
		case r.LastError != "":
			reply += ". Last error: " + r.LastError
		}
		r.Status, r.LastError = queue.Expired, reply
		s.metrics.recipientFailed("")
		expiredOnes.add(r.Address, reply)
		s.log.Warn("message expired", "queue_id", m.ID, "rcpt", r.Address, "from", m.From, "reply", reply)
	}
}

// attempt routes the due recipients of m and delivers each next hop's
// group in one transaction, changing m's recipients in place. It returns
// the recipients delivered to a next hop that takes no DSN parameters,
// whose senders asked to hear of success (they get a "relayed" notice).
func (s *Server) attempt(ctx context.Context, m *queue.Message, now time.Time) (relayed []int) {
	cfg := s.config.Load()
	var due []string
	byAddr := map[string][]int{}
	for i := range m.Recipients {
		r := &m.Recipients[i]
		if r.Status == queue.Pending && !r.NextAttempt.After(now) {
			due = append(due, r.Address)
			byAddr[r.Address] = append(byAddr[r.Address], i)
		}
	}
	// take returns the next recipient index for addr: duplicates of one
	// address are separate recipients, each answered once.
	take := func(addr string) *queue.Recipient {
		ix := byAddr[addr]
		if len(ix) == 0 {
			return nil
		}
		byAddr[addr] = ix[1:]
		return &m.Recipients[ix[0]]
	}
	indexOf := func(r *queue.Recipient) int {
		for i := range m.Recipients {
			if &m.Recipients[i] == r {
				return i
			}
		}
		return -1
	}

	groups, unroutable := cfg.index.Bifurcate(due, m.Size)
	for _, u := range unroutable {
		r := take(u.Recipient)
		r.LastAttempt, r.Host = now, ""
		if u.Route.Outcome == routing.Rejected {
			r.Attempts++
			s.fail(m, r, u.Route.Reply())
			s.metrics.recipientFailed("")
			s.track(m, tracking.Event{EventID: "FAIL", Source: "ROUTING", Recipients: []string{r.Address}, RecipientStatus: []string{u.Route.Reply()}})
			continue
		}
		s.metrics.recipientDeferred("")
		// Unreachable: wait for a configuration that routes it; a reload
		// makes it due at once. The tracking log says so once, when the
		// recipient arrives there, not at every look.
		if r.Queue != unreachableQueue {
			s.track(m, tracking.Event{EventID: "DEFER", Source: "ROUTING", Recipients: []string{r.Address}, RecipientStatus: []string{routing.NoMatchingConnector}})
		}
		r.Queue = unreachableQueue
		s.retryLater(r, routing.NoMatchingConnector, now, false)
		s.log.Info("recipient unreachable", "queue_id", m.ID, "rcpt", r.Address, "reason", routing.NoMatchingConnector)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	rt := *s.retry.Load()
	for _, g := range groups {
		key := cfg.hopOf(g)
		rcpts := make([]*queue.Recipient, len(g.Recipients))
		for i, a := range g.Recipients {
			rcpts[i] = take(a)
			rcpts[i].Queue = key.nextHop
		}
		if s.suspended.has(key.nextHop) {
			// The queue is suspended: look again after the message
			// retry interval, or at once when it is resumed.
			for _, r := range rcpts {
				r.NextAttempt = now.Add(rt.MessageRetryInterval)
			}
			continue
		}
		conn := *g.Connector
		hop := delivery.Hop{Connector: conn, ACL: cfg.snap.ACLs[conn.Guid], Domain: g.Domain, Fingerprint: cfg.fingerprints[conn.Guid]}
		if reason := cfg.organizationHop(&hop, g, s.spread.Add(1)); reason != "" {
			// No server of the organization can take it now: wait, as
			// for any next hop that cannot be reached.
			for _, r := range rcpts {
				s.retryLater(r, reason, now, true)
				s.metrics.recipientDeferred(conn.Name)
			}
			s.track(m, tracking.Event{EventID: "DEFER", Source: "ROUTING", ConnectorID: conn.Name, Recipients: g.Recipients, RecipientStatus: repeat(reason, len(g.Recipients))})
			s.log.Info("delivery deferred", "queue_id", m.ID, "connector", conn.Name, "reply", reason)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			release := s.acquireConnector(ctx, conn.Guid)
			if release == nil {
				return
			}
			defer release()
			s.setActive(key, +1)
			defer s.setActive(key, -1)
			results := s.deliverer.Deliver(ctx, hop, s.outgoing(m, g.Recipients, rcpts))
			s.recordResults(m, &conn, rcpts, results, &mu, func(r *queue.Recipient) {
				relayed = append(relayed, indexOf(r))
			})
		}()
	}
	wg.Wait()
	return relayed
}

// outgoing is what the deliverer needs of m for one group.
func (s *Server) outgoing(m *queue.Message, addrs []string, rcpts []*queue.Recipient) delivery.Message {
	msg := delivery.Message{
		ID: m.ID, From: m.From, Recipients: addrs, Size: m.Size,
		Return: m.Return, EnvelopeID: m.EnvelopeID,
		Open: func() (io.ReadCloser, error) { return s.queue.Body(m.ID) },
	}
	for i, r := range rcpts {
		if len(r.Notify) > 0 || r.ORCPT != "" {
			if msg.DSN == nil {
				msg.DSN = make([]delivery.RecipientDSN, len(rcpts))
			}
			msg.DSN[i] = delivery.RecipientDSN{Notify: r.Notify, ORCPT: r.ORCPT}
		}
	}
	return msg
}

// recordResults applies one group's results to its recipients. onRelayed
// is called for a recipient that wants a success notice the next hop will
// not send.
func (s *Server) recordResults(m *queue.Message, conn *connector.SendConnector, rcpts []*queue.Recipient, results []delivery.Result, mu *sync.Mutex, onRelayed func(*queue.Recipient)) {
	mu.Lock()
	defer mu.Unlock()
	now := s.opts.Now()
	var sent, deferred, failed outcome
	host := ""
	defer func() {
		for _, ev := range []struct {
			id string
			o  outcome
		}{{"SEND", sent}, {"DEFER", deferred}, {"FAIL", failed}} {
			if len(ev.o.recipients) > 0 {
				s.track(m, tracking.Event{EventID: ev.id, Source: "SMTP", ConnectorID: conn.Name, ServerHostname: host,
					Recipients: ev.o.recipients, RecipientStatus: ev.o.statuses})
			}
		}
	}()
	// Results name recipients by address, in no promised order; a
	// duplicated address is answered once per copy.
	byAddr := map[string][]*queue.Recipient{}
	for _, r := range rcpts {
		byAddr[r.Address] = append(byAddr[r.Address], r)
	}
	for _, res := range results {
		waiting := byAddr[res.Recipient]
		if len(waiting) == 0 {
			continue
		}
		r := waiting[0]
		byAddr[res.Recipient] = waiting[1:]
		r.LastAttempt, r.Host = now, res.Host
		if res.Host != "" {
			host = res.Host
		}
		switch res.Status {
		case delivery.Delivered:
			sent.add(r.Address, res.Reply)
			r.Status, r.LastError = queue.Delivered, res.Reply
			r.Attempts++
			s.metrics.recipientDelivered(conn.Name, m.Received, now)
			s.log.Info("delivered", "queue_id", m.ID, "rcpt", r.Address, "connector", conn.Name, "host", res.Host, "reply", res.Reply)
			if !res.RemoteDSN && wantsSuccess(r.Notify) {
				onRelayed(r)
			}
		case delivery.Permanent:
			r.Attempts++
			s.fail(m, r, res.Reply)
			s.metrics.recipientFailed(conn.Name)
			failed.add(r.Address, res.Reply)
		default:
			deferred.add(r.Address, res.Reply)
			// No host in the result: none could be reached.
			s.retryLater(r, res.Reply, now, res.Host == "")
			s.metrics.recipientDeferred(conn.Name)
			s.log.Info("delivery deferred", "queue_id", m.ID, "rcpt", r.Address, "connector", conn.Name,
				"reply", res.Reply, "attempts", r.Attempts, "next_attempt", r.NextAttempt.Format(time.RFC3339))
		}
	}
}

// retryLater schedules the next attempt: TransientFailureRetryCount quick
// retries, then MessageRetryInterval, or OutboundConnectionFailureRetryInterval
// when the failure was that no next hop could be reached (Exchange's
// queue-level retry). Expiry is the scheduler's to decide.
func (s *Server) retryLater(r *queue.Recipient, reply string, now time.Time, unreachableHop bool) {
	rt := *s.retry.Load()
	r.Attempts++
	r.LastError = reply
	wait := rt.MessageRetryInterval
	if unreachableHop && rt.OutboundConnectionFailureRetryInterval > 0 {
		wait = rt.OutboundConnectionFailureRetryInterval
	}
	if r.Attempts <= rt.TransientFailureRetryCount && rt.TransientFailureRetryInterval > 0 {
		wait = rt.TransientFailureRetryInterval
	}
	r.NextAttempt = now.Add(wait)
}

// fail records a permanent failure; settle queues its NDR.
func (s *Server) fail(m *queue.Message, r *queue.Recipient, reply string) {
	r.Status, r.LastError, r.Notified = queue.Failed, reply, false
	s.log.Warn("recipient failed permanently", "queue_id", m.ID, "rcpt", r.Address, "from", m.From, "reply", reply)
}

// settle queues the notifications m's new state calls for, then records
// that state: a message whose recipients are all delivered, or failed and
// notified, leaves the queue. The notification is on disk before the
// original's state says so, so a crash in between can send a notice twice
// but never lose it.
func (s *Server) settle(m *queue.Message, relayed []int) error {
	s.notifyFailures(m)
	if len(relayed) > 0 {
		s.notifyRelayed(m, relayed)
	}
	var err error
	if m.Done() {
		err = s.queue.Remove(m.ID)
	} else {
		err = s.queue.Update(m)
	}
	if err != nil {
		s.log.Error("queue update failed; the message will be retried", "queue_id", m.ID, "err", err)
	}
	return err
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

func (s *Server) setActive(k hopKey, delta int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.active[k] += delta
	if s.active[k] <= 0 {
		delete(s.active, k)
	}
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}
