// Package smtpclient is the SMTP client the delivery side speaks to smart
// hosts and MX hosts with.
//
// It is a small client of its own, over net/textproto, rather than
// go-smtp's: a Send connector needs its Fqdn in the EHLO before STARTTLS
// (go-smtp always says "localhost" there), HELO only when ForceHELO is set,
// the full list of extensions the remote end offered, and control over
// exactly when credentials may be sent. The command set is small: EHLO or
// HELO, STARTTLS, AUTH, MAIL, RCPT, DATA, RSET, QUIT.
package smtpclient

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
)

// Reply is a reply from the remote end. As an error it says what the
// remote end said.
type Reply struct {
	Code     int
	Enhanced string // "5.7.1", or "" when the remote end gave none
	Message  string // the text, lines joined with "; "
}

func (r *Reply) Error() string {
	if r.Enhanced != "" {
		return fmt.Sprintf("%d %s %s", r.Code, r.Enhanced, r.Message)
	}
	return fmt.Sprintf("%d %s", r.Code, r.Message)
}

// Temporary reports a 4xx reply.
func (r *Reply) Temporary() bool { return r.Code >= 400 && r.Code < 500 }

// Permanent reports a 5xx reply.
func (r *Reply) Permanent() bool { return r.Code >= 500 }

// Client is one SMTP connection. It is not safe for concurrent use.
type Client struct {
	conn     net.Conn
	text     *textproto.Conn
	timeout  time.Duration
	greeting string
	ext      map[string]string // EHLO keywords, upper case, to their parameters
	ehlo     bool              // the last greeting was EHLO
	tls      *tls.ConnectionState
	// Transcript, when set, receives every line sent and received (AUTH
	// payloads are replaced by Redacted), for protocol logs and tests.
	Transcript func(dir byte, line string)
}

// writeBuffer is the size of the buffer commands and message data are
// written through: with textproto's 4 KB a 1 MB message is 256 writes to
// the socket, and as many reads and wake-ups of the next hop.
const writeBuffer = 64 << 10

// newText is textproto.NewConn with a larger write buffer. The Conn's own
// Close is never used (the Client closes conn), so its closer stays unset.
func newText(conn net.Conn) *textproto.Conn {
	return &textproto.Conn{
		Reader: *textproto.NewReader(bufio.NewReader(conn)),
		Writer: *textproto.NewWriter(bufio.NewWriterSize(conn, writeBuffer)),
	}
}

// NewClient reads the greeting on conn. timeout bounds each command's round
// trip (and the greeting).
func NewClient(conn net.Conn, timeout time.Duration) (*Client, error) {
	c := &Client{conn: conn, text: newText(conn), timeout: timeout}
	reply, err := c.read()
	if err != nil {
		return nil, err
	}
	if reply.Code != 220 {
		return nil, reply
	}
	c.greeting = reply.Message
	return c, nil
}

// Hello greets the remote end: EHLO, falling back to HELO when EHLO is
// refused with 5xx, or HELO only when forceHELO.
func (c *Client) Hello(name string, forceHELO bool) error {
	c.ext = map[string]string{}
	if !forceHELO {
		reply, err := c.cmd("EHLO " + name)
		if err != nil {
			return err
		}
		if reply.Code == 250 {
			c.ehlo = true
			for _, line := range strings.Split(reply.Message, "\n")[1:] {
				k, v, _ := strings.Cut(strings.TrimSpace(line), " ")
				c.ext[strings.ToUpper(k)] = v
			}
			return nil
		}
		if !reply.Permanent() {
			return reply
		}
	}
	c.ehlo = false
	reply, err := c.cmd("HELO " + name)
	if err != nil {
		return err
	}
	if reply.Code != 250 {
		return reply
	}
	return nil
}

// Extension reports whether the remote end offered an EHLO keyword, and its
// parameters.
func (c *Client) Extension(name string) (bool, string) {
	v, ok := c.ext[strings.ToUpper(name)]
	return ok, v
}

// Extensions lists the offered keywords, for logs.
func (c *Client) Extensions() []string {
	out := make([]string, 0, len(c.ext))
	for k := range c.ext {
		out = append(out, k)
	}
	return out
}

// MaxSize is the remote end's SIZE limit, 0 when it gave none.
func (c *Client) MaxSize() int64 {
	ok, v := c.Extension("SIZE")
	if !ok {
		return 0
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n
}

// Redacted stands in the transcript for every AUTH payload, so that no
// credential reaches a log.
const Redacted = "<authentication information>"

// Greeting is the text of the server's 220 banner.
func (c *Client) Greeting() string { return c.greeting }

// TLS returns the connection state once STARTTLS succeeded.
func (c *Client) TLS() *tls.ConnectionState { return c.tls }

// StartTLS upgrades the connection and greets again with name, as RFC 3207
// requires. A handshake failure (including certificate verification) is
// returned as the tls/x509 error, not a Reply.
func (c *Client) StartTLS(cfg *tls.Config, name string, forceHELO bool) error {
	reply, err := c.cmd("STARTTLS")
	if err != nil {
		return err
	}
	if reply.Code != 220 {
		return reply
	}
	tc := tls.Client(c.conn, cfg)
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := tc.Handshake(); err != nil {
		return fmt.Errorf("tls handshake: %w", err)
	}
	state := tc.ConnectionState()
	c.conn, c.text, c.tls = tc, newText(tc), &state
	return c.Hello(name, forceHELO)
}

// Auth authenticates with a SASL mechanism, sending the initial response
// with the command as RFC 4954 allows.
func (c *Client) Auth(mech sasl.Client) error {
	name, ir, err := mech.Start()
	if err != nil {
		return fmt.Errorf("auth %s: %w", name, err)
	}
	line := "AUTH " + name
	if ir != nil {
		enc := base64.StdEncoding.EncodeToString(ir)
		if enc == "" {
			enc = "="
		}
		line += " " + enc
	}
	reply, err := c.cmdSecret(line, "AUTH "+name+" "+Redacted)
	for err == nil && reply.Code == 334 {
		challenge, derr := base64.StdEncoding.DecodeString(reply.Message)
		if derr != nil {
			_, _ = c.cmd("*")
			return fmt.Errorf("auth %s: bad challenge from server", name)
		}
		resp, merr := mech.Next(challenge)
		if merr != nil {
			_, _ = c.cmd("*")
			return fmt.Errorf("auth %s: %w", name, merr)
		}
		reply, err = c.cmdSecret(base64.StdEncoding.EncodeToString(resp), Redacted)
	}
	if err != nil {
		return err
	}
	if reply.Code != 235 {
		return reply
	}
	return nil
}

// MailParams are the optional MAIL FROM parameters.
type MailParams struct {
	Size int64 // declared when > 0 and the remote end offers SIZE
	// Return and EnvelopeID are RFC 3461's RET and ENVID, passed on when
	// the remote end offers DSN.
	Return     string
	EnvelopeID string
}

// Mail starts a transaction. 8BITMIME is declared when offered, because a
// message may carry 8-bit text and saying so is what the remote end asked
// for.
func (c *Client) Mail(from string, p MailParams) error {
	return c.expect(c.mailLine(from, p), 250)
}

func (c *Client) mailLine(from string, p MailParams) string {
	line := "MAIL FROM:<" + from + ">"
	if ok, _ := c.Extension("SIZE"); ok && p.Size > 0 {
		line += " SIZE=" + strconv.FormatInt(p.Size, 10)
	}
	if ok, _ := c.Extension("DSN"); ok {
		if p.Return != "" {
			line += " RET=" + p.Return
		}
		if p.EnvelopeID != "" {
			line += " ENVID=" + xtext(p.EnvelopeID)
		}
	}
	if ok, _ := c.Extension("8BITMIME"); ok {
		line += " BODY=8BITMIME"
	}
	if ok, _ := c.Extension("SMTPUTF8"); ok && !isASCII(from) {
		line += " SMTPUTF8"
	}
	return line
}

// Rcpt adds a recipient; a refusal comes back as a *Reply. notify and
// orcpt ("rfc822;addr") are RFC 3461's NOTIFY and ORCPT, passed on when
// the remote end offers DSN.
func (c *Client) Rcpt(to string, notify []string, orcpt string) error {
	reply, err := c.cmd(c.rcptLine(RcptParams{To: to, Notify: notify, ORCPT: orcpt}))
	if err != nil {
		return err
	}
	if !reply.accepted() {
		return reply
	}
	return nil
}

// RcptParams is one recipient of an envelope.
type RcptParams struct {
	To     string
	Notify []string
	ORCPT  string
}

func (c *Client) rcptLine(r RcptParams) string {
	line := "RCPT TO:<" + r.To + ">"
	if ok, _ := c.Extension("DSN"); ok {
		if len(r.Notify) > 0 {
			line += " NOTIFY=" + strings.Join(r.Notify, ",")
		}
		if typ, addr, found := strings.Cut(r.ORCPT, ";"); found && typ != "" && addr != "" {
			line += " ORCPT=" + typ + ";" + xtext(addr)
		}
	}
	return line
}

func (r *Reply) accepted() bool { return r.Code == 250 || r.Code == 251 }

// Envelope is what the remote end said to a transaction's MAIL, RCPTs and
// DATA.
type Envelope struct {
	Mail *Reply
	Rcpt []*Reply // one per recipient; nil after MAIL was refused
	// Data is the reply to DATA, nil when no recipient was accepted.
	// Anything but 354 means no message may follow.
	Data *Reply
}

// SendEnvelope sends MAIL, every RCPT and DATA. When the remote end offers
// PIPELINING (RFC 2920) they go in one write and the replies are read
// after, which saves a round trip per command; otherwise one by one. On
// 354 the caller continues with SendData; an error means the connection
// failed before the remote end had accepted anything of the message.
func (c *Client) SendEnvelope(from string, p MailParams, rcpts []RcptParams) (*Envelope, error) {
	if ok, _ := c.Extension("PIPELINING"); !ok {
		return c.sendEnvelopeInTurn(from, p, rcpts)
	}
	lines := []string{c.mailLine(from, p)}
	for _, r := range rcpts {
		lines = append(lines, c.rcptLine(r))
	}
	lines = append(lines, "DATA")
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	for _, l := range lines {
		if c.Transcript != nil {
			c.Transcript('>', l)
		}
		if _, err := c.text.W.WriteString(l + "\r\n"); err != nil {
			return nil, fmt.Errorf("send %s: %w", firstWord(l), err)
		}
	}
	if err := c.text.W.Flush(); err != nil {
		return nil, fmt.Errorf("send MAIL: %w", err)
	}
	env := &Envelope{}
	var err error
	if env.Mail, err = c.read(); err != nil {
		return nil, err
	}
	any := false
	for range rcpts {
		r, err := c.read()
		if err != nil {
			return nil, err
		}
		env.Rcpt = append(env.Rcpt, r)
		any = any || r.accepted()
	}
	data, err := c.read()
	if err != nil {
		return nil, err
	}
	if env.Mail.Code != 250 {
		env.Rcpt = nil
		if data.Code == 354 {
			// A server that refused MAIL yet takes DATA: end the empty
			// message at once; nothing is delivered without recipients.
			return env, c.abortData()
		}
		return env, nil
	}
	if !any {
		if data.Code == 354 {
			return env, c.abortData()
		}
		return env, nil
	}
	env.Data = data
	return env, nil
}

func (c *Client) sendEnvelopeInTurn(from string, p MailParams, rcpts []RcptParams) (*Envelope, error) {
	env := &Envelope{}
	var err error
	if env.Mail, err = c.cmd(c.mailLine(from, p)); err != nil || env.Mail.Code != 250 {
		return env, err
	}
	any := false
	for _, r := range rcpts {
		reply, err := c.cmd(c.rcptLine(r))
		if err != nil {
			return nil, err
		}
		env.Rcpt = append(env.Rcpt, reply)
		any = any || reply.accepted()
	}
	if !any {
		return env, nil
	}
	env.Data, err = c.cmd("DATA")
	return env, err
}

// abortData ends a DATA the remote end should not have accepted with an
// empty message, then resets.
func (c *Client) abortData() error {
	if _, err := c.cmd("."); err != nil {
		return err
	}
	return c.Reset()
}

// Data sends DATA, then the message from r (see SendData).
func (c *Client) Data(r io.Reader) (*Reply, error) {
	if err := c.expect("DATA", 354); err != nil {
		return nil, err
	}
	return c.SendData(r)
}

// SendData sends the message from r, dot-stuffed, after a 354, and returns
// the remote end's final reply (which is an error unless 250). r's line
// endings are sent as CRLF.
func (c *Client) SendData(r io.Reader) (*Reply, error) {
	// No deadline while the body streams: a large message over a slow
	// link may take long; the inactivity timeout below covers a stall.
	w := newDotWriter(c.text.W)
	// r is normally buffered already (delivery's firewalled reader has
	// WriteTo); io.Copy uses that rather than a buffer of its own.
	if _, err := io.Copy(&deadlineWriter{w: w, conn: c.conn, timeout: c.timeout}, r); err != nil {
		return nil, fmt.Errorf("send message data: %w", err)
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("send message data: %w", err)
	}
	reply, err := c.read()
	if err != nil {
		return nil, err
	}
	if reply.Code != 250 {
		return reply, reply
	}
	return reply, nil
}

// Reset aborts the transaction, so the connection can carry another.
func (c *Client) Reset() error { return c.expect("RSET", 250) }

// Noop checks the connection is alive before it is reused.
func (c *Client) Noop() error { return c.expect("NOOP", 250) }

// Quit ends the session politely and closes the connection.
func (c *Client) Quit() error {
	_, err := c.cmd("QUIT")
	cerr := c.conn.Close()
	if err != nil {
		return err
	}
	return cerr
}

// Close closes the connection without QUIT.
func (c *Client) Close() error { return c.conn.Close() }

func (c *Client) expect(line string, code int) error {
	reply, err := c.cmd(line)
	if err != nil {
		return err
	}
	if reply.Code != code {
		return reply
	}
	return nil
}

func (c *Client) cmd(line string) (*Reply, error) { return c.cmdSecret(line, line) }

// cmdSecret sends line but shows logged in the transcript.
func (c *Client) cmdSecret(line, logged string) (*Reply, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	if c.Transcript != nil {
		c.Transcript('>', logged)
	}
	if err := c.text.PrintfLine("%s", line); err != nil {
		return nil, fmt.Errorf("send %s: %w", firstWord(logged), err)
	}
	return c.read()
}

func (c *Client) read() (*Reply, error) {
	_ = c.conn.SetDeadline(time.Now().Add(c.timeout))
	code, msg, err := c.text.ReadResponse(0)
	if err != nil {
		var perr *textproto.Error
		if !errors.As(err, &perr) {
			return nil, fmt.Errorf("read reply: %w", err)
		}
	}
	if c.Transcript != nil {
		for _, l := range strings.Split(msg, "\n") {
			c.Transcript('<', strconv.Itoa(code)+" "+l)
		}
	}
	r := &Reply{Code: code, Message: msg}
	// The enhanced code (RFC 3463) leads the text of a 2xx/4xx/5xx reply.
	if first, rest, ok := strings.Cut(msg, " "); ok && isEnhanced(first, code) {
		r.Enhanced, r.Message = first, rest
	}
	return r, nil
}

func isEnhanced(s string, code int) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || parts[0][0] != byte('0'+code/100) {
		return false
	}
	for _, p := range parts {
		if _, err := strconv.Atoi(p); err != nil {
			return false
		}
	}
	return true
}

func firstWord(s string) string {
	w, _, _ := strings.Cut(s, " ")
	return w
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// deadlineWriter pushes the deadline forward with every write, so a
// transfer may take as long as it needs while a stall still times out.
type deadlineWriter struct {
	w       io.Writer
	conn    net.Conn
	timeout time.Duration
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	_ = d.conn.SetDeadline(time.Now().Add(d.timeout))
	return d.w.Write(p)
}

// xtext encodes s as RFC 3461 §4 xtext: "+", "=", and anything outside
// printable ASCII become +XX, so a parameter cannot break the command.
func xtext(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		ch := s[i]
		if ch < '!' || ch > '~' || ch == '+' || ch == '=' {
			fmt.Fprintf(&b, "+%02X", ch)
			continue
		}
		b.WriteByte(ch)
	}
	return b.String()
}
