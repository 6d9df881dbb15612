package dsn

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

const testBoundary = "dsn-boundary-0123456789"

var (
	arrival = time.Date(2026, 3, 2, 9, 14, 59, 0, time.UTC)
	lastTry = time.Date(2026, 3, 2, 9, 20, 11, 0, time.UTC)
	now     = time.Date(2026, 3, 2, 9, 21, 0, 0, time.FixedZone("", 3600))
)

// origField is one field of a test original; secret ones belong to a class
// the firewall removes, so they must not appear in any report.
type origField struct {
	text   string
	secret bool
}

var origFields = []origField{
	{"Received: from client.contoso.com (client.contoso.com [192.0.2.10])\r\n" +
		"\tby relay.contoso.com with ESMTPS id 4f2a\r\n" +
		"\tfor <bob@fabrikam.com>; Mon, 02 Mar 2026 09:14:59 +0000\r\n", true},
	{"X-MS-Exchange-Organization-AuthAs: Internal\r\n", true},
	{"x-ms-exchange-organization-authsource: EX1.contoso.com\r\n", true},
	{"Received-SPF: pass (relay.contoso.com: domain of alice@contoso.com designates\r\n" +
		" 192.0.2.10 as permitted sender)\r\n", false},
	{"From: Alice Example <alice@contoso.com>\r\n", false},
	{"To: Bob <bob@fabrikam.com>, carol@nowhere.invalid, dave@fabrikam.com\r\n", false},
	{"Subject: Quarterly figures\r\n", false},
	{"Date: Mon, 02 Mar 2026 09:14:58 +0000\r\n", false},
	{"Message-ID: <20260302091458.1234@client.contoso.com>\r\n", false},
	{"X-MS-Exchange-Forest-RulesExecuted: EX1\r\n", true},
	{"Resent-From: someone@contoso.com\r\n", true},
	{"X-MS-Exchange-CrossPremises-AuthAs: Internal\r\n", true},
	{"X-Mailer:  Example   Mailer\t1.0\r\n", false},
	{"MIME-Version: 1.0\r\n", false},
	{"Content-Type: text/plain; charset=us-ascii\r\n", false},
}

const origBody = "Hello Bob,\r\n\r\nthe figures are attached.\r\n-- \r\nAlice\r\n"

// original returns the test original (CRLF) and the header block the
// firewall should let through, byte for byte, without its empty line.
func original() (msg, kept string) {
	var all, keep strings.Builder
	for _, f := range origFields {
		all.WriteString(f.text)
		if !f.secret {
			keep.WriteString(f.text)
		}
	}
	return all.String() + "\r\n" + origBody, keep.String()
}

// baseReport is a report about the test original, with everything fixed.
func baseReport(recipients ...Recipient) Report {
	msg, _ := original()
	return Report{
		ReportingMTA: "relay.contoso.com",
		ArrivalDate:  arrival,
		To:           "alice@contoso.com",
		Date:         now,
		MessageID:    "dsn-0001@relay.contoso.com",
		Boundary:     testBoundary,
		Recipients:   recipients,
		Original:     strings.NewReader(msg),
		OriginalSize: int64(len(msg)),
	}
}

func compose(t testing.TB, r Report) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Compose(&b, r); err != nil {
		t.Fatalf("Compose: %v", err)
	}
	return b.Bytes()
}

// part is one body part of a parsed report.
type part struct {
	mediaType string
	params    map[string]string
	header    textproto.MIMEHeader
	body      []byte
}

// parsed is a report as the standard library reads it back.
type parsed struct {
	header     mail.Header
	rawHeader  []byte
	parts      []part
	status     textproto.MIMEHeader   // per-message fields
	recipients []textproto.MIMEHeader // per-recipient fields
}

// parse reads msg back with net/mail, mime and mime/multipart, and checks
// the structure every report must have: a CRLF header with short lines, a
// multipart/report of delivery-status with three parts in the right order.
func parse(t testing.TB, msg []byte) parsed {
	t.Helper()
	p, err := parseReport(msg)
	if err != nil {
		t.Fatalf("%v\n%s", err, msg)
	}
	return p
}

func parseReport(msg []byte) (parsed, error) {
	var p parsed
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		return p, errors.New("no end of header")
	}
	p.rawHeader = msg[:end+2]
	for i, l := range bytes.SplitAfter(p.rawHeader, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		if !bytes.HasSuffix(l, []byte("\r\n")) || bytes.ContainsAny(l[:len(l)-2], "\r\n") {
			return p, fmt.Errorf("header line %d %q: not one CRLF line", i, l)
		}
		if len(l)-2 > 998 {
			return p, fmt.Errorf("header line %d is %d octets", i, len(l)-2)
		}
	}
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return p, fmt.Errorf("mail.ReadMessage: %v", err)
	}
	p.header = m.Header
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil {
		return p, fmt.Errorf("top Content-Type: %v", err)
	}
	if mt != "multipart/report" || params["report-type"] != "delivery-status" || params["boundary"] == "" {
		return p, fmt.Errorf("top Content-Type %q %v", mt, params)
	}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		mp, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, fmt.Errorf("part %d: %v", len(p.parts), err)
		}
		body, err := io.ReadAll(mp)
		if err != nil {
			return p, fmt.Errorf("part %d: %v", len(p.parts), err)
		}
		pt, pp, err := mime.ParseMediaType(mp.Header.Get("Content-Type"))
		if err != nil {
			return p, fmt.Errorf("part %d: Content-Type: %v", len(p.parts), err)
		}
		p.parts = append(p.parts, part{pt, pp, mp.Header, body})
	}
	if len(p.parts) != 3 {
		return p, fmt.Errorf("%d parts, want 3", len(p.parts))
	}
	if p.parts[0].mediaType != "text/plain" || p.parts[1].mediaType != "message/delivery-status" ||
		p.parts[2].mediaType != "message/rfc822" && p.parts[2].mediaType != "text/rfc822-headers" {
		return p, fmt.Errorf("part types %s, %s, %s", p.parts[0].mediaType, p.parts[1].mediaType, p.parts[2].mediaType)
	}
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(p.parts[1].body)))
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			if p.status == nil {
				p.status = h
			} else {
				p.recipients = append(p.recipients, h)
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return p, fmt.Errorf("delivery-status: %v", err)
		}
	}
	if p.status.Get("Reporting-MTA") == "" {
		return p, fmt.Errorf("delivery-status: no Reporting-MTA in %v", p.status)
	}
	for i, rc := range p.recipients {
		for _, f := range []string{"Final-Recipient", "Action", "Status"} {
			if rc.Get(f) == "" {
				return p, fmt.Errorf("delivery-status: recipient %d has no %s: %v", i, f, rc)
			}
		}
	}
	return p, nil
}

// attachedHeader returns the original's header block as attached (without
// its empty line) and, for message/rfc822, its body.
func (p parsed) attachedHeader() (hdr, body []byte) {
	b := p.parts[2].body
	if p.parts[2].mediaType == "text/rfc822-headers" {
		return b, nil
	}
	if bytes.HasPrefix(b, []byte("\r\n")) {
		return nil, b[2:] // an empty header block
	}
	if i := bytes.Index(b, []byte("\r\n\r\n")); i >= 0 {
		return b[:i+2], b[i+4:]
	}
	return b, nil
}

// checkFirewall fails if the attached header block holds a field of a
// class the firewall removes.
func checkFirewall(t testing.TB, hdr []byte) {
	t.Helper()
	for l := range strings.SplitSeq(string(hdr), "\r\n") {
		name, _, ok := strings.Cut(l, ":")
		if !ok || strings.HasPrefix(l, " ") || strings.HasPrefix(l, "\t") {
			continue
		}
		n := strings.ToLower(strings.TrimRight(name, " \t"))
		if strings.HasPrefix(n, "x-ms-exchange-organization-") || strings.HasPrefix(n, "x-ms-exchange-forest-") ||
			strings.HasPrefix(n, "x-ms-exchange-crosspremises-") || n == "received" || strings.HasPrefix(n, "resent-") {
			t.Errorf("attached header keeps %q", l)
		}
	}
}
