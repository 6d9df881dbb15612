package transport

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/queue"
)

func TestDueListOrderAndReplacement(t *testing.T) {
	d := newDueList()
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	d.set("c", t0.Add(3*time.Second))
	d.set("a", t0.Add(1*time.Second))
	d.set("b", t0.Add(2*time.Second))
	d.set("a", t0.Add(5*time.Second)) // moved later: its old entry is stale
	d.set("gone", t0)
	d.remove("gone")
	if at, ok := d.next(); !ok || !at.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("next = %v, %v; want b's time", at, ok)
	}
	if got := d.popDue(t0.Add(3*time.Second), 10); !slices.Equal(got, []string{"b", "c"}) {
		t.Errorf("due at +3s: %v, want [b c]", got)
	}
	if got := d.popDue(t0.Add(4*time.Second), 10); len(got) != 0 {
		t.Errorf("due at +4s: %v, want none (a moved to +5s)", got)
	}
	if got := d.popDue(t0.Add(time.Hour), 10); !slices.Equal(got, []string{"a"}) {
		t.Errorf("due at +1h: %v, want [a]", got)
	}
	if d.len() != 0 {
		t.Errorf("%d left", d.len())
	}
}

func TestDueListPopLimit(t *testing.T) {
	d := newDueList()
	t0 := time.Now()
	for i := range 10 {
		d.set(fmt.Sprint(i), t0)
	}
	if got := d.popDue(t0, 4); len(got) != 4 {
		t.Errorf("popped %d, want 4", len(got))
	}
	if d.len() != 6 {
		t.Errorf("%d left, want 6", d.len())
	}
}

// Rescheduling the same message over and over keeps the heap bounded.
func TestDueListStaysCompact(t *testing.T) {
	d := newDueList()
	t0 := time.Now()
	for i := range 100000 {
		d.set(fmt.Sprint(i%10), t0.Add(time.Duration(i)))
	}
	if n := len(d.h); n > 128 {
		t.Errorf("heap holds %d entries for 10 messages", n)
	}
}

func TestNextWork(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	rt := Retry{MessageExpirationTimeout: 48 * time.Hour, DelayNotificationTimeout: 4 * time.Hour}
	pending := func(next time.Time, attempts int) queue.Recipient {
		return queue.Recipient{Address: "a@b.test", Status: queue.Pending, NextAttempt: next, Attempts: attempts}
	}
	tests := []struct {
		name string
		m    queue.Message
		want time.Time
		ok   bool
	}{
		{"new message", queue.Message{Received: t0, Recipients: []queue.Recipient{pending(time.Time{}, 0)}}, time.Time{}, true},
		{"retry in 5m", queue.Message{Received: t0, Recipients: []queue.Recipient{pending(t0.Add(5*time.Minute), 1)}}, t0.Add(5 * time.Minute), true},
		{"delay notice before the retry", queue.Message{Received: t0, Recipients: []queue.Recipient{pending(t0.Add(5*time.Hour), 3)}}, t0.Add(4 * time.Hour), true},
		{"delay notice sent", queue.Message{Received: t0, DelayNotified: true, Recipients: []queue.Recipient{pending(t0.Add(50*time.Hour), 3)}}, t0.Add(48 * time.Hour), true},
		{"suspended", queue.Message{Received: t0, Suspended: true, Recipients: []queue.Recipient{pending(t0, 1)}}, time.Time{}, false},
		{"delivered", queue.Message{Received: t0, Recipients: []queue.Recipient{{Status: queue.Delivered}}}, time.Time{}, false},
		{"failure to notify", queue.Message{Received: t0, Recipients: []queue.Recipient{{Status: queue.Failed}}}, time.Time{}, true},
	}
	for _, tt := range tests {
		got, ok := nextWork(&tt.m, rt)
		if ok != tt.ok || !got.Equal(tt.want) {
			t.Errorf("%s: %v, %v; want %v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
