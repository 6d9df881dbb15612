package dsn

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
	"time"

	"github.com/sendconn/sendconn/pkg/permissions"
)

// DefaultMaxFullReturn is the largest original a failure report carries
// whole when Report.MaxFullReturn is 0. A report bounces around between
// strangers; beyond this size the headers tell the sender enough.
const DefaultMaxFullReturn = 1 << 20

// dateLayout is the RFC 5322 date-time, used by every date we write.
const dateLayout = "Mon, 02 Jan 2006 15:04:05 -0700"

// attachPolicy is the header firewall for the returned original: every
// class that says something about our organization or its routing goes.
// CrossPremises is included because its fields are copies of Organization
// ones made for a hybrid peer, and the report may go anywhere.
var attachPolicy = permissions.Policy{Remove: permissions.ClassSet(0).
	With(permissions.ClassOrganization).
	With(permissions.ClassForest).
	With(permissions.ClassRouting).
	With(permissions.ClassCrossPremises)}

// Recipient is one recipient the report is about.
type Recipient struct {
	// Address is the recipient as we tried to deliver to it, written as
	// Final-Recipient: rfc822;Address.
	Address string
	// OriginalRecipient is the ORCPT parameter, "rfc822;x@y", already
	// decoded from xtext as RFC 3461 §6.3 wants it in the report (go-smtp
	// and the receive side hand it over decoded); "" if there was none. A
	// value without an address type is taken as rfc822.
	OriginalRecipient string
	Action            Action
	// Status is the enhanced status code, "5.1.1". When "" it is taken
	// from Reply (StatusOf), and failing that is the generic code of the
	// action: 5.0.0, 4.0.0 or 2.0.0.
	Status string
	// Reply is the full reply text behind the action, the remote server's
	// or our own: "550 5.1.1 <x@y>: user unknown". It may be multi-line
	// and is never trusted: it goes out as one line of printable text.
	Reply string
	// RemoteMTA is the host that gave Reply; "" when the reply is ours.
	// Like Reply and Address it is cleaned, not refused: a report must not
	// fail for ever over something a remote party wrote.
	RemoteMTA string
	// LastAttempt is when delivery was last tried; zero leaves it out.
	LastAttempt time.Time
	// WillRetryUntil is when a delayed recipient will be given up on;
	// zero leaves it out. Only written for Delayed.
	WillRetryUntil time.Time
}

// Report is everything a notification says. One Report is one event (the
// recipients that failed on one attempt, say), so its recipients usually
// share an action; RFC 3464 allows mixing them and Compose copes.
type Report struct {
	// ReportingMTA is our host name, "Reporting-MTA: dns;ReportingMTA".
	ReportingMTA string
	// ArrivalDate is when the original arrived; zero leaves it out.
	ArrivalDate time.Time
	// EnvelopeID is the ENVID parameter, decoded from xtext like
	// OriginalRecipient; "" if none.
	EnvelopeID string
	// To is the original's envelope sender, to whom the report goes. It
	// must not be empty: a null reverse-path never gets a report.
	To string
	// From is the report's From: field. "" means
	// "Mail Delivery System <postmaster@ReportingMTA>", after Exchange's
	// "Microsoft Outlook <postmaster@domain>", so a reply to it reaches a
	// person rather than a daemon that would bounce it again.
	From string
	// Date is the report's Date: field. Required: Compose never reads the
	// clock, so its output depends on its input alone.
	Date time.Time
	// MessageID is the report's Message-ID, without angle brackets. ""
	// means a random one at ReportingMTA.
	MessageID string
	// Boundary is the MIME boundary. "" means a random one; a fixed one is
	// for golden tests, and must not occur in the original.
	Boundary   string
	Recipients []Recipient
	Return     Return
	// MaxFullReturn is the largest OriginalSize that is returned whole;
	// 0 means DefaultMaxFullReturn and a negative value never returns more
	// than the header block.
	MaxFullReturn int64
	// Original is the stored original message: header block, empty line,
	// body, with CRLF or LF line endings. It is read once, front to back;
	// only its header block (at most 1 MiB) is held in memory.
	Original io.Reader
	// OriginalSize is the size of Original in bytes, which decides
	// between full and headers-only return before Original is read.
	OriginalSize int64
}

// Errors Compose wraps, for callers that want to tell a bad report from a
// failing writer.
var (
	ErrNullSender = errors.New("dsn: no report for a null reverse-path")
	ErrInvalid    = errors.New("dsn: invalid report")
)

// Compose writes r as a multipart/report message to w: header, then the
// human-readable part, the delivery-status part and the original (see the
// package documentation). The bytes depend on r alone, apart from a random
// boundary or Message-ID when r leaves them empty. Compose checks r before
// writing anything; an error after that (from w or r.Original) leaves a
// partial message in w that the caller must discard.
func Compose(w io.Writer, r Report) error {
	h, err := r.prepare()
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	if err := h.write(bw, r); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	return nil
}

// prepared holds what Compose works out from a Report before it writes.
type prepared struct {
	from, to, messageID string
	boundary            string
	recipients          []Recipient // with Status filled in
	maxFull             int64
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// prepare checks r and fills in its defaults. Values we copy into a header
// verbatim must carry no control characters: a CR LF there would let the
// caller's input, or whatever it came from, write header fields.
func (r Report) prepare() (*prepared, error) {
	if r.To == "" {
		return nil, ErrNullSender
	}
	p := &prepared{maxFull: r.MaxFullReturn}
	if p.maxFull == 0 {
		p.maxFull = DefaultMaxFullReturn
	}
	switch {
	case r.ReportingMTA == "" || hasCTL(r.ReportingMTA) || strings.ContainsAny(r.ReportingMTA, " <>@;"):
		return nil, invalid("reporting MTA %q", r.ReportingMTA)
	case hasCTL(r.To) || strings.ContainsAny(r.To, "<>"):
		return nil, invalid("recipient of the report %q", r.To)
	case r.Date.IsZero():
		return nil, invalid("no date")
	case r.Original == nil:
		return nil, invalid("no original message")
	case len(r.Recipients) == 0:
		return nil, invalid("no recipients")
	case r.Return < ReturnDefault || r.Return > ReturnFull:
		return nil, invalid("return %d", r.Return)
	}
	p.to = "<" + r.To + ">"

	p.from = "Mail Delivery System <postmaster@" + r.ReportingMTA + ">"
	if r.From != "" {
		addr, err := mail.ParseAddress(r.From)
		if err != nil || hasCTL(r.From) {
			return nil, invalid("from %q", r.From)
		}
		p.from = r.From
		if !isASCII(r.From) {
			p.from = addr.String() // RFC 2047-encodes the display name
		}
	}

	id := strings.TrimSuffix(strings.TrimPrefix(r.MessageID, "<"), ">")
	if id == "" {
		var b [16]byte
		_, _ = rand.Read(b[:]) // never fails (crypto/rand)
		id = hex.EncodeToString(b[:]) + "@" + r.ReportingMTA
	}
	if p.messageID = "<" + id + ">"; messageID(p.messageID) != p.messageID {
		return nil, invalid("message id %q", r.MessageID)
	}

	p.boundary = r.Boundary
	if p.boundary == "" {
		p.boundary = multipart.NewWriter(io.Discard).Boundary()
	} else if err := multipart.NewWriter(io.Discard).SetBoundary(p.boundary); err != nil {
		return nil, invalid("boundary %q: %v", r.Boundary, err)
	}

	for i, rc := range r.Recipients {
		switch {
		case rc.Address == "":
			return nil, invalid("recipient %d: no address", i)
		case !rc.Action.valid():
			return nil, invalid("recipient %d: action %q", i, rc.Action)
		case rc.Status != "" && !validStatus(rc.Status):
			return nil, invalid("recipient %d: status %q", i, rc.Status)
		}
		if rc.Status == "" {
			rc.Status = StatusOf(rc.Reply)
		}
		if rc.Status == "" {
			rc.Status = rc.Action.genericStatus()
		}
		p.recipients = append(p.recipients, rc)
	}
	return p, nil
}

// has reports whether any recipient has action a.
func (p *prepared) has(a Action) bool {
	for _, rc := range p.recipients {
		if rc.Action == a {
			return true
		}
	}
	return false
}

// write writes the whole report to bw.
func (p *prepared) write(bw *bufio.Writer, r Report) error {
	// The original's header block comes first: the Subject and Message-ID
	// of the report depend on it.
	br := bufio.NewReader(r.Original)
	raw, ended, truncated, err := readHeader(br, maxHeaderBlock)
	if err != nil {
		return fmt.Errorf("dsn: read original: %w", err)
	}
	hdr := permissions.Filter(normalizeHeader(raw), attachPolicy)
	full := p.has(Failed) && r.Return != ReturnHeaders &&
		r.OriginalSize >= 0 && r.OriginalSize <= p.maxFull && !truncated

	p.writeHeader(bw, r, hdr)
	mw := multipart.NewWriter(bw)
	if err := mw.SetBoundary(p.boundary); err != nil {
		return fmt.Errorf("dsn: %w", err) // checked in prepare
	}
	if err := p.writeText(mw, r); err != nil {
		return err
	}
	if err := p.writeStatus(mw, r); err != nil {
		return err
	}
	if full {
		err = p.writeFull(mw, hdr, ended, br, int64(len(raw)))
	} else {
		err = p.writeHeaders(mw, hdr, ended)
	}
	if err != nil {
		return err
	}
	if err := mw.Close(); err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	return nil
}

// writeHeader writes the report's own header block and preamble. orig is
// the original's header block, already through the firewall.
func (p *prepared) writeHeader(bw *bufio.Writer, r Report, orig []byte) {
	prefix := "Relayed"
	switch {
	case p.has(Failed):
		prefix = "Undeliverable"
	case p.has(Delayed):
		prefix = "Delivery delayed"
	}
	subject, _ := headerValue(orig, "Subject")
	origID := ""
	if v, ok := headerValue(orig, "Message-ID"); ok {
		origID = messageID(v)
	}

	bw.WriteString(field("From", p.from))
	bw.WriteString(field("To", p.to))
	bw.WriteString(field("Subject", reportSubject(prefix, subject)))
	bw.WriteString(field("Date", r.Date.Format(dateLayout)))
	bw.WriteString(field("Message-ID", p.messageID))
	if origID != "" {
		// Threads the report with the message it is about (RFC 5322
		// §3.6.4), so mail clients show them together.
		bw.WriteString(field("In-Reply-To", origID))
		bw.WriteString(field("References", origID))
	}
	// RFC 3834 §5: keeps vacation responders and the like from answering
	// the report, and so from looping with another mail system.
	bw.WriteString(field("Auto-Submitted", "auto-replied"))
	bw.WriteString(field("MIME-Version", "1.0"))
	bw.WriteString(field("Content-Type", `multipart/report; report-type=delivery-status; boundary="`+p.boundary+`"`))
	bw.WriteString("\r\n")
	bw.WriteString("This is a MIME-formatted message. Portions of this message may be\r\nunreadable without a MIME-capable mail program.\r\n")
}

// The wording of the human-readable part, per action, after Exchange's.
var intro = []struct {
	action Action
	lines  []string
}{
	{Failed, []string{"Delivery has failed to these recipients or groups:"}},
	{Delayed, []string{"Delivery is delayed to these recipients or groups:"}},
	{Relayed, []string{"Your message has been relayed to a system that does not send delivery notifications:"}},
	{Delivered, []string{"Your message has been delivered to these recipients or groups:"}},
}

// writeText writes the human-readable part: what happened, to whom, and
// the replies for whoever has to fix it.
func (p *prepared) writeText(mw *multipart.Writer, r Report) error {
	var t strings.Builder
	line := func(s string) { t.WriteString(s + "\r\n") }
	date := func(tm time.Time) string { return tm.Format(dateLayout) }
	for _, in := range intro {
		if !p.has(in.action) {
			continue
		}
		for _, l := range in.lines {
			line(l)
		}
		line("")
		var until []time.Time
		for _, rc := range p.recipients {
			if rc.Action == in.action {
				line(oneLine(rc.Address, false))
				until = append(until, rc.WillRetryUntil)
			}
		}
		line("")
		switch in.action {
		case Delayed:
			line("This message hasn't been delivered yet. Delivery will continue to be attempted.")
			if u := until[0]; !u.IsZero() && allEqual(until) {
				line("")
				line("The server will keep trying to deliver this message until " + date(u) + ". If it still can't be delivered by then, you'll be notified.")
			}
			line("")
		case Relayed:
			line("No further notification will be sent for these recipients, even if delivery fails later.")
			line("")
		}
	}

	line("Diagnostic information for administrators:")
	line("")
	line("Generating server: " + oneLine(r.ReportingMTA, false))
	for _, rc := range p.recipients {
		line("")
		line(oneLine(rc.Address, false))
		reply := oneLine(rc.Reply, false)
		switch {
		case rc.RemoteMTA != "" && (rc.Action == Failed || rc.Action == Delayed):
			line(oneLine(rc.RemoteMTA, false) + " gave this error:")
			line("Remote Server returned '" + reply + "'")
		case rc.RemoteMTA != "":
			line("Remote Server " + oneLine(rc.RemoteMTA, false) + " returned '" + reply + "'")
		case reply != "":
			line(reply)
		default:
			line(rc.Status)
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			line("Will retry until " + date(rc.WillRetryUntil))
		}
	}
	if !r.ArrivalDate.IsZero() {
		line("")
		line("Original message received: " + date(r.ArrivalDate))
	}

	text := t.String()
	hdr := textproto.MIMEHeader{"Content-Type": {"text/plain; charset=utf-8"}}
	qp := !isASCII(text) || longestLine(text) > hardLineLimit
	if qp {
		// Keeps the part 7-bit and its lines short whatever a remote
		// server put in its reply.
		hdr.Set("Content-Transfer-Encoding", "quoted-printable")
	}
	part, err := mw.CreatePart(hdr)
	if err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	if qp {
		qw := quotedprintable.NewWriter(part)
		if _, err := io.WriteString(qw, text); err != nil {
			return fmt.Errorf("dsn: write report: %w", err)
		}
		err = qw.Close()
	} else {
		_, err = io.WriteString(part, text)
	}
	if err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	return nil
}

func allEqual(ts []time.Time) bool {
	for _, t := range ts[1:] {
		if !t.Equal(ts[0]) {
			return false
		}
	}
	return true
}

func longestLine(s string) int {
	longest := 0
	for l := range strings.SplitSeq(s, "\r\n") {
		longest = max(longest, len(l))
	}
	return longest
}

// writeStatus writes the message/delivery-status part (RFC 3464 §2.2,
// §2.3): the per-message fields, then a block per recipient.
func (p *prepared) writeStatus(mw *multipart.Writer, r Report) error {
	var s strings.Builder
	date := func(t time.Time) string { return t.Format(dateLayout) }
	s.WriteString(field("Reporting-MTA", "dns;"+oneLine(r.ReportingMTA, true)))
	if envid := oneLine(r.EnvelopeID, true); envid != "" {
		s.WriteString(field("Original-Envelope-Id", envid))
	}
	if !r.ArrivalDate.IsZero() {
		s.WriteString(field("Arrival-Date", date(r.ArrivalDate)))
	}
	for _, rc := range p.recipients {
		s.WriteString("\r\n")
		if orcpt := oneLine(rc.OriginalRecipient, false); orcpt != "" {
			typ, addr, ok := strings.Cut(orcpt, ";")
			if !ok {
				typ, addr = "rfc822", orcpt
			}
			s.WriteString(field("Original-Recipient", recipientValue(oneLine(typ, true), addr)))
		}
		s.WriteString(field("Final-Recipient", recipientValue("rfc822", rc.Address)))
		s.WriteString(field("Action", string(rc.Action)))
		s.WriteString(field("Status", rc.Status))
		if host := oneLine(rc.RemoteMTA, true); host != "" {
			s.WriteString(field("Remote-MTA", "dns;"+host))
		}
		if reply := oneLine(rc.Reply, true); reply != "" {
			s.WriteString(field("Diagnostic-Code", "smtp;"+reply))
		}
		if !rc.LastAttempt.IsZero() {
			s.WriteString(field("Last-Attempt-Date", date(rc.LastAttempt)))
		}
		if rc.Action == Delayed && !rc.WillRetryUntil.IsZero() {
			s.WriteString(field("Will-Retry-Until", date(rc.WillRetryUntil)))
		}
	}
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"}})
	if err == nil {
		_, err = io.WriteString(part, s.String())
	}
	if err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	return nil
}

// writeHeaders writes the original's (filtered, normalised) header block
// as text/rfc822-headers, without the empty line that ended it.
func (p *prepared) writeHeaders(mw *multipart.Writer, hdr []byte, ended bool) error {
	if ended {
		hdr = hdr[:len(hdr)-2] // normalizeHeader made the empty line CRLF
	} else if len(hdr) > 0 && hdr[len(hdr)-1] != '\n' {
		hdr = append(hdr[:len(hdr):len(hdr)], '\r', '\n')
	}
	mh := textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}}
	if !isASCII(string(hdr)) {
		mh.Set("Content-Transfer-Encoding", "8bit")
	}
	part, err := mw.CreatePart(mh)
	if err == nil {
		_, err = part.Write(hdr)
	}
	if err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	return nil
}

// writeFull writes the whole original as message/rfc822: the filtered
// header block, then the body streamed from br with CRLF line endings.
// More than maxFull bytes of original in all means OriginalSize was wrong;
// Compose then fails rather than send a report of unbounded size.
func (p *prepared) writeFull(mw *multipart.Writer, hdr []byte, ended bool, br *bufio.Reader, rawHeaderLen int64) error {
	part, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/rfc822"}})
	if err == nil {
		_, err = part.Write(hdr)
	}
	if err != nil {
		return fmt.Errorf("dsn: write report: %w", err)
	}
	if !ended {
		return nil // no body
	}
	remaining := p.maxFull - rawHeaderLen
	limit := remaining
	if limit < math.MaxInt64 {
		limit++ // one byte more than allowed tells a too-large original
	}
	cw := &crlfWriter{w: part}
	n, err := io.Copy(cw, io.LimitReader(br, limit))
	if err == nil {
		err = cw.Close()
	}
	var werr *writeError
	switch {
	case errors.As(err, &werr):
		return fmt.Errorf("dsn: write report: %w", werr.err)
	case err != nil:
		return fmt.Errorf("dsn: read original: %w", err)
	case n > remaining:
		return fmt.Errorf("dsn: original is larger than its size: more than %d bytes", p.maxFull)
	}
	return nil
}
