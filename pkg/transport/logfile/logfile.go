// Package logfile writes and reads the rotating, W3C-like CSV log files that
// Exchange keeps for its transport logs (SMTP send protocol log, message
// tracking log), so that admins can point the tools and habits they have for
// Exchange's logs at sendconn's.
//
// A log directory holds, per prefix, files named <Prefix><yyyymmdd>-<n>.LOG:
// the UTC date the file was created and a counter that starts at 1 each day
// and grows when a file reaches its maximum size. Each file starts with
//
//	#Software: sendconn
//	#Version: <version>
//	#Log-type: <log type>
//	#Date: 2026-11-23T18:02:40.123Z
//	#Fields: date-time,connector-id,...
//
// and then holds one CSV record (RFC 4180 quoting) per line.
//
// The directory is circular like Exchange's: at Open and at every rotation
// the files of the prefix whose last write is older than MaxAge are deleted,
// then the oldest ones until the prefix's files together fit in
// MaxDirectorySize. The file being written is never deleted.
//
// One Writer per directory and prefix, in one process: the Writer decides
// alone when to rotate. Readers (Files, ReadRecords) may run in any process
// while it writes.
package logfile

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults for the zero values of Config, Exchange's defaults for the send
// protocol log (SendProtocolLogMaxFileSize, …MaxDirectorySize, …MaxAge).
const (
	DefaultMaxFileSize      = 10 << 20
	DefaultMaxDirectorySize = 250 << 20
	DefaultMaxAge           = 30 * 24 * time.Hour
)

// TimeLayout is the form of the #Date header and of the date-time fields of
// Exchange's logs: ISO 8601, UTC, milliseconds, "Z".
const TimeLayout = "2006-01-02T15:04:05.000Z"

// Software is the value of the #Software header line.
const Software = "sendconn"

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("log writer is closed")

const (
	dayLayout = "20060102"
	ext       = ".LOG"
)

// Config describes one log: where its files go, what their header says and
// how much of it to keep.
type Config struct {
	Dir    string // created with mode 0750 if missing
	Prefix string // file name prefix, e.g. "SEND" or "MSGTRK"

	LogType string   // #Log-type, e.g. "SMTP Send Protocol Log"
	Version string   // #Version, the sendconn version
	Fields  []string // #Fields, the column names; every Write gives one value per name

	MaxFileSize      int64         // a file is closed before it would grow past this; 0 means DefaultMaxFileSize
	MaxDirectorySize int64         // the prefix's files together; 0 means DefaultMaxDirectorySize
	MaxAge           time.Duration // files whose last write is older are deleted; 0 means DefaultMaxAge

	Now func() time.Time // the clock; nil means time.Now
}

// Writer appends records to the current file of a log and rotates it. Its
// methods are safe for concurrent use.
type Writer struct {
	cfg    Config
	fields string // the #Fields value, joined

	mu      sync.Mutex
	closed  bool
	f       *os.File
	path    string
	day     string // yyyymmdd of f
	n       int    // counter of f
	size    int64  // bytes in f
	hdrSize int64  // bytes of f's header, so every file takes at least one record
}

// Open prepares the log directory and the file to write: today's (UTC)
// highest-numbered file when it has room and the same columns, so that a
// restart continues it, else a new one. It then deletes what the age and
// size limits say is too old.
func Open(cfg Config) (*Writer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("open log: no directory")
	}
	if cfg.Prefix == "" || strings.ContainsAny(cfg.Prefix, `/\`+string(os.PathSeparator)) {
		return nil, fmt.Errorf("open log: invalid file name prefix %q", cfg.Prefix)
	}
	if len(cfg.Fields) == 0 {
		return nil, errors.New("open log: no fields")
	}
	for _, f := range cfg.Fields {
		if f == "" || strings.ContainsAny(f, ",\r\n") {
			return nil, fmt.Errorf("open log: invalid field name %q", f)
		}
	}
	if strings.ContainsAny(cfg.LogType+cfg.Version, "\r\n") {
		return nil, errors.New("open log: line break in log type or version")
	}
	if cfg.MaxFileSize <= 0 {
		cfg.MaxFileSize = DefaultMaxFileSize
	}
	if cfg.MaxDirectorySize <= 0 {
		cfg.MaxDirectorySize = DefaultMaxDirectorySize
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.Fields = slices.Clone(cfg.Fields)
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	w := &Writer{cfg: cfg, fields: strings.Join(cfg.Fields, ",")}
	now := cfg.Now().UTC()
	if err := w.openFile(now, true); err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	w.cleanup(now)
	return w, nil
}

// Path is the file being written.
func (w *Writer) Path() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.path
}

// Write appends one record, one value per field of Config.Fields. The line
// goes to the file with a single write(2) and no buffering, so a crash loses
// at most that line and tail -f shows it at once. A value's line breaks
// become spaces, since a record must be one line for line-based readers
// (and for ReadRecords to skip a half-written last line).
func (w *Writer) Write(fields ...string) error {
	if len(fields) != len(w.cfg.Fields) {
		return fmt.Errorf("write log: %d values for %d fields", len(fields), len(w.cfg.Fields))
	}
	line := appendRecord(nil, fields)
	line = append(line, '\n')

	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return ErrClosed
	}
	now := w.cfg.Now().UTC()
	switch {
	case now.Format(dayLayout) != w.day:
		// A new day: continue that day's file if there is one (the
		// clock went back) or start at n = 1.
		if err := w.rotate(now, true); err != nil {
			return err
		}
	case w.size > w.hdrSize && w.size+int64(len(line)) > w.cfg.MaxFileSize:
		if err := w.rotate(now, false); err != nil {
			return err
		}
	}
	n, err := w.f.Write(line)
	w.size += int64(n)
	if err != nil {
		return fmt.Errorf("write log: %w", err)
	}
	return nil
}

// Close closes the current file. Later Writes return ErrClosed.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("close log: %w", err)
	}
	return nil
}

// rotate replaces the current file; on failure the current one stays open,
// so the next Write tries again.
func (w *Writer) rotate(now time.Time, cont bool) error {
	old := w.f
	if err := w.openFile(now, cont); err != nil {
		return fmt.Errorf("rotate log: %w", err)
	}
	_ = old.Close() // its records reached the file with write(2) already
	w.cleanup(now)
	return nil
}

// openFile makes w write to a file of now's day: with cont, the day's
// highest-numbered file if it can be continued; otherwise (or if it
// cannot) a new one numbered after every file of that day.
func (w *Writer) openFile(now time.Time, cont bool) error {
	day := now.Format(dayLayout)
	files, err := list(w.cfg.Dir, w.cfg.Prefix)
	if err != nil {
		return err
	}
	maxN := 0
	for _, lf := range files {
		if lf.day == day && lf.n > maxN {
			maxN = lf.n
		}
	}
	if cont && maxN > 0 {
		ok, err := w.continueFile(now, day, maxN)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
	}
	for n := maxN + 1; ; n++ {
		path := filepath.Join(w.cfg.Dir, fileName(w.cfg.Prefix, day, n))
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o640)
		if errors.Is(err, os.ErrExist) && n < maxN+100 {
			continue // created meanwhile by someone else; never share it
		}
		if err != nil {
			return err
		}
		hdr := w.header(now)
		if _, err := f.Write(hdr); err != nil {
			f.Close()
			return err
		}
		w.setFile(f, path, day, n, int64(len(hdr)), int64(len(hdr)))
		return nil
	}
}

// continueFile opens an existing file for appending if it has room and
// its header names the same columns; a file with other columns (an older
// version's) is left alone, since its #Fields line would mislabel the new
// records.
func (w *Writer) continueFile(now time.Time, day string, n int) (bool, error) {
	path := filepath.Join(w.cfg.Dir, fileName(w.cfg.Prefix, day, n))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return false, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return false, err
	}
	size := st.Size()
	if size >= w.cfg.MaxFileSize {
		f.Close()
		return false, nil
	}
	if size == 0 {
		// Created but the header never made it (a crash): write it now.
		hdr := w.header(now)
		if _, err := f.Write(hdr); err != nil {
			f.Close()
			return false, err
		}
		w.setFile(f, path, day, n, int64(len(hdr)), int64(len(hdr)))
		return true, nil
	}
	head := make([]byte, min(size, 64<<10))
	if _, err := io.ReadFull(io.NewSectionReader(f, 0, size), head); err != nil {
		f.Close()
		return false, err
	}
	hdrSize, fields := parseHeader(head)
	if fields != w.fields {
		f.Close()
		return false, nil
	}
	var last [1]byte
	if _, err := f.ReadAt(last[:], size-1); err != nil {
		f.Close()
		return false, err
	}
	if last[0] != '\n' {
		// The last line was cut by a crash; end it so that the next
		// record starts on a line of its own.
		if _, err := f.Write([]byte{'\n'}); err != nil {
			f.Close()
			return false, err
		}
		size++
	}
	w.setFile(f, path, day, n, size, hdrSize)
	return true, nil
}

func (w *Writer) setFile(f *os.File, path, day string, n int, size, hdrSize int64) {
	w.f, w.path, w.day, w.n, w.size, w.hdrSize = f, path, day, n, size, hdrSize
}

func (w *Writer) header(now time.Time) []byte {
	var b []byte
	b = append(b, "#Software: "+Software+"\n"...)
	b = append(b, "#Version: "+w.cfg.Version+"\n"...)
	b = append(b, "#Log-type: "+w.cfg.LogType+"\n"...)
	b = append(b, "#Date: "+now.UTC().Format(TimeLayout)+"\n"...)
	b = append(b, "#Fields: "+w.fields+"\n"...)
	return b
}

// parseHeader returns the length of the leading # lines of head and the
// value of its #Fields line.
func parseHeader(head []byte) (int64, string) {
	var size int64
	fields := ""
	s := string(head)
	for strings.HasPrefix(s, "#") {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimRight(s[:i], "\r")
		if v, ok := strings.CutPrefix(line, "#Fields:"); ok {
			fields = strings.TrimSpace(v)
		}
		size += int64(i + 1)
		s = s[i+1:]
	}
	return size, fields
}

// cleanup deletes the files of the prefix that are older than MaxAge, then
// the oldest ones until the rest fit in MaxDirectorySize, never the current
// file. It is best effort: a file it cannot delete or stat is left for the
// next run rather than failing the write that triggered it.
func (w *Writer) cleanup(now time.Time) {
	files, err := list(w.cfg.Dir, w.cfg.Prefix)
	if err != nil {
		return
	}
	type kept struct {
		path string
		size int64
	}
	var rest []kept
	total := w.size
	for _, lf := range files {
		if lf.path == w.path {
			continue
		}
		st, err := os.Stat(lf.path)
		if err != nil {
			continue
		}
		if now.Sub(st.ModTime()) > w.cfg.MaxAge {
			if os.Remove(lf.path) == nil {
				continue
			}
		}
		rest = append(rest, kept{lf.path, st.Size()})
		total += st.Size()
	}
	for _, k := range rest { // oldest first
		if total <= w.cfg.MaxDirectorySize {
			break
		}
		if os.Remove(k.path) == nil {
			total -= k.size
		}
	}
}

// Files returns the paths of the log files of prefix in dir, oldest first
// (by date, then counter), for readers. Other files in dir are ignored,
// including those of a longer prefix (MSGTRKMD for MSGTRK).
func Files(dir, prefix string) ([]string, error) {
	files, err := list(dir, prefix)
	if err != nil {
		return nil, fmt.Errorf("list logs: %w", err)
	}
	paths := make([]string, len(files))
	for i, lf := range files {
		paths[i] = lf.path
	}
	return paths, nil
}

type logFile struct {
	path string
	day  string
	n    int
}

func list(dir, prefix string) ([]logFile, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []logFile
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		day, n, ok := parseName(e.Name(), prefix)
		if !ok {
			continue
		}
		files = append(files, logFile{filepath.Join(dir, e.Name()), day, n})
	}
	slices.SortFunc(files, func(a, b logFile) int {
		if c := strings.Compare(a.day, b.day); c != 0 {
			return c
		}
		return a.n - b.n
	})
	return files, nil
}

func fileName(prefix, day string, n int) string {
	return prefix + day + "-" + strconv.Itoa(n) + ext
}

// parseName accepts <prefix><yyyymmdd>-<n>.LOG; the extension in any case,
// so that logs copied from Windows (.log) read too.
func parseName(name, prefix string) (day string, n int, ok bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) < len("yyyymmdd-n")+len(ext) || !strings.EqualFold(rest[len(rest)-len(ext):], ext) {
		return "", 0, false
	}
	rest = rest[:len(rest)-len(ext)]
	day, num := rest[:8], rest[8:]
	if !allDigits(day) || num[0] != '-' || len(num) < 2 || len(num) > 10 || !allDigits(num[1:]) {
		return "", 0, false
	}
	n, err := strconv.Atoi(num[1:])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return day, n, true
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// appendRecord appends the CSV form of one record (without line end) to b:
// a value with a comma or a quote is quoted, with its quotes doubled (RFC
// 4180); CR and LF become spaces so that the record stays one line. A first
// value that starts with '#' is quoted too, so that readers do not take the
// record for a header line.
func appendRecord(b []byte, fields []string) []byte {
	for i, f := range fields {
		if i > 0 {
			b = append(b, ',')
		}
		if strings.ContainsAny(f, "\r\n") {
			f = strings.NewReplacer("\r", " ", "\n", " ").Replace(f)
		}
		if !strings.ContainsAny(f, `,"`) && (i > 0 || !strings.HasPrefix(f, "#")) {
			b = append(b, f...)
			continue
		}
		b = append(b, '"')
		for {
			j := strings.IndexByte(f, '"')
			if j < 0 {
				break
			}
			b = append(b, f[:j+1]...)
			b = append(b, '"')
			f = f[j+1:]
		}
		b = append(b, f...)
		b = append(b, '"')
	}
	return b
}

// ReadRecords calls fn for each record of the log file at path, as a map
// from the names of the #Fields line before it to the values (missing
// values are ""). Other # lines and records before any #Fields line are
// skipped. A last line without a line end is skipped as still being
// written (or cut by a crash), and so is a line that is not valid CSV, so
// that a reader never fails on a file another process is appending to.
// An error from fn stops the reading and is returned as is.
// Files written with CRLF line ends (Exchange's own) read too.
func ReadRecords(path string, fn func(fields map[string]string) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var names []string
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF {
			return nil // "" or a line still being written
		}
		if err != nil {
			return fmt.Errorf("read log %s: %w", path, err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			continue
		}
		if line[0] == '#' {
			if v, ok := strings.CutPrefix(line, "#Fields:"); ok {
				names = strings.Split(strings.TrimSpace(v), ",")
				for i := range names {
					names[i] = strings.TrimSpace(names[i])
				}
			}
			continue
		}
		if names == nil {
			continue
		}
		vals, ok := parseRecord(line)
		if !ok {
			continue
		}
		m := make(map[string]string, len(names))
		for i, name := range names {
			if i < len(vals) {
				m[name] = vals[i]
			} else {
				m[name] = ""
			}
		}
		if err := fn(m); err != nil {
			return err
		}
	}
}

// parseRecord splits one CSV line (without line end) into its values. It
// reports false for a line that is not valid CSV: an unterminated quoted
// value or text after a closing quote.
func parseRecord(s string) ([]string, bool) {
	var out []string
	for {
		if s == "" || s[0] != '"' {
			j := strings.IndexByte(s, ',')
			if j < 0 {
				return append(out, s), true
			}
			out = append(out, s[:j])
			s = s[j+1:]
			continue
		}
		var b strings.Builder
		i := 1
		for {
			j := strings.IndexByte(s[i:], '"')
			if j < 0 {
				return nil, false
			}
			b.WriteString(s[i : i+j])
			i += j + 1
			if i < len(s) && s[i] == '"' {
				b.WriteByte('"')
				i++
				continue
			}
			break
		}
		out = append(out, b.String())
		s = s[i:]
		if s == "" {
			return out, true
		}
		if s[0] != ',' {
			return nil, false
		}
		s = s[1:]
	}
}
