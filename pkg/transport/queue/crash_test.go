package queue

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A process doing many concurrent Puts is killed with SIGKILL, three
// times over on the same directory. Every id it printed (it prints right
// after Put returns) must be there after reopening, with its envelope and
// its whole body; nothing half-written may remain.
func TestKillDuringPutsLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	acked := make(map[string]uint64) // id → seed
	for round := range 3 {
		cmd, out, _ := startHelper(t, "put", dir)
		killAfter := 40 + rand.IntN(120)
		n := 0
		deadline := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		for out.Scan() {
			f := strings.Fields(out.Text())
			if len(f) != 3 || f[0] != "ok" {
				t.Fatalf("round %d: helper said %q", round, out.Text())
			}
			seed, err := strconv.ParseUint(f[2], 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			acked[f[1]] = seed
			if n++; n == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		deadline.Stop()
		err := cmd.Wait()
		var ee interface{ Sys() any }
		if !errors.As(err, &ee) || !ee.Sys().(syscall.WaitStatus).Signaled() {
			t.Fatalf("round %d: helper ended with %v, stderr: %s", round, err, cmd.Stderr)
		}
		if n < killAfter {
			t.Fatalf("round %d: helper acknowledged only %d Puts", round, n)
		}

		q := openTest(t, dir, Options{}, defaultHooks())
		for id, seed := range acked {
			checkSeeded(t, q, id, seed)
		}
		// Everything else stored is whole too: a Put that completed
		// but was not acknowledged, a possible duplicate.
		for _, m := range q.Messages() {
			if _, ok := acked[m.ID]; !ok {
				seed, err := strconv.ParseUint(m.Meta["seed"], 10, 64)
				if err != nil {
					t.Fatalf("unacknowledged message %s: %+v", m.ID, m)
				}
				checkSeeded(t, q, m.ID, seed)
			}
		}
		files := listDir(t, dir)
		if len(files) != q.Len()+1 {
			t.Errorf("round %d: %d files for %d messages: leftovers in %v", round, len(files), q.Len(), files)
		}
		t.Logf("round %d: %d acknowledged in all, %d stored", round, len(acked), q.Len())
		if err := q.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func checkSeeded(t *testing.T, q *Queue, id string, seed uint64) {
	t.Helper()
	m, err := q.Get(id)
	if err != nil {
		t.Errorf("acknowledged message %s (seed %d) lost: %v", id, seed, err)
		return
	}
	from, rcpts, meta := envelopeFor(seed)
	var got []string
	for _, r := range m.Recipients {
		got = append(got, r.Address)
	}
	if m.From != from || !reflect.DeepEqual(got, rcpts) || !reflect.DeepEqual(m.Meta, meta) {
		t.Errorf("message %s: envelope %+v, want from %q to %v meta %v", id, m, from, rcpts, meta)
	}
	f, err := q.Body(id)
	if err != nil {
		t.Errorf("message %s: %v", id, err)
		return
	}
	defer f.Close()
	if same, err := sameContent(f, bodyFor(seed)); err != nil || !same {
		t.Errorf("message %s (seed %d): body differs (%v)", id, seed, err)
	}
}

// A process rewriting one message's state as fast as it can is killed:
// the envelope found afterwards is whole and is the last acknowledged
// state or the one after it, never older and never torn.
func TestKillDuringUpdatesKeepsAWholeState(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	t.Parallel()
	for round := range 3 {
		dir := t.TempDir()
		cmd, out, _ := startHelper(t, "update", dir)
		if !out.Scan() {
			t.Fatalf("helper said nothing: %s", cmd.Stderr)
		}
		id, ok := strings.CutPrefix(out.Text(), "id ")
		if !ok {
			t.Fatalf("helper said %q", out.Text())
		}
		killAfter := 50 + rand.IntN(300)
		last := 0
		deadline := time.AfterFunc(10*time.Second, func() { _ = cmd.Process.Kill() })
		for out.Scan() {
			if _, err := fmt.Sscanf(out.Text(), "ok %d", &last); err != nil {
				t.Fatalf("helper said %q", out.Text())
			}
			if last == killAfter {
				if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
			}
		}
		deadline.Stop()
		_ = cmd.Wait()
		if last < killAfter {
			t.Fatalf("helper acknowledged only %d updates, stderr: %s", last, cmd.Stderr)
		}

		q := openTest(t, dir, Options{}, defaultHooks())
		m, err := q.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		got := m.Recipients[0].Attempts
		if got != last && got != last+1 {
			t.Errorf("round %d: %d updates acknowledged, stored state is update %d", round, last, got)
		}
		if m.Recipients[0].LastError != strings.Repeat("x", got%7000) || m.Recipients[1].Attempts != got {
			t.Errorf("round %d: state of update %d is not whole: %+v", round, got, m.Recipients)
		}
		if files := listDir(t, dir); len(files) != 3 {
			t.Errorf("round %d: leftovers: %v", round, files)
		}
	}
}

// The lock holds against another process, and dies with it.
func TestLockAcrossProcesses(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	t.Parallel()
	dir := t.TempDir()
	cmd, out, _ := startHelper(t, "hold", dir)
	if !out.Scan() || out.Text() != "locked" {
		t.Fatalf("helper did not take the lock: %q %s", out.Text(), cmd.Stderr)
	}
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) ||
		!strings.Contains(err.Error(), fmt.Sprintf("pid %d", cmd.Process.Pid)) {
		t.Fatalf("Open of a directory another process holds = %v", err)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	q, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after the holder was killed: %v", err)
	}
	q.Close()

	// And the other way round: a child cannot open what we hold.
	openTest(t, dir, Options{}, defaultHooks())
	cmd, out, _ = startHelper(t, "hold", dir)
	if out.Scan() {
		t.Fatalf("child opened a held queue: %q", out.Text())
	}
	err = cmd.Wait()
	if !strings.Contains(fmt.Sprint(cmd.Stderr), "held by another process") || err == nil {
		t.Errorf("child: %v, stderr %s", err, cmd.Stderr)
	}
}
