package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"io"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

var (
	bobRemote = Recipient{
		Address:     "bob@fabrikam.com",
		Action:      Failed,
		Reply:       "550 5.1.1 <bob@fabrikam.com>: user unknown",
		RemoteMTA:   "mx.fabrikam.com",
		LastAttempt: lastTry,
	}
	carolNXDomain = Recipient{
		Address: "carol@nowhere.invalid",
		Action:  Failed,
		Status:  "5.4.4",
		Reply:   "554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain",
	}
	daveExpired = Recipient{
		Address:     "dave@fabrikam.com",
		Action:      Failed,
		Reply:       "550 4.4.7 QUEUE.Expired; message expired",
		LastAttempt: lastTry,
	}
)

// TestGolden pins the bytes of each kind of report and checks what the
// standard library reads back from it.
func TestGolden(t *testing.T) {
	_, kept := original()
	for _, tc := range []struct {
		name   string
		report func() Report
		full   bool // part 3 is message/rfc822
		status []string
	}{
		{"failure-remote", func() Report { return baseReport(bobRemote, carolNXDomain) }, true, []string{"5.1.1", "5.4.4"}},
		{"expiry", func() Report { return baseReport(daveExpired) }, true, []string{"4.4.7"}},
		{"delay", func() Report {
			return baseReport(Recipient{
				Address:        "bob@fabrikam.com",
				Action:         Delayed,
				Reply:          "451 4.4.0 Primary target IP address responded with: \"421 4.4.2 Connection dropped.\"",
				RemoteMTA:      "mx.fabrikam.com",
				LastAttempt:    lastTry,
				WillRetryUntil: arrival.Add(48 * time.Hour),
			})
		}, false, []string{"4.4.0"}},
		{"ret-hdrs", func() Report {
			r := baseReport(bobRemote)
			r.Return = ReturnHeaders
			return r
		}, false, []string{"5.1.1"}},
		{"full-lf", func() Report {
			r := baseReport(carolNXDomain)
			msg, _ := original()
			msg = strings.ReplaceAll(msg, "\r\n", "\n")
			r.Original, r.OriginalSize, r.Return = strings.NewReader(msg), int64(len(msg)), ReturnFull
			return r
		}, true, []string{"5.4.4"}},
		{"too-big", func() Report {
			r := baseReport(bobRemote)
			r.Return = ReturnFull
			r.MaxFullReturn = r.OriginalSize - 1
			return r
		}, false, []string{"5.1.1"}},
		{"envid-orcpt", func() Report {
			rc := bobRemote
			rc.OriginalRecipient = "rfc822;bob+tag@fabrikam.com"
			r := baseReport(rc)
			r.EnvelopeID = "QQ314159+x"
			r.From = "Microsoft Outlook <postmaster@contoso.com>"
			return r
		}, true, []string{"5.1.1"}},
		{"relayed", func() Report {
			return baseReport(Recipient{Address: "bob@fabrikam.com", Action: Relayed, Reply: "250 2.0.0 OK queued as 7F3A", RemoteMTA: "legacy.fabrikam.com"})
		}, false, []string{"2.0.0"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.report()
			out := compose(t, r)
			golden(t, tc.name, out)

			p := parse(t, out)
			if got := p.header.Get("Message-ID"); got != "<dsn-0001@relay.contoso.com>" {
				t.Errorf("Message-ID %q", got)
			}
			for _, f := range []string{"In-Reply-To", "References"} {
				if got := p.header.Get(f); got != "<20260302091458.1234@client.contoso.com>" {
					t.Errorf("%s %q", f, got)
				}
			}
			if got := p.header.Get("Auto-Submitted"); got != "auto-replied" {
				t.Errorf("Auto-Submitted %q", got)
			}
			if got := p.parts[0].params["charset"]; got != "utf-8" {
				t.Errorf("text charset %q", got)
			}
			if len(p.recipients) != len(tc.status) {
				t.Fatalf("%d recipient blocks, want %d", len(p.recipients), len(tc.status))
			}
			for i, rc := range p.recipients {
				want := r.Recipients[i]
				if got := rc.Get("Final-Recipient"); got != "rfc822;"+want.Address {
					t.Errorf("recipient %d: Final-Recipient %q", i, got)
				}
				if got := rc.Get("Action"); got != string(want.Action) {
					t.Errorf("recipient %d: Action %q", i, got)
				}
				if got := rc.Get("Status"); got != tc.status[i] {
					t.Errorf("recipient %d: Status %q, want %q", i, got, tc.status[i])
				}
				if got := rc.Get("Diagnostic-Code"); got != "smtp;"+want.Reply {
					t.Errorf("recipient %d: Diagnostic-Code %q", i, got)
				}
				if got, wantMTA := rc.Get("Remote-MTA"), want.RemoteMTA; (got == "") != (wantMTA == "") || wantMTA != "" && got != "dns;"+wantMTA {
					t.Errorf("recipient %d: Remote-MTA %q", i, got)
				}
			}

			wantType := "text/rfc822-headers"
			if tc.full {
				wantType = "message/rfc822"
			}
			if p.parts[2].mediaType != wantType {
				t.Fatalf("part 3 is %s, want %s", p.parts[2].mediaType, wantType)
			}
			hdr, body := p.attachedHeader()
			checkFirewall(t, hdr)
			if string(hdr) != kept {
				t.Errorf("attached header\n%q\nwant\n%q", hdr, kept)
			}
			if tc.full && string(body) != origBody {
				t.Errorf("attached body %q, want %q", body, origBody)
			}
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n%s", path, got)
	}
}

func TestDeliveryStatusFields(t *testing.T) {
	rc := bobRemote
	rc.OriginalRecipient = "rfc822;bob+tag@fabrikam.com"
	r := baseReport(rc, carolNXDomain)
	r.EnvelopeID = "QQ314159+x"
	p := parse(t, compose(t, r))
	for f, want := range map[string]string{
		"Reporting-MTA":        "dns;relay.contoso.com",
		"Original-Envelope-Id": "QQ314159+x",
		"Arrival-Date":         "Mon, 02 Mar 2026 09:14:59 +0000",
	} {
		if got := p.status.Get(f); got != want {
			t.Errorf("%s %q, want %q", f, got, want)
		}
	}
	bob, carol := p.recipients[0], p.recipients[1]
	if got := bob.Get("Original-Recipient"); got != "rfc822;bob+tag@fabrikam.com" {
		t.Errorf("Original-Recipient %q", got)
	}
	if got := bob.Get("Last-Attempt-Date"); got != "Mon, 02 Mar 2026 09:20:11 +0000" {
		t.Errorf("Last-Attempt-Date %q", got)
	}
	for _, f := range []string{"Original-Recipient", "Remote-MTA", "Last-Attempt-Date", "Will-Retry-Until"} {
		if v := carol.Values(f); v != nil {
			t.Errorf("carol has %s %q", f, v)
		}
	}
	if bob.Values("Will-Retry-Until") != nil {
		t.Error("Will-Retry-Until on a failure")
	}
}

func TestHumanReadable(t *testing.T) {
	p := parse(t, compose(t, baseReport(bobRemote, carolNXDomain)))
	text := string(p.parts[0].body)
	for _, want := range []string{
		"Delivery has failed to these recipients or groups:\r\n\r\nbob@fabrikam.com\r\ncarol@nowhere.invalid\r\n",
		"Diagnostic information for administrators:\r\n",
		"Generating server: relay.contoso.com\r\n",
		"bob@fabrikam.com\r\nmx.fabrikam.com gave this error:\r\nRemote Server returned '550 5.1.1 <bob@fabrikam.com>: user unknown'\r\n",
		"carol@nowhere.invalid\r\n554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain\r\n",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("text part lacks %q:\n%s", want, text)
		}
	}
	if got := p.header.Get("Subject"); got != "Undeliverable: Quarterly figures" {
		t.Errorf("Subject %q", got)
	}

	until := arrival.Add(48 * time.Hour)
	p = parse(t, compose(t, baseReport(Recipient{Address: "bob@fabrikam.com", Action: Delayed, WillRetryUntil: until})))
	text = string(p.parts[0].body)
	for _, want := range []string{
		"Delivery is delayed to these recipients or groups:",
		"This message hasn't been delivered yet. Delivery will continue to be attempted.",
		"until Wed, 04 Mar 2026 09:14:59 +0000",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("delay text lacks %q:\n%s", want, text)
		}
	}
	if got := p.header.Get("Subject"); got != "Delivery delayed: Quarterly figures" {
		t.Errorf("Subject %q", got)
	}
	if got := p.recipients[0].Get("Status"); got != "4.0.0" {
		t.Errorf("delay without reply: Status %q", got)
	}
}

func TestSubject(t *testing.T) {
	long := strings.Repeat("Grüße aus Köln, ", 12)
	for _, tc := range []struct {
		name, subject, want string
	}{
		{"encoded-word", "=?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=", "Undeliverable: Grüße aus Köln"},
		{"iso-8859-1", "=?ISO-8859-1?Q?Gr=FC=DFe?= und mehr", "Undeliverable: Grüße und mehr"},
		{"raw utf-8", "Grüße aus Köln", "Undeliverable: Grüße aus Köln"},
		{"long", mime.QEncoding.Encode("utf-8", long), "Undeliverable: " + strings.TrimSpace(long)},
		{"folded", "Quarterly\r\n figures", "Undeliverable: Quarterly figures"},
		{"encoded CRLF", "=?utf-8?q?a=0D=0ABcc:_x@y?=", "Undeliverable: a Bcc: x@y"},
		{"unknown charset", "=?x-unknown?q?abc?=", "Undeliverable: =?x-unknown?q?abc?="},
		{"empty", "", "Undeliverable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := "From: a@b\r\nSubject: " + tc.subject + "\r\n\r\nbody\r\n"
			r := baseReport(daveExpired)
			r.Original, r.OriginalSize = strings.NewReader(msg), int64(len(msg))
			p := parse(t, compose(t, r))
			raw := p.header.Get("Subject")
			if !isASCII(raw) {
				t.Errorf("Subject not ASCII: %q", raw)
			}
			if !isASCII(tc.want) && !strings.Contains(raw, "=?utf-8?q?") {
				t.Errorf("Subject %q has no encoded-word", raw)
			}
			got, err := new(mime.WordDecoder).DecodeHeader(raw)
			if tc.name == "unknown charset" {
				got, err = raw, nil
			}
			if err != nil || got != tc.want {
				t.Errorf("Subject %q decodes to %q (%v), want %q", raw, got, err, tc.want)
			}
		})
	}
}

func TestNoOriginalSubjectOrID(t *testing.T) {
	msg := "From: a@b\r\nMessage-ID: not an id\r\n\r\nbody\r\n"
	r := baseReport(Recipient{Address: "bob@fabrikam.com", Action: Relayed})
	r.Original, r.OriginalSize = strings.NewReader(msg), int64(len(msg))
	p := parse(t, compose(t, r))
	if got := p.header.Get("Subject"); got != "Relayed" {
		t.Errorf("Subject %q", got)
	}
	for _, f := range []string{"In-Reply-To", "References"} {
		if v, ok := p.header[f]; ok {
			t.Errorf("%s %q without an original Message-ID", f, v)
		}
	}
}

// TestReplySanitized feeds replies and host names that try to add fields,
// recipients or MIME parts; each must stay inside its one field.
func TestReplySanitized(t *testing.T) {
	evil := "550 5.1.1 bad\r\nAction: delivered\r\n\r\nFinal-Recipient: rfc822;evil@x\r\n--" +
		testBoundary + "--\r\n\x00\x1b[31mred\u2028é"
	rc := Recipient{Address: "bob@fabrikam.com\r\nAction: delivered", Action: Failed, Reply: evil,
		RemoteMTA: "mx.fabrikam.com\r\nX-Injected: y", OriginalRecipient: "rfc822;bob@fabrikam.com\nX-Injected: y"}
	out := compose(t, baseReport(rc))
	p := parse(t, out)
	if len(p.recipients) != 1 {
		t.Fatalf("%d recipient blocks: %v", len(p.recipients), p.recipients)
	}
	got := p.recipients[0]
	if len(got.Values("Action")) != 1 || got.Get("Action") != "failed" {
		t.Errorf("fields injected: %v", got)
	}
	want := "smtp;550 5.1.1 bad Action: delivered Final-Recipient: rfc822;evil@x --" + testBoundary + "-- [31mred ?"
	if d := got.Get("Diagnostic-Code"); d != want {
		t.Errorf("Diagnostic-Code\n%q\nwant\n%q", d, want)
	}
	for f, want := range map[string]string{
		"Final-Recipient":    "rfc822;bob@fabrikam.com Action: delivered",
		"Original-Recipient": "rfc822;bob@fabrikam.com X-Injected: y",
		"Remote-MTA":         "dns;mx.fabrikam.com X-Injected: y",
	} {
		if v := got.Values(f); len(v) != 1 || v[0] != want {
			t.Errorf("%s %q, want %q", f, v, want)
		}
	}
	if got.Values("X-Injected") != nil {
		t.Error("X-Injected field")
	}
	for l := range strings.SplitSeq(string(p.parts[0].body), "\r\n") {
		if strings.HasPrefix(l, "Action:") || strings.HasPrefix(l, "--") {
			t.Errorf("text part line %q", l)
		}
	}
	if bytes.ContainsAny(p.parts[1].body, "\x00\x1b") {
		t.Error("control characters in the delivery-status part")
	}

	// Values that go into a header verbatim are refused, not cleaned.
	for _, r := range []Report{
		func() Report { r := baseReport(bobRemote); r.To = "a@b\r\nBcc: x@y"; return r }(),
		func() Report { r := baseReport(bobRemote); r.ReportingMTA = "relay\r\nX: y"; return r }(),
		func() Report { r := baseReport(bobRemote); r.MessageID = "a@b>\r\nX: <y"; return r }(),
		func() Report { r := baseReport(bobRemote); r.From = "a@b\r\nX: y"; return r }(),
	} {
		var b bytes.Buffer
		if err := Compose(&b, r); !errors.Is(err, ErrInvalid) || b.Len() != 0 {
			t.Errorf("Compose = %v and %d bytes, want ErrInvalid and nothing", err, b.Len())
		}
	}
}

func TestLongReplyFolded(t *testing.T) {
	rc := bobRemote
	rc.Reply = "550-5.7.1 " + strings.Repeat("policy ", 200) + "\r\n550 5.7.1 " + strings.Repeat("x", 1500)
	out := compose(t, baseReport(rc))
	p := parse(t, out)
	for l := range strings.SplitSeq(string(out), "\r\n") {
		if len(l) > 998 {
			t.Errorf("line of %d octets: %.80q...", len(l), l)
		}
	}
	if p.parts[0].header.Get("Content-Transfer-Encoding") != "" {
		// multipart.Reader removes it once it has decoded quoted-printable.
		t.Error("text part not decoded")
	}
	if !strings.Contains(p.recipients[0].Get("Diagnostic-Code"), "policy policy") {
		t.Error("Diagnostic-Code lost its text")
	}
}

func TestNullSender(t *testing.T) {
	r := baseReport(bobRemote)
	r.To = ""
	var b bytes.Buffer
	if err := Compose(&b, r); !errors.Is(err, ErrNullSender) || b.Len() != 0 {
		t.Errorf("Compose = %v and %d bytes, want ErrNullSender and nothing", err, b.Len())
	}
}

func TestInvalid(t *testing.T) {
	for name, edit := range map[string]func(*Report){
		"no recipients":  func(r *Report) { r.Recipients = nil },
		"no address":     func(r *Report) { r.Recipients[0].Address = "" },
		"bad action":     func(r *Report) { r.Recipients[0].Action = "bounced" },
		"bad status":     func(r *Report) { r.Recipients[0].Status = "5.1" },
		"no date":        func(r *Report) { r.Date = time.Time{} },
		"no original":    func(r *Report) { r.Original = nil },
		"no MTA":         func(r *Report) { r.ReportingMTA = "" },
		"bad boundary":   func(r *Report) { r.Boundary = "bad\"boundary" },
		"bad from":       func(r *Report) { r.From = "not an address" },
		"bad return":     func(r *Report) { r.Return = 7 },
		"angle brackets": func(r *Report) { r.To = "<a@b>" },
	} {
		r := baseReport(bobRemote)
		edit(&r)
		var b bytes.Buffer
		if err := Compose(&b, r); !errors.Is(err, ErrInvalid) || b.Len() != 0 {
			t.Errorf("%s: Compose = %v and %d bytes, want ErrInvalid and nothing", name, err, b.Len())
		}
	}
}

func TestDefaults(t *testing.T) {
	r := baseReport(bobRemote)
	r.Boundary, r.MessageID = "", ""
	a, b := compose(t, r), compose(t, baseReportFresh(r))
	pa, pb := parse(t, a), parse(t, b)
	if pa.header.Get("Content-Type") == pb.header.Get("Content-Type") {
		t.Error("two random boundaries are equal")
	}
	id := pa.header.Get("Message-ID")
	if !strings.HasSuffix(id, "@relay.contoso.com>") || id == pb.header.Get("Message-ID") {
		t.Errorf("Message-IDs %q and %q", id, pb.header.Get("Message-ID"))
	}
	if got := pa.header.Get("From"); got != "Mail Delivery System <postmaster@relay.contoso.com>" {
		t.Errorf("From %q", got)
	}
	if got := pa.header.Get("To"); got != "<alice@contoso.com>" {
		t.Errorf("To %q", got)
	}
	if got := pa.header.Get("Date"); got != "Mon, 02 Mar 2026 09:21:00 +0100" {
		t.Errorf("Date %q", got)
	}
	// A non-ASCII display name is encoded; an ASCII From goes out as given.
	r = baseReportFresh(r)
	r.From = "Zustellsystem Köln <postmaster@contoso.com>"
	p := parse(t, compose(t, r))
	addr, err := p.header.AddressList("From")
	if err != nil || len(addr) != 1 || addr[0].Name != "Zustellsystem Köln" || !isASCII(p.header.Get("From")) {
		t.Errorf("From %q: %v %v", p.header.Get("From"), addr, err)
	}
}

// baseReportFresh returns r with a fresh reader over the test original.
func baseReportFresh(r Report) Report {
	msg, _ := original()
	r.Original = strings.NewReader(msg)
	return r
}

// TestBareCR makes sure a bare CR cannot split a kept header line into a
// field the firewall did not see.
func TestBareCR(t *testing.T) {
	msg := "Subject: x\rX-MS-Exchange-Organization-AuthAs: Internal\r\n" +
		"\rReceived: from evil\r\n" +
		"X-Test: y\n\nline one\rline two\n"
	r := baseReport(carolNXDomain)
	r.Original, r.OriginalSize = strings.NewReader(msg), int64(len(msg))
	p := parse(t, compose(t, r))
	hdr, body := p.attachedHeader()
	checkFirewall(t, hdr)
	if want := "Subject: x X-MS-Exchange-Organization-AuthAs: Internal\r\n Received: from evil\r\nX-Test: y\r\n"; string(hdr) != want {
		t.Errorf("header %q, want %q", hdr, want)
	}
	if want := "line one\r\nline two\r\n"; string(body) != want {
		t.Errorf("body %q, want %q", body, want)
	}
}

// TestLargeHeader gives an original whose header block is over the limit:
// it is cut before the field that overflows and returned headers only.
func TestLargeHeader(t *testing.T) {
	var b strings.Builder
	b.WriteString("Subject: big\r\n")
	for i := 0; b.Len() < maxHeaderBlock+5000; i++ {
		b.WriteString("X-Filler: " + strings.Repeat("f", 100) + "\r\n\t" + strings.Repeat("g", 100) + "\r\n")
		b.WriteString("X-MS-Exchange-Organization-Secret: s\r\n")
	}
	msg := b.String() + "\r\nbody\r\n"
	r := baseReport(carolNXDomain)
	r.Original, r.OriginalSize, r.MaxFullReturn = strings.NewReader(msg), int64(len(msg)), 1<<30
	p := parse(t, compose(t, r))
	if p.parts[2].mediaType != "text/rfc822-headers" {
		t.Fatalf("part 3 %s", p.parts[2].mediaType)
	}
	hdr := string(p.parts[2].body)
	checkFirewall(t, []byte(hdr))
	if !strings.HasSuffix(hdr, "g\r\n") || len(hdr) > maxHeaderBlock || len(hdr) < maxHeaderBlock/2 {
		t.Errorf("cut header: %d bytes, ends %q", len(hdr), hdr[max(0, len(hdr)-20):])
	}
	if got := p.header.Get("Subject"); got != "Undeliverable: big" {
		t.Errorf("Subject %q", got)
	}
}

// countingReader yields n bytes of original (a header, then 'b's) and
// counts how many were read.
type countingReader struct {
	hdr  string
	n    int64
	read int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), c.n-c.read)]
	for i := range p {
		if off := c.read + int64(i); off < int64(len(c.hdr)) {
			p[i] = c.hdr[off]
		} else {
			p[i] = 'b'
		}
	}
	c.read += int64(len(p))
	return len(p), nil
}

// TestHugeOriginalNotRead sends a 35 MB original: the report returns its
// headers and reads little more than them.
func TestHugeOriginalNotRead(t *testing.T) {
	cr := &countingReader{hdr: "Subject: huge\r\nReceived: x\r\n\r\n", n: 35 << 20}
	r := baseReport(carolNXDomain)
	r.Original, r.OriginalSize, r.Return = cr, cr.n, ReturnFull
	p := parse(t, compose(t, r))
	if p.parts[2].mediaType != "text/rfc822-headers" || string(p.parts[2].body) != "Subject: huge\r\n" {
		t.Errorf("part 3 %s %q", p.parts[2].mediaType, p.parts[2].body)
	}
	if cr.read > 64<<10 {
		t.Errorf("read %d bytes of the original", cr.read)
	}
}

// TestOriginalLargerThanDeclared: a wrong OriginalSize must not make the
// report carry more than MaxFullReturn.
func TestOriginalLargerThanDeclared(t *testing.T) {
	cr := &countingReader{hdr: "Subject: huge\r\n\r\n", n: 3 << 20}
	r := baseReport(carolNXDomain)
	r.Original, r.OriginalSize = cr, 1000
	err := Compose(io.Discard, r)
	if err == nil || !strings.Contains(err.Error(), "larger than its size") {
		t.Errorf("Compose = %v", err)
	}
	if cr.read > DefaultMaxFullReturn+64<<10 {
		t.Errorf("read %d bytes", cr.read)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.n < len(p) {
		return 0, errors.New("disk full")
	}
	f.n -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	for _, n := range []int{0, 1000} {
		err := Compose(&failingWriter{n: n}, baseReport(bobRemote))
		if err == nil || !strings.Contains(err.Error(), "disk full") || !strings.HasPrefix(err.Error(), "dsn: write report") {
			t.Errorf("after %d bytes: Compose = %v", n, err)
		}
	}
	r := baseReport(bobRemote)
	r.Original = io.MultiReader(strings.NewReader("Subject: x\r\n\r\nbody"), &errReader{})
	if err := Compose(io.Discard, r); err == nil || !strings.Contains(err.Error(), "read original: broken") {
		t.Errorf("reader error: Compose = %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("broken") }

func TestUTF8Recipient(t *testing.T) {
	r := baseReport(
		Recipient{Address: "jürgen+x@bücher.example", Action: Failed, Reply: "550 5.1.1 unknown", OriginalRecipient: "UTF-8;jürgen@bücher.example"},
		Recipient{Address: "bob@fabrikam.com", Action: Failed, OriginalRecipient: "bob@fabrikam.com"},
	)
	p := parse(t, compose(t, r))
	for i, want := range [][2]string{
		{`utf-8;j\x{FC}rgen\x{2B}x@b\x{FC}cher.example`, `utf-8;j\x{FC}rgen@b\x{FC}cher.example`},
		{"rfc822;bob@fabrikam.com", "rfc822;bob@fabrikam.com"},
	} {
		rc := p.recipients[i]
		if got := rc.Get("Final-Recipient"); got != want[0] {
			t.Errorf("Final-Recipient %q, want %q", got, want[0])
		}
		if got := rc.Get("Original-Recipient"); got != want[1] {
			t.Errorf("Original-Recipient %q, want %q", got, want[1])
		}
	}
	if !strings.Contains(string(p.parts[0].body), "jürgen+x@bücher.example\r\n") {
		t.Errorf("text part %q", p.parts[0].body)
	}
	if !isASCII(string(p.parts[1].body)) {
		t.Error("delivery-status part not ASCII")
	}
}

func TestWants(t *testing.T) {
	all := []Action{Failed, Delayed, Relayed, Delivered}
	for _, tc := range []struct {
		notify []string
		want   [4]bool // failed, delayed, relayed, delivered
	}{
		{nil, [4]bool{true, true, false, false}},
		{[]string{}, [4]bool{true, true, false, false}},
		{[]string{"NEVER"}, [4]bool{}},
		{[]string{"never"}, [4]bool{}},
		{[]string{"SUCCESS"}, [4]bool{false, false, true, true}},
		{[]string{"FAILURE"}, [4]bool{true, false, false, false}},
		{[]string{"DELAY"}, [4]bool{false, true, false, false}},
		{[]string{"success", "Failure"}, [4]bool{true, false, true, true}},
		{[]string{"SUCCESS,FAILURE,DELAY"}, [4]bool{true, true, true, true}},
		{[]string{" FAILURE , DELAY "}, [4]bool{true, true, false, false}},
		{[]string{"FAILURE", "NEVER"}, [4]bool{}},
		{[]string{"BOGUS"}, [4]bool{true, true, false, false}},
		{[]string{""}, [4]bool{true, true, false, false}},
	} {
		for i, a := range all {
			if got := Wants(tc.notify, a); got != tc.want[i] {
				t.Errorf("Wants(%q, %s) = %v", tc.notify, a, got)
			}
		}
		if Wants(tc.notify, "expanded") {
			t.Errorf("Wants(%q, expanded)", tc.notify)
		}
	}
}

func TestStatusOf(t *testing.T) {
	for reply, want := range map[string]string{
		"550 5.1.1 <x@y>: user unknown":               "5.1.1",
		"550-5.7.1 first line\r\n550 5.7.1 second":    "5.7.1",
		"554 5.4.4 SMTPSEND.DNS.NonExistentDomain; x": "5.4.4",
		"550 4.4.7 QUEUE.Expired; message expired":    "4.4.7",
		"451 4.7.500 Server busy":                     "4.7.500",
		"250 2.0.0 OK":                                "2.0.0",
		"550 User unknown":                            "5.0.0",
		"550":                                         "5.0.0",
		"421 Service not available":                   "4.0.0",
		"250 OK":                                      "2.0.0",
		"  550 5.2.2 mailbox full":                    "5.2.2",
		"550 5.1":                                     "5.0.0",
		"550 5.01.1 leading zero":                     "5.0.0",
		"550 5.1.1234 too long":                       "5.0.0",
		"550 6.1.1 bad class":                         "5.0.0",
		"550 5.1.1\tx":                                "5.0.0",
		"5501 5.1.1":                                  "",
		"354 go ahead":                                "",
		"hello":                                       "",
		"":                                            "",
		"55":                                          "",
		"abc 5.1.1":                                   "",
		"550 5.1.1":                                   "5.1.1",
		"550 5.1.1;":                                  "5.0.0",
		"550 SMTPSEND.DNS.NonExistentDomain; 5.4.4 late": "5.0.0",
	} {
		if got := StatusOf(reply); got != want {
			t.Errorf("StatusOf(%q) = %q, want %q", reply, got, want)
		}
	}
}

func TestReadHeader(t *testing.T) {
	long := strings.Repeat("x", 93)
	for _, tc := range []struct {
		name, in, header, body string
		limit                  int
		ended, truncated       bool
	}{
		{"crlf", "A: 1\r\nB: 2\r\n\r\nbody\r\n", "A: 1\r\nB: 2\r\n\r\n", "body\r\n", 100, true, false},
		{"lf", "A: 1\n\nbody\n", "A: 1\n\n", "body\n", 100, true, false},
		{"no body", "A: 1\r\n", "A: 1\r\n", "", 100, false, false},
		{"no newline", "A: 1", "A: 1", "", 100, false, false},
		{"empty header", "\r\nbody", "\r\n", "body", 100, true, false},
		{"long line", "A: " + long + "\n\nb", "A: " + long + "\n\n", "b", 1000, true, false},
		{"cut", "A: 1\r\nB: 2\r\n 3\r\n 4\r\n\r\nb", "A: 1\r\n", "", 14, false, true},
		{"cut long", "A: 1\r\nB: " + long + "\r\n\r\nb", "A: 1\r\n", "", 50, false, true},
		{"cut first", "A: " + long + "\r\n\r\nb", "", "", 50, false, true},
	} {
		br := bufio.NewReaderSize(strings.NewReader(tc.in), 16)
		hdr, ended, truncated, err := readHeader(br, tc.limit)
		if err != nil || string(hdr) != tc.header || ended != tc.ended || truncated != tc.truncated {
			t.Errorf("%s: %q ended %v truncated %v err %v", tc.name, hdr, ended, truncated, err)
			continue
		}
		if rest, _ := io.ReadAll(br); !truncated && string(rest) != tc.body {
			t.Errorf("%s: body %q", tc.name, rest)
		}
	}
}

func TestCRLFWriter(t *testing.T) {
	for in, want := range map[string]string{
		"a\nb\r\nc\rd\r\r\ne\r": "a\r\nb\r\nc\r\nd\r\n\r\ne\r\n",
		"\r\r":                  "\r\n\r\n",
		"\n\n":                  "\r\n\r\n",
		"plain":                 "plain",
	} {
		for _, chunk := range []int{1, 2, 3, len(in)} {
			var b bytes.Buffer
			cw := &crlfWriter{w: &b}
			for s := in; s != ""; {
				n := min(chunk, len(s))
				if _, err := cw.Write([]byte(s[:n])); err != nil {
					t.Fatal(err)
				}
				s = s[n:]
			}
			if err := cw.Close(); err != nil {
				t.Fatal(err)
			}
			if b.String() != want {
				t.Errorf("%q in chunks of %d: %q, want %q", in, chunk, b.String(), want)
			}
		}
	}
}
