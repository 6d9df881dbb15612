package queue

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// The message log keeps small messages in shared, append-only segment
// files, so that storing one costs a share of one write and one fdatasync
// instead of a file of its own (see the package comment, "The message
// log").

// A record is
//
//	magic     4 bytes  "sclg"
//	length    4 bytes  of the whole record, big-endian
//	kind      1 byte   'P' (a message) or 'R' (a removal)
//	id       24 bytes
//	envelope  4 bytes  the envelope's length, big-endian
//	the message (kind P only), then the envelope (JSON, as in <id>.msg)
//	crc       4 bytes  CRC-32C of everything before it
const (
	logMagic     = "sclg"
	logHeaderLen = 4 + 4 + 1 + idLen + 4
	logCRCLen    = 4

	recPut    byte = 'P'
	recRemove byte = 'R'

	// maxRecord bounds the length a replayed header may claim.
	maxRecord = 1 << 31
)

// Defaults of the Options that shape the log.
const (
	// DefaultLogMaxMessage is the largest message kept in the log; a
	// larger one gets a file of its own and is streamed into it.
	DefaultLogMaxMessage = 1 << 20
	// DefaultSegmentSize is the size at which the log starts a new segment.
	DefaultSegmentSize = 64 << 20
	// DefaultLogSegments is how many segments may pile up behind messages
	// that stay queued before those messages are moved out to files of
	// their own, so the log's disk use stays bounded.
	DefaultLogSegments = 8
	// logMemory bounds the memory all Puts together may hold in message
	// buffers above their first 64 KB; a Put that would exceed it streams
	// its message to a file instead.
	logMemory = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// sealPut turns buf — logHeaderLen bytes of room followed by the message —
// into a put record for id with envelope env.
func sealPut(buf []byte, id string, env []byte) []byte {
	buf = append(buf, env...)
	fillHeader(buf, recPut, id, len(env), len(buf)+logCRCLen)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

// removeRecord says that message id is gone.
func removeRecord(id string) []byte {
	buf := make([]byte, logHeaderLen, logHeaderLen+logCRCLen)
	fillHeader(buf, recRemove, id, 0, logHeaderLen+logCRCLen)
	return binary.BigEndian.AppendUint32(buf, crc32.Checksum(buf, castagnoli))
}

func fillHeader(buf []byte, kind byte, id string, envLen, total int) {
	copy(buf[0:4], logMagic)
	binary.BigEndian.PutUint32(buf[4:8], uint32(total))
	buf[8] = kind
	copy(buf[9:9+idLen], id)
	binary.BigEndian.PutUint32(buf[9+idLen:logHeaderLen], uint32(envLen))
}

// logRecord is a record found by scanSegment.
type logRecord struct {
	kind    byte
	id      string
	off     int64 // of the record in its segment
	total   int64
	bodyOff int64 // of the message in the segment
	bodyLen int64
	env     []byte
}

// readRecord reads the record at off of a segment of size bytes. ok is
// false when there is no intact record there: a torn tail or damage.
func readRecord(f io.ReaderAt, off, size int64, buf *[]byte) (rec logRecord, ok bool, err error) {
	var hdr [logHeaderLen]byte
	if size-off < logHeaderLen+logCRCLen {
		return rec, false, nil
	}
	if _, err := f.ReadAt(hdr[:], off); err != nil {
		return rec, false, err
	}
	total := int64(binary.BigEndian.Uint32(hdr[4:8]))
	envLen := int64(binary.BigEndian.Uint32(hdr[9+idLen:]))
	kind := hdr[8]
	id := string(hdr[9 : 9+idLen])
	if string(hdr[:4]) != logMagic || (kind != recPut && kind != recRemove) || !validID(id) ||
		total < logHeaderLen+logCRCLen || total > maxRecord || total > size-off ||
		envLen > total-logHeaderLen-logCRCLen || (kind == recRemove && total != logHeaderLen+logCRCLen) {
		return rec, false, nil
	}
	rest := total - logHeaderLen
	if int64(cap(*buf)) < rest {
		*buf = make([]byte, rest)
	}
	b := (*buf)[:rest]
	if _, err := f.ReadAt(b, off+logHeaderLen); err != nil {
		return rec, false, err
	}
	sum := crc32.Update(crc32.Checksum(hdr[:], castagnoli), castagnoli, b[:rest-logCRCLen])
	if sum != binary.BigEndian.Uint32(b[rest-logCRCLen:]) {
		return rec, false, nil
	}
	bodyLen := rest - logCRCLen - envLen
	return logRecord{
		kind:    kind,
		id:      id,
		off:     off,
		total:   total,
		bodyOff: off + logHeaderLen,
		bodyLen: bodyLen,
		env:     slices.Clone(b[bodyLen : bodyLen+envLen]),
	}, true, nil
}

// scanSegment calls fn for every intact record of f, in order. Past a
// damaged stretch it looks for the next intact record, so one bad record
// does not hide the ones after it; damaged reports the bytes it skipped
// before an intact record (a torn tail, what a crash leaves, is not
// damage and is not reported).
func scanSegment(f io.ReaderAt, size int64, fn func(logRecord)) (damaged int64, err error) {
	var buf []byte
	skipped := int64(0) // since the last intact record
	for off := int64(0); off < size; {
		rec, ok, err := readRecord(f, off, size, &buf)
		if err != nil {
			return damaged, err
		}
		if ok {
			damaged += skipped
			skipped = 0
			fn(rec)
			off += rec.total
			continue
		}
		next, err := findMagic(f, off+1, size)
		if err != nil {
			return damaged, err
		}
		if next < 0 {
			return damaged, nil
		}
		skipped += next - off
		off = next
	}
	return damaged, nil
}

// findMagic returns the offset of the next logMagic at or after off, or -1.
func findMagic(f io.ReaderAt, off, size int64) (int64, error) {
	const chunk = 64 << 10
	buf := make([]byte, chunk+len(logMagic)-1)
	for ; off < size; off += chunk {
		n, err := f.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
		if err != nil && err != io.EOF {
			return -1, err
		}
		if i := bytes.Index(buf[:n], []byte(logMagic)); i >= 0 {
			return off + int64(i), nil
		}
	}
	return -1, nil
}

// segment is one file of the log, named by a sequence number.
type segment struct {
	path string
	f    *os.File

	// Only the committer goroutine uses these.
	size   int64 // bytes of records written
	zeroed int64 // bytes of the file written with zeros ahead of them
	broken bool  // a write or sync failed: nothing more is appended

	// Guarded by msgLog.mu.
	live     int  // messages whose current copy is here
	refs     int  // Body readers open on f
	unlinked bool // the file is deleted
	closed   bool // f is closed
}

// logRef locates a logged message's bytes.
type logRef struct {
	seg *segment
	off int64 // of the message in the segment
}

// logReq is one record on its way to the committer. done is nil for a
// record nobody waits for (a removal), which is written with the next
// batch but does not by itself cost a sync.
type logReq struct {
	rec  []byte
	done chan error
	// Set by the committer before it answers.
	seg *segment
	off int64
}

// msgLog is the writing side of the log: one committer goroutine appends
// every record and answers the waiters after one fdatasync per batch.
type msgLog struct {
	dir         string
	dirFile     *os.File
	hooks       *hooks
	segmentSize int64

	reqs chan *logReq
	done chan struct{}

	mu      sync.Mutex
	segs    []*segment // oldest first; records are appended to the last
	nextSeq uint64     // committer only, once running

	scratch []byte   // committer only: a batch in one write
	carry   [][]byte // committer only: removals of a failed batch
	syncs   atomic.Int64
	pending atomic.Int64 // bytes written since the last sync, for Close
	// compact is signalled when more than the allowed segments pile up.
	compact chan struct{}
	maxSegs int
	memory  atomic.Int64 // bytes of Put buffers above the first 64 KB
}

func (l *msgLog) start() {
	l.reqs = make(chan *logReq, 1024)
	l.done = make(chan struct{})
	go l.run()
}

// append hands rec to the committer and returns once it is durable, with
// where it went.
func (l *msgLog) append(rec []byte) (*segment, int64, error) {
	r := &logReq{rec: rec, done: make(chan error, 1)}
	l.reqs <- r
	if err := <-r.done; err != nil {
		return nil, 0, err
	}
	return r.seg, r.off, nil
}

// appendLater hands rec to the committer without waiting for it.
func (l *msgLog) appendLater(rec []byte) { l.reqs <- &logReq{rec: rec} }

// maxBatch bounds the bytes one batch writes before it syncs.
const maxBatch = 4 << 20

func (l *msgLog) run() {
	defer close(l.done)
	var batch []*logReq
	for first := range l.reqs {
		batch = append(batch[:0], first)
		size := len(first.rec)
	drain:
		for size < maxBatch {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break drain
				}
				batch = append(batch, r)
				size += len(r.rec)
			default:
				break drain
			}
		}
		l.commit(batch)
		clear(batch)
	}
	// Closing: make the last removals durable too, so a clean restart
	// delivers nothing twice.
	if s := l.last(); s != nil && !s.broken && l.pending.Load() > 0 {
		_ = l.hooks.syncFile(s.f)
	}
}

func (l *msgLog) last() *segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) == 0 {
		return nil
	}
	return l.segs[len(l.segs)-1]
}

// commit writes a batch to the current segment, syncs it if anyone waits
// and answers. After a failure the segment takes no more records (they
// would sit behind a torn one), and the failed puts' removals are written
// to the next segment, so a crash does not bring them back either.
func (l *msgLog) commit(batch []*logReq) {
	wait := false
	for _, r := range batch {
		wait = wait || r.done != nil
	}
	seg, err := l.writable()
	if err == nil && len(l.carry) > 0 {
		err = l.write(seg, l.carry, nil)
		if err == nil {
			l.carry = nil
		}
	}
	if err == nil {
		recs := make([][]byte, len(batch))
		for i, r := range batch {
			recs[i] = r.rec
		}
		err = l.write(seg, recs, batch)
	}
	if err == nil && wait {
		l.pending.Store(0)
		l.syncs.Add(1)
		err = l.hooks.syncFile(seg.f)
	}
	if err != nil {
		if seg != nil {
			seg.broken = true
		}
		for _, r := range batch {
			if r.rec[8] == recPut {
				l.carry = append(l.carry, removeRecord(string(r.rec[9:9+idLen])))
			}
		}
		err = storageErr("write message log", err)
	} else {
		l.mu.Lock()
		for _, r := range batch {
			if r.rec[8] == recPut {
				seg.live++
			}
		}
		l.mu.Unlock()
	}
	for _, r := range batch {
		if r.done != nil {
			r.done <- err
		}
	}
}

// zeroAhead is how far ahead of the records a segment is written with
// zeros. Records then overwrite blocks the file already has, and
// fdatasync only has to write them out: an append changes the file's size
// and makes every sync also commit the file system's journal (on ext4
// here, 90 against 160 µs per sync, alone; more beside other files'
// changes). The size changes once per zeroAhead instead.
const zeroAhead = 1 << 20

var zeros [64 << 10]byte

// preallocate writes zeros from seg.zeroed up to past end, rounded up to
// zeroAhead. The batch's sync makes them durable with its records.
func (l *msgLog) preallocate(seg *segment, end int64) error {
	target := (end + zeroAhead - 1) / zeroAhead * zeroAhead
	for seg.zeroed < target {
		b := zeros[:min(int64(len(zeros)), target-seg.zeroed)]
		n, err := l.hooks.writeLog(seg.f, b, seg.zeroed)
		seg.zeroed += int64(n)
		if err == nil && n < len(b) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// write appends recs to seg, in one write when they are small, and
// records where each of reqs (parallel to recs, or nil) went.
func (l *msgLog) write(seg *segment, recs [][]byte, reqs []*logReq) error {
	total := 0
	for _, r := range recs {
		total += len(r)
	}
	if end := seg.size + int64(total); end > seg.zeroed {
		if err := l.preallocate(seg, end); err != nil {
			return err
		}
	}
	off := seg.size
	for i, r := range recs {
		if reqs != nil {
			reqs[i].seg, reqs[i].off = seg, off
		}
		off += int64(len(r))
	}
	var err error
	if len(recs) > 1 && total <= 1<<20 {
		l.scratch = l.scratch[:0]
		for _, r := range recs {
			l.scratch = append(l.scratch, r...)
		}
		err = l.writeAt(seg, l.scratch)
	} else {
		for _, r := range recs {
			if err = l.writeAt(seg, r); err != nil {
				break
			}
		}
	}
	return err
}

func (l *msgLog) writeAt(seg *segment, b []byte) error {
	n, err := l.hooks.writeLog(seg.f, b, seg.size)
	seg.size += int64(n)
	l.pending.Add(int64(n))
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	return err
}

// writable returns the segment to append to, starting a new one when the
// last is full or broken. The new file's name is synced into the log
// directory before anything in it is acknowledged.
func (l *msgLog) writable() (*segment, error) {
	if s := l.last(); s != nil && !s.broken && s.size < l.segmentSize {
		return s, nil
	}
	seq := l.nextSeq
	l.nextSeq++
	path := filepath.Join(l.dir, segmentName(seq))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create log segment: %w", err)
	}
	if err := l.hooks.syncDir(l.dirFile); err != nil {
		f.Close()
		_ = os.Remove(path)
		return nil, fmt.Errorf("sync log directory: %w", err)
	}
	s := &segment{path: path, f: f}
	l.mu.Lock()
	l.segs = append(l.segs, s)
	l.collectLocked()
	over := len(l.segs) > l.maxSegs
	l.mu.Unlock()
	if over {
		select {
		case l.compact <- struct{}{}:
		default:
		}
	}
	return s, nil
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.log", seq) }

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".log")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 64)
	return n, err == nil
}

// release drops one live message from seg (removed, or moved to a file of
// its own) and deletes the segments nothing needs any more.
func (l *msgLog) release(seg *segment) {
	l.mu.Lock()
	defer l.mu.Unlock()
	seg.live--
	l.collectLocked()
}

// collectLocked deletes segments without live messages, oldest first and
// never the one being appended to. Oldest first, because a removal record
// in a later segment must outlive the message it removes in an earlier
// one: otherwise a crash could bring the message back. The unlink is not
// synced: a segment that returns after a crash holds only messages that
// later records remove, or that are delivered again (a duplicate, never a
// loss), as with Remove.
func (l *msgLog) collectLocked() {
	for len(l.segs) > 1 && l.segs[0].live == 0 {
		s := l.segs[0]
		_ = os.Remove(s.path)
		s.unlinked = true
		if s.refs == 0 && !s.closed {
			s.closed = true
			s.f.Close()
		}
		l.segs = l.segs[1:]
	}
}

// open returns a reader of n bytes at ref, or false when the segment is
// gone (the message was removed meanwhile).
func (l *msgLog) open(ref *logRef, n int64) (io.ReadCloser, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if ref.seg.closed {
		return nil, false
	}
	ref.seg.refs++
	return &segmentReader{SectionReader: io.NewSectionReader(ref.seg.f, ref.off, n), l: l, seg: ref.seg}, true
}

type segmentReader struct {
	*io.SectionReader
	l    *msgLog
	seg  *segment
	once sync.Once
}

func (r *segmentReader) Close() error {
	r.once.Do(func() {
		r.l.mu.Lock()
		defer r.l.mu.Unlock()
		r.seg.refs--
		if r.seg.refs == 0 && r.seg.unlinked && !r.seg.closed {
			r.seg.closed = true
			r.seg.f.Close()
		}
	})
	return nil
}

// oldest returns the oldest segment when more than the allowed number pile
// up, else nil.
func (l *msgLog) oldest() *segment {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.segs) <= l.maxSegs {
		return nil
	}
	return l.segs[0]
}

// dropEmpty deletes the segments when none holds a live message, so a
// queue closed empty leaves an empty log; the committer has stopped.
func (l *msgLog) dropEmpty() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.segs {
		if s.live > 0 {
			return nil
		}
	}
	for _, s := range l.segs {
		if err := removeQuietly(s.path); err != nil {
			return storageErr("remove log segment", err)
		}
		s.unlinked = true
	}
	if len(l.segs) > 0 {
		return l.hooks.syncDir(l.dirFile)
	}
	return nil
}

// closeFiles closes every segment; the committer has stopped.
func (l *msgLog) closeFiles() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	for _, s := range l.segs {
		if !s.closed {
			s.closed = true
			if cerr := s.f.Close(); err == nil {
				err = cerr
			}
		}
	}
	if cerr := l.dirFile.Close(); err == nil {
		err = cerr
	}
	return err
}

// errLogDamaged describes bytes of a segment that held no intact record
// although intact records followed.
var errLogDamaged = errors.New("damaged log segment")

// openLog opens the log directory, creating it if needed, and replays what
// an earlier run left there: every message still live in it is moved to a
// file of its own (unless one already holds it: a file is always the newer
// copy), and the segments are deleted. So the log of a running queue only
// ever holds what this run put into it.
func (q *Queue) openLog() error {
	dir := filepath.Join(q.dir, "log")
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		if err := q.hooks.syncDir(q.dirFile); err != nil {
			return storageErr("create log directory", err)
		}
	case !errors.Is(err, os.ErrExist):
		return storageErr("create log directory", err)
	}
	d, err := os.Open(dir)
	if err != nil {
		return storageErr("open log directory", err)
	}
	q.log = &msgLog{
		dir:         dir,
		dirFile:     d,
		hooks:       &q.hooks,
		segmentSize: q.opts.SegmentSize,
		maxSegs:     q.opts.LogSegments,
		compact:     make(chan struct{}, 1),
	}
	names, err := d.Readdirnames(-1)
	if err != nil {
		return storageErr("read log directory", err)
	}
	var seqs []uint64
	for _, n := range names {
		if seq, ok := parseSegmentName(n); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	if len(seqs) == 0 {
		return nil
	}
	q.log.nextSeq = seqs[len(seqs)-1] + 1
	return q.replayLog(seqs)
}

// replayed is a message found live in an earlier run's log.
type replayed struct {
	f   *os.File
	rec logRecord
}

func (q *Queue) replayLog(seqs []uint64) error {
	live := make(map[string]replayed)
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, seq := range seqs {
		path := filepath.Join(q.log.dir, segmentName(seq))
		f, err := os.Open(path)
		if err != nil {
			return storageErr("open log segment", err)
		}
		files = append(files, f)
		fi, err := f.Stat()
		if err != nil {
			return storageErr("stat log segment", err)
		}
		damaged, err := scanSegment(f, fi.Size(), func(rec logRecord) {
			if rec.kind == recPut {
				live[rec.id] = replayed{f: f, rec: rec}
			} else {
				delete(live, rec.id)
			}
		})
		if err != nil {
			return storageErr("read log segment", err)
		}
		if damaged > 0 {
			q.quarantined = append(q.quarantined,
				fmt.Errorf("log segment %s: %d bytes skipped: %w", path, damaged, errLogDamaged))
		}
	}
	ids := slices.Sorted(func(yield func(string) bool) {
		for id := range live {
			if !yield(id) {
				return
			}
		}
	})
	for _, id := range ids {
		if _, ok := q.index[id]; ok {
			continue // moved to its own file before the crash
		}
		r := live[id]
		where := fmt.Sprintf("%s at %d", r.f.Name(), r.rec.off)
		m, err := checkEnvelope(id, r.rec.env, where, r.rec.bodyLen)
		if errors.Is(err, errNewerFormat) {
			return err
		}
		if err != nil {
			if err := q.quarantineRecord(r, err); err != nil {
				return err
			}
			continue
		}
		if err := q.putFile(m, io.NewSectionReader(r.f, r.rec.bodyOff, r.rec.bodyLen)); err != nil {
			_ = removeQuietly(q.path(id, "msg.tmp"))
			return fmt.Errorf("move logged message %s to its own file: %w", id, err)
		}
		q.index[id] = &entry{msg: m, single: true}
		q.lastNanos = max(q.lastNanos, idNanos(id))
	}
	// The moved messages' names are durable before the segments go.
	if err := q.syncDirs(); err != nil {
		return storageErr("sync queue directory", err)
	}
	for _, seq := range seqs {
		if err := removeQuietly(filepath.Join(q.log.dir, segmentName(seq))); err != nil {
			return storageErr("remove log segment", err)
		}
	}
	if err := q.hooks.syncDir(q.log.dirFile); err != nil {
		return storageErr("sync log directory", err)
	}
	return nil
}

// quarantineRecord copies a logged message whose envelope cannot be used
// to corrupt/<id>.record, the whole record as it was, and reports it.
func (q *Queue) quarantineRecord(r replayed, why error) error {
	cdir := filepath.Join(q.dir, "corrupt")
	if err := os.MkdirAll(cdir, 0o700); err != nil {
		return storageErr("quarantine message "+r.rec.id, err)
	}
	name := filepath.Join(cdir, r.rec.id+".record")
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return storageErr("quarantine message "+r.rec.id, err)
	}
	_, err = io.Copy(f, io.NewSectionReader(r.f, r.rec.off, r.rec.total))
	if err == nil {
		err = q.hooks.syncFile(f)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return storageErr("quarantine message "+r.rec.id, err)
	}
	q.quarantined = append(q.quarantined,
		fmt.Errorf("message %s moved to %s: %w", r.rec.id, name, why))
	return nil
}

// compactLoop moves the messages of the oldest segment to files of their
// own whenever more segments than allowed pile up behind them, so that a
// few messages that stay queued do not keep the log growing.
func (q *Queue) compactLoop(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	for {
		select {
		case <-stop:
			return
		case <-q.log.compact:
		}
		for {
			seg := q.log.oldest()
			if seg == nil {
				break
			}
			if !q.moveOut(seg) {
				return
			}
		}
	}
}

// moveOut moves every message still in seg to its own file; false when the
// queue is closing or the disk refuses.
func (q *Queue) moveOut(seg *segment) bool {
	q.mu.Lock()
	var ids []string
	for id, e := range q.index {
		if e.log != nil && e.log.seg == seg {
			ids = append(ids, id)
		}
	}
	q.mu.Unlock()
	for _, id := range ids {
		if err := q.begin(); err != nil {
			return false
		}
		e, err := q.lookup(id)
		if err == nil {
			e.mu.Lock()
			if !e.removed {
				q.mu.Lock()
				m := e.msg.clone()
				q.mu.Unlock()
				err = q.moveToFile(e, m)
			}
			e.mu.Unlock()
		}
		q.end()
		if err != nil && !errors.Is(err, ErrNotFound) {
			return false
		}
	}
	return true
}

// moveToFile gives the logged message of e a file of its own with state
// n, then removes its copy from the log. The caller holds e.mu.
func (q *Queue) moveToFile(e *entry, n *Message) error {
	q.mu.Lock()
	ref := e.log
	q.mu.Unlock()
	if ref == nil {
		return nil // moved already
	}
	body, ok := q.log.open(ref, n.Size)
	if !ok {
		return fmt.Errorf("message %q: %w", n.ID, ErrNotFound)
	}
	err := q.putFile(n, body)
	body.Close()
	if err == nil {
		err = q.syncDir()
	}
	if err != nil {
		_ = removeQuietly(q.path(n.ID, "msg.tmp"))
		_ = removeQuietly(q.path(n.ID, "msg"))
		return err
	}
	// The file is durable and is the message from now on. The log's copy
	// must be marked removed durably before the file can go (at delivery),
	// or a crash after that would bring the old copy back.
	_, _, lerr := q.log.append(removeRecord(n.ID))
	q.mu.Lock()
	e.msg, e.single, e.log = n, true, nil
	q.mu.Unlock()
	q.log.release(ref.seg)
	return lerr
}
