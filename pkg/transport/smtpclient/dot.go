package smtpclient

import (
	"bufio"
	"bytes"
)

// dotWriter writes message data for DATA (RFC 5321 4.5.2): a line that
// begins with "." gets another one, a bare LF becomes CRLF, and Close ends
// the data with CRLF.CRLF. It works on whole runs between line feeds,
// not byte by byte as textproto's does, since a megabyte message goes
// through here on every delivery.
type dotWriter struct {
	w         *bufio.Writer
	lineStart bool // the next byte begins a line
	lastCR    bool // the last byte written was a CR
	wrote     bool // anything was written
}

func newDotWriter(w *bufio.Writer) *dotWriter { return &dotWriter{w: w, lineStart: true} }

func (d *dotWriter) Write(p []byte) (int, error) {
	n := len(p)
	d.wrote = d.wrote || n > 0
	for len(p) > 0 {
		if d.lineStart && p[0] == '.' {
			if err := d.w.WriteByte('.'); err != nil {
				return 0, err
			}
		}
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			if _, err := d.w.Write(p); err != nil {
				return 0, err
			}
			d.lineStart, d.lastCR = false, p[len(p)-1] == '\r'
			break
		}
		line := p[:i]
		cr := d.lastCR && i == 0 || i > 0 && p[i-1] == '\r'
		if !cr {
			if _, err := d.w.Write(line); err != nil {
				return 0, err
			}
			if _, err := d.w.WriteString("\r\n"); err != nil {
				return 0, err
			}
		} else if _, err := d.w.Write(p[:i+1]); err != nil {
			return 0, err
		}
		p = p[i+1:]
		d.lineStart, d.lastCR = true, false
	}
	return n, nil
}

// Close ends the data: the last line is completed if it was not, then the
// lone dot, and everything is flushed.
func (d *dotWriter) Close() error {
	end := ".\r\n"
	switch {
	case d.lastCR:
		end = "\n.\r\n"
	case !d.lineStart || !d.wrote:
		end = "\r\n.\r\n"
	}
	if _, err := d.w.WriteString(end); err != nil {
		return err
	}
	return d.w.Flush()
}
