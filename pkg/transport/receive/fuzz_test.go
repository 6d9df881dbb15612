package receive

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

var (
	appHashOnce sync.Once
	appHash     []byte
)

// appUser is app1 with password app-secret, hashed at bcrypt's lowest cost
// so that tests stay fast.
func appUser() User {
	appHashOnce.Do(func() { appHash, _ = bcrypt.GenerateFromPassword([]byte("app-secret"), bcrypt.MinCost) })
	return User{Name: "app1", PasswordHash: string(appHash)}
}

const fuzzMaxRecipients = 5

// fuzzSeeds are whole client transcripts: the fuzzer's input is written
// to the connection as it is.
func fuzzSeeds() []string {
	const (
		ehlo = "EHLO app1.contoso.com\r\n"
		txn  = "MAIL FROM:<app@contoso.com>\r\nRCPT TO:<bob@fabrikam.com>\r\n"
		msg  = "Subject: hello\r\nX-MS-Exchange-Organization-AuthAs: Internal\r\n\r\nbody\r\n..stuffed\r\n"
	)
	plain := base64.StdEncoding.EncodeToString([]byte("\x00app1\x00app-secret"))
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	chunk := "Subject: chunked\r\n\r\nfirst\r\n"
	last := "second\r\n"
	return []string{
		// A normal transaction.
		ehlo + txn + "DATA\r\n" + msg + ".\r\nQUIT\r\n",
		// Pipelined: two transactions, RSET, several recipients, DSN.
		ehlo + "MAIL FROM:<app@contoso.com> RET=HDRS ENVID=QQ314159\r\nRCPT TO:<a@fabrikam.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;A@fabrikam.com\r\nRCPT TO:<b@fabrikam.com>\r\nRSET\r\n" +
			txn + "RCPT TO:<carol@sales.contoso.com>\r\nDATA\r\n" + msg + ".\r\n" + txn + "DATA\r\nSubject: two\r\n\r\n2\r\n.\r\nQUIT\r\n",
		// BDAT in two chunks.
		ehlo + txn + fmt.Sprintf("BDAT %d\r\n%sBDAT %d LAST\r\n%s", len(chunk), chunk, len(last), last) + "QUIT\r\n",
		// BDAT without a transaction, and a chunk cut short.
		ehlo + "BDAT 10 LAST\r\n0123456789" + txn + "BDAT 100 LAST\r\nshort",
		// AUTH: PLAIN with an initial response, LOGIN step by step, a
		// cancelled exchange and bad base64.
		ehlo + "AUTH PLAIN " + plain + "\r\n" + txn + "DATA\r\n" + msg + ".\r\n",
		ehlo + "AUTH LOGIN\r\n" + b64("app1") + "\r\n" + b64("wrong") + "\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN !!!\r\nAUTH PLAIN\r\n=\r\n",
		// NULs in commands and data.
		"EHLO a\x00b\r\n" + ehlo + "MAIL FROM:<a\x00@contoso.com>\r\n\x00\x00\x00\r\n" + txn + "DATA\r\nSubject: n\x00l\r\n\r\nb\x00dy\r\n.\r\n",
		// Bare LF commands, bare LF and CR in data, smuggling look-alikes.
		"EHLO a\nMAIL FROM:<app@contoso.com>\nRCPT TO:<bob@fabrikam.com>\nDATA\nhello\n.\nmore\r\n.\r\n",
		ehlo + txn + "DATA\r\nSubject: s\r\n\r\nhi\n.\r\nMAIL FROM:<smuggler@contoso.com>\r\nRCPT TO:<victim@fabrikam.com>\r\nDATA\r\nsmuggled\r\n.\r\n",
		ehlo + txn + "DATA\r\nSubject: s\r\n\r\nhi\r.\r\nx\r\n.\r\n",
		// A very long line, then commands.
		ehlo + "NOOP " + strings.Repeat("x", 3000) + "\r\n" + txn,
		// Odd commands and garbage.
		"HELO x\r\nSTARTTLS\r\nVRFY bob\r\nEXPN list\r\nHELP\r\nDATA\r\nRCPT TO:<b@c>\r\n\r\n\xff\xfe\r\nQUIT\r\n",
		// Too many recipients.
		ehlo + "MAIL FROM:<>\r\n" + strings.Repeat("RCPT TO:<r@fabrikam.com>\r\n", 8) + "DATA\r\nSubject: x\r\n\r\ny\r\n.\r\n",
		"",
	}
}

// replyLine is what every line the server sends must look like.
var replyLine = regexp.MustCompile(`^[2-5][0-9][0-9]([ -]|$)`)

// FuzzSession writes arbitrary bytes to a real session and checks that
// the server stays sound: it never sends anything but well-formed reply
// lines, ends the session when the client does, keeps serving new clients,
// leaks no goroutine and no connection slot, and stores only messages from
// input that holds a transaction, with an envelope and body fit to be
// relayed.
func FuzzSession(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add([]byte(s))
	}
	// Unknown users are checked against dummyHash, at bcrypt's default
	// cost; at the lowest cost AUTH lines stay fast. Restored last, once
	// the server (closed by startServer's cleanup) is gone.
	saved := dummyHash
	dummyHash = []byte(appUser().PasswordHash)
	f.Cleanup(func() { dummyHash = saved })

	sp := &memSpool{}
	srv, addr := startServer(f, Config{
		RemoteIPRanges: loopback(), Users: []User{appUser()}, AllowInsecureAuth: true,
		MaxMessageSize: 64 << 10, MaxRecipients: fuzzMaxRecipients, MaxConnections: 8,
		CommandTimeout: 500 * time.Millisecond, DataTimeout: 500 * time.Millisecond,
		AuthFailureDelay: -1, // the fuzzer guesses passwords by the thousand
	}, sp)

	var baseline int
	var once sync.Once
	f.Fuzz(func(t *testing.T, in []byte) {
		once.Do(func() {
			stillServes(t, addr)
			settle(t, srv, func(int) bool { return len(srv.sem) == 0 })
			baseline = runtime.NumGoroutine()
		})
		before := len(sp.stored())

		transcript := fuzzSession(t, addr, in)
		if !strings.HasPrefix(transcript, "220 ") {
			t.Fatalf("no greeting: %q", trim(transcript))
		}
		lines := strings.Split(transcript, "\r\n")
		for _, l := range lines[:len(lines)-1] { // the last is what follows the last CRLF
			if !replyLine.MatchString(l) {
				t.Fatalf("malformed reply line %q in\n%s", trim(l), trim(transcript))
			}
		}

		stillServes(t, addr)
		settle(t, srv, func(n int) bool { return len(srv.sem) == 0 && n <= baseline+3 })

		msgs := sp.stored()[before:]
		upper := bytes.ToUpper(in)
		if len(msgs) > 0 && !(bytes.Contains(upper, []byte("MAIL FROM:")) && bytes.Contains(upper, []byte("RCPT TO:")) &&
			(bytes.Contains(upper, []byte("DATA")) || bytes.Contains(upper, []byte("BDAT")))) {
			t.Fatalf("%d messages stored from input without a transaction", len(msgs))
		}
		for _, m := range msgs {
			checkStored(t, m, fuzzMaxRecipients)
		}
	})
}

// fuzzSession writes in to a fresh connection, then ends its side, and
// returns everything the server sent until it closed. The server must
// close within 3 s of the client's end of input.
func fuzzSession(t *testing.T, addr string, in []byte) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	type result struct {
		out []byte
		err error
	}
	read := make(chan result, 1)
	go func() {
		out, err := io.ReadAll(c)
		read <- result{out, err}
	}()
	// The server may close before it read everything (too many errors,
	// a line too long); what it did not read does not matter.
	if _, err := c.Write(in); err == nil {
		_ = c.(*net.TCPConn).CloseWrite()
	}
	r := <-read
	var ne net.Error
	if errors.As(r.err, &ne) && ne.Timeout() {
		t.Fatalf("session still open 3 s after the client's end of input; got %q", trim(string(r.out)))
	}
	return string(r.out)
}

// stillServes checks that a new client gets the greeting and EHLO.
func stillServes(t testing.TB, addr string) {
	t.Helper()
	w := dial(t, addr)
	w.expect("EHLO app1.contoso.com", 250, "")
	w.expect("QUIT", 221, "")
	_ = w.conn.Close()
}

// settle waits up to 5 s for ok(number of goroutines) to hold.
func settle(t testing.TB, srv *Server, ok func(goroutines int) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !ok(runtime.NumGoroutine()) {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("sessions did not end: %d connections open, %d goroutines\n%s",
				len(srv.sem), runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}
