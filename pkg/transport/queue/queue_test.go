package queue

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

func TestPutSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "spool", "queue")
	now := time.Date(2025, 3, 4, 5, 6, 7, 8, time.FixedZone("CET", 3600))
	q, err := Open(dir, Options{Now: fixedClock(now)})
	if err != nil {
		t.Fatal(err)
	}
	meta := map[string]string{"client-ip": "192.0.2.7", "ehlo": "app1.contoso.com"}
	body := "Subject: hi\r\n\r\nbinary \x00\xff\r\n.\r\n"
	m, err := q.Put("", []string{"a@example.org", "b@example.net"}, meta, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	meta["client-ip"] = "changed by the caller"
	if m.From != "" || m.Size != int64(len(body)) || !m.Received.Equal(now) || m.Meta["client-ip"] != "192.0.2.7" {
		t.Errorf("Put returned %+v", m)
	}
	want := []Recipient{{Address: "a@example.org"}, {Address: "b@example.net"}}
	if !reflect.DeepEqual(m.Recipients, want) {
		t.Errorf("recipients %+v, want %+v", m.Recipients, want)
	}
	got, err := q.Get(m.ID)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, m)
	}
	got.Recipients[0].Status = Delivered
	if again, _ := q.Get(m.ID); again.Recipients[0].Status != Pending {
		t.Error("a returned message shares state with the queue")
	}

	// An empty body and an empty meta map are stored as such.
	empty, err := q.Put("c@example.com", []string{"d@example.org"}, map[string]string{}, strings.NewReader(""))
	if err != nil {
		t.Fatal(err)
	}

	// Abandon q without Close, as a crash would: only the lock goes (the
	// kernel drops it with the process).
	if err := unlockDir(q.lock); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer q2.Close()
	msgs := q2.Messages()
	if want := []*Message{m, empty}; !reflect.DeepEqual(msgs, want) {
		t.Fatalf("after reopen: %+v; want %+v", msgs, want)
	}
	f, err := q2.Body(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _ := io.ReadAll(f)
	if string(b) != body {
		t.Errorf("body %q, want %q", b, body)
	}

	for _, p := range []string{filepath.Dir(dir), dir} {
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o700 {
			t.Errorf("%s: %v %v, want 0700", p, fi.Mode(), err)
		}
	}
	for _, n := range listDir(t, dir) {
		if fi, err := os.Stat(msgPath(dir, n)); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want 0600", n, fi.Mode(), err)
		}
	}
}

func TestIDsSortByArrival(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// A frozen clock still yields strictly increasing ids.
	q := openTest(t, dir, Options{Now: fixedClock(time.Unix(1_700_000_000, 0))}, defaultHooks())
	var ids []string
	for i := range 20 {
		m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader(fmt.Sprint(i)))
		if err != nil {
			t.Fatal(err)
		}
		if !validID(m.ID) {
			t.Fatalf("id %q is not a valid file-name id", m.ID)
		}
		ids = append(ids, m.ID)
	}
	if !slices.IsSorted(ids) || len(slices.Compact(slices.Clone(ids))) != len(ids) {
		t.Fatalf("ids not strictly increasing: %v", ids)
	}
	var listed []string
	for _, m := range q.Messages() {
		listed = append(listed, m.ID)
	}
	if !slices.Equal(listed, ids) {
		t.Errorf("Messages order %v, want %v", listed, ids)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}

	// After a restart with a clock that went back, ids still grow.
	q2 := openTest(t, dir, Options{Now: fixedClock(time.Unix(1_600_000_000, 0))}, defaultHooks())
	m, err := q2.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID <= ids[len(ids)-1] {
		t.Errorf("id %s after restart sorts before %s", m.ID, ids[len(ids)-1])
	}
}

func TestPutRejectsBadEnvelopes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	for _, tc := range []struct {
		from  string
		rcpts []string
		meta  map[string]string
	}{
		{"a@example.com", nil, nil},
		{"a@example.com", []string{""}, nil},
		{"a\xff@example.com", []string{"b@example.org"}, nil},
		{"a@example.com", []string{"b\xff@example.org"}, nil},
		{"a@example.com", []string{"b@example.org"}, map[string]string{"k": "\xff"}},
	} {
		_, err := q.Put(tc.from, tc.rcpts, tc.meta, strings.NewReader("x"))
		if err == nil || IsStorageError(err) {
			t.Errorf("Put(%q, %q, %q) = %v, want a non-storage error", tc.from, tc.rcpts, tc.meta, err)
		}
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"lock"}) {
		t.Errorf("directory holds %v", got)
	}
}

// A reader that fails (a client that went away, a size limit) is not a
// storage error and leaves nothing behind.
func TestPutReaderErrorLeavesNothing(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	boom := errors.New("connection reset")
	r := io.MultiReader(newLazyBody(1, 300<<10), &failingReader{boom})
	_, err := q.Put("a@example.com", []string{"b@example.org"}, nil, r)
	if !errors.Is(err, boom) || IsStorageError(err) {
		t.Fatalf("Put = %v, want the reader's error and no ErrStorage", err)
	}
	if q.Len() != 0 {
		t.Error("failed Put is visible")
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{"lock"}) {
		t.Errorf("directory holds %v", got)
	}
}

type failingReader struct{ err error }

func (f *failingReader) Read([]byte) (int, error) { return 0, f.err }

type failAfterWriter struct {
	w    io.Writer
	left int
}

func (f *failAfterWriter) Write(p []byte) (int, error) {
	if len(p) > f.left {
		n, _ := f.w.Write(p[:f.left])
		f.left = 0
		return n, &os.PathError{Op: "write", Path: "body", Err: syscall.ENOSPC}
	}
	f.left -= len(p)
	return f.w.Write(p)
}

// Every disk failure during Put is an ErrStorage, leaves nothing visible
// now or after a reopen, and does not wedge the queue.
func TestPutStorageErrors(t *testing.T) {
	t.Parallel()
	eio := &os.PathError{Op: "fsync", Path: "x", Err: syscall.EIO}
	for _, tc := range []struct {
		name  string
		errno error
		hook  func(h *hooks, fail *atomic.Bool)
	}{
		{"full disk while writing the body", syscall.ENOSPC, func(h *hooks, fail *atomic.Bool) {
			h.wrapBody = func(w io.Writer) io.Writer {
				if fail.Load() {
					return &failAfterWriter{w: w, left: 100 << 10}
				}
				return w
			}
		}},
		{"message sync fails", syscall.EIO, func(h *hooks, fail *atomic.Bool) {
			h.syncFile = func(f *os.File) error {
				if fail.Load() && strings.HasSuffix(f.Name(), ".msg.tmp") {
					return eio
				}
				return fdatasync(f)
			}
		}},
		{"directory sync fails", syscall.EIO, func(h *hooks, fail *atomic.Bool) {
			h.syncDir = func(d *os.File) error {
				if fail.Load() {
					return eio
				}
				return d.Sync()
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			var fail atomic.Bool
			h := defaultHooks()
			tc.hook(&h, &fail)
			q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, h)
			fail.Store(true)
			_, err := q.Put("a@example.com", []string{"b@example.org"}, nil, newLazyBody(2, 1<<20))
			if !errors.Is(err, ErrStorage) || !errors.Is(err, tc.errno) {
				t.Fatalf("Put = %v, want ErrStorage and %v", err, tc.errno)
			}
			if q.Len() != 0 || len(q.Messages()) != 0 {
				t.Error("failed Put is visible")
			}
			if got := listDir(t, dir); !slices.Equal(got, []string{"lock"}) {
				t.Errorf("directory holds %v", got)
			}
			// The disk recovers: the queue works again.
			fail.Store(false)
			if _, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("ok")); err != nil {
				t.Fatalf("Put after recovery: %v", err)
			}
			if err := q.Close(); err != nil {
				t.Fatal(err)
			}
			q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
			if n := q2.Len(); n != 1 {
				t.Errorf("after reopen %d messages, want the 1 that succeeded", n)
			}
		})
	}
}

// A 35 MB binary body is streamed: stored byte for byte without the
// process allocating anything near its size.
func TestLargeBodyStreamed(t *testing.T) {
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	const size = 35 << 20
	sum := sha256.New()
	src := io.TeeReader(newLazyBody(35, size), sum)

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, src)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 4<<20 {
		t.Errorf("Put of %d bytes allocated %d bytes", size, alloc)
	}
	if m.Size != size {
		t.Errorf("size %d, want %d", m.Size, size)
	}
	f, err := q.Body(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stored := sha256.New()
	if _, err := io.Copy(stored, f); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(stored.Sum(nil), sum.Sum(nil)) {
		t.Error("stored body differs from what was sent")
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	m, err := q.Put("a@example.com", []string{"b@example.org", "c@example.org"}, map[string]string{"k": "v"}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	next := time.Date(2025, 1, 2, 3, 4, 5, 6, time.FixedZone("X", -7200))
	m.Recipients[0] = Recipient{Address: "b@example.org", Status: Delivered, Attempts: 1, LastError: "250 2.0.0 ok"}
	m.Recipients[1] = Recipient{Address: "c@example.org", Status: Pending, Attempts: 1, NextAttempt: next, LastError: "451 4.4.0 \xe9chec"}
	m.Meta = map[string]string{"k": "w"}
	m.From = "ignored@example.com"
	if err := q.Update(m); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Get(m.ID)
	if got.From != "a@example.com" || got.Meta["k"] != "w" || got.Recipients[0].Status != Delivered ||
		!got.Recipients[1].NextAttempt.Equal(next) || got.Recipients[1].LastError != "451 4.4.0 \uFFFDchec" {
		t.Errorf("after Update: %+v", got)
	}
	if got.Done() {
		t.Error("Done with a pending recipient")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{}, defaultHooks())
	again, err := q2.Get(m.ID)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("after reopen %+v, %v; want %+v", again, err, got)
	}

	bad := again.clone()
	bad.Recipients = nil
	if err := q2.Update(bad); err == nil || IsStorageError(err) {
		t.Errorf("Update without recipients = %v", err)
	}
	bad.ID = "0000000000000000deadbeef"
	if err := q2.Update(bad); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update of unknown id = %v, want ErrNotFound", err)
	}
}

// A failed Update leaves the stored state as it was, with no temporary
// file, and the old state is what a reopen finds.
func TestUpdateFailureKeepsOldState(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	var fail atomic.Bool
	h := defaultHooks()
	h.syncFile = func(f *os.File) error {
		if fail.Load() {
			return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: syscall.EIO}
		}
		return fdatasync(f)
	}
	q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, h)
	m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	fail.Store(true)
	m.Recipients[0].Status = Failed
	if err := q.Update(m); !errors.Is(err, ErrStorage) {
		t.Fatalf("Update = %v, want ErrStorage", err)
	}
	if got, _ := q.Get(m.ID); got.Recipients[0].Status != Pending {
		t.Errorf("failed Update changed the state to %v", got.Recipients[0].Status)
	}
	if got := listDir(t, dir); !slices.Equal(got, []string{m.ID + ".msg", "lock"}) {
		t.Errorf("directory holds %v, want the message and the lock", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	if got, _ := q2.Get(m.ID); got == nil || got.Recipients[0].Status != Pending {
		t.Errorf("after reopen %+v", got)
	}
}

func TestRemove(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	keep, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("keep"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("gone"))
	if err != nil {
		t.Fatal(err)
	}
	// A reader that opened the body before the removal can finish.
	f, err := q.Body(m.ID)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := q.Remove(m.ID); err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(f); string(b) != "gone" {
		t.Errorf("open body read %q after Remove", b)
	}
	if _, err := q.Get(m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Remove = %v", err)
	}
	if _, err := q.Body(m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body after Remove = %v", err)
	}
	if err := q.Remove(m.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Remove = %v", err)
	}
	if err := q.Update(m); !errors.Is(err, ErrNotFound) {
		t.Errorf("Update after Remove = %v", err)
	}
	if _, err := q.Body("../../etc/passwd"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Body of a path = %v", err)
	}
	want := []string{keep.ID + ".msg", "lock"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	if msgs := q2.Messages(); len(msgs) != 1 || msgs[0].ID != keep.ID {
		t.Errorf("after reopen %+v", msgs)
	}
}

// Open deletes what interrupted Puts, Updates and Removes leave, keeps
// whole messages and files that are not its own.
func TestOpenCleansLeftovers(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	whole, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("whole"))
	if err != nil {
		t.Fatal(err)
	}
	updated, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("updated"))
	if err != nil {
		t.Fatal(err)
	}
	envOnly, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("env only"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	// The files of earlier versions, and their leftovers.
	for _, id := range []string{whole.ID, updated.ID, envOnly.ID} {
		toLegacy(t, dir, id)
	}
	write := func(name, content string) {
		if err := os.WriteFile(msgPath(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const bodyOnly = "00000000000000010badf00d"
	write(bodyOnly+".body", "a Put that died before its envelope")                   // interrupted Put
	write("000000000000000200c0ffee.env.tmp", `{"v":1,"id":"0000`)                   // torn temporary envelope
	write(updated.ID+".env.tmp", `{"v":1,"id":"`+updated.ID+`","rcpts":[{"addr":"x`) // interrupted Update
	if err := os.Remove(msgPath(dir, envOnly.ID+".body")); err != nil {              // interrupted Remove
		t.Fatal(err)
	}
	write("README", "not ours")

	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	var ids []string
	for _, m := range q2.Messages() {
		ids = append(ids, m.ID)
	}
	if want := []string{whole.ID, updated.ID}; !slices.Equal(ids, want) {
		t.Errorf("messages %v, want %v", ids, want)
	}
	want := []string{"README", whole.ID + ".body", whole.ID + ".env", updated.ID + ".body", updated.ID + ".env", "lock"}
	slices.Sort(want)
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
	if len(q2.Quarantined()) != 0 {
		t.Errorf("quarantined %v", q2.Quarantined())
	}
}

// An envelope that cannot be trusted is moved aside, not deleted and not
// delivered; one from a newer version stops Open.
func TestOpenQuarantinesCorruptEnvelopes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := legacyQueue(t, dir, 3)
	if err := os.WriteFile(msgPath(dir, ids[0]+".env"), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(msgPath(dir, ids[1]+".body"), []byte("truncated"), 0o600); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	if msgs := q2.Messages(); len(msgs) != 1 || msgs[0].ID != ids[2] {
		t.Errorf("messages %+v, want only %s", msgs, ids[2])
	}
	problems := q2.Quarantined()
	if len(problems) != 2 || !strings.Contains(problems[0].Error()+problems[1].Error(), ids[1]) {
		t.Errorf("quarantined %v", problems)
	}
	for _, id := range ids[:2] {
		for _, kind := range []string{".body", ".env"} {
			if _, err := os.Stat(filepath.Join(dir, "corrupt", id+kind)); err != nil {
				t.Errorf("quarantined file: %v", err)
			}
		}
	}
	if err := q2.Close(); err != nil {
		t.Fatal(err)
	}

	newer := strings.Replace(readFile(t, msgPath(dir, ids[2]+".env")), `"v":1`, `"v":2`, 1)
	if err := os.WriteFile(msgPath(dir, ids[2]+".env"), []byte(newer), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir, Options{LogMaxMessage: filesOnly}); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Errorf("Open with a newer envelope = %v", err)
	}
	if _, err := os.Stat(msgPath(dir, ids[2]+".env")); err != nil {
		t.Errorf("newer envelope was touched: %v", err)
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestSecondOpenIsLocked(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	_, err := Open(dir, Options{})
	if !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("second Open = %v, want ErrLocked naming %s", err, dir)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	q2.Close()
}

func TestClosed(t *testing.T) {
	t.Parallel()
	q := openTest(t, t.TempDir(), Options{}, defaultHooks())
	m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Put after Close = %v", err)
	}
	if err := q.Update(m); !errors.Is(err, ErrClosed) {
		t.Errorf("Update after Close = %v", err)
	}
	if err := q.Remove(m.ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Remove after Close = %v", err)
	}
	if _, err := q.Body(m.ID); !errors.Is(err, ErrClosed) {
		t.Errorf("Body after Close = %v", err)
	}
	if err := q.Close(); !errors.Is(err, ErrClosed) {
		t.Errorf("second Close = %v", err)
	}
}

// 64 Puts whose directory syncs are held up until all of them wait share
// exactly two syncs: the one that was running and the next.
func TestGroupCommitSharesSyncs(t *testing.T) {
	t.Parallel()
	const n = 64
	var qp atomic.Pointer[Queue]
	var first atomic.Bool
	h := defaultHooks()
	h.syncDir = func(d *os.File) error {
		q := qp.Load()
		if q != nil && first.CompareAndSwap(false, true) {
			// A slow disk: the first sync lasts until every other
			// Put is waiting for one.
			deadline := time.Now().Add(20 * time.Second)
			for q.batched.Load()+int64(len(q.syncReqs)) < n && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
		}
		return d.Sync()
	}
	q := openTest(t, t.TempDir(), Options{LogMaxMessage: filesOnly}, h)
	qp.Store(q)
	putConcurrently(t, q, n)
	if got := q.syncs.Load(); got != 2 {
		t.Errorf("%d Puts took %d directory syncs, want 2", n, got)
	}
	if q.Len() != n {
		t.Errorf("%d messages stored, want %d", q.Len(), n)
	}
}

// With a disk whose directory sync takes 20 ms, as a loaded disk's may,
// concurrent Puts need far fewer syncs than messages. File syncs are
// skipped here so that the time the Puts take to arrive depends on the CPU
// only, not on whatever else this machine's disk is doing.
func TestGroupCommitSlowDisk(t *testing.T) {
	t.Parallel()
	const n = 64
	h := defaultHooks()
	h.syncFile = func(*os.File) error { return nil }
	h.syncDir = func(d *os.File) error {
		time.Sleep(20 * time.Millisecond)
		return d.Sync()
	}
	q := openTest(t, t.TempDir(), Options{LogMaxMessage: filesOnly}, h)
	putConcurrently(t, q, n)
	if got := q.syncs.Load(); got > n/4 {
		t.Errorf("%d Puts took %d directory syncs, want at most %d", n, got, n/4)
	}
	t.Logf("%d concurrent Puts, %d directory syncs", n, q.syncs.Load())
}

// MaxBatchDelay gathers Puts that arrive close together into one sync
// (file syncs skipped, as above, to keep the test off the disk's mood).
func TestGroupCommitMaxBatchDelay(t *testing.T) {
	t.Parallel()
	const n = 16
	h := defaultHooks()
	h.syncFile = func(*os.File) error { return nil }
	q := openTest(t, t.TempDir(), Options{LogMaxMessage: filesOnly, MaxBatchDelay: 200 * time.Millisecond}, h)
	putConcurrently(t, q, n)
	if got := q.syncs.Load(); got > 3 {
		t.Errorf("%d Puts took %d directory syncs with a batch delay, want at most 3", n, got)
	}
}

func putConcurrently(t *testing.T, q *Queue, n int) {
	t.Helper()
	start := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := q.Put("a@example.com", []string{"b@example.org"}, nil, newLazyBody(uint64(i), 10<<10))
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Puts, Updates and Removes running at once keep the index and the files
// in step (run with -race).
func TestConcurrentOperations(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 10 {
				m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader("x"))
				if err != nil {
					t.Error(err)
					return
				}
				// Two updaters and a remover race on the same message.
				var inner sync.WaitGroup
				for range 2 {
					inner.Go(func() {
						c := m.clone()
						c.Recipients[0].Attempts++
						if err := q.Update(c); err != nil && !errors.Is(err, ErrNotFound) {
							t.Error(err)
						}
					})
				}
				if (w+i)%2 == 0 {
					inner.Go(func() {
						if err := q.Remove(m.ID); err != nil {
							t.Error(err)
						}
					})
				}
				inner.Wait()
				_ = q.Messages()
			}
		})
	}
	wg.Wait()
	if got := q.Len(); got != 40 {
		t.Errorf("%d messages left, want 40", got)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{}, defaultHooks())
	if got := q2.Len(); got != 40 {
		t.Errorf("%d messages after reopen, want 40", got)
	}
	if got := len(listDir(t, dir)); got != 81 {
		t.Errorf("%d files, want 81 (lock and 40 pairs)", got)
	}
}

// The RFC 3461 parameters given at Put, and the flags and recipient state
// the transport keeps for notifications and administration, survive Update
// and a reopen; a failed-but-unnotified recipient keeps the message.
func TestNotificationStateSurvivesReopen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{}, defaultHooks())
	m, err := q.PutEnvelope(Envelope{
		From: "a@example.com",
		Recipients: []Recipient{
			{Address: "b@example.org", Notify: []string{"FAILURE", "DELAY"}, ORCPT: "rfc822;B@example.org", Status: Delivered, Attempts: 9},
			{Address: "c@example.org"},
		},
		Return: "HDRS", EnvelopeID: "QQ314159",
	}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if r := m.Recipients[0]; r.Status != Pending || r.Attempts != 0 || r.ORCPT != "rfc822;B@example.org" || len(r.Notify) != 2 {
		t.Errorf("PutEnvelope kept state it should start fresh, or lost parameters: %+v", r)
	}
	last := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	m.Suspended, m.DelayNotified = true, true
	m.Recipients[0].Status, m.Recipients[0].Notified, m.Recipients[0].Queue = Failed, false, "example.org"
	m.Recipients[0].LastAttempt = last
	m.Recipients[1].Status = Delivered
	if err := q.Update(m); err != nil {
		t.Fatal(err)
	}
	got, _ := q.Get(m.ID)
	if got.Done() {
		t.Error("Done while a failed recipient has not been notified")
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	q2 := openTest(t, dir, Options{}, defaultHooks())
	again, err := q2.Get(m.ID)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Fatalf("after reopen %+v, %v; want %+v", again, err, got)
	}
	if !again.Suspended || !again.DelayNotified || again.Return != "HDRS" || again.EnvelopeID != "QQ314159" ||
		!again.Recipients[0].LastAttempt.Equal(last) || again.Recipients[0].Queue != "example.org" {
		t.Errorf("state lost across reopen: %+v", again)
	}
	again.Recipients[0].Notified = true
	if !again.Done() {
		t.Error("not Done once every recipient is final and notified")
	}
}

// A queue written in the flat layout (every file in the queue directory,
// as earlier versions kept them) opens with every message, moved into the
// subdirectories; so does one whose move a crash interrupted at any step.
func TestOpenMovesTheFlatLayout(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ids := legacyQueue(t, dir, 4) // the flat layout is older than single files
	flat := func(id, kind string) string { return filepath.Join(dir, id+"."+kind) }
	moveFlat := func(id string) {
		for _, kind := range []string{"body", "env"} {
			if err := os.Rename(msgPath(dir, id+"."+kind), flat(id, kind)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// ids[0]: flat only, as an earlier version left it.
	moveFlat(ids[0])
	// ids[1]: the crash came after the body was linked into place.
	moveFlat(ids[1])
	if err := os.Link(flat(ids[1], "body"), msgPath(dir, ids[1]+".body")); err != nil {
		t.Fatal(err)
	}
	// ids[2]: both linked, the old names not yet removed.
	for _, kind := range []string{"body", "env"} {
		if err := os.Link(msgPath(dir, ids[2]+"."+kind), flat(ids[2], kind)); err != nil {
			t.Fatal(err)
		}
	}
	// ids[3]: the old envelope removed, the old body not yet.
	if err := os.Link(msgPath(dir, ids[3]+".body"), flat(ids[3], "body")); err != nil {
		t.Fatal(err)
	}

	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	var got []string
	for _, m := range q2.Messages() {
		got = append(got, m.ID)
		b, err := q2.Body(m.ID)
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(b)
		b.Close()
		if !strings.HasPrefix(string(data), "body ") {
			t.Errorf("%s: body %q", m.ID, data)
		}
	}
	if !slices.Equal(got, ids) {
		t.Errorf("messages %v, want %v", got, ids)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() && e.Name() != "lock" {
			t.Errorf("left at the top: %s", e.Name())
		}
	}
	if n := len(listDir(t, dir)); n != 2*len(ids)+1 {
		t.Errorf("%d files, want %d", n, 2*len(ids)+1)
	}
}

// A message is one <id>.msg file, its envelope after it; Update puts the
// newer state in <id>.env beside it. Open reads both, clears what
// interrupted Puts and Removes left, and quarantines a file it cannot
// trust.
func TestSingleFileMessages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	put := func(body string) *Message {
		m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	plain, updated, removedUpdated, truncated, badState := put("plain"), put("updated"), put("removed"), put("truncated"), put("bad state")
	for _, m := range []*Message{updated, removedUpdated, badState} {
		m.Recipients[0].Attempts, m.Recipients[0].LastError = 3, "451 4.4.0 later"
		if err := q.Update(m); err != nil {
			t.Fatal(err)
		}
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(msgPath(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("0000000000000003deadbeef.msg.tmp", "a Put that died before its rename")
	if err := os.Remove(msgPath(dir, removedUpdated.ID+".msg")); err != nil { // a Remove half done
		t.Fatal(err)
	}
	if err := os.Truncate(msgPath(dir, truncated.ID+".msg"), 5); err != nil {
		t.Fatal(err)
	}
	write(badState.ID+".env", "{not json")

	q2 := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	var ids []string
	for _, m := range q2.Messages() {
		ids = append(ids, m.ID)
	}
	if want := []string{plain.ID, updated.ID}; !slices.Equal(ids, want) {
		t.Fatalf("messages %v, want %v", ids, want)
	}
	if got, _ := q2.Get(updated.ID); got.Recipients[0].Attempts != 3 || got.Recipients[0].LastError != "451 4.4.0 later" {
		t.Errorf("updated state not read back: %+v", got.Recipients[0])
	}
	for id, want := range map[string]string{plain.ID: "plain", updated.ID: "updated"} {
		f, err := q2.Body(id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(f)
		f.Close()
		if string(b) != want {
			t.Errorf("body of %s = %q, want %q (the envelope after it must not show)", id, b, want)
		}
	}
	if got := len(q2.Quarantined()); got != 2 {
		t.Errorf("quarantined %v, want the truncated message and the one with a bad state", q2.Quarantined())
	}
	for _, name := range []string{truncated.ID + ".msg", badState.ID + ".msg", badState.ID + ".env"} {
		if _, err := os.Stat(filepath.Join(dir, "corrupt", name)); err != nil {
			t.Errorf("not quarantined: %v", err)
		}
	}
	if err := q2.Remove(updated.ID); err != nil {
		t.Fatal(err)
	}
	want := []string{plain.ID + ".msg", "corrupt", "lock"}
	if got := listDir(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %v, want %v", got, want)
	}
}
