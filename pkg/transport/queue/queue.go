package queue

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrStorage wraps every failure of the disk under the queue (a write,
	// a sync, a full disk). The receiving side answers 452 4.3.1 to it.
	ErrStorage = errors.New("queue storage error")
	// ErrLocked means another Queue, in this process or another, holds the
	// directory.
	ErrLocked = errors.New("queue directory is locked")
	// ErrNotFound means no stored message has the id.
	ErrNotFound = errors.New("message not found")
	// ErrClosed is returned by operations on a closed Queue.
	ErrClosed = errors.New("queue is closed")
)

// IsStorageError reports whether err is a failure of the disk under the
// queue; it fits the receiving side's IsStorageError setting.
func IsStorageError(err error) bool { return errors.Is(err, ErrStorage) }

// Options tune a Queue. The zero value is ready to use.
type Options struct {
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// MaxBatchDelay is how long the committer waits for more operations
	// to join a directory fsync once one is waiting. Zero syncs as soon
	// as the previous sync finishes, which already groups everything that
	// arrived meanwhile; a small delay trades latency for fewer syncs on
	// disks where a sync is very slow.
	MaxBatchDelay time.Duration
	// LogMaxMessage is the largest message kept in the message log;
	// larger ones get a file of their own. Zero means
	// DefaultLogMaxMessage; a negative value gives every message its
	// own file.
	LogMaxMessage int64
	// SegmentSize is the size at which the log starts a new segment file;
	// zero means DefaultSegmentSize.
	SegmentSize int64
	// LogSegments is how many segments may pile up behind messages that
	// stay queued before those are moved to files of their own; zero
	// means DefaultLogSegments.
	LogSegments int
}

// Queue is an open queue directory. Its methods are safe for concurrent use.
type Queue struct {
	dir   string
	opts  Options
	hooks hooks

	lock    *os.File   // holds the flock
	dirFile *os.File   // the directory, for fsync
	subdirs []*os.File // the shard subdirectories, for fsync

	// syncReqs carries waiters to the committer goroutine.
	syncReqs   chan chan error
	commitDone chan struct{}
	syncs      atomic.Int64 // directory fsyncs done, for tests
	batched    atomic.Int64 // waiters the committer has taken, for tests

	bodyWriters sync.Pool // of *bufio.Writer, 64 KB each
	recordBufs  sync.Pool // of *[]byte, for messages on their way into the log

	log         *msgLog
	compactStop chan struct{}
	compactDone chan struct{}

	mu          sync.Mutex
	closed      bool
	inflight    sync.WaitGroup // operations that may still send to syncReqs
	index       map[string]*entry
	lastNanos   int64 // last id time, so ids only grow
	quarantined []error
}

// entry is one stored message. mu serializes Update and Remove of that
// message; msg is read and replaced under Queue.mu.
type entry struct {
	mu      sync.Mutex
	removed bool // guarded by mu
	msg     *Message
	// single says the message is one <id>.msg file (with, after an
	// Update, its state in <id>.env) rather than <id>.body and <id>.env,
	// as versions before it wrote them.
	single bool
	// log, when set, says the message is in the message log there; its
	// state is the one in the index (an Update moves it to a file).
	log *logRef
}

// Open opens the queue in dir, creating it (0700) if needed. It takes an
// exclusive lock on dir/lock and fails with an error wrapping ErrLocked if
// another Queue holds it. It deletes what interrupted operations left
// behind and loads every stored message.
func Open(dir string, opts Options) (*Queue, error) {
	return open(dir, opts, defaultHooks())
}

func open(dir string, opts Options, h hooks) (*Queue, error) {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LogMaxMessage == 0 {
		opts.LogMaxMessage = DefaultLogMaxMessage
	}
	if opts.SegmentSize <= 0 {
		opts.SegmentSize = DefaultSegmentSize
	}
	if opts.LogSegments <= 0 {
		opts.LogSegments = DefaultLogSegments
	}
	if err := makeDir(dir); err != nil {
		return nil, fmt.Errorf("create queue directory %s: %w: %w", dir, ErrStorage, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		_ = unlockDir(lock)
		return nil, fmt.Errorf("open queue directory: %w: %w", ErrStorage, err)
	}
	subdirs, err := openShards(dir, d)
	if err != nil {
		d.Close()
		_ = unlockDir(lock)
		return nil, fmt.Errorf("open queue directory: %w: %w", ErrStorage, err)
	}
	q := &Queue{
		dir:        dir,
		opts:       opts,
		hooks:      h,
		lock:       lock,
		dirFile:    d,
		subdirs:    subdirs,
		syncReqs:   make(chan chan error, 1024),
		commitDone: make(chan struct{}),
		index:      make(map[string]*entry),
	}
	q.bodyWriters.New = func() any { return bufio.NewWriterSize(nil, 64<<10) }
	q.recordBufs.New = func() any {
		b := make([]byte, 0, recordBufSize)
		return &b
	}
	err = q.load()
	if err == nil {
		err = q.openLog()
	}
	if err != nil {
		if q.log != nil {
			_ = q.log.closeFiles()
		}
		q.closeDirs()
		_ = unlockDir(lock)
		return nil, err
	}
	go q.commitLoop()
	q.log.start()
	q.compactStop, q.compactDone = make(chan struct{}), make(chan struct{})
	go q.compactLoop(q.compactStop, q.compactDone)
	return q, nil
}

// makeDir creates dir and every missing parent, and syncs each directory
// that gained an entry, so that a queue created just before a crash still
// has its directory afterwards.
func makeDir(dir string) error {
	dir = filepath.Clean(dir)
	if fi, err := os.Stat(dir); err == nil {
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", dir)
		}
		return nil
	}
	// The first ancestor that exists is the first one to sync.
	top := dir
	for {
		parent := filepath.Dir(top)
		if _, err := os.Stat(parent); err == nil || parent == top {
			break
		}
		top = parent
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := syncPath(filepath.Dir(p)); err != nil {
			return err
		}
		if p == top {
			return nil
		}
	}
}

func syncPath(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// load moves messages of the flat layout into the subdirectories, reads
// each subdirectory, clears leftovers and fills the index.
func (q *Queue) load() error {
	if err := q.migrateFlat(); err != nil {
		return err
	}
	for _, sh := range shards {
		if err := q.loadShard(string(sh)); err != nil {
			return err
		}
	}
	// Not needed for correctness (leftovers are found again), but it
	// makes the clean-up and quarantine moves stick.
	if err := q.syncDirs(); err != nil {
		return fmt.Errorf("sync queue directory %s: %w: %w", q.dir, ErrStorage, err)
	}
	return nil
}

// parseNames sorts a directory's names into bodies, envelopes and
// leftovers (envelopes being written); other names are not ours.
func parseNames(names []string) (bodies map[string]bool, envs, garbage []string) {
	bodies, envs, _, garbage = parseShardNames(names)
	return bodies, envs, garbage
}

// parseShardNames also finds the single-file messages (<id>.msg) and
// their envelopes; a *.msg.tmp is a Put that did not finish.
func parseShardNames(names []string) (bodies map[string]bool, envs, msgs, garbage []string) {
	bodies = make(map[string]bool)
	for _, n := range names {
		id, kind, ok := strings.Cut(n, ".")
		if !ok || !validID(id) {
			continue // not ours: leave it alone
		}
		switch kind {
		case "body":
			bodies[id] = true
		case "env":
			envs = append(envs, id)
		case "msg":
			msgs = append(msgs, id)
		case "env.tmp", "msg.tmp":
			garbage = append(garbage, n)
		}
	}
	return bodies, envs, msgs, garbage
}

func (q *Queue) loadShard(sh string) error {
	dir := filepath.Join(q.dir, sh)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read queue directory %s: %w: %w", dir, ErrStorage, err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	bodies, envs, msgs, garbage := parseShardNames(names)
	hasEnv := make(map[string]bool, len(envs))
	for _, id := range envs {
		hasEnv[id] = true
	}
	single := make(map[string]bool, len(msgs))
	for _, id := range msgs {
		if shardOf(id) != sh {
			garbage = append(garbage, id+".msg")
			continue
		}
		single[id] = true // a stray <id>.body beside it is cleared below
		if err := q.loadInto(id, true, func() (*Message, error) { return q.loadMsg(id, hasEnv[id]) }); err != nil {
			return err
		}
	}
	for _, id := range envs {
		if single[id] {
			continue // a single-file message's state, loaded above
		}
		if !bodies[id] || shardOf(id) != sh {
			garbage = append(garbage, id+".env")
			continue
		}
		delete(bodies, id)
		if err := q.loadInto(id, false, func() (*Message, error) { return q.loadOne(id) }); err != nil {
			return err
		}
	}
	for id := range bodies {
		garbage = append(garbage, id+".body")
	}
	for _, n := range garbage {
		if err := removeQuietly(filepath.Join(dir, n)); err != nil {
			return fmt.Errorf("remove leftover %s: %w: %w", n, ErrStorage, err)
		}
	}
	return nil
}

// migrateFlat moves the messages of the flat layout (every file in the
// queue directory itself, as earlier versions kept them) into their
// subdirectories. Both files of a message are hard-linked into place and
// the links made durable before the old names go, so a crash at any point
// leaves each message whole in at least one place; the next Open finishes
// the move. Flat leftovers are cleared as in a subdirectory.
func (q *Queue) migrateFlat() error {
	names, err := q.dirFile.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("read queue directory %s: %w: %w", q.dir, ErrStorage, err)
	}
	bodies, envs, garbage := parseNames(names)
	if len(bodies) == 0 && len(envs) == 0 && len(garbage) == 0 {
		return nil
	}
	flat := func(id, kind string) string { return filepath.Join(q.dir, id+"."+kind) }
	var moved []string
	for _, id := range envs {
		if !bodies[id] {
			garbage = append(garbage, id+".env")
			continue
		}
		delete(bodies, id)
		moved = append(moved, id)
		if _, err := os.Stat(q.path(id, "env")); err == nil {
			continue // linked before a crash; only the old names are left
		}
		// A body linked before a crash, without its envelope yet.
		if err := removeQuietly(q.path(id, "body")); err != nil {
			return storageErr("move message "+id, err)
		}
		if err := os.Link(flat(id, "body"), q.path(id, "body")); err != nil {
			return storageErr("move message "+id, err)
		}
		if err := os.Link(flat(id, "env"), q.path(id, "env")); err != nil {
			return storageErr("move message "+id, err)
		}
	}
	if err := q.syncDirs(); err != nil {
		return storageErr("move messages", err)
	}
	for _, id := range moved {
		garbage = append(garbage, id+".env", id+".body")
	}
	for id := range bodies {
		garbage = append(garbage, id+".body")
	}
	// The envelope before the body, as Remove does: a crash in between
	// leaves a body without an envelope, which is cleared next time.
	for _, n := range garbage {
		if err := removeQuietly(filepath.Join(q.dir, n)); err != nil {
			return fmt.Errorf("remove leftover %s: %w: %w", n, ErrStorage, err)
		}
	}
	return nil
}

// loadInto loads a message into the index, or quarantines it when it
// cannot be trusted; only a failing disk or a newer format is an error.
func (q *Queue) loadInto(id string, single bool, load func() (*Message, error)) error {
	m, err := load()
	if errors.Is(err, ErrStorage) || errors.Is(err, errNewerFormat) {
		return err
	}
	if err != nil {
		return q.quarantine(id, err)
	}
	q.index[id] = &entry{msg: m, single: single}
	q.lastNanos = max(q.lastNanos, idNanos(id))
	return nil
}

func (q *Queue) loadOne(id string) (*Message, error) {
	b, err := os.ReadFile(q.path(id, "env"))
	if err != nil {
		return nil, fmt.Errorf("read envelope %s: %w: %w", id, ErrStorage, err)
	}
	fi, err := os.Stat(q.path(id, "body"))
	if err != nil {
		return nil, fmt.Errorf("stat body %s: %w: %w", id, ErrStorage, err)
	}
	return checkEnvelope(id, b, q.path(id, "env"), fi.Size())
}

// loadMsg reads a single-file message: its envelope is the one written
// after the message in <id>.msg, or, once Update has run, <id>.env.
func (q *Queue) loadMsg(id string, updated bool) (*Message, error) {
	f, err := os.Open(q.path(id, "msg"))
	if err != nil {
		return nil, fmt.Errorf("open message %s: %w: %w", id, ErrStorage, err)
	}
	defer f.Close()
	size, b, err := readTrailer(f)
	if err != nil {
		return nil, err
	}
	where := q.path(id, "msg")
	if updated {
		where = q.path(id, "env")
		if b, err = os.ReadFile(where); err != nil {
			return nil, fmt.Errorf("read envelope %s: %w: %w", id, ErrStorage, err)
		}
	}
	return checkEnvelope(id, b, where, size)
}

// checkEnvelope decodes the envelope of message id, read from where, and
// checks that it is this message's and that the message has size bytes.
func checkEnvelope(id string, b []byte, where string, size int64) (*Message, error) {
	m, err := decodeEnvelope(b)
	if err != nil {
		if errors.Is(err, errNewerFormat) {
			return nil, fmt.Errorf("envelope %s: %w", where, err)
		}
		return nil, err
	}
	if m.ID != id {
		return nil, fmt.Errorf("envelope names message %q", m.ID)
	}
	if size != m.Size {
		return nil, fmt.Errorf("message has %d bytes, envelope says %d", size, m.Size)
	}
	return m, nil
}

// A single-file message is the message as received, then its envelope,
// then a trailer: the envelope's length (8 bytes, big-endian) and
// trailerMagic.
const trailerMagic = "sndcnq01"

const trailerLen int64 = 8 + int64(len(trailerMagic))

func appendTrailer(envelope []byte) []byte {
	b := binary.BigEndian.AppendUint64(envelope, uint64(len(envelope)))
	return append(b, trailerMagic...)
}

// readTrailer returns the size of the message part of f and the envelope
// written after it.
func readTrailer(f *os.File) (int64, []byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, nil, fmt.Errorf("stat %s: %w: %w", f.Name(), ErrStorage, err)
	}
	var t [trailerLen]byte
	if fi.Size() < trailerLen {
		return 0, nil, fmt.Errorf("%s is too short to be a message", f.Name())
	}
	if _, err := f.ReadAt(t[:], fi.Size()-trailerLen); err != nil {
		return 0, nil, fmt.Errorf("read %s: %w: %w", f.Name(), ErrStorage, err)
	}
	if string(t[8:]) != trailerMagic {
		return 0, nil, fmt.Errorf("%s has no message trailer", f.Name())
	}
	n := binary.BigEndian.Uint64(t[:8])
	if n > uint64(fi.Size()-trailerLen) || n > maxEnvelope {
		return 0, nil, fmt.Errorf("%s: envelope length %d does not fit", f.Name(), n)
	}
	env := make([]byte, n)
	start := fi.Size() - trailerLen - int64(n)
	if _, err := f.ReadAt(env, start); err != nil {
		return 0, nil, fmt.Errorf("read %s: %w: %w", f.Name(), ErrStorage, err)
	}
	return start, env, nil
}

// maxEnvelope bounds what readTrailer believes: an envelope holds a few
// thousand recipients at most.
const maxEnvelope = 64 << 20

// quarantine moves an unusable message to corrupt/ so that nothing
// acknowledged is deleted on a guess; Quarantined reports it.
func (q *Queue) quarantine(id string, why error) error {
	cdir := filepath.Join(q.dir, "corrupt")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return fmt.Errorf("quarantine message %s: %w: %w", id, ErrStorage, err)
	}
	for _, kind := range []string{"msg", "body", "env"} {
		name := id + "." + kind
		if _, err := os.Stat(q.path(id, kind)); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err := os.Rename(q.path(id, kind), filepath.Join(cdir, name)); err != nil {
			return fmt.Errorf("quarantine message %s: %w: %w", id, ErrStorage, err)
		}
	}
	q.quarantined = append(q.quarantined,
		fmt.Errorf("message %s moved to %s: %w", id, cdir, why))
	return nil
}

// Quarantined lists the messages Open found unusable and moved to the
// corrupt/ subdirectory, each error naming the message and the reason, so
// the caller can report them.
func (q *Queue) Quarantined() []error {
	q.mu.Lock()
	defer q.mu.Unlock()
	return slices.Clone(q.quarantined)
}

// Close waits for operations in progress (the caller stops its writers
// first: a Put blocked on a slow reader holds Close up), stops the
// committer and releases the directory. Everything acknowledged is already
// durable; the one directory sync here makes the last removals durable
// too, so a clean restart delivers nothing twice.
func (q *Queue) Close() error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return ErrClosed
	}
	q.closed = true
	q.mu.Unlock()
	close(q.compactStop)
	<-q.compactDone
	q.inflight.Wait()
	close(q.syncReqs)
	<-q.commitDone
	close(q.log.reqs)
	<-q.log.done
	err := q.syncDirs()
	if derr := q.log.dropEmpty(); err == nil {
		err = derr
	}
	if cerr := q.log.closeFiles(); err == nil {
		err = cerr
	}
	if cerr := q.closeDirs(); err == nil {
		err = cerr
	}
	if lerr := unlockDir(q.lock); err == nil {
		err = lerr
	}
	if err != nil {
		return fmt.Errorf("close queue %s: %w", q.dir, err)
	}
	return nil
}

// begin registers an operation that may use the committer; end must follow.
func (q *Queue) begin() error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return ErrClosed
	}
	q.inflight.Add(1)
	return nil
}

func (q *Queue) end() { q.inflight.Done() }

func (q *Queue) path(id, kind string) string {
	return filepath.Join(q.dir, shardOf(id), id+"."+kind)
}

// shards name the subdirectories messages are spread over: the last hex
// digit of the id, which is random. Creating and deleting files in one
// directory from many sessions at once serialises on that directory's
// lock and, on ext4, on scanning for inodes not recently freed; sixteen
// directories share that work out (BenchmarkPut/parallel-nosync: two to
// four times the rate of one).
const shards = "0123456789abcdef"

func shardOf(id string) string { return id[len(id)-1:] }

// openShards creates the subdirectories that are missing (and syncs the
// queue directory if it did) and opens them all.
func openShards(dir string, top *os.File) ([]*os.File, error) {
	created := false
	for _, sh := range shards {
		err := os.Mkdir(filepath.Join(dir, string(sh)), 0o700)
		if err == nil {
			created = true
		} else if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
	}
	if created {
		if err := top.Sync(); err != nil {
			return nil, err
		}
	}
	var out []*os.File
	for _, sh := range shards {
		f, err := os.Open(filepath.Join(dir, string(sh)))
		if err != nil {
			for _, o := range out {
				o.Close()
			}
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// syncDirs syncs every subdirectory and the queue directory. A directory
// without changes since the last sync costs next to nothing; the one
// journal commit is shared.
func (q *Queue) syncDirs() error {
	var first error
	for _, d := range append([]*os.File{q.dirFile}, q.subdirs...) {
		if err := q.hooks.syncDir(d); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (q *Queue) closeDirs() error {
	err := q.dirFile.Close()
	for _, d := range q.subdirs {
		if cerr := d.Close(); err == nil {
			err = cerr
		}
	}
	return err
}

// newID returns a fresh id: arrival nanoseconds, strictly increasing, and
// 32 random bits against collisions with ids of a run whose clock was
// ahead.
func (q *Queue) newID(now time.Time) string {
	var rnd [4]byte
	_, _ = rand.Read(rnd[:]) // crypto/rand.Read never fails
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		ns := max(now.UnixNano(), q.lastNanos+1, 0)
		q.lastNanos = ns
		id := fmt.Sprintf("%016x%s", uint64(ns), hex.EncodeToString(rnd[:]))
		if _, dup := q.index[id]; !dup {
			return id
		}
	}
}

func idNanos(id string) int64 {
	n, _ := strconv.ParseUint(id[:16], 16, 64)
	return int64(n)
}

// readErrorReader remembers the error of the source, so that Put can tell
// a client that went away (the caller's problem) from a disk that failed
// (ErrStorage).
type readErrorReader struct {
	r   io.Reader
	err error
}

func (r *readErrorReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Put stores a new message: the body read from r, then the envelope with
// every recipient Pending, in the message log or, when larger than
// LogMaxMessage, streamed into a file of its own. It returns nil only when
// both are durable, and only then does the message show in Messages and
// Get. Concurrent Puts share their syncs (see the package comment).
//
// If r fails, Put returns that error (not ErrStorage) and stores nothing;
// the caller bounds the size by wrapping r. A failing write or sync
// returns an error wrapping ErrStorage and stores nothing.
func (q *Queue) Put(from string, rcpts []string, meta map[string]string, r io.Reader) (*Message, error) {
	env := Envelope{From: from, Meta: meta}
	for _, a := range rcpts {
		env.Recipients = append(env.Recipients, Recipient{Address: a})
	}
	return q.PutEnvelope(env, r)
}

// PutEnvelope is Put with the RFC 3461 parameters of the envelope.
func (q *Queue) PutEnvelope(env Envelope, r io.Reader) (*Message, error) {
	if err := q.begin(); err != nil {
		return nil, err
	}
	defer q.end()

	now := q.opts.Now()
	m := &Message{
		ID:         q.newID(now),
		From:       env.From,
		Received:   now.UTC().Round(0),
		Meta:       cloneMeta(env.Meta),
		Return:     env.Return,
		EnvelopeID: env.EnvelopeID,
	}
	for _, rc := range env.Recipients {
		m.Recipients = append(m.Recipients, Recipient{
			Address: rc.Address, Notify: slices.Clone(rc.Notify), ORCPT: rc.ORCPT,
		})
	}
	if err := validateMessage(m); err != nil {
		return nil, fmt.Errorf("store message: %w", err)
	}
	var ref *logRef
	var err error
	if q.opts.LogMaxMessage > 0 {
		ref, err = q.putLogged(m, r)
	} else {
		err = q.put(m, r)
	}
	if err != nil {
		// Take back everything this Put created, so that the client's
		// retry does not become a duplicate after the next Open. (A
		// record the log wrote is taken back by a removal record.)
		_ = removeQuietly(q.path(m.ID, "msg"))
		_ = removeQuietly(q.path(m.ID, "msg.tmp"))
		return nil, fmt.Errorf("store message %s: %w", m.ID, err)
	}
	q.mu.Lock()
	q.index[m.ID] = &entry{msg: m, single: ref == nil, log: ref}
	q.mu.Unlock()
	return m.clone(), nil
}

// recordBufSize is the buffer a Put into the log starts with; a message
// that fits costs no allocation.
const recordBufSize = 64 << 10

// putLogged reads the message into memory and, if it is at most
// LogMaxMessage bytes, appends it to the log; a larger one, or one that
// would take more than the log's share of memory, goes to a file of its
// own (and ref is nil).
func (q *Queue) putLogged(m *Message, r io.Reader) (ref *logRef, err error) {
	// Buffers go back to the pool whatever their size (at most about
	// LogMaxMessage): a 1 MB message then costs no allocation either.
	// What a buffer holds beyond recordBufSize counts against logMemory
	// while a Put uses it.
	bp := q.recordBufs.Get().(*[]byte)
	var held int64 // of q.log.memory
	if extra := int64(cap(*bp) - recordBufSize); extra > 0 {
		if q.log.memory.Add(extra) > logMemory {
			q.log.memory.Add(-extra)
			*bp = make([]byte, 0, recordBufSize)
		} else {
			held = extra
		}
	}
	buf := (*bp)[:logHeaderLen]
	defer func() {
		q.log.memory.Add(-held)
		*bp = buf[:0]
		q.recordBufs.Put(bp)
	}()
	limit := q.opts.LogMaxMessage
	for {
		if len(buf) == cap(buf) {
			// Room for one byte more than limit at most: enough to tell
			// that a message is too large.
			grow := min(int64(cap(buf)), limit+logHeaderLen+1-int64(cap(buf)))
			if q.log.memory.Add(grow) > logMemory {
				q.log.memory.Add(-grow)
				break
			}
			held += grow
			buf = slices.Grow(buf, int(grow))
		}
		n, rerr := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if int64(len(buf)-logHeaderLen) > limit {
			break
		}
		if rerr == io.EOF {
			return q.putRecord(m, &buf)
		}
		if rerr != nil {
			return nil, fmt.Errorf("read body: %w", rerr)
		}
	}
	// Too large for the log: stream it, beginning with what was read.
	return nil, q.put(m, io.MultiReader(bytes.NewReader(buf[logHeaderLen:]), r))
}

// putRecord appends the message in *buf (after logHeaderLen bytes of
// room) and its envelope to the log and waits until it is durable.
func (q *Queue) putRecord(m *Message, buf *[]byte) (*logRef, error) {
	m.Size = int64(len(*buf) - logHeaderLen)
	env, err := encodeEnvelope(m)
	if err != nil {
		return nil, fmt.Errorf("encode envelope: %w", err)
	}
	*buf = sealPut(*buf, m.ID, env)
	seg, off, err := q.log.append(*buf)
	if err != nil {
		return nil, err
	}
	return &logRef{seg: seg, off: off + logHeaderLen}, nil
}

// put writes the message to its own file and waits for the directory
// sync; see putFile.
func (q *Queue) put(m *Message, r io.Reader) error {
	if err := q.putFile(m, r); err != nil {
		return err
	}
	return q.syncDir()
}

// putFile writes the message to <id>.msg.tmp with its envelope after it,
// syncs it and renames it to <id>.msg: one file, one sync. The name
// appears only once the file is durable; the caller syncs the directory.
func (q *Queue) putFile(m *Message, r io.Reader) error {
	f, size, err := q.writeBody(m.ID, r)
	if err != nil {
		return err
	}
	defer f.Close()
	m.Size = size
	b, err := encodeEnvelope(m)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	if _, err := f.Write(appendTrailer(b)); err != nil {
		return storageErr("write envelope", err)
	}
	if err := q.hooks.syncFile(f); err != nil {
		return storageErr("sync message", err)
	}
	if err := f.Close(); err != nil {
		return storageErr("close message", err)
	}
	if err := os.Rename(q.path(m.ID, "msg.tmp"), q.path(m.ID, "msg")); err != nil {
		return storageErr("rename message", err)
	}
	return nil
}

// writeBody streams r into <id>.msg.tmp and returns the file, written but
// not yet synced.
func (q *Queue) writeBody(id string, r io.Reader) (*os.File, int64, error) {
	f, err := os.OpenFile(q.path(id, "msg.tmp"), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, 0, storageErr("create message", err)
	}
	src := &readErrorReader{r: r}
	bw := q.bodyWriters.Get().(*bufio.Writer)
	defer q.bodyWriters.Put(bw)
	// Hiding the file's ReadFrom makes bufio read straight into its own
	// buffer and write full buffers: memory is that one pooled buffer
	// whatever the size, and a reader that returns a line at a time still
	// makes large writes.
	bw.Reset(struct{ io.Writer }{q.hooks.wrapBody(f)})
	defer bw.Reset(nil)
	n, err := bw.ReadFrom(src)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		f.Close()
		if src.err != nil {
			return nil, 0, fmt.Errorf("read body: %w", src.err)
		}
		return nil, 0, storageErr("write body", err)
	}
	return f, n, nil
}

// writeFile creates name with b in it and returns it open, not synced.
func writeFile(name string, b []byte) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// writeEnvelope writes m's envelope to <id>.env.tmp, syncs it and renames
// it to <id>.env. The caller then waits for a directory sync.
func (q *Queue) writeEnvelope(m *Message) error {
	b, err := encodeEnvelope(m)
	if err != nil {
		return fmt.Errorf("encode envelope: %w", err)
	}
	tmp := q.path(m.ID, "env.tmp")
	f, err := writeFile(tmp, b)
	if err != nil {
		return storageErr("write envelope", err)
	}
	if err := q.hooks.syncFile(f); err != nil {
		f.Close()
		return storageErr("sync envelope", err)
	}
	if err := f.Close(); err != nil {
		return storageErr("close envelope", err)
	}
	if err := os.Rename(tmp, q.path(m.ID, "env")); err != nil {
		return storageErr("rename envelope", err)
	}
	return nil
}

// cloneMeta copies meta, storing an empty map as nil as a reload would.
func cloneMeta(meta map[string]string) map[string]string {
	if len(meta) == 0 {
		return nil
	}
	return maps.Clone(meta)
}

func storageErr(op string, err error) error {
	return fmt.Errorf("%s: %w: %w", op, ErrStorage, err)
}

// syncDir waits for a directory fsync that starts after this call, which
// therefore covers every rename and unlink the caller has done.
func (q *Queue) syncDir() error {
	done := make(chan error, 1)
	q.syncReqs <- done
	if err := <-done; err != nil {
		return storageErr("sync queue directory", err)
	}
	return nil
}

// commitLoop is the committer: one directory fsync for every waiter that
// arrived before it started.
func (q *Queue) commitLoop() {
	defer close(q.commitDone)
	var batch []chan error
	for {
		first, ok := <-q.syncReqs
		if !ok {
			return
		}
		batch = append(batch[:0], first)
		open := true
		if d := q.opts.MaxBatchDelay; d > 0 {
			timer := time.NewTimer(d)
		gather:
			for {
				select {
				case w, ok := <-q.syncReqs:
					if !ok {
						open = false
						break gather
					}
					batch = append(batch, w)
				case <-timer.C:
					break gather
				}
			}
			timer.Stop()
		}
	drain:
		for open {
			select {
			case w, ok := <-q.syncReqs:
				if !ok {
					break drain
				}
				batch = append(batch, w)
			default:
				break drain
			}
		}
		q.batched.Add(int64(len(batch)))
		err := q.syncDirs()
		q.syncs.Add(1)
		for _, w := range batch {
			w <- err
		}
		clear(batch)
	}
}

// Messages returns copies of every stored message in id (arrival) order.
func (q *Queue) Messages() []*Message {
	q.mu.Lock()
	out := make([]*Message, 0, len(q.index))
	for _, e := range q.index {
		out = append(out, e.msg.clone())
	}
	q.mu.Unlock()
	slices.SortFunc(out, func(a, b *Message) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// Len is the number of stored messages.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.index)
}

// Get returns a copy of the message, or an error wrapping ErrNotFound.
func (q *Queue) Get(id string) (*Message, error) {
	e, err := q.lookup(id)
	if err != nil {
		return nil, err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	return e.msg.clone(), nil
}

func (q *Queue) lookup(id string) (*entry, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return nil, ErrClosed
	}
	e, ok := q.index[id]
	if !ok {
		return nil, fmt.Errorf("message %q: %w", id, ErrNotFound)
	}
	return e, nil
}

// Body opens the stored message (header and body) for reading; the caller
// closes it. It stays readable even if the message is removed meanwhile.
func (q *Queue) Body(id string) (io.ReadCloser, error) {
	// Only ids in the index reach the file system, so an id from outside
	// (the admin socket) cannot name another file.
	e, err := q.lookup(id)
	if err != nil {
		return nil, err
	}
	kind := "body"
	q.mu.Lock()
	single, size, ref := e.single, e.msg.Size, e.log
	q.mu.Unlock()
	if ref != nil {
		if rc, ok := q.log.open(ref, size); ok {
			return rc, nil
		}
		// Removed, or moved to its own file meanwhile.
		var logged bool
		q.mu.Lock()
		single, logged = e.single, e.log != nil
		q.mu.Unlock()
		if logged || !single {
			return nil, fmt.Errorf("message %q: %w", id, ErrNotFound)
		}
	}
	if single {
		kind = "msg"
	}
	f, err := os.Open(q.path(id, kind))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("message %q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open body of %s: %w: %w", id, ErrStorage, err)
	}
	if !single {
		return f, nil
	}
	// The envelope follows the message in the file.
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(f, 0, size), f}, nil
}

// Update durably replaces the recipient state, the meta and the
// Suspended and DelayNotified flags of the stored message m.ID with those
// of m; the other fields are fixed at Put and ignored. It returns when the new state is durable; after a crash the
// stored state is the old or the new, never a mix. LastError text that is
// not valid UTF-8 (a remote server's reply) is stored with U+FFFD in place
// of the bad bytes.
func (q *Queue) Update(m *Message) error {
	if err := q.begin(); err != nil {
		return err
	}
	defer q.end()
	e, err := q.lookup(m.ID)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return fmt.Errorf("message %q: %w", m.ID, ErrNotFound)
	}
	q.mu.Lock()
	n := e.msg.clone()
	q.mu.Unlock()
	n.Recipients = make([]Recipient, len(m.Recipients))
	for i, r := range m.Recipients {
		r.NextAttempt = r.NextAttempt.UTC().Round(0)
		r.LastAttempt = r.LastAttempt.UTC().Round(0)
		r.LastError = strings.ToValidUTF8(r.LastError, "\uFFFD")
		r.Notify = slices.Clone(r.Notify)
		n.Recipients[i] = r
	}
	n.Meta = cloneMeta(m.Meta)
	n.Suspended, n.DelayNotified = m.Suspended, m.DelayNotified
	if err := validateMessage(n); err != nil {
		return fmt.Errorf("update message %s: %w", m.ID, err)
	}
	q.mu.Lock()
	logged := e.log != nil
	q.mu.Unlock()
	if logged {
		// A message that stays queued leaves the log for a file of its
		// own, so the log only holds what is delivered on first try.
		if err := q.moveToFile(e, n); err != nil {
			return fmt.Errorf("update message %s: %w", m.ID, err)
		}
		return nil
	}
	if err := q.writeEnvelope(n); err != nil {
		_ = removeQuietly(q.path(n.ID, "env.tmp"))
		return fmt.Errorf("update message %s: %w", m.ID, err)
	}
	// From here <id>.env is the new state in the page cache: even if the
	// sync fails, reading it back gives the new state, so the index
	// follows it, and the error tells the caller it may not be durable.
	q.mu.Lock()
	e.msg = n
	q.mu.Unlock()
	if err := q.syncDir(); err != nil {
		return fmt.Errorf("update message %s: %w", m.ID, err)
	}
	return nil
}

// Remove deletes the message: the envelope first, then the body. It does
// not wait for a directory sync: the removal becomes durable with the next
// one (any Put or Update, or Close), and a crash before that brings the
// message back to be delivered again — a duplicate, never a loss, and one
// fsync less on every delivery. A message that is gone from the index is
// gone even if Remove returns an error (a failed body unlink); the next
// Open collects what is left.
func (q *Queue) Remove(id string) error {
	if err := q.begin(); err != nil {
		return err
	}
	defer q.end()
	e, err := q.lookup(id)
	if err != nil {
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.removed {
		return fmt.Errorf("message %q: %w", id, ErrNotFound)
	}
	q.mu.Lock()
	ref := e.log
	q.mu.Unlock()
	if ref != nil {
		// Written with the next batch, not waited for: as below, a crash
		// before it is durable delivers the message again.
		q.log.appendLater(removeRecord(id))
		e.removed = true
		q.mu.Lock()
		delete(q.index, id)
		q.mu.Unlock()
		q.log.release(ref.seg)
		return nil
	}
	// The file that makes it a message goes first: a crash before the
	// second leaves an envelope without a message, or a body without an
	// envelope, both cleared at the next Open.
	first, second := "env", "body"
	if e.single {
		first, second = "msg", "env"
	}
	if err := removeQuietly(q.path(id, first)); err != nil {
		return fmt.Errorf("remove message %s: %w", id, storageErr("remove "+first, err))
	}
	e.removed = true
	q.mu.Lock()
	delete(q.index, id)
	q.mu.Unlock()
	if err := removeQuietly(q.path(id, second)); err != nil {
		return fmt.Errorf("remove message %s: %w", id, storageErr("remove "+second, err))
	}
	return nil
}
