package receive

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Hostile input: every test here talks to a real server on the loopback
// address with raw bytes, and asserts what the server answers, what it
// stores and that it goes on serving.

// wire is a raw SMTP client: it writes exactly the bytes it is given and
// reads replies with net/textproto.
type wire struct {
	t    testing.TB
	conn net.Conn
	r    *textproto.Reader
}

// dial connects and reads the 220 greeting.
func dial(t testing.TB, addr string) *wire {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	w := &wire{t: t, conn: c, r: textproto.NewReader(bufio.NewReader(c))}
	if code, msg := w.reply(); code != 220 {
		t.Fatalf("greeting: %d %s", code, msg)
	}
	return w
}

func (w *wire) write(s string) {
	w.t.Helper()
	if _, err := io.WriteString(w.conn, s); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// writeAsync writes s from another goroutine and ignores write errors: for
// input the server may stop reading (and reset the connection) half way.
func (w *wire) writeAsync(s string) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.WriteString(w.conn, s)
	}()
	return done
}

// reply reads one reply, multi-line or not. Code 0 means the connection
// ended (msg is the error).
func (w *wire) reply() (int, string) {
	code, msg, err := w.r.ReadResponse(0)
	var te *textproto.Error
	if err != nil && !errors.As(err, &te) {
		return 0, err.Error()
	}
	return code, msg
}

func (w *wire) cmd(line string) (int, string) {
	w.t.Helper()
	w.write(line + "\r\n")
	return w.reply()
}

// expect sends line and fails unless the reply has the code and, when
// enh is not "", starts with that enhanced code.
func (w *wire) expect(line string, code int, enh string) string {
	w.t.Helper()
	got, msg := w.cmd(line)
	if got != code || !strings.HasPrefix(msg, enh) {
		w.t.Fatalf("%q: got %d %s, want %d %s", trim(line), got, msg, code, enh)
	}
	return msg
}

// closed reads what is left and reports whether the server ended the
// connection within d, with the replies it sent before.
func (w *wire) closed(d time.Duration) (replies []string, closed bool) {
	_ = w.conn.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = w.conn.SetReadDeadline(time.Now().Add(20 * time.Second)) }()
	for {
		code, msg, err := w.r.ReadResponse(0)
		var te *textproto.Error
		var ne net.Error
		switch {
		case err == nil || errors.As(err, &te):
			replies = append(replies, fmt.Sprintf("%d %s", code, msg))
		case errors.As(err, &ne) && ne.Timeout():
			return replies, false
		default: // EOF, or a reset when the server left input unread
			return replies, true
		}
	}
}

// silentFor reports whether the server sends nothing for d.
func (w *wire) silentFor(d time.Duration) bool {
	_ = w.conn.SetReadDeadline(time.Now().Add(d))
	defer func() { _ = w.conn.SetReadDeadline(time.Now().Add(20 * time.Second)) }()
	_, err := w.r.R.Peek(1)
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// startData opens a transaction from app@contoso.com to bob@fabrikam.com
// and sends DATA.
func (w *wire) startData() {
	w.t.Helper()
	w.expect("MAIL FROM:<app@contoso.com>", 250, "")
	w.expect("RCPT TO:<bob@fabrikam.com>", 250, "")
	w.expect("DATA", 354, "")
}

// cutOffForLongLine fails unless the server answers a line over its
// limit with 500 5.4.0 and closes the connection. go-smtp's line limit
// fails the read after the limit, and bufio hands what arrived before that
// read (when it came in a segment of its own) to go-smtp as a line, so one
// reply to that fragment may come first.
func (w *wire) cutOffForLongLine() {
	w.t.Helper()
	replies, closed := w.closed(5 * time.Second)
	if !closed || len(replies) == 0 || len(replies) > 2 || !strings.HasPrefix(replies[len(replies)-1], "500 5.4.0 ") {
		w.t.Fatalf("long line: closed %v after %q, want a 500 5.4.0 and the close", closed, replies)
	}
}

func trim(s string) string {
	if len(s) > 60 {
		return fmt.Sprintf("%s...(%d bytes)", s[:60], len(s))
	}
	return s
}

func (m *memSpool) stored() []stored {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.msgs)
}

// checkExact fails unless m is msg exactly, after the fields the server
// stamps on top (Received: first, OriginalArrivalTime last).
func checkExact(t *testing.T, m stored, msg string) {
	t.Helper()
	stamp, ok := strings.CutSuffix(m.data, msg)
	if !ok || !strings.HasPrefix(stamp, "Received: from ") || !strings.HasSuffix(stamp, " (UTC)\r\n") ||
		strings.Count(stamp, "\r\nX-MS-Exchange-Organization-") != 4 {
		t.Errorf("stored message is not the stamp and then the message byte for byte (%d bytes stored, %d sent)", len(m.data), len(msg))
	}
}

// servesNormally checks that a fresh client still gets a full transaction
// through and stored.
func servesNormally(t *testing.T, addr string, sp *memSpool) {
	t.Helper()
	before := len(sp.stored())
	if err := send(addr, nil, "bob@fabrikam.com"); err != nil {
		t.Fatalf("a normal client after the hostile one: %v", err)
	}
	if got := len(sp.stored()); got != before+1 {
		t.Fatalf("a normal client's message was not stored (%d -> %d)", before, got)
	}
}

// sendOne sends msg as the DATA of one message on a new session and
// checks the reply and what was stored: msg byte for byte after a 250,
// nothing otherwise. async writes while the server may already answer
// (for messages too big to fit the socket buffers). The session is left
// open for more.
func sendOne(t *testing.T, msg string, code int, enh string, async bool) (w *wire, addr string, sp *memSpool) {
	t.Helper()
	sp = &memSpool{}
	addr = start(t, hostileConfig(), sp)
	w = dial(t, addr)
	w.expect("EHLO app1.contoso.com", 250, "")
	w.startData()
	if async {
		w.writeAsync(msg + ".\r\n")
	} else {
		w.write(msg + ".\r\n")
	}
	if got, text := w.reply(); got != code || !strings.HasPrefix(text, enh) {
		t.Fatalf("got %d %s, want %d %s", got, text, code, enh)
	}
	msgs := sp.stored()
	if code == 250 {
		if len(msgs) != 1 {
			t.Fatalf("%d messages stored", len(msgs))
		}
		checkExact(t, msgs[0], msg)
	} else if len(msgs) != 0 {
		t.Fatal("a refused message was stored")
	}
	return w, addr, sp
}

func hostileConfig() Config {
	return Config{RemoteIPRanges: loopback(), MaxMessageSize: 2 << 20, MaxRecipients: 200}
}

// A command line longer than go-smtp's limit (2000 bytes) is answered with
// 500 5.4.0 and the connection is closed, CRLF or not; the server does not
// wait for the end of the line. A long line within the limit is served.
func TestOversizedCommandLine(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	for _, tc := range []struct {
		name    string
		line    string
		tooLong bool
	}{
		{"100 KB without CRLF", "NOOP " + strings.Repeat("a", 100<<10), true},
		{"3000-byte MAIL FROM with CRLF", "MAIL FROM:<" + strings.Repeat("a", 3000) + "@contoso.com>\r\n", true},
		{"1990-byte NOOP within the limit", "NOOP " + strings.Repeat("a", 1990) + "\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := dial(t, addr)
			w.expect("EHLO app1.contoso.com", 250, "")
			w.writeAsync(tc.line)
			if tc.tooLong {
				w.cutOffForLongLine()
			} else {
				if code, msg := w.reply(); code != 250 {
					t.Fatalf("got %d %s, want 250", code, msg)
				}
				w.expect("NOOP", 250, "")
			}
			servesNormally(t, addr, sp)
		})
	}
}

// A client that sends an endless line is cut off: the server stops
// reading after the limit instead of buffering the line, so the client
// cannot get all of it written.
func TestCommandFloodIsCutOff(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	w := dial(t, addr)
	const total = 64 << 20
	var written atomic.Int64
	done := make(chan error, 1)
	go func() {
		chunk := []byte("NOOP " + strings.Repeat("a", 64<<10-5))
		for written.Load() < total {
			n, err := w.conn.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	w.cutOffForLongLine()
	select {
	case err := <-done:
		if err == nil {
			t.Fatalf("the server read all %d bytes of one line", total)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the writer is still writing: the server still reads the endless line")
	}
	if n := written.Load(); n >= total {
		t.Fatalf("%d bytes of one line were accepted", n)
	}
	servesNormally(t, addr, sp)
}

// Header and message size limits, with MaxHeaderSize at its default of
// 1 MB and MaxMessageSize 2 MB. Within them a message is stored byte for
// byte (after the stamped fields); a header block over 1 MB gets 552 5.3.4
// and a message over 2 MB gets 552 5.3.4, both with the session going on.
// A line over go-smtp's 2000-byte limit, in the header or the body, cannot
// be read at all: 554 5.6.0 and go-smtp closes the connection. (It used to
// get 451 4.3.0, which a client retries for ever.)
func TestOversizedMessageParts(t *testing.T) {
	var manyLines, manyLongLines strings.Builder
	for i := range 10000 {
		fmt.Fprintf(&manyLines, "X-Line-%05d: value\r\n", i)
		fmt.Fprintf(&manyLongLines, "X-Line-%05d: %s\r\n", i, strings.Repeat("v", 100))
	}
	bigBody := strings.Repeat(strings.Repeat("b", 998)+"\r\n", 3<<10) // 3 MB
	for _, tc := range []struct {
		name   string
		msg    string
		code   int
		enh    string
		closes bool
	}{
		{"10,000 header lines within 1 MB", manyLines.String() + "\r\nbody\r\n", 250, "2.0.0", false},
		{"10,000 header lines over 1 MB", manyLongLines.String() + "\r\nbody\r\n", 552, "5.3.4", false},
		{"1,900-byte header line", "X-Long: " + strings.Repeat("h", 1900) + "\r\n\r\nbody\r\n", 250, "2.0.0", false},
		{"1 MB header line", "X-Long: " + strings.Repeat("h", 1<<20) + "\r\n\r\nbody\r\n", 554, "5.6.0", true},
		{"1 MB body line", "Subject: long\r\n\r\n" + strings.Repeat("b", 1<<20) + "\r\n", 554, "5.6.0", true},
		{"3 MB message over the 2 MB limit", "Subject: big\r\n\r\n" + bigBody, 552, "5.3.4", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, addr, sp := sendOne(t, tc.msg, tc.code, tc.enh, true)
			if tc.closes {
				if _, closed := w.closed(5 * time.Second); !closed {
					t.Fatal("connection left open after a line go-smtp cannot read")
				}
			} else {
				// Still in step: the next message in the same session
				// goes through.
				w.startData()
				w.write("Subject: next\r\n\r\nok\r\n.\r\n")
				if code, msg := w.reply(); code != 250 {
					t.Fatalf("next message in the session: %d %s", code, msg)
				}
			}
			servesNormally(t, addr, sp)
		})
	}
}

// 10,000 pipelined RCPTs against MaxRecipients 200 (Exchange's default):
// the first 200 get 250, every other one 452 4.5.3, the transaction still
// completes, and the stored envelope has exactly the first 200.
func TestRecipientFlood(t *testing.T) {
	const limit, sent = 200, 10000
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	w := dial(t, addr)
	if ehlo := w.expect("EHLO app1.contoso.com", 250, ""); !strings.Contains(ehlo, "PIPELINING") || !strings.Contains(ehlo, fmt.Sprintf("LIMITS RCPTMAX=%d", limit)) {
		t.Fatalf("EHLO does not offer PIPELINING and the limit:\n%s", ehlo)
	}
	var batch strings.Builder
	batch.WriteString("MAIL FROM:<app@contoso.com>\r\n")
	for i := range sent {
		fmt.Fprintf(&batch, "RCPT TO:<r%05d@fabrikam.com>\r\n", i)
	}
	batch.WriteString("DATA\r\n")
	w.writeAsync(batch.String())
	if code, msg := w.reply(); code != 250 {
		t.Fatalf("MAIL: %d %s", code, msg)
	}
	for i := range sent {
		code, msg := w.reply()
		switch {
		case i < limit && code != 250:
			t.Fatalf("RCPT %d within the limit: %d %s", i, code, msg)
		case i >= limit && (code != 452 || !strings.HasPrefix(msg, "4.5.3 ")):
			t.Fatalf("RCPT %d over the limit: %d %s", i, code, msg)
		}
	}
	if code, msg := w.reply(); code != 354 {
		t.Fatalf("DATA: %d %s", code, msg)
	}
	w.write("Subject: many\r\n\r\nhello\r\n.\r\n")
	if code, msg := w.reply(); code != 250 {
		t.Fatalf("end of data: %d %s", code, msg)
	}
	msgs := sp.stored()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	rcpts := msgs[0].rcpts
	if len(rcpts) != limit {
		t.Fatalf("stored envelope has %d recipients, want %d", len(rcpts), limit)
	}
	for i, r := range rcpts {
		if want := fmt.Sprintf("r%05d@fabrikam.com", i); r != want {
			t.Fatalf("recipient %d is %s, want %s", i, r, want)
		}
	}
}

// slowResult is how a slow-loris client ended: when the server cut it
// off, measured from when it started being slow, and the replies before.
type slowResult struct {
	name    string
	last    string
	elapsed time.Duration
	at      time.Time
	closed  bool
	replies []string
}

// Slow-loris: clients that stay silent, or send one byte every 50 ms in a
// command or in DATA, are disconnected with 421 4.4.2 once the 400 ms
// timeout passes, while a normal client completes its transactions
// meanwhile, unaffected. Nothing the slow clients sent is stored.
func TestSlowClientsAreCutOff(t *testing.T) {
	const timeout = 400 * time.Millisecond
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: loopback(), CommandTimeout: timeout, DataTimeout: timeout}, sp)
	trickle := func(w *wire, s string, stop <-chan struct{}) {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if _, err := w.conn.Write([]byte{s[i%len(s)]}); err != nil {
				return
			}
		}
	}
	slow := []struct {
		name  string
		setup func(*wire)
		drip  string // sent a byte at a time; "" for silence
		last  string // start of the reply before the close; "" for any one
	}{
		{"silent", func(*wire) {}, "", "421 4.4.2 "},
		// net/textproto returns the part of a line read before the
		// timeout as a line, so go-smtp answers that fragment as a
		// command ("EHLO sl"); then the connection reads nothing more.
		{"one byte per 50 ms in a command", func(*wire) {}, "EHLO slow.contoso.com", ""},
		{"one byte per 50 ms in DATA", func(w *wire) {
			w.expect("EHLO slow.contoso.com", 250, "")
			w.startData()
		}, "x\r\n", "421 4.4.2 "},
	}
	results := make(chan slowResult, len(slow))
	stop := make(chan struct{})
	defer close(stop)
	for _, s := range slow {
		w := dial(t, addr)
		s.setup(w)
		go func() {
			began := time.Now()
			if s.drip != "" {
				go trickle(w, s.drip, stop)
			}
			replies, closed := w.closed(5 * time.Second)
			results <- slowResult{s.name, s.last, time.Since(began), time.Now(), closed, replies}
		}()
	}
	time.Sleep(50 * time.Millisecond)
	for range 3 {
		if err := send(addr, nil, "bob@fabrikam.com"); err != nil {
			t.Fatalf("normal client beside the slow ones: %v", err)
		}
	}
	normalDone := time.Now()
	for range slow {
		r := <-results
		if !r.closed {
			t.Errorf("%s: still connected after 5 s", r.name)
			continue
		}
		if r.elapsed < timeout*3/4 {
			t.Errorf("%s: cut off after %v, before the %v timeout", r.name, r.elapsed, timeout)
		}
		if len(r.replies) != 1 || !strings.HasPrefix(r.replies[0], r.last) {
			t.Errorf("%s: replies before the close %q, want one %q", r.name, r.replies, r.last)
		}
		if !normalDone.Before(r.at) {
			t.Errorf("%s: the normal client finished only after the slow one was cut off", r.name)
		}
	}
	if got := len(sp.stored()); got != 3 {
		t.Errorf("%d messages stored, want the normal client's 3", got)
	}
}

// A client that stalls in the middle of a message past the timeout gets
// 421 (DATA) or go-smtp's 554 (BDAT) and the connection is closed: what it
// sends afterwards is never read as commands. Before, the server answered
// and read the rest of the message as commands, so a "MAIL FROM ... DATA
// ... ." inside the body was accepted as a second message.
func TestStalledTransferIsNotReadAsCommands(t *testing.T) {
	const timeout = 300 * time.Millisecond
	const smuggled = "part two\r\nMAIL FROM:<smuggler@contoso.com>\r\nRCPT TO:<victim@fabrikam.com>\r\nDATA\r\nsmuggled\r\n.\r\nQUIT\r\n"
	for _, tc := range []struct {
		name   string
		begin  func(*wire)
		first  string
		expect string // start of the one reply before the close
	}{
		{"DATA", func(w *wire) { w.startData() }, "Subject: stall\r\n\r\npart one\r\n", "421 4.4.2 "},
		{"BDAT", func(w *wire) {
			w.expect("MAIL FROM:<app@contoso.com>", 250, "")
			w.expect("RCPT TO:<bob@fabrikam.com>", 250, "")
		}, "BDAT 1000 LAST\r\nSubject: stall\r\n\r\npart one\r\n", "554 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &memSpool{}
			addr := start(t, Config{RemoteIPRanges: loopback(), CommandTimeout: timeout, DataTimeout: timeout}, sp)
			w := dial(t, addr)
			w.expect("EHLO app1.contoso.com", 250, "")
			tc.begin(w)
			w.write(tc.first)
			time.Sleep(timeout * 5 / 3) // past the timeout, before a second one would pass
			w.writeAsync(smuggled)
			replies, closed := w.closed(5 * time.Second)
			if !closed {
				t.Fatalf("connection still open after the timeout; replies %q", replies)
			}
			if len(replies) != 1 || !strings.HasPrefix(replies[0], tc.expect) {
				t.Errorf("replies after the stall %q, want one %q", replies, tc.expect)
			}
			if msgs := sp.stored(); len(msgs) != 0 {
				t.Errorf("stored %d messages, the first from %s", len(msgs), msgs[0].from)
			}
			servesNormally(t, addr, sp)
		})
	}
}

// NUL and other bytes that cannot be part of a command (RFC 5321 allows
// neither NUL nor bare CR) are refused with the 5xx below, and the session
// goes on: the same connection then carries a normal transaction, whose
// envelope holds none of the refused bytes. Also refused: invalid UTF-8
// (the queue would refuse it only after DATA, as a temporary failure) and
// a quoted local part that would become ESMTP parameters once sent on
// unquoted. A UTF-8 address is accepted.
func TestNULAndControlBytesInCommands(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, Config{RemoteIPRanges: loopback(), Users: []User{appUser()}, AllowInsecureAuth: true}, sp)
	ehlo := "EHLO app1.contoso.com"
	mail := "MAIL FROM:<app@contoso.com>"
	for _, tc := range []struct {
		name  string
		setup []string // each answered with 250
		line  string
		code  int
		enh   string
	}{
		{"a NUL alone", []string{ehlo}, "\x00", 501, "5.5.2"},
		{"NUL after NOOP", []string{ehlo}, "NOOP\x00", 501, "5.5.2"},
		{"NUL in the verb", []string{ehlo}, "MA\x00L FROM:<app@contoso.com>", 500, "5.5.2"},
		{"NUL in the first EHLO", nil, "EHLO app1\x00.contoso.com", 501, "5.5.2"},
		{"invalid UTF-8 in the first EHLO", nil, "EHLO app1\xff.contoso.com", 501, "5.5.2"},
		{"NUL in a later EHLO", []string{ehlo, "EHLO app1\x00.contoso.com"}, mail, 501, "5.5.2"},
		{"NUL in MAIL FROM", []string{ehlo}, "MAIL FROM:<app\x00@contoso.com>", 501, "5.1.7"},
		{"NUL in a quoted local part", []string{ehlo}, "MAIL FROM:<\"a\x00p\"@contoso.com>", 501, "5.1.7"},
		{"bare CR in MAIL FROM", []string{ehlo}, "MAIL FROM:<app\rRSET@contoso.com>", 501, "5.1.7"},
		{"NUL in ENVID", []string{ehlo}, "MAIL FROM:<app@contoso.com> ENVID=q\x00", 501, "5.5.4"},
		{"NUL in a RCPT TO domain", []string{ehlo, mail}, "RCPT TO:<bob@fabrikam\x00.com>", 501, "5.1.3"},
		{"invalid UTF-8 in RCPT TO", []string{ehlo, mail}, "RCPT TO:<b\xffb@fabrikam.com>", 501, "5.1.3"},
		{"parameters smuggled in a quoted local part", []string{ehlo, mail}, "RCPT TO:<\"x> NOTIFY=NEVER\"@fabrikam.com>", 501, "5.1.3"},
		{"NUL in NOTIFY", []string{ehlo, mail}, "RCPT TO:<bob@fabrikam.com> NOTIFY=SUCCESS\x00", 501, "5.5.4"},
		{"invalid UTF-8 in a utf-8 ORCPT", []string{ehlo, mail}, "RCPT TO:<bob@fabrikam.com> ORCPT=utf-8;b\xffb@fabrikam.com", 501, "5.5.4"},
		{"DEL in a utf-8 ORCPT", []string{ehlo, mail}, "RCPT TO:<bob@fabrikam.com> ORCPT=utf-8;b\\x{7F}b@fabrikam.com", 501, "5.5.4"},
		{"NUL in the AUTH mechanism", []string{ehlo}, "AUTH PL\x00AIN", 504, "5.7.4"},
		{"a UTF-8 address is accepted", []string{ehlo, mail}, "RCPT TO:<jörg@fabrikam.com>", 250, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(sp.stored())
			w := dial(t, addr)
			for _, l := range tc.setup {
				w.expect(l, 250, "")
			}
			w.expect(tc.line, tc.code, tc.enh)
			// The session goes on.
			w.expect("RSET", 250, "")
			w.expect(ehlo, 250, "")
			w.startData()
			w.write("Subject: after\r\n\r\nok\r\n.\r\n")
			if code, msg := w.reply(); code != 250 {
				t.Fatalf("transaction after the refusal: %d %s", code, msg)
			}
			msgs := sp.stored()
			if len(msgs) != before+1 {
				t.Fatalf("%d messages stored, want %d", len(msgs), before+1)
			}
			m := msgs[len(msgs)-1]
			if m.from != "app@contoso.com" || !slices.Equal(m.rcpts, []string{"bob@fabrikam.com"}) || m.meta["helo"] != "app1.contoso.com" {
				t.Errorf("envelope after the refusal: from %q rcpts %q helo %q", m.from, m.rcpts, m.meta["helo"])
			}
		})
	}
}

// NUL in DATA: in the body it is 8-bit data and stored byte for byte; in
// the header it is refused with 550 5.6.0 (RFC 5322 has no NUL there, and
// a next hop that drops it could see a field the header firewall did not),
// and the session goes on.
func TestNULInData(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		code int
		enh  string
	}{
		{"NUL in the body", "Subject: nul\r\n\r\nbefore\x00after\r\n\x00\r\n", 250, "2.0.0"},
		{"NUL in a header value", "Subject: a\x00b\r\n\r\nbody\r\n", 550, "5.6.0"},
		{"NUL before an Organization field", "Subject: x\r\n\x00X-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nbody\r\n", 550, "5.6.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _, _ := sendOne(t, tc.msg, tc.code, tc.enh, false)
			w.expect("NOOP", 250, "")
		})
	}
}

// Commands may end with a bare LF (a command line cannot end a message,
// so this smuggles nothing); the transaction is stored with a clean
// envelope.
func TestCommandsMayEndWithBareLF(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	w := dial(t, addr)
	for _, c := range []struct {
		line string
		code int
	}{
		{"EHLO app1.contoso.com\n", 250},
		{"MAIL FROM:<app@contoso.com>\n", 250},
		{"RCPT TO:<bob@fabrikam.com>\n", 250},
		{"DATA\n", 354},
		{"Subject: lf\r\n\r\nbody\r\n.\r\n", 250},
		{"NOOP\n", 250},
	} {
		w.write(c.line)
		if code, msg := w.reply(); code != c.code {
			t.Fatalf("%q: %d %s", c.line, code, msg)
		}
	}
	msgs := sp.stored()
	if len(msgs) != 1 {
		t.Fatalf("%d messages stored", len(msgs))
	}
	if m := msgs[0]; m.from != "app@contoso.com" || !slices.Equal(m.rcpts, []string{"bob@fabrikam.com"}) || m.meta["helo"] != "app1.contoso.com" {
		t.Errorf("envelope: from %q rcpts %q helo %q", m.from, m.rcpts, m.meta["helo"])
	}
	checkExact(t, msgs[0], "Subject: lf\r\n\r\nbody\r\n")
}

// SMTP smuggling (CVE-2023-51764 and the like): only CRLF.CRLF ends DATA.
// After each look-alike the server must still be reading data (no reply),
// and the "MAIL FROM ... DATA ... ." after it must not become a second
// message. The look-alikes with a bare CR or LF make the whole message
// 550 5.6.11, so none of it is stored to be relayed; "\r\n.\r" is no bare
// line ending (go-smtp drops the ".\r") and the text after it stays body
// of the one message.
func TestDataEndsOnlyAtCRLFDotCRLF(t *testing.T) {
	const after = "MAIL FROM:<smuggler@contoso.com>\r\nRCPT TO:<victim@fabrikam.com>\r\nDATA\r\nsmuggled\r\n.\r\n"
	for _, tc := range []struct {
		name      string
		lookalike string
		code      int
		enh       string
	}{
		{"LF . CRLF", "\n.\r\n", 550, "5.6.11"},
		{"LF . LF", "\n.\n", 550, "5.6.11"},
		{"CR . CRLF", "\r.\r\n", 550, "5.6.11"},
		{"CR . CR", "\r.\r", 550, "5.6.11"},
		{"CRLF . LF", "\r\n.\n", 550, "5.6.11"},
		{"CRLF . CR", "\r\n.\r", 250, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &memSpool{}
			addr := start(t, hostileConfig(), sp)
			w := dial(t, addr)
			w.expect("EHLO app1.contoso.com", 250, "")
			w.startData()
			w.write("Subject: smuggle\r\n\r\nhello" + tc.lookalike)
			if !w.silentFor(300 * time.Millisecond) {
				code, msg := w.reply()
				t.Fatalf("%q ended DATA: %d %s", tc.lookalike, code, msg)
			}
			w.write(after)
			if code, msg := w.reply(); code != tc.code || !strings.HasPrefix(msg, tc.enh) {
				t.Fatalf("end of data: %d %s, want %d %s", code, msg, tc.code, tc.enh)
			}
			// The next reply is QUIT's: none came for the MAIL, RCPT and
			// DATA inside the message.
			w.expect("QUIT", 221, "")
			msgs := sp.stored()
			for _, m := range msgs {
				if m.from == "smuggler@contoso.com" || slices.Contains(m.rcpts, "victim@fabrikam.com") {
					t.Fatalf("smuggled message stored: from %s to %v", m.from, m.rcpts)
				}
			}
			if tc.code == 250 {
				if len(msgs) != 1 || !strings.HasSuffix(msgs[0].data, "\r\n"+after[:len(after)-3]) {
					t.Fatalf("want the one message with the text as its body, got %d", len(msgs))
				}
			} else if len(msgs) != 0 {
				t.Fatalf("%d messages stored", len(msgs))
			}
		})
	}
}

// Bare CR or LF anywhere in DATA or in a BDAT chunk is refused with
// 550 5.6.11 (nothing stored) and the session goes on in step. A clean
// BDAT message is stored byte for byte.
func TestBareLineEndingsInDataAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		msg  string
		bdat bool
		code int
		enh  string
	}{
		{"bare LF in the body", "Subject: x\r\n\r\nline one\nline two\r\n", false, 550, "5.6.11"},
		{"bare CR in the body", "Subject: x\r\n\r\nline one\rline two\r\n", false, 550, "5.6.11"},
		{"LF-only message", "Subject: x\n\nbody\n\r\n", false, 550, "5.6.11"},
		{"bare CR hiding an Organization field", "Subject: x\rX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nbody\r\n", false, 550, "5.6.11"},
		{"bare LF in a BDAT chunk", "Subject: x\r\n\r\nhello\n.\r\nmore\r\n", true, 550, "5.6.11"},
		{"clean BDAT message", "Subject: x\r\n\r\nhello\r\n.\r\nno dot-stuffing in BDAT\r\n", true, 250, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp := &memSpool{}
			addr := start(t, hostileConfig(), sp)
			w := dial(t, addr)
			w.expect("EHLO app1.contoso.com", 250, "")
			if tc.bdat {
				w.expect("MAIL FROM:<app@contoso.com>", 250, "")
				w.expect("RCPT TO:<bob@fabrikam.com>", 250, "")
				w.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(tc.msg), tc.msg))
			} else {
				w.startData()
				w.write(tc.msg + ".\r\n")
			}
			if code, msg := w.reply(); code != tc.code || !strings.HasPrefix(msg, tc.enh) {
				t.Fatalf("got %d %s, want %d %s", code, msg, tc.code, tc.enh)
			}
			msgs := sp.stored()
			if tc.code == 250 {
				if len(msgs) != 1 {
					t.Fatalf("%d messages stored", len(msgs))
				}
				checkExact(t, msgs[0], tc.msg)
			} else if len(msgs) != 0 {
				t.Fatal("a refused message was stored")
			}
			w.expect("NOOP", 250, "")
			w.startData()
			w.write("Subject: next\r\n\r\nok\r\n.\r\n")
			if code, msg := w.reply(); code != 250 {
				t.Fatalf("next message in the session: %d %s", code, msg)
			}
		})
	}
}

// The subject kept for queue listings has no control characters, even
// when an encoded word decodes to CR, LF or an escape sequence.
func TestSubjectMetaHasNoControlCharacters(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	w := dial(t, addr)
	w.expect("EHLO app1.contoso.com", 250, "")
	w.startData()
	w.write("Subject: =?utf-8?q?Invoice=0D=0AX-Evil:_1_=1B[2J=07?=\r\n\r\nbody\r\n.\r\n")
	if code, msg := w.reply(); code != 250 {
		t.Fatalf("%d %s", code, msg)
	}
	subject := sp.stored()[0].meta["subject"]
	if !strings.HasPrefix(subject, "Invoice") || strings.ContainsFunc(subject, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		t.Errorf("subject meta %q", subject)
	}
}

// checkStored fails unless what reached the spool is fit to be queued
// and sent on: addresses and client facts in UTF-8 without control
// characters, no SP or angle brackets in addresses, and a body whose
// every line ends with CRLF.
func checkStored(t *testing.T, m stored, maxRcpts int) {
	t.Helper()
	clean := func(s string, extra string) bool {
		return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 || r == 0x7f || strings.ContainsRune(extra, r)
		})
	}
	if !clean(m.from, " <>") {
		t.Errorf("sender %q", m.from)
	}
	if len(m.rcpts) == 0 || len(m.rcpts) > maxRcpts {
		t.Errorf("%d recipients", len(m.rcpts))
	}
	for _, r := range m.rcpts {
		if !clean(r, " <>") || !strings.Contains(r, "@") {
			t.Errorf("recipient %q", r)
		}
	}
	for _, r := range m.env.Recipients {
		if !clean(r.ORCPT, "") {
			t.Errorf("ORCPT %q", r.ORCPT)
		}
	}
	for k, v := range m.meta {
		if !clean(v, "") {
			t.Errorf("meta %s = %q", k, v)
		}
	}
	if !strings.HasPrefix(m.data, "Received: from ") {
		t.Errorf("stored data does not start with the Received: line: %q", trim(m.data))
	}
	if n := strings.Count(m.data, "\r") + strings.Count(m.data, "\n"); n != 2*strings.Count(m.data, "\r\n") {
		t.Errorf("stored data has a bare CR or LF: %q", trim(m.data))
	}
}

// A second MAIL inside a transaction gets 503 5.5.1 and leaves the
// transaction as it was: go-smtp keeps the recipients it counted, so a
// new envelope would have reached DATA with none (FuzzSession found it;
// the queue refuses such a message, so the client got 451 for ever).
func TestNestedMailIsRefused(t *testing.T) {
	sp := &memSpool{}
	addr := start(t, hostileConfig(), sp)
	w := dial(t, addr)
	w.expect("EHLO app1.contoso.com", 250, "")
	w.expect("MAIL FROM:<app@contoso.com>", 250, "")
	w.expect("RCPT TO:<bob@fabrikam.com>", 250, "")
	w.expect("MAIL FROM:<other@contoso.com>", 503, "5.5.1")
	w.expect("DATA", 354, "")
	w.write("Subject: nested\r\n\r\nbody\r\n.\r\n")
	if code, msg := w.reply(); code != 250 {
		t.Fatalf("end of data: %d %s", code, msg)
	}
	// After the transaction, MAIL opens the next one.
	w.expect("MAIL FROM:<other@contoso.com>", 250, "")
	msgs := sp.stored()
	if len(msgs) != 1 || msgs[0].from != "app@contoso.com" || !slices.Equal(msgs[0].rcpts, []string{"bob@fabrikam.com"}) {
		t.Fatalf("stored %+v", msgs)
	}
}

// Guessing passwords is slow and short: every failed AUTH from an address
// is answered later than the one before, across sessions, and a session
// gets three tries before AUTH is refused outright, even with the right
// password.
func TestAuthGuessingIsSlowedAndCut(t *testing.T) {
	const step = 150 * time.Millisecond
	sp := &memSpool{}
	addr := start(t, Config{Users: []User{appUser()}, AllowInsecureAuth: true, AuthFailureDelay: step}, sp)
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("app1.contoso.com"); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	for i := 1; i <= 3; i++ {
		start := time.Now()
		err := c.Auth(sasl.NewPlainClient("", "app1", fmt.Sprint("guess", i)))
		took := time.Since(start)
		if !errors.As(err, &se) || se.Code != 535 {
			t.Fatalf("guess %d: %v, want 535", i, err)
		}
		if took < time.Duration(i)*step {
			t.Errorf("guess %d answered after %v, want at least %v", i, took, time.Duration(i)*step)
		}
	}
	if err := c.Auth(sasl.NewPlainClient("", "app1", "app-secret")); !errors.As(err, &se) || se.Code != 421 {
		t.Fatalf("fourth try in one session: %v, want 421", err)
	}
	// A new session from the same address: still slowed, and the right
	// password works.
	c2, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if err := c2.Hello("app1.contoso.com"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c2.Auth(sasl.NewPlainClient("", "app1", "guess4")); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("guess in a new session: %v", err)
	}
	if took := time.Since(start); took < 4*step {
		t.Errorf("a new session's guess answered after %v, want at least %v", took, 4*step)
	}
	if err := c2.Auth(sasl.NewPlainClient("", "app1", "app-secret")); err != nil {
		t.Errorf("the right password after guesses: %v", err)
	}
}
