package queue

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// The test binary doubles as the process that crashes or holds the lock:
// with helperEnv set, TestMain runs that role instead of the tests.
const (
	helperEnv    = "SENDCONN_QUEUE_TEST_HELPER"
	helperDirEnv = "SENDCONN_QUEUE_TEST_DIR"
)

func TestMain(m *testing.M) {
	if role := os.Getenv(helperEnv); role != "" {
		os.Exit(runHelper(role, os.Getenv(helperDirEnv)))
	}
	os.Exit(m.Run())
}

func runHelper(role, dir string) int {
	q, err := Open(dir, Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var out sync.Mutex
	// os.Stdout is unbuffered: each line is one write(2), on the pipe
	// before the next operation starts.
	say := func(format string, args ...any) {
		out.Lock()
		fmt.Fprintf(os.Stdout, format+"\n", args...)
		out.Unlock()
	}
	switch role {
	case "hold":
		say("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "put":
		var next atomic.Uint64
		var wg sync.WaitGroup
		for range 16 {
			wg.Go(func() {
				for {
					seed := next.Add(1)
					from, rcpts, meta := envelopeFor(seed)
					m, err := q.Put(from, rcpts, meta, bodyFor(seed))
					if err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(1)
					}
					say("ok %s %d", m.ID, seed)
				}
			})
		}
		wg.Wait()
	case "update":
		m, err := q.Put("a@example.com", []string{"b@example.org", "c@example.org"}, nil, strings.NewReader("body\r\n"))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		say("id %s", m.ID)
		for i := 1; ; i++ {
			m.Recipients[0].Attempts = i
			// Sizes vary so that a torn envelope could not pass for
			// a whole one.
			m.Recipients[0].LastError = strings.Repeat("x", i%7000)
			m.Recipients[1].Attempts = i
			if err := q.Update(m); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			say("ok %d", i)
		}
	}
	fmt.Fprintln(os.Stderr, "unknown helper role", role)
	return 2
}

// startHelper runs the test binary in a helper role on dir and returns it
// with a scanner on its stdout.
func startHelper(t *testing.T, role, dir string) (*exec.Cmd, *bufio.Scanner, io.WriteCloser) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+role, helperDirEnv+"="+dir)
	cmd.Stderr = &lockedBuffer{}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd, bufio.NewScanner(stdout), stdin
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// envelopeFor and bodyFor derive a message from a seed, so the parent can
// check what a killed child acknowledged without the child telling it more
// than an id and a seed.
func envelopeFor(seed uint64) (string, []string, map[string]string) {
	from := fmt.Sprintf("sender%d@example.com", seed)
	if seed%7 == 0 {
		from = "" // null sender
	}
	n := int(seed%3) + 1
	var rcpts []string
	for i := range n {
		rcpts = append(rcpts, fmt.Sprintf("r%d-%d@example.org", seed, i))
	}
	return from, rcpts, map[string]string{"seed": strconv.FormatUint(seed, 10)}
}

func bodyFor(seed uint64) io.Reader {
	size := int64(seed*7919) % (200 << 10)
	if seed%10 == 0 {
		size = 0
	}
	return newLazyBody(seed, size)
}

// lazyBody produces size pseudo-random bytes (every byte value, CR, LF and
// NUL included) on demand, never holding more than the caller's buffer.
type lazyBody struct {
	rng  *rand.ChaCha8
	left int64
}

func newLazyBody(seed uint64, size int64) *lazyBody {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	return &lazyBody{rng: rand.NewChaCha8(key), left: size}
}

func (l *lazyBody) Read(p []byte) (int, error) {
	if l.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, _ := l.rng.Read(p)
	l.left -= int64(n)
	return n, nil
}

// sameContent reports whether r yields exactly what want yields.
func sameContent(r, want io.Reader) (bool, error) {
	a := bufio.NewReaderSize(r, 64<<10)
	b := bufio.NewReaderSize(want, 64<<10)
	bufA := make([]byte, 32<<10)
	bufB := make([]byte, 32<<10)
	for {
		na, errA := io.ReadFull(a, bufA)
		nb, _ := io.ReadFull(b, bufB)
		if na != nb || !slices.Equal(bufA[:na], bufB[:nb]) {
			return false, nil
		}
		if errA == io.EOF || errA == io.ErrUnexpectedEOF {
			return true, nil
		}
		if errA != nil {
			return false, errA
		}
	}
}

// filesOnly as Options.LogMaxMessage gives every message a file of its
// own: the tests of that format use it.
const filesOnly = -1

// openTest opens a queue whose Close is checked at the end of the test
// unless the test closed it itself.
func openTest(t testing.TB, dir string, opts Options, h hooks) *Queue {
	t.Helper()
	q, err := open(dir, opts, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := q.Close(); err != nil && err != ErrClosed {
			t.Errorf("close: %v", err)
		}
	})
	return q
}

// listDir returns the names in the queue directory, sorted: the files of
// the subdirectories messages are spread over, the log's segments as
// log/<name>, and everything else at the top, the subdirectories
// themselves left out.
func listDir(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() && len(e.Name()) == 1 && strings.Contains(shards, e.Name()) {
			sub, err := os.ReadDir(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range sub {
				names = append(names, f.Name())
			}
			continue
		}
		if e.IsDir() && e.Name() == "log" {
			sub, err := os.ReadDir(filepath.Join(dir, "log"))
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range sub {
				names = append(names, "log/"+f.Name())
			}
			continue
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// msgPath is where a message file of that name lives in dir; other names
// are at the top.
func msgPath(dir, name string) string {
	if id, _, ok := strings.Cut(name, "."); ok && validID(id) {
		return filepath.Join(dir, shardOf(id), name)
	}
	return filepath.Join(dir, name)
}

// fixedClock returns the same instant every time.
func fixedClock(t time.Time) func() time.Time { return func() time.Time { return t } }

// toLegacy rewrites a stored single-file message (the queue closed) as
// versions before it stored one, <id>.body and <id>.env, so the tests of
// those files keep checking that such queues still open.
func toLegacy(t *testing.T, dir, id string) {
	t.Helper()
	f, err := os.Open(msgPath(dir, id+".msg"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	size, env, err := readTrailer(f)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(msgPath(dir, id+".env")); err == nil {
		env = b // updated: the newer state
	}
	body := make([]byte, size)
	if _, err := f.ReadAt(body, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(msgPath(dir, id+".body"), body, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(msgPath(dir, id+".env"), env, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(msgPath(dir, id+".msg")); err != nil {
		t.Fatal(err)
	}
}

// legacyQueue stores n messages in dir, closes the queue and rewrites them
// as versions before single files stored them; it returns their ids.
func legacyQueue(t *testing.T, dir string, n int) []string {
	t.Helper()
	q := openTest(t, dir, Options{LogMaxMessage: filesOnly}, defaultHooks())
	var ids []string
	for i := range n {
		m, err := q.Put("a@example.com", []string{"b@example.org"}, nil, strings.NewReader(fmt.Sprint("body ", i)))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		toLegacy(t, dir, id)
	}
	return ids
}
