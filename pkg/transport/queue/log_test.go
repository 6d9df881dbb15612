package queue

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// abandon leaves q as a kill -9 would: nothing more is written, and only
// the lock goes, as the kernel drops it with the process.
func abandon(t *testing.T, q *Queue) {
	t.Helper()
	q.mu.Lock()
	q.closed = true // Close now says ErrClosed, which openTest accepts
	q.mu.Unlock()
	q.inflight.Wait()
	if err := unlockDir(q.lock); err != nil {
		t.Fatal(err)
	}
}

func segments(t *testing.T, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "log", "*.log"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func readBody(t *testing.T, q *Queue, id string) string {
	t.Helper()
	rc, err := q.Body(id)
	if err != nil {
		t.Fatalf("Body(%s): %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read body of %s: %v", id, err)
	}
	return string(b)
}

func put(t *testing.T, q *Queue, body string) *Message {
	t.Helper()
	m, err := q.Put("a@example.com", []string{"b@example.org"}, map[string]string{"k": "v"}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// Small messages go to the log, not to files of their own; after a crash
// the next Open moves the live ones to files and empties the log.
func TestLoggedMessagesSurviveACrash(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	bodies := []string{"Subject: one\r\n\r\nbinary \x00\xff\r\n", "", strings.Repeat("x", 100<<10)}
	var ms []*Message
	for _, b := range bodies {
		ms = append(ms, put(t, q, b))
	}
	gone := put(t, q, "removed before the crash")
	if err := q.Remove(gone.ID); err != nil {
		t.Fatal(err)
	}
	put(t, q, "a last Put, whose sync also covers the removal") // kept
	if got := listDir(t, dir); len(got) != 2 || got[0] != "lock" || !strings.HasPrefix(got[1], "log/") {
		t.Fatalf("directory holds %v, want the lock and one log segment", got)
	}
	for i, m := range ms {
		if got := readBody(t, q, m.ID); got != bodies[i] {
			t.Errorf("body of %s: %d bytes, want %d", m.ID, len(got), len(bodies[i]))
		}
	}
	abandon(t, q)

	q2 := openTest(t, dir, Options{}, defaultHooks())
	if n := q2.Len(); n != 4 {
		t.Errorf("after the crash %d messages, want 4", n)
	}
	if _, err := q2.Get(gone.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("removed message came back: %v", err)
	}
	for i, m := range ms {
		got, err := q2.Get(m.ID)
		if err != nil || got.Size != int64(len(bodies[i])) || got.Meta["k"] != "v" {
			t.Errorf("after reopen %+v, %v", got, err)
		}
		if b := readBody(t, q2, m.ID); b != bodies[i] {
			t.Errorf("body of %s after reopen: %d bytes, want %d", m.ID, len(b), len(bodies[i]))
		}
	}
	if s := segments(t, dir); len(s) != 0 {
		t.Errorf("segments left after Open: %v", s)
	}
	for _, m := range ms {
		if _, err := os.Stat(msgPath(dir, m.ID+".msg")); err != nil {
			t.Errorf("message not moved to its own file: %v", err)
		}
	}
}

// Concurrent Puts share log syncs: with a slow disk, many Puts wait for
// the same fdatasync.
func TestLogGroupCommit(t *testing.T) {
	t.Parallel()
	h := defaultHooks()
	var syncs atomic.Int64
	h.syncFile = func(f *os.File) error {
		if strings.HasSuffix(f.Name(), ".log") {
			syncs.Add(1)
			time.Sleep(20 * time.Millisecond)
		}
		return fdatasync(f)
	}
	q := openTest(t, t.TempDir(), Options{}, h)
	putConcurrently(t, q, 64)
	if n := syncs.Load(); n > 16 {
		t.Errorf("64 concurrent Puts took %d log syncs, want them shared (at most 16)", n)
	}
	if q.Len() != 64 {
		t.Errorf("%d messages, want 64", q.Len())
	}
}

// A message larger than LogMaxMessage gets its own file, streamed.
func TestLogMaxMessage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{LogMaxMessage: 1000}, defaultHooks())
	small := put(t, q, strings.Repeat("s", 1000))
	big := put(t, q, strings.Repeat("b", 1001))
	if _, err := os.Stat(msgPath(dir, small.ID+".msg")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("message of LogMaxMessage bytes has a file: %v", err)
	}
	if _, err := os.Stat(msgPath(dir, big.ID+".msg")); err != nil {
		t.Errorf("larger message has no file: %v", err)
	}
	if got := readBody(t, q, big.ID); got != strings.Repeat("b", 1001) {
		t.Errorf("big body %q", got)
	}
	if got := readBody(t, q, small.ID); got != strings.Repeat("s", 1000) {
		t.Errorf("small body %q", got)
	}
}

// editSegment rewrites the only log segment in dir with what edit makes
// of its bytes.
func editSegment(t *testing.T, dir string, edit func([]byte) []byte) {
	t.Helper()
	segs := segments(t, dir)
	if len(segs) != 1 {
		t.Fatalf("segments %v, want one", segs)
	}
	data, err := os.ReadFile(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(segs[0], edit(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A crash tears the last record; damage in the middle hides only the
// record it hits, and Open reports it.
func TestLogTornAndDamagedRecords(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	a := put(t, q, "first")
	b := put(t, q, "second, to be damaged")
	c := put(t, q, "third")
	d := put(t, q, "fourth, torn by the crash")
	abandon(t, q)
	editSegment(t, dir, func(data []byte) []byte {
		data[bytes.Index(data, []byte("second, to be damaged"))] ^= 0x20
		return data[:bytes.Index(data, []byte("fourth, torn"))+5] // d's record, torn
	})

	q2 := openTest(t, dir, Options{}, defaultHooks())
	for _, m := range []*Message{a, c} {
		if _, err := q2.Get(m.ID); err != nil {
			t.Errorf("intact record lost: %v", err)
		}
	}
	for _, m := range []*Message{b, d} {
		if _, err := q2.Get(m.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("damaged or torn record %s loaded: %v", m.ID, err)
		}
	}
	qs := q2.Quarantined()
	if len(qs) != 1 || !errors.Is(qs[0], errLogDamaged) {
		t.Errorf("Quarantined = %v, want one damaged segment (the torn tail is not damage)", qs)
	}
}

// A torn tail is not damage even when the torn message contains the
// log's magic, which the scan for intact records stops at.
func TestLogTornTailWithMagicIsNotDamage(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	a := put(t, q, "intact")
	torn := put(t, q, "sclg sclg sclg, then torn by the crash")
	abandon(t, q)
	// Torn in a segment written with zeros ahead: the rest of the record
	// never reached the disk, the zeros did.
	editSegment(t, dir, func(data []byte) []byte {
		clear(data[bytes.Index(data, []byte(", then torn")):])
		return data
	})
	q2 := openTest(t, dir, Options{}, defaultHooks())
	if _, err := q2.Get(a.ID); err != nil {
		t.Errorf("intact record lost: %v", err)
	}
	if _, err := q2.Get(torn.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("torn record loaded: %v", err)
	}
	if qs := q2.Quarantined(); len(qs) != 0 {
		t.Errorf("a torn tail reported as damage: %v", qs)
	}
}

// A record whose checksum holds but whose envelope cannot be used is kept
// aside in corrupt/, not delivered and not deleted; one of a newer format
// stops Open.
func TestLogQuarantine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, env string
		refuse    bool
	}{
		{"bad envelope", "{not json", false},
		{"newer format", `{"v":99,"id":"` + "0000000000000001deadbeef" + `"}`, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			q := openTest(t, dir, Options{}, defaultHooks())
			q.Close()
			id := "0000000000000001deadbeef"
			rec := sealPut(append(make([]byte, logHeaderLen), "body"...), id, []byte(tc.env))
			if err := os.WriteFile(filepath.Join(dir, "log", segmentName(7)), rec, 0o600); err != nil {
				t.Fatal(err)
			}
			q2, err := Open(dir, Options{})
			if tc.refuse {
				if err == nil {
					q2.Close()
					t.Fatal("Open accepted a newer format")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer q2.Close()
			if q2.Len() != 0 || len(q2.Quarantined()) != 1 {
				t.Errorf("Len %d, Quarantined %v", q2.Len(), q2.Quarantined())
			}
			got, err := os.ReadFile(filepath.Join(dir, "corrupt", id+".record"))
			if err != nil || !bytes.Equal(got, rec) {
				t.Errorf("corrupt/%s.record: %q, %v", id, got, err)
			}
		})
	}
}

// Update moves a logged message to a file of its own, and its copy in the
// log is marked removed for good: after the file's message is delivered
// and removed, a crash does not bring the logged copy back.
func TestLogUpdateMovesToFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	m := put(t, q, "stays queued")
	other := put(t, q, "keeps the segment alive")
	m.Recipients[0].Attempts = 1
	m.Recipients[0].LastError = "451 4.4.0 try later"
	if err := q.Update(m); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(msgPath(dir, m.ID+".msg")); err != nil {
		t.Fatalf("updated message has no file: %v", err)
	}
	if got := readBody(t, q, m.ID); got != "stays queued" {
		t.Errorf("body %q", got)
	}
	abandon(t, q)
	q2 := openTest(t, dir, Options{}, defaultHooks())
	got, err := q2.Get(m.ID)
	if err != nil || got.Recipients[0].Attempts != 1 || q2.Len() != 2 {
		t.Fatalf("after reopen %+v, %v, %d messages", got, err, q2.Len())
	}
	q2.Close()

	// Within one run: moved out, delivered, then a crash.
	q3 := openTest(t, dir, Options{}, defaultHooks())
	n := put(t, q3, "moved out, then delivered")
	keep := put(t, q3, "keeps the segment alive")
	n.Recipients[0].Attempts = 1
	if err := q3.Update(n); err != nil {
		t.Fatal(err)
	}
	if err := q3.Remove(n.ID); err != nil {
		t.Fatal(err)
	}
	abandon(t, q3)
	q4 := openTest(t, dir, Options{}, defaultHooks())
	if _, err := q4.Get(n.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("delivered message came back from the log: %v", err)
	}
	for _, id := range []string{m.ID, other.ID, keep.ID} {
		if _, err := q4.Get(id); err != nil {
			t.Errorf("lost %s: %v", id, err)
		}
	}
}

// A body being read stays readable when its message is removed and its
// segment deleted.
func TestLogBodyOutlivesRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{SegmentSize: 1}, defaultHooks()) // a segment per batch
	m := put(t, q, "read after removal")
	rc, err := q.Body(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Remove(m.ID); err != nil {
		t.Fatal(err)
	}
	put(t, q, "next") // a new segment: the old one has nothing live
	if s := segments(t, dir); len(s) != 1 {
		t.Errorf("segments %v, want only the new one", s)
	}
	b, err := io.ReadAll(rc)
	if err != nil || string(b) != "read after removal" {
		t.Errorf("read %q, %v", b, err)
	}
	rc.Close()
	if _, err := q.Body(m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body of a removed message: %v", err)
	}
}

// Segments are deleted as their messages go, and a message that stays
// queued does not make the log grow without bound: it is moved out.
func TestLogSegmentsAreCollectedAndCompacted(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{SegmentSize: 8 << 10, LogSegments: 2}, defaultHooks())
	stays := put(t, q, "stays queued")
	for range 200 {
		m := put(t, q, strings.Repeat("x", 2000))
		if err := q.Remove(m.ID); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := os.Stat(msgPath(dir, stays.ID+".msg")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the message that stayed was never moved out of the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	put(t, q, "rotate once more")
	if s := segments(t, dir); len(s) > 3 {
		t.Errorf("%d segments left: %v", len(s), s)
	}
	if got := readBody(t, q, stays.ID); got != "stays queued" {
		t.Errorf("body %q", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{}, defaultHooks())
	if n := q2.Len(); n != 2 {
		t.Errorf("after reopen %d messages, want 2", n)
	}
}

// A failed write or sync of the log fails exactly the Puts of that batch
// (ErrStorage, nothing visible); the log goes on in a new segment, and
// the failed messages do not come back after a crash.
func TestLogStorageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		errno error
		hook  func(h *hooks, fail *atomic.Bool)
	}{
		{"full disk", syscall.ENOSPC, func(h *hooks, fail *atomic.Bool) {
			h.writeLog = func(f *os.File, b []byte, off int64) (int, error) {
				if fail.Load() {
					n, _ := f.WriteAt(b[:len(b)/2], off)
					return n, &os.PathError{Op: "write", Path: f.Name(), Err: syscall.ENOSPC}
				}
				return f.WriteAt(b, off)
			}
		}},
		{"sync fails", syscall.EIO, func(h *hooks, fail *atomic.Bool) {
			h.syncFile = func(f *os.File) error {
				if fail.Load() && strings.HasSuffix(f.Name(), ".log") {
					return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
				}
				return fdatasync(f)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var fail atomic.Bool
			h := defaultHooks()
			tc.hook(&h, &fail)
			q := openTest(t, dir, Options{}, h)
			before := put(t, q, "before")
			fail.Store(true)
			_, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("during"))
			if !errors.Is(err, ErrStorage) || !errors.Is(err, tc.errno) {
				t.Fatalf("Put = %v, want ErrStorage and %v", err, tc.errno)
			}
			if q.Len() != 1 {
				t.Errorf("%d messages visible, want 1", q.Len())
			}
			fail.Store(false)
			after := put(t, q, "after")
			if len(segments(t, dir)) != 2 {
				t.Errorf("segments %v, want the broken one and a new one", segments(t, dir))
			}
			if readBody(t, q, before.ID) != "before" || readBody(t, q, after.ID) != "after" {
				t.Error("bodies differ")
			}
			abandon(t, q)
			q2 := openTest(t, dir, Options{}, defaultHooks())
			ids := make([]string, 0, 2)
			for _, m := range q2.Messages() {
				ids = append(ids, m.ID)
			}
			if want := []string{before.ID, after.ID}; !slices.Equal(ids, want) {
				t.Errorf("after reopen %v, want %v", ids, want)
			}
		})
	}
}

// Puts, Bodies, Updates and Removes from many goroutines at once, with
// segments rotating under them, keep every message whole.
func TestLogConcurrentUse(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{SegmentSize: 16 << 10, LogSegments: 2}, defaultHooks())
	var wg sync.WaitGroup
	var kept sync.Map
	for w := range 8 {
		wg.Go(func() {
			for i := range 60 {
				body := strings.Repeat(string(rune('a'+w)), 100+i*37)
				m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader(body))
				if err != nil {
					t.Error(err)
					return
				}
				if got := readBody(t, q, m.ID); got != body {
					t.Errorf("body of %s differs", m.ID)
				}
				switch i % 3 {
				case 0:
					if err := q.Remove(m.ID); err != nil {
						t.Error(err)
					}
				case 1:
					m.Recipients[0].Attempts = 1
					if err := q.Update(m); err != nil {
						t.Error(err)
					}
					kept.Store(m.ID, body)
				default:
					kept.Store(m.ID, body)
				}
			}
		})
	}
	wg.Wait()
	abandon(t, q)
	q2 := openTest(t, dir, Options{}, defaultHooks())
	n := 0
	kept.Range(func(id, body any) bool {
		n++
		if got := readBody(t, q2, id.(string)); got != body.(string) {
			t.Errorf("body of %s differs after reopen", id)
		}
		return true
	})
	if q2.Len() != n {
		t.Errorf("after reopen %d messages, want %d", q2.Len(), n)
	}
}
