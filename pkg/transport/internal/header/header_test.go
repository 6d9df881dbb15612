package header

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	long := strings.Repeat("x", 93) // "A: "+93+"\n" is 97 bytes: the last 16-byte piece is a lone "\n"
	for _, tc := range []struct {
		name, in, header, body string
		limit                  int
		err                    error
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n\r\n", "body\r\n", 0, nil},
		{"lf", "A: 1\n\nbody\n", "A: 1\n\n", "body\n", 0, nil},
		{"no body", "A: 1\r\n", "A: 1\r\n", "", 0, nil},
		{"folded", "A: 1\r\n 2\r\n\r\nb", "A: 1\r\n 2\r\n\r\n", "b", 0, nil},
		// With a 16-byte buffer the long line arrives in pieces; its last
		// piece is not an empty line.
		{"long line", "A: " + long + "\n\nb", "A: " + long + "\n\n", "b", 0, nil},
		{"too large", "A: " + long + "\r\n\r\n", "", "", 50, ErrTooLarge},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		hdr, err := Read(br, tc.limit)
		if !errors.Is(err, tc.err) {
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.err)
			continue
		}
		if err != nil {
			continue
		}
		rest, _ := io.ReadAll(br)
		if string(hdr) != tc.header || string(rest) != tc.body {
			t.Errorf("%s: header %q body %q", tc.name, hdr, rest)
		}
	}
}

func TestGet(t *testing.T) {
	hdr := []byte("Received: from a\r\n\tby b\r\nsubject: Quarterly\r\n report\r\nX-Subject: no\r\nSubject: second\r\n\r\n")
	if got := Get(hdr, "Subject"); got != "Quarterly report" {
		t.Errorf("Subject = %q", got)
	}
	if got := Get(hdr, "Received"); got != "from a\tby b" {
		t.Errorf("Received = %q", got)
	}
	if got := Get(hdr, "Message-ID"); got != "" {
		t.Errorf("absent field = %q", got)
	}
}
