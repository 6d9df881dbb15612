package receive

import (
	"bufio"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/emersion/go-smtp"
)

// dataServer is a go-smtp server on loopback whose sessions read DATA
// either through go-smtp's own reader or through fastDATA, and record
// what they read.
type dataServer struct {
	addr string
	mu   sync.Mutex
	fast bool
	// small makes the session read in one-byte steps.
	small bool
	got   []string
	used  []bool // whether fastDATA took its fast path
}

type dataBackend struct{ s *dataServer }

func (b dataBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return dataSession{b.s, c}, nil
}

type dataSession struct {
	s *dataServer
	c *smtp.Conn
}

func (dataSession) Mail(string, *smtp.MailOptions) error { return nil }
func (dataSession) Rcpt(string, *smtp.RcptOptions) error { return nil }
func (dataSession) Reset()                               {}
func (dataSession) Logout() error                        { return nil }
func (s dataSession) Data(r io.Reader) error {
	s.s.mu.Lock()
	fast, small := s.s.fast, s.s.small
	s.s.mu.Unlock()
	used := false
	if fast {
		var done func()
		r, done = fastDATA(r, s.c)
		defer done()
		_, used = r.(*dotReader)
	}
	if small {
		r = iotest.OneByteReader(r)
	}
	b, err := io.ReadAll(r)
	s.s.mu.Lock()
	s.s.got = append(s.s.got, fmt.Sprintf("%q err=%v", b, err))
	s.s.used = append(s.s.used, used)
	s.s.mu.Unlock()
	return err
}

func startDataServer(t *testing.T, maxBytes int64, maxLine int) *dataServer {
	t.Helper()
	ds := &dataServer{}
	srv := smtp.NewServer(dataBackend{ds})
	srv.Domain = "localhost"
	srv.MaxMessageBytes = maxBytes
	if maxLine != 0 {
		srv.MaxLineLength = maxLine
	}
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	ds.addr = ln.Addr().String()
	return ds
}

// session sends raw bytes after the envelope and returns the server's
// replies and what its Data read.
func (ds *dataServer) session(t *testing.T, fast, small bool, data []byte) (string, []string, []bool) {
	t.Helper()
	ds.mu.Lock()
	ds.fast, ds.small, ds.got, ds.used = fast, small, nil, nil
	ds.mu.Unlock()
	c, err := net.Dial("tcp", ds.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// The data goes only after the 354, as a client must send it: a
	// connection counts line lengths as it reads, whatever it reads.
	_, _ = c.Write([]byte("EHLO test\r\nMAIL FROM:<a@example.com>\r\nRCPT TO:<b@example.org>\r\nDATA\r\n"))
	var replies strings.Builder
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		replies.WriteString(l)
		if err != nil {
			t.Fatalf("no 354: %q", replies.String())
		}
		if strings.HasPrefix(l, "354") {
			break
		}
	}
	go func() {
		_, _ = c.Write(append(slices.Clip(data), "QUIT\r\n"...))
		// Data that never ends meets the end of the connection.
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	rest, _ := io.ReadAll(br)
	replies.Write(rest)
	// Data has returned before its reply was written.
	ds.mu.Lock()
	defer ds.mu.Unlock()
	return replies.String(), ds.got, ds.used
}

// The fast path is taken with the go-smtp in go.mod. If this fails after
// an upgrade, go-smtp's dataReader changed: compare dataReaderLayout and
// the states with its data.go.
func TestFastDATAIsUsed(t *testing.T) {
	ds := startDataServer(t, 0, 0)
	_, got, used := ds.session(t, true, false, []byte("Subject: x\r\n\r\nhi\r\n.\r\n"))
	if len(used) != 1 || !used[0] {
		t.Fatalf("fastDATA did not take its fast path with this go-smtp (read %v)", got)
	}
	if got[0] != `"Subject: x\r\n\r\nhi\r\n" err=<nil>` {
		t.Errorf("read %s", got[0])
	}
	if r, _ := fastDATA(strings.NewReader("x"), nil); r == nil {
		t.Error("fastDATA of another reader is nil")
	} else if _, ok := r.(*dotReader); ok {
		t.Error("fastDATA took a strings.Reader for go-smtp's")
	}
	if lineLimiter(&smtp.Conn{}) == nil && !limiterOK {
		t.Error("go-smtp's line counter does not match lineLimitLayout")
	}
}

// fastDATA reads exactly what go-smtp's reader reads, ends where it ends,
// fails where it fails, and leaves the connection where it leaves it: for
// dot-stuffing, lone CRs and LFs, end markers in every position, the size
// limit, and reads of any size.
func TestFastDATAMatchesGoSMTP(t *testing.T) {
	cases := []string{
		"hi\r\n.\r\n",
		"..leading dot\r\n.\r\n",
		".\r\n",
		"a\r\n..\r\n.\r\n",
		"bare\rCR\r\n.\r\n",
		"bare\nLF\r\n.\r\n",
		"a\r\r\n.\r\n.\r\n",
		".a\r\n.\r\r\n.\r\n",
		"x\r\n.\rnot end\r\n.\r\n",
		"line\r\n.\r\nMAIL FROM:<x@example.com>\r\n",
		strings.Repeat("0123456789", 500) + "\r\n.\r\n",
		strings.Repeat("a\r\n", 3000) + ".\r\n",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte(".\r\nab")
	for range 300 {
		b := make([]byte, rng.IntN(200))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		cases = append(cases, string(b)+"\r\n.\r\n")
	}
	for _, limit := range []int64{0, 40} {
		ds := startDataServer(t, limit, 0)
		for i, in := range cases {
			for _, small := range []bool{false, true} {
				wantReplies, want, _ := ds.session(t, false, small, []byte(in))
				gotReplies, got, _ := ds.session(t, true, small, []byte(in))
				if strings.Contains(strings.Join(want, ""), smtp.ErrTooLongLine.Error()) {
					// Where go-smtp stops within the long line depends on
					// its reads: TestFastDATALineLimit covers it.
					continue
				}
				if gotReplies != wantReplies || strings.Join(got, "|") != strings.Join(want, "|") {
					t.Fatalf("case %d (limit %d, one-byte reads %v) %q:\nfast read %v, replies\n%s\ngo-smtp read %v, replies\n%s",
						i, limit, small, in, got, gotReplies, want, wantReplies)
				}
			}
		}
	}
}

// Lines up to the connection's limit pass and a longer one fails the
// message, as with go-smtp's own counter, dot-stuffing and all; after a
// failed line the connection keeps failing, and after a good message it
// counts afresh.
func TestFastDATALineLimit(t *testing.T) {
	const limit = 60
	ds := startDataServer(t, 0, limit)
	line := func(n int) string { return strings.Repeat("x", n) + "\r\n" }
	for _, tc := range []struct {
		name, data string
		ok         bool
	}{
		{"short lines", line(10) + line(20) + ".\r\n", true},
		{"longest line", line(limit-2) + ".\r\n", true},
		{"one byte too long", line(limit-1) + ".\r\n", false},
		{"long line later", line(10) + line(limit*3) + ".\r\n", false},
		{"dot-stuffed longest", "." + line(limit-3) + ".\r\n", true},
		{"dot-stuffed too long", "." + line(limit-2) + ".\r\n", false},
		{"many lines at the limit", strings.Repeat(line(limit-2), 500) + ".\r\n", true},
	} {
		for _, fast := range []bool{false, true} {
			replies, got, used := ds.session(t, fast, false, []byte(tc.data))
			if fast && (len(used) != 1 || !used[0]) {
				t.Fatalf("%s: fast path not taken", tc.name)
			}
			accepted := len(got) == 1 && strings.HasSuffix(got[0], "err=<nil>")
			if accepted != tc.ok {
				t.Errorf("%s (fast %v): read %.80v, replies\n%s", tc.name, fast, got, replies)
			}
			if !tc.ok && !strings.Contains(got[0], smtp.ErrTooLongLine.Error()) {
				t.Errorf("%s (fast %v): Data failed with %.200s, want the line-length error", tc.name, fast, got[0])
			}
		}
	}
}

// The bare CR/LF check finds the first offending byte across reads.
func TestBareLineEnding(t *testing.T) {
	for _, tc := range []struct {
		parts []string
		at    int // index in the part that fails, -1: none fails
		part  int
	}{
		{[]string{"a\r\nb\r\n"}, -1, 0},
		{[]string{"a\r", "\nb"}, -1, 0},
		{[]string{"a\nb"}, 1, 0},
		{[]string{"ab\rc"}, 2 + 1, 0},
		{[]string{"a\r", "b"}, 0, 1},
		{[]string{"\r\n\r\n", "x\n"}, 1, 1},
		{[]string{strings.Repeat("x", 100) + "\r\n\r\r\n"}, 103, 0},
	} {
		d := &dataStream{}
		failed, part, at := false, 0, -1
		for i, p := range tc.parts {
			if j := d.bareLineEnding([]byte(p)); j >= 0 {
				failed, part, at = true, i, j
				break
			}
		}
		if tc.at < 0 {
			if failed {
				t.Errorf("%q: failed at part %d byte %d", tc.parts, part, at)
			}
			continue
		}
		if !failed || part != tc.part || at != tc.at {
			t.Errorf("%q: failed=%v at part %d byte %d, want part %d byte %d", tc.parts, failed, part, at, tc.part, tc.at)
		}
	}
}
