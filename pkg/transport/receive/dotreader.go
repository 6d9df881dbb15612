package receive

import (
	"bufio"
	"bytes"
	"io"
	"reflect"
	"sync"

	"github.com/emersion/go-smtp"
)

// go-smtp (v0.25) hands Data a reader that takes the message one
// ReadByte call at a time through its dot-unstuffing state machine: for a
// 1 MB message that was two thirds of serve's CPU time (upstream has an
// open pull request, emersion/go-smtp#312, for the same cost).
// fastDATA reads the same bytes in runs: everything up to the next CR is
// copied at once, and only line ends and line starts go through the state
// machine.
//
// It works on go-smtp's reader itself (its buffered connection, its state
// and its size limit), so that what go-smtp does after Data returns —
// drain the rest of the message, or see that it ended — is unchanged.
// Those fields are unexported; dataReaderLayout mirrors them, and the fast
// path is taken only when reflection shows go-smtp's type with exactly
// these fields, types and offsets. Any other go-smtp gets the reader it
// gave (slower, never wrong), and TestFastDATAIsUsed fails so the
// mirror is looked at when go-smtp is upgraded.
type dataReaderLayout struct {
	r       *bufio.Reader
	state   int
	limited bool
	n       int64
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
)

// matchLayout checks t (a pointer type) against dataReaderLayout.
func matchLayout(t reflect.Type) bool {
	if t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return false
	}
	got, want := t.Elem(), reflect.TypeFor[dataReaderLayout]()
	if got.Name() != "dataReader" || got.PkgPath() != "github.com/emersion/go-smtp" ||
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

// fastDATA returns a fast reader over go-smtp's DATA reader r, or r itself
// when r is anything else (a BDAT chunk reader, another go-smtp).
func fastDATA(r io.Reader) io.Reader {
	t := reflect.TypeOf(r)
	if t == nil {
		return r
	}
	layoutOnce.Do(func() {
		if matchLayout(t) {
			layoutType = t
		}
	})
	if t != layoutType {
		return r
	}
	return &dotReader{d: (*dataReaderLayout)(reflect.ValueOf(r).UnsafePointer())}
}

// dotReader is go-smtp's dataReader.Read with runs of line content copied
// at once.
type dotReader struct{ d *dataReaderLayout }

func (f *dotReader) Read(b []byte) (n int, err error) {
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
			if i > 0 {
				copy(b[n:], run[:i])
				_, _ = d.r.Discard(i)
				n += i
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
