// Package header reads a message's header block off a stream, so that the
// header firewall can filter it while the body streams on untouched.
package header

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
)

// ErrTooLarge says the header block is longer than the limit.
var ErrTooLarge = errors.New("header block too large")

// Read returns the header block: every line up to and including the empty
// line that ends it (CRLF or a bare LF), or everything when the stream
// ends first. br is left at the first byte of the body. limit > 0 bounds
// the block; a longer one is ErrTooLarge.
func Read(br *bufio.Reader, limit int) ([]byte, error) {
	var hdr []byte
	for {
		line, err := br.ReadSlice('\n')
		if limit > 0 && len(hdr)+len(line) > limit {
			return nil, ErrTooLarge
		}
		start := len(hdr)
		hdr = append(hdr, line...)
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue // a long line, read in pieces
		case err == io.EOF:
			return hdr, nil
		case err != nil:
			return nil, err
		}
		// An empty line only counts at the start of a line: the last
		// piece of a long line may be a lone "\n" too.
		lineStart := start == 0 || hdr[start-1] == '\n'
		if lineStart && (len(line) == 1 || len(line) == 2 && line[0] == '\r') {
			return hdr, nil
		}
	}
}

// Get returns the unfolded value of the first field called name
// (case-insensitive) in the header block hdr, with surrounding blanks
// trimmed; "" when there is none. It is for the few fields the transport
// shows or quotes (Subject, Message-ID), not for parsing in general.
func Get(hdr []byte, name string) string {
	lines := bytes.SplitAfter(hdr, []byte("\n"))
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' || !bytes.EqualFold(bytes.TrimRight(line[:colon], " \t"), []byte(name)) {
			continue
		}
		value := strings.TrimRight(string(line[colon+1:]), "\r\n")
		for i+1 < len(lines) && len(lines[i+1]) > 0 && (lines[i+1][0] == ' ' || lines[i+1][0] == '\t') {
			i++
			value += strings.TrimRight(string(lines[i]), "\r\n")
		}
		return strings.TrimSpace(value)
	}
	return ""
}
