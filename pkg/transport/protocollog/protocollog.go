// Package protocollog writes the SMTP send protocol log: one line per
// command, reply and event of each outbound session, in the format of
// Exchange's SmtpSend logs (SEND<yyyymmdd>-<n>.LOG), so that the scripts
// and eyes trained on those read it unchanged. It is written for send
// connectors whose ProtocolLoggingLevel is Verbose.
//
// Logging is optional. A nil *Log and a nil *Session do nothing, so the
// delivery code writes
//
//	s := plog.NewSession(connector, remote)
//	s.Connecting()
//
// whether or not the connector logs, and a failing disk never fails a
// delivery: write errors are kept for Err instead of being returned.
//
// # Credentials
//
// The log must never hold a credential. Sent rewrites an AUTH command to
// its verb and mechanism followed by "<authentication information>", and
// Received does the same to 334 challenges. Every line a client sends
// during a SASL exchange after the AUTH command (LOGIN user name and
// password, CRAM-MD5 response, XOAUTH2 token, the "*" that cancels, …)
// MUST be logged with SentAuth, never with Sent: a base64 credential looks
// like any other line. As a second line of defence, Sent also redacts
// every line between an AUTH command and the next reply that is not a 334,
// but callers must not rely on it (a lost or unlogged reply would end it
// early).
package protocollog

import (
	"crypto/sha1"
	"crypto/x509"
	"encoding/hex"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/logfile"
)

// Exchange's names for this log.
const (
	Prefix  = "SEND"
	LogType = "SMTP Send Protocol Log"
)

// Fields are the columns, in Exchange's order.
var Fields = []string{
	"date-time", "connector-id", "session-id", "sequence-number",
	"local-endpoint", "remote-endpoint", "event", "data", "context",
}

// AuthInfo replaces credentials in the log, as in Exchange's.
const AuthInfo = "<authentication information>"

// Event markers of the event column.
const (
	EventConnect    = "+"
	EventDisconnect = "-"
	EventSend       = ">"
	EventReceive    = "<"
	EventInfo       = "*"
)

// ticksAt1970 is 1970-01-01 in .NET ticks (100 ns since 0001-01-01), the
// clock Exchange's session ids are made of.
const ticksAt1970 = 621355968000000000

// Log is an open send protocol log. Its methods are safe for concurrent
// use, and a nil *Log is a valid log that writes nothing.
type Log struct {
	w   *logfile.Writer
	now func() time.Time

	mu     sync.Mutex
	lastID uint64
	err    error
}

// Open opens the log in cfg.Dir; Prefix, LogType and Fields are set here.
func Open(cfg logfile.Config) (*Log, error) {
	cfg.Prefix = Prefix
	cfg.LogType = LogType
	cfg.Fields = Fields
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w, err := logfile.Open(cfg)
	if err != nil {
		return nil, err
	}
	return &Log{w: w, now: cfg.Now}, nil
}

// Close closes the log file.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	return l.w.Close()
}

// Err returns the first error writing a line met, so that the caller can
// report a log that stopped working without every session checking.
func (l *Log) Err() error {
	if l == nil {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// NewSession starts the lines of one outbound connection, through the send
// connector named connector to remote ("ip:port"). On a nil *Log it returns
// nil, whose methods do nothing.
func (l *Log) NewSession(connector, remote string) *Session {
	if l == nil {
		return nil
	}
	return &Session{log: l, id: l.newID(), connector: connector, remote: remote}
}

// newID returns a session id like Exchange's: the current time in .NET
// ticks as 16 upper-case hex digits (08DC69B2A1F3C4D5), kept strictly
// increasing so that two sessions of the same tick, or of a clock that
// went back, still differ.
func (l *Log) newID() string {
	ticks := uint64(l.now().UnixNano()/100 + ticksAt1970)
	l.mu.Lock()
	if ticks <= l.lastID {
		ticks = l.lastID + 1
	}
	l.lastID = ticks
	l.mu.Unlock()
	s := strconv.FormatUint(ticks, 16)
	return strings.ToUpper(strings.Repeat("0", max(0, 16-len(s))) + s)
}

func (l *Log) write(fields ...string) {
	if err := l.w.Write(fields...); err != nil {
		l.mu.Lock()
		if l.err == nil {
			l.err = err
		}
		l.mu.Unlock()
	}
}

// Session writes the lines of one connection, numbering them from 0. Its
// methods are safe for concurrent use (the numbers follow the order of the
// lines in the file), and a nil *Session does nothing.
type Session struct {
	log       *Log
	id        string
	connector string
	remote    string

	mu    sync.Mutex
	local string
	seq   int
	auth  bool // between an AUTH command and its final reply
}

// ID is the session-id column, for correlating with other logs; "" on nil.
func (s *Session) ID() string {
	if s == nil {
		return ""
	}
	return s.id
}

func (s *Session) line(event, data, context string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.write(
		s.log.now().UTC().Format(logfile.TimeLayout),
		s.connector, s.id, strconv.Itoa(s.seq),
		s.local, s.remote, event, data, context,
	)
	s.seq++
}

// Connecting logs the attempt, before there is a local endpoint.
func (s *Session) Connecting() { s.line(EventInfo, "", "attempting to connect") }

// Connected logs the established connection; local ("ip:port") is the
// local-endpoint of this and every later line.
func (s *Session) Connected(local string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.local = local
	s.mu.Unlock()
	s.line(EventConnect, "", "")
}

// Sent logs a command the client sent (without or with its CRLF). An AUTH
// command is cut to "AUTH <mechanism> <authentication information>" so
// that an initial response never reaches the file; the lines that follow
// it in the SASL exchange must go through SentAuth.
func (s *Session) Sent(line string) {
	if s == nil {
		return
	}
	line = oneLine(line)
	s.mu.Lock()
	switch {
	case s.auth:
		line = AuthInfo
	case isAuth(line):
		line = redactAuth(line)
		s.auth = true
	}
	s.mu.Unlock()
	s.line(EventSend, line, "")
}

// SentAuth logs a line the client sent inside a SASL exchange, as
// "<authentication information>". Callers must use it for every AUTH
// continuation line (see the package documentation).
func (s *Session) SentAuth() { s.line(EventSend, AuthInfo, "") }

// Received logs a reply line from the server. A 334 challenge is logged
// as "334 <authentication information>", since some mechanisms' challenges
// carry data (NTLM target information, SCRAM nonces) that has no place in
// a log.
func (s *Session) Received(line string) {
	if s == nil {
		return
	}
	line = oneLine(line)
	if strings.HasPrefix(line, "334") && (len(line) == 3 || line[3] == ' ' || line[3] == '-') {
		line = "334 " + AuthInfo
	} else {
		s.mu.Lock()
		s.auth = false // the final reply to AUTH (235, 4xx, 5xx)
		s.mu.Unlock()
	}
	s.line(EventReceive, line, "")
}

// Info logs an information line, such as
// Info("SendRoutingHeaders SendOrganizationHeaders", "Set Session Permissions").
func (s *Session) Info(data, context string) { s.line(EventInfo, data, context) }

// Certificate logs the server's certificate the way Exchange does after
// STARTTLS: a "Received certificate" line, then one line per property with
// the value as data and the property as context. Subject and issuer are in
// the form of Go's pkix.Name.String, the same form the delivery code
// compares TlsCertificateName with, so a value can be copied from the log
// into the connector; the thumbprint is the SHA-1 of the DER, upper-case
// hex, as Windows shows it; alternate names are ';'-joined.
func (s *Session) Certificate(cert *x509.Certificate) {
	if s == nil || cert == nil {
		return
	}
	s.line(EventInfo, "", "Received certificate")
	s.line(EventInfo, cert.Subject.String(), "Certificate subject")
	s.line(EventInfo, cert.Issuer.String(), "Certificate issuer name")
	serial := ""
	if cert.SerialNumber != nil {
		serial = strings.ToUpper(hex.EncodeToString(cert.SerialNumber.Bytes()))
	}
	s.line(EventInfo, serial, "Certificate serial number")
	sum := sha1.Sum(cert.Raw)
	s.line(EventInfo, strings.ToUpper(hex.EncodeToString(sum[:])), "Certificate thumbprint")
	s.line(EventInfo, cert.NotAfter.UTC().Format(time.RFC3339), "Certificate expiration date")
	names := append([]string(nil), cert.DNSNames...)
	for _, ip := range cert.IPAddresses {
		names = append(names, ip.String())
	}
	names = append(names, cert.EmailAddresses...)
	for _, u := range cert.URIs {
		names = append(names, u.String())
	}
	s.line(EventInfo, strings.Join(names, ";"), "Certificate alternate names")
}

// Disconnected logs the end of the connection; context says which side
// closed it ("Local" or "Remote").
func (s *Session) Disconnected(context string) { s.line(EventDisconnect, "", context) }

// oneLine drops the line end of a command or reply and joins the lines of
// a multi-line one with spaces.
func oneLine(line string) string {
	line = strings.TrimRight(line, "\r\n")
	if strings.ContainsAny(line, "\r\n") {
		line = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(line)
	}
	return line
}

// isAuth reports whether the first word of line is AUTH, in any case and
// after any leading blanks.
func isAuth(line string) bool {
	f := strings.Fields(line)
	return len(f) > 0 && strings.EqualFold(f[0], "AUTH")
}

// redactAuth keeps the verb and the mechanism of an AUTH command. The
// mechanism is kept only if it is a SASL mechanism name (RFC 4422:
// upper-case letters, digits, '-' and '_', at most 20), or one of the
// common ones in another case: a malformed "AUTH <credential>" then loses
// the credential rather than logging it as a mechanism.
func redactAuth(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return "AUTH " + AuthInfo
	}
	mech := f[1]
	if !isMechName(mech) {
		up := strings.ToUpper(mech)
		if !knownMechs[up] {
			return "AUTH " + AuthInfo
		}
		mech = up
	}
	return "AUTH " + mech + " " + AuthInfo
}

var knownMechs = map[string]bool{
	"PLAIN": true, "LOGIN": true, "CRAM-MD5": true, "DIGEST-MD5": true,
	"XOAUTH2": true, "OAUTHBEARER": true, "NTLM": true, "GSSAPI": true,
	"EXTERNAL": true, "ANONYMOUS": true, "SCRAM-SHA-1": true, "SCRAM-SHA-256": true,
}

func isMechName(s string) bool {
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
