package receive

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"sync"
	"unsafe"

	"github.com/emersion/go-smtp"
)

// go-smtp (v0.25) hands Data a reader that takes the message one
// ReadByte call at a time through its dot-unstuffing state machine, below
// which its connection counts line lengths byte by byte as well: for a
// 1 MB message that was four fifths of serve's CPU time (upstream has an
// open pull request, emersion/go-smtp#312, for the same cost). fastDATA
// reads the same bytes in runs: everything up to the next CR is copied at
// once, and only line ends and line starts go through the state machine;
// it also counts line lengths itself, per run, and switches the
// connection's counter off meanwhile, as go-smtp does for BDAT chunks.
//
// It works on go-smtp's reader and counter themselves (its buffered
// connection, its state, its size and line limits), so that what go-smtp
// does after Data returns — drain the rest of the message, see that it
// ended, or refuse the connection a line too long — is unchanged. Those
// fields are unexported; dataReaderLayout and lineLimitLayout mirror them,
// and the fast path is taken only when reflection shows go-smtp's types
// with exactly these fields, types and offsets. Any other go-smtp gets the
// reader it gave (slower, never wrong), and TestFastDATAIsUsed fails so
// the mirrors are looked at when go-smtp is upgraded.
type dataReaderLayout struct {
	r       *bufio.Reader
	state   int
	limited bool
	n       int64
}

// lineLimitLayout mirrors go-smtp's lineLimitReader, which a Conn reads
// its connection through.
type lineLimitLayout struct {
	R             io.Reader
	LineLimit     int
	curLineLength int
}

// The states of go-smtp's dataReader.Read, in its order (data.go).
const (
	dotBeginLine = iota // beginning of a line
	dotDot              // read "." at the beginning of a line
	dotDotCR            // read ".\r" at the beginning of a line
	dotCR               // read "\r", possibly at the end of a line
	dotData             // in the middle of a line
	dotEOF              // read the ".\r\n" end marker
)

var (
	layoutOnce sync.Once
	layoutType reflect.Type // go-smtp's *dataReader when it matches

	limiterOnce   sync.Once
	limiterOffset uintptr // of the *lineLimitReader in smtp.Conn
	limiterOK     bool
)

// matchLayout checks that t is a pointer to go-smtp's struct name with
// exactly the fields of want.
func matchLayout(t reflect.Type, name string, want reflect.Type) bool {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return false
	}
	got := t.Elem()
	if got.Name() != name || got.PkgPath() != "github.com/emersion/go-smtp" ||
		got.NumField() != want.NumField() || got.Size() != want.Size() {
		return false
	}
	for i := range want.NumField() {
		g, w := got.Field(i), want.Field(i)
		if g.Name != w.Name || g.Type != w.Type || g.Offset != w.Offset {
			return false
		}
	}
	return true
}

// lineLimiter returns the line-length counter c reads its connection
// through, or nil.
func lineLimiter(c *smtp.Conn) *lineLimitLayout {
	limiterOnce.Do(func() {
		f, ok := reflect.TypeFor[smtp.Conn]().FieldByName("lineLimitReader")
		if ok && matchLayout(f.Type, "lineLimitReader", reflect.TypeFor[lineLimitLayout]()) {
			limiterOffset, limiterOK = f.Offset, true
		}
	})
	if !limiterOK || c == nil {
		return nil
	}
	return *(**lineLimitLayout)(unsafe.Add(unsafe.Pointer(c), limiterOffset))
}

// fastDATA returns a fast reader over go-smtp's DATA reader r of the
// connection c, or r itself when r is anything else (a BDAT chunk reader,
// another go-smtp). done must be called when the reader is no longer
// used, before Data returns: it hands line counting back to c.
func fastDATA(r io.Reader, c *smtp.Conn) (fast io.Reader, done func()) {
	t := reflect.TypeOf(r)
	if t == nil {
		return r, func() {}
	}
	layoutOnce.Do(func() {
		if matchLayout(t, "dataReader", reflect.TypeFor[dataReaderLayout]()) {
			layoutType = t
		}
	})
	if t != layoutType {
		return r, func() {}
	}
	f := &dotReader{d: (*dataReaderLayout)(reflect.ValueOf(r).UnsafePointer())}
	lim := lineLimiter(c)
	if lim == nil || lim.LineLimit <= 0 || lim.curLineLength > lim.LineLimit {
		return f, func() {} // no limit, or already failed: leave it be
	}
	// Take over the count where the connection left it: it has counted
	// what it read, which is what is buffered, not yet what is consumed.
	f.limit, f.line = lim.LineLimit, 1
	lim.LineLimit = 0
	return f, func() {
		lim.LineLimit = f.limit
		// Bytes read meanwhile were not counted: start the next line
		// afresh, or keep a line that was too long failing, as go-smtp's
		// counter does once it has failed.
		lim.curLineLength = 0
		if f.tooLong {
			lim.curLineLength = f.limit + 1
		}
	}
}

// dotReader is go-smtp's dataReader.Read with runs of line content copied
// at once. With limit set it also fails a line longer than limit as
// go-smtp's counter does: line counts the bytes consumed since the last
// LF, that LF included.
type dotReader struct {
	d       *dataReaderLayout
	limit   int
	line    int
	tooLong bool
}

// fit returns how much of run (no CR in it) can be consumed before the
// line gets longer than the limit.
func (f *dotReader) fit(run []byte) int {
	line, k := f.line, 0
	for {
		lf := bytes.IndexByte(run[k:], '\n')
		end := len(run)
		if lf >= 0 {
			end = k + lf
		}
		if room := f.limit - line; end-k > room {
			return k + max(room, 0)
		}
		if lf < 0 {
			return len(run)
		}
		line, k = 1, end+1 // the LF is the first byte counted of a line
	}
}

// count adds run, consumed from the connection, to the line length.
func (f *dotReader) count(run []byte) bool {
	if f.limit <= 0 {
		return true
	}
	// A run rarely holds an LF (it ends at a CR): look for one with
	// IndexByte, which is vectorised, before LastIndexByte, which is not.
	if bytes.IndexByte(run, '\n') >= 0 {
		f.line = len(run) - bytes.LastIndexByte(run, '\n')
	} else {
		f.line += len(run)
	}
	if f.line > f.limit {
		f.tooLong = true
	}
	return !f.tooLong
}

func (f *dotReader) Read(b []byte) (n int, err error) {
	if f.tooLong {
		return 0, smtp.ErrTooLongLine
	}
	d := f.d
	if d.limited {
		if d.n <= 0 {
			return 0, smtp.ErrDataTooLarge
		}
		if int64(len(b)) > d.n {
			b = b[:d.n]
		}
	}
	for n < len(b) && d.state != dotEOF {
		if d.state == dotData {
			// Copy up to the next CR, from what is buffered (reading
			// more only when nothing is).
			if d.r.Buffered() == 0 {
				if _, err = d.r.Peek(1); err != nil {
					if err == io.EOF {
						err = io.ErrUnexpectedEOF
					}
					break
				}
			}
			run, _ := d.r.Peek(min(d.r.Buffered(), len(b)-n))
			i := bytes.IndexByte(run, '\r')
			if i < 0 {
				i = len(run)
			}
			if i > 0 && f.limit > 0 {
				if i = f.fit(run[:i]); i == 0 {
					f.tooLong = true
					err = smtp.ErrTooLongLine
					break
				}
			}
			if i > 0 {
				copy(b[n:], run[:i])
				_, _ = d.r.Discard(i)
				n += i
				f.count(run[:i])
				continue
			}
		}
		var c byte
		if c, err = d.r.ReadByte(); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			break
		}
		if !f.count([]byte{c}) {
			err = smtp.ErrTooLongLine
			break
		}
		switch d.state {
		case dotBeginLine:
			if c == '.' {
				d.state = dotDot
				continue
			}
			d.state = dotData
			if c == '\r' {
				d.state = dotCR
			}
		case dotDot:
			if c == '\r' {
				d.state = dotDotCR
				continue
			}
			d.state = dotData
		case dotDotCR:
			if c == '\n' {
				d.state = dotEOF
				continue
			}
			d.state = dotData
		case dotCR:
			d.state = dotData
			if c == '\n' {
				d.state = dotBeginLine
			}
		case dotData:
			if c == '\r' {
				d.state = dotCR
			}
		}
		b[n] = c
		n++
	}
	if err == nil && d.state == dotEOF {
		err = io.EOF
	}
	if d.limited {
		d.n -= int64(n)
	}
	return n, err
}
