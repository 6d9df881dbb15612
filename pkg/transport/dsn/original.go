package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// maxHeaderBlock bounds the original's header block held in memory. Real
// header blocks are a few KiB; one larger than this is cut at a field
// boundary and the report returns headers only.
const maxHeaderBlock = 1 << 20

// readHeader reads the header block off br: every line up to and including
// the empty line that ends it (CRLF or a bare LF), or everything when the
// stream ends first, and reports whether it saw that empty line. br is left
// at the first byte of the body. A block longer than limit is cut before
// the field that overflows (continuation lines belong to their field) and
// the rest of the stream is left unread; truncated says so.
func readHeader(br *bufio.Reader, limit int) (hdr []byte, ended, truncated bool, err error) {
	fieldStart := 0 // start of the field being read
	atLineStart := true
	for {
		piece, err := br.ReadSlice('\n')
		if atLineStart && err == nil && (len(piece) == 1 || len(piece) == 2 && piece[0] == '\r') {
			return append(hdr, piece...), true, false, nil
		}
		if atLineStart && len(piece) > 0 && piece[0] != ' ' && piece[0] != '\t' {
			fieldStart = len(hdr)
		}
		if len(hdr)+len(piece) > limit {
			return hdr[:fieldStart], false, true, nil
		}
		hdr = append(hdr, piece...)
		if len(piece) > 0 {
			atLineStart = piece[len(piece)-1] == '\n'
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			// A long line, read in pieces.
		case err == io.EOF:
			return hdr, false, false, nil
		case err != nil:
			return nil, false, false, err
		}
	}
}

// normalizeHeader gives every line of a header block a CRLF ending and
// turns each bare CR into a space. A bare CR is not a line ending to the
// header firewall (its lines end at LF), so making it one would let
// "Subject: x\rX-MS-Exchange-Organization-...: y" become a field the
// firewall never saw; as a space it changes no line boundary at all.
func normalizeHeader(hdr []byte) []byte {
	out := make([]byte, 0, len(hdr)+bytes.Count(hdr, []byte{'\n'}))
	for i := 0; i < len(hdr); i++ {
		switch c := hdr[i]; {
		case c == '\r' && i+1 < len(hdr) && hdr[i+1] == '\n':
			out = append(out, '\r', '\n')
			i++
		case c == '\r':
			out = append(out, ' ')
		case c == '\n':
			out = append(out, '\r', '\n')
		default:
			out = append(out, c)
		}
	}
	return out
}

// crlfWriter passes a body through with every line ending made CRLF: a
// bare LF and a bare CR both become CRLF, so that nothing downstream has to
// guess what a lone CR means (and "\r.\r" cannot pass for an end of data).
// Close flushes a CR held back at the end of the stream.
type crlfWriter struct {
	w      io.Writer
	buf    []byte
	heldCR bool // the last byte written was a CR whose successor is not known yet
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	c.buf = c.buf[:0]
	for _, b := range p {
		switch {
		case b == '\n':
			c.buf = append(c.buf, '\r', '\n')
			c.heldCR = false
		case c.heldCR:
			c.buf = append(c.buf, '\r', '\n')
			c.heldCR = b == '\r'
			if !c.heldCR {
				c.buf = append(c.buf, b)
			}
		case b == '\r':
			c.heldCR = true
		default:
			c.buf = append(c.buf, b)
		}
	}
	if _, err := c.w.Write(c.buf); err != nil {
		return 0, &writeError{err}
	}
	return len(p), nil
}

func (c *crlfWriter) Close() error {
	if !c.heldCR {
		return nil
	}
	c.heldCR = false
	if _, err := io.WriteString(c.w, "\r\n"); err != nil {
		return &writeError{err}
	}
	return nil
}

// writeError marks an error of the writer behind a crlfWriter, so that a
// copy into it can tell the report's writer failing from the original's
// reader failing.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

// headerValue returns the unfolded value of the first field called name in
// a header block, and whether there is one.
func headerValue(hdr []byte, name string) (string, bool) {
	for len(hdr) > 0 {
		end := fieldEnd(hdr)
		f := hdr[:end]
		hdr = hdr[end:]
		if f[0] == '\r' || f[0] == '\n' {
			break // the empty line
		}
		colon := bytes.IndexByte(f, ':')
		if colon < 0 || !strings.EqualFold(string(bytes.TrimRight(f[:colon], " \t")), name) {
			continue
		}
		v := string(f[colon+1:])
		v = strings.NewReplacer("\r\n", "", "\n", "", "\r", "").Replace(v)
		return strings.TrimSpace(v), true
	}
	return "", false
}

// fieldEnd returns the length of the field at the start of hdr: its first
// line and its continuation lines.
func fieldEnd(hdr []byte) int {
	end := lineLen(hdr)
	for end < len(hdr) && (hdr[end] == ' ' || hdr[end] == '\t') {
		end += lineLen(hdr[end:])
	}
	return end
}

func lineLen(b []byte) int {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return i + 1
	}
	return len(b)
}

// messageID extracts "<id>" from a Message-ID value, or "" when there is
// none we can repeat safely: a msg-id is printable ASCII without spaces or
// angle brackets between its brackets (RFC 5322 §3.6.4).
func messageID(v string) string {
	start := strings.IndexByte(v, '<')
	if start < 0 {
		return ""
	}
	end := strings.IndexByte(v[start:], '>')
	if end < 0 {
		return ""
	}
	id := v[start+1 : start+end]
	if id == "" || len(id) > 900 {
		return ""
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' || c == '<' {
			return ""
		}
	}
	return "<" + id + ">"
}
