package transport

import (
	"container/heap"
	"sync"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/queue"
)

// dueList orders the queued messages by when each next needs work — an
// attempt, an expiry, a delay notice or a notification still to queue —
// so that the scheduler looks only at messages that are due instead of
// scanning the whole queue at every wake-up. A message is in the list at
// most once as far as the caller can tell: setting it again replaces its
// time (the heap keeps the old entry until it surfaces, then skips it).
type dueList struct {
	mu sync.Mutex
	h  dueHeap
	at map[string]time.Time // the time each listed message is due
}

type dueEntry struct {
	at time.Time
	id string
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	*h = old[:len(old)-1]
	return e
}

func newDueList() *dueList { return &dueList{at: map[string]time.Time{}} }

// set makes id due at t, replacing any earlier setting.
func (d *dueList) set(id string, t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if cur, ok := d.at[id]; ok && cur.Equal(t) {
		return
	}
	d.at[id] = t
	heap.Push(&d.h, dueEntry{t, id})
	d.compact()
}

// remove takes id off the list.
func (d *dueList) remove(id string) {
	d.mu.Lock()
	delete(d.at, id)
	d.compact()
	d.mu.Unlock()
}

// compact rebuilds the heap when stale entries outnumber live ones, so
// that rescheduling the same messages again and again cannot grow it
// without bound.
func (d *dueList) compact() {
	if len(d.h) < 64 || len(d.h) < 2*len(d.at) {
		return
	}
	h := make(dueHeap, 0, len(d.at))
	for id, t := range d.at {
		h = append(h, dueEntry{t, id})
	}
	heap.Init(&h)
	d.h = h
}

// popDue removes and returns up to limit messages due at or before now,
// earliest first.
func (d *dueList) popDue(now time.Time, limit int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ids []string
	for len(d.h) > 0 && len(ids) < limit && !d.h[0].at.After(now) {
		e := heap.Pop(&d.h).(dueEntry)
		if t, ok := d.at[e.id]; !ok || !t.Equal(e.at) {
			continue // rescheduled or removed since
		}
		delete(d.at, e.id)
		ids = append(ids, e.id)
	}
	return ids
}

// next is the earliest time anything is due.
func (d *dueList) next() (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for len(d.h) > 0 {
		e := d.h[0]
		if t, ok := d.at[e.id]; ok && t.Equal(e.at) {
			return e.at, true
		}
		heap.Pop(&d.h)
	}
	return time.Time{}, false
}

// len is the number of listed messages.
func (d *dueList) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.at)
}

// nextWork is when m next needs the scheduler, and false when it needs
// nothing until something else changes it (delivered, suspended, or only
// waiting for notifications that are queued).
func nextWork(m *queue.Message, rt Retry) (time.Time, bool) {
	if hasUnnotified(m) {
		return time.Time{}, true
	}
	if m.Suspended || !hasPending(m) {
		return time.Time{}, false
	}
	var at time.Time
	found, attempted := false, false
	earliest := func(t time.Time) {
		if !found || t.Before(at) {
			at, found = t, true
		}
	}
	for _, r := range m.Recipients {
		if r.Status == queue.Pending {
			earliest(r.NextAttempt)
			attempted = attempted || r.Attempts > 0
		}
	}
	if rt.MessageExpirationTimeout > 0 {
		earliest(m.Received.Add(rt.MessageExpirationTimeout))
	}
	if attempted && !m.DelayNotified && rt.DelayNotificationTimeout > 0 {
		earliest(m.Received.Add(rt.DelayNotificationTimeout))
	}
	return at, found
}

// schedule lists m for when it next needs work. Every path that changes a
// message calls it after releasing its claim, so a message the scheduler
// skipped because it was claimed is never forgotten.
func (s *Server) schedule(m *queue.Message) {
	if t, ok := nextWork(m, *s.retry.Load()); ok {
		s.due.set(m.ID, t)
		s.poke()
		return
	}
	s.due.remove(m.ID)
}

// reschedule is schedule for a message known only by id; a message that
// left the queue leaves the list.
func (s *Server) reschedule(id string) {
	m, err := s.queue.Get(id)
	if err != nil {
		s.due.remove(id)
		return
	}
	s.schedule(m)
}

// scheduleAll lists every queued message: at start, and when the retry
// schedule changes.
func (s *Server) scheduleAll() {
	for _, m := range s.queue.Messages() {
		s.schedule(m)
	}
}
