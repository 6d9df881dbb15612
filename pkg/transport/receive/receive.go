// Package receive is the SMTP side of sendconn serve that internal senders
// talk to: it decides who may relay, stamps the headers the header firewall
// works on, and hands each message to the queue, answering 250 to DATA only
// once the queue says the message is durable.
//
// Relay policy: a client relays when its address is in RemoteIPRanges or
// when it has authenticated as one of Users (AUTH is offered only over TLS
// unless AllowInsecureAuth). Everyone else is refused at RCPT, so sendconn
// is never an open relay.
//
// Headers: every accepted message gets a Received: line and the
// X-MS-Exchange-Organization-* headers Exchange stamps (Network-Message-Id,
// AuthSource, AuthAs, OriginalArrivalTime). Organization and Forest headers
// a client sends are removed first, whoever the client is: no client of
// this listener is a server of the organization, so none may claim how the
// organization authenticated or scanned a message.
//
// The one exception is a Server built with Config.Organization, which
// serves the organization listener: its clients proved with a certificate
// of the organization CA that they are servers of the organization
// (package organization), so they relay, and the headers they send pass
// untouched; only Received: is added.
//
// A message that has passed through more than MaxHopCount servers
// (Received: fields) is refused as a mail loop.
package receive

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"github.com/sendconn/sendconn/pkg/permissions"
	msgheader "github.com/sendconn/sendconn/pkg/transport/internal/header"
	"github.com/sendconn/sendconn/pkg/transport/organization"
)

// Spool stores a message durably. It returns only when the message is on
// disk, or an error; ErrStorage-like failures must be recognisable through
// IsStorageError so the client gets 452 4.3.1 instead of a permanent reply.
type Spool interface {
	Put(env Envelope, body io.Reader) (id string, err error)
}

// Envelope is one accepted transaction's envelope, with the RFC 3461
// (DSN) parameters the client gave, so that notifications honour them.
type Envelope struct {
	From       string
	Recipients []Recipient
	Return     string // RET: "FULL", "HDRS" or ""
	EnvelopeID string // ENVID, decoded
	Meta       map[string]string
}

// Recipient is one RCPT TO with its DSN parameters.
type Recipient struct {
	Address string
	Notify  []string // NEVER, SUCCESS, FAILURE, DELAY; nil when not given
	ORCPT   string   // "rfc822;addr" as given (decoded); "" when not given
}

// User may relay after AUTH; the password is a bcrypt hash.
type User struct {
	Name         string
	PasswordHash string
}

// Config is what the receiving side needs.
type Config struct {
	Hostname          string // EHLO name and the "by" of Received:
	RemoteIPRanges    []netip.Prefix
	Users             []User
	TLS               *tls.Config // nil: no STARTTLS
	AllowInsecureAuth bool
	MaxMessageSize    int64
	MaxRecipients     int
	MaxConnections    int
	CommandTimeout    time.Duration
	DataTimeout       time.Duration
	// MaxHeaderSize bounds the header block read into memory to filter it;
	// 0 means 1 MB.
	MaxHeaderSize int
	// IsStorageError reports a failure of the disk under the queue.
	IsStorageError func(error) bool
	// Organization marks the organization listener: every client is a
	// server of the organization, authenticated by its TLS certificate
	// before the session started.
	Organization bool
	// MaxHopCount bounds the Received: fields of a message; 0 means 60,
	// Exchange's default for a Receive connector.
	MaxHopCount int
	// MaxAuthFailures is how many failed AUTH attempts one session may
	// make; after them AUTH is refused (421) without looking at what is
	// sent. 0 means 3.
	MaxAuthFailures int
	// AuthFailureDelay slows the answer to a failed AUTH by this much for
	// every failure from the same address in the last 10 minutes (at most
	// ten times over), so that guessing passwords from many sessions at
	// once is slow too. 0 means 1 s; negative means none (tests).
	AuthFailureDelay time.Duration
	Logger           *slog.Logger
	Now              func() time.Time
}

// Server receives mail. Create it with New, start it with Serve.
type Server struct {
	cfg   Config
	smtp  *smtp.Server
	sem   chan struct{}
	conns connSet

	authMu       sync.Mutex
	authFailures map[netip.Addr][]time.Time // recent failed AUTHs per client address
}

// New builds a server that spools into sp.
func New(cfg Config, sp Spool) *Server {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxHeaderSize <= 0 {
		cfg.MaxHeaderSize = 1 << 20
	}
	if cfg.IsStorageError == nil {
		cfg.IsStorageError = func(error) bool { return false }
	}
	if cfg.MaxHopCount <= 0 {
		cfg.MaxHopCount = 60
	}
	if cfg.MaxAuthFailures <= 0 {
		cfg.MaxAuthFailures = 3
	}
	if cfg.AuthFailureDelay == 0 {
		cfg.AuthFailureDelay = time.Second
	}
	s := &Server{cfg: cfg}
	srv := smtp.NewServer(&backend{srv: s, spool: sp})
	srv.Domain = cfg.Hostname
	srv.TLSConfig = cfg.TLS
	srv.AllowInsecureAuth = cfg.AllowInsecureAuth
	srv.MaxMessageBytes = cfg.MaxMessageSize
	srv.MaxRecipients = cfg.MaxRecipients
	// DSN (RFC 3461) is advertised so submitters can say which
	// notifications they want; the queue keeps what they asked for.
	srv.EnableDSN = true
	// go-smtp's read deadline is set once per command and also bounds the
	// whole DATA transfer, so it must be the longer of the two: a command
	// timeout shorter than a large message's transfer would cut it off.
	srv.ReadTimeout = max(cfg.CommandTimeout, cfg.DataTimeout)
	srv.WriteTimeout = cfg.CommandTimeout
	srv.ErrorLog = slogErrorLog{cfg.Logger}
	s.smtp = srv
	if cfg.MaxConnections > 0 {
		s.sem = make(chan struct{}, cfg.MaxConnections)
	}
	return s
}

// Serve accepts connections on ln until Close. ln must be a plain
// listener: TLS comes from STARTTLS.
func (s *Server) Serve(ln net.Listener) error {
	err := s.smtp.Serve(&listener{Listener: ln, sem: s.sem, log: s.cfg.Logger, conns: &s.conns})
	if errors.Is(err, smtp.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops accepting and closes every connection at once.
func (s *Server) Close() error { return s.smtp.Close() }

// Shutdown stops accepting and waits for the open sessions to end, until
// ctx is done. Sessions between transactions are closed rather than
// waited for: a client (or another server's pooled session) that sends
// nothing would otherwise hold the shutdown until its idle timeout. A
// message in transfer is waited for; a client whose connection closes
// before the 250 keeps its message and tries again.
func (s *Server) Shutdown(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.smtp.Shutdown(ctx) }()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		s.conns.closeIdle()
		select {
		case err := <-done:
			return err
		case <-t.C:
		}
	}
}

type backend struct {
	srv   *Server
	spool Spool
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	remote, _ := netip.ParseAddrPort(c.Conn().RemoteAddr().String())
	ip := remote.Addr().Unmap()
	trusted := false
	peer := ""
	if b.srv.cfg.Organization {
		trusted, peer = true, organizationPeer(c.Conn())
	}
	for _, p := range b.srv.cfg.RemoteIPRanges {
		if p.Contains(ip) {
			trusted = true
			break
		}
	}
	if !validHelo(c.Hostname()) {
		return nil, errBadHelo
	}
	return &session{b: b, conn: c, ip: ip, ipTrusted: trusted, peer: peer}, nil
}

// organizationPeer names the server at the other end of an organization
// listener connection, from the certificate it proved itself with.
func organizationPeer(c net.Conn) string {
	if state, ok := implicitTLS(c); ok {
		return organization.PeerName(state)
	}
	return ""
}

// implicitTLS is the TLS state of a connection that was TLS from the
// start (the organization listener), which go-smtp does not see through
// this package's conn wrapper.
func implicitTLS(c net.Conn) (tls.ConnectionState, bool) {
	if w, ok := c.(*conn); ok {
		c = w.Conn
	}
	if tc, ok := c.(*tls.Conn); ok {
		return tc.ConnectionState(), true
	}
	return tls.ConnectionState{}, false
}

// errBadHelo refuses an EHLO/HELO name that could not be recorded as it
// is: one with control characters (NUL, CR, ...) or bytes that are not
// UTF-8, which the queue would refuse only after the whole DATA.
var errBadHelo = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Invalid EHLO domain"}

func validHelo(name string) bool {
	return utf8.ValidString(name) && !strings.ContainsFunc(name, unicode.IsControl)
}

// validAddress reports whether a path go-smtp parsed may go into the
// envelope. go-smtp keeps any byte but SP, HTAB and '>' in the domain and
// any byte at all in a quoted local part, which it also unquotes. What is
// kept is sent on unquoted ("MAIL FROM:<"+addr+">") by the delivery side,
// so a control character (a CR above all) or a SP, '<' or '>' would change
// the command the next hop reads; invalid UTF-8 the queue would refuse
// only after the whole DATA, as a temporary failure the client retries
// for ever.
func validAddress(addr string) bool {
	return utf8.ValidString(addr) && !strings.ContainsFunc(addr, func(r rune) bool {
		return unicode.IsControl(r) || r == ' ' || r == '<' || r == '>'
	})
}

type session struct {
	b         *backend
	conn      *smtp.Conn
	ip        netip.Addr
	ipTrusted bool
	peer      string // the organization server at the other end, on the organization listener

	// mu guards what follows. For BDAT go-smtp runs Data in a goroutine
	// of its own, and calls Reset (RSET, EHLO, a chunk that failed or
	// timed out) or Auth without waiting for it to return.
	mu   sync.Mutex
	user string // authenticated user, "" if none
	// authFailures counts this session's failed AUTH attempts.
	authFailures int
	inTxn        bool // MAIL was accepted and no Reset came since
	env          Envelope
	origin       origin
}

// origin is what a message's stamp and meta say about the client, taken
// at MAIL, so that Data never reads go-smtp's connection state while
// go-smtp may change it.
type origin struct {
	helo string
	tls  *tls.ConnectionState // nil without TLS
}

func (s *session) cfg() *Config { return &s.b.srv.cfg }

func (s *session) AuthMechanisms() []string {
	if len(s.cfg().Users) == 0 {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	s.mu.Lock()
	failures := s.authFailures
	s.mu.Unlock()
	if failures >= s.cfg().MaxAuthFailures {
		return nil, errTooManyAuthFailures
	}
	check := func(user, pass string) error {
		if !s.b.srv.checkPassword(user, pass) {
			s.mu.Lock()
			s.authFailures++
			s.mu.Unlock()
			delay := s.b.srv.authFailed(s.ip, s.cfg().Now())
			s.cfg().Logger.Warn("authentication failed", "remote", s.ip.String(), "user", user, "delay", delay.String())
			time.Sleep(delay)
			return smtp.ErrAuthFailed
		}
		s.mu.Lock()
		s.user = user
		s.mu.Unlock()
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return smtp.ErrAuthFailed
			}
			return check(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// errTooManyAuthFailures ends a session's guessing.
var errTooManyAuthFailures = &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many failed authentication attempts"}

// authFailureWindow is how long a failed AUTH counts against its address.
const authFailureWindow = 10 * time.Minute

// authFailed records a failed AUTH from ip and returns how long to wait
// before answering it.
func (s *Server) authFailed(ip netip.Addr, now time.Time) time.Duration {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	if s.authFailures == nil {
		s.authFailures = map[netip.Addr][]time.Time{}
	}
	recent := s.authFailures[ip][:0]
	for _, t := range s.authFailures[ip] {
		if now.Sub(t) < authFailureWindow {
			recent = append(recent, t)
		}
	}
	recent = append(recent, now)
	s.authFailures[ip] = recent
	// Forget addresses that have gone quiet, so the map stays small.
	if len(s.authFailures) > 10000 {
		for a, ts := range s.authFailures {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= authFailureWindow {
				delete(s.authFailures, a)
			}
		}
	}
	if s.cfg.AuthFailureDelay < 0 {
		return 0
	}
	return s.cfg.AuthFailureDelay * time.Duration(min(len(recent), 10))
}

// checkPassword compares against the bcrypt hash, spending the same time
// for unknown users so that timing does not tell which names exist.
func (s *Server) checkPassword(user, pass string) bool {
	hash := dummyHash
	known := false
	for _, u := range s.cfg.Users {
		if u.Name == user {
			hash, known = []byte(u.PasswordHash), true
			break
		}
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(pass)) == nil
	return known && ok
}

var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("sendconn-no-such-user"), bcrypt.DefaultCost)

func (s *session) Mail(from string, opts *smtp.MailOptions) error {
	// go-smtp asks the backend only about the first EHLO of a session
	// (NewSession); a later one replaces the name unchecked.
	if !validHelo(s.conn.Hostname()) {
		return errBadHelo
	}
	// go-smtp takes a second MAIL in a transaction and keeps the
	// recipients it counted; a new envelope here would reach DATA with
	// none of them (RFC 5321 4.1.4: 503).
	s.mu.Lock()
	nested := s.inTxn
	s.mu.Unlock()
	if nested {
		return &smtp.SMTPError{Code: 503, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "Nested MAIL command"}
	}
	if !validAddress(from) {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 7}, Message: "Invalid sender address"}
	}
	env := Envelope{From: from}
	if opts != nil {
		env.Return = string(opts.Return)
		env.EnvelopeID = opts.EnvelopeID
	}
	o := origin{helo: s.conn.Hostname()}
	if state, ok := s.conn.TLSConnectionState(); ok {
		o.tls = &state
	} else if state, ok := implicitTLS(s.conn.Conn()); ok {
		o.tls = &state
	}
	s.mu.Lock()
	s.env, s.origin, s.inTxn = env, o, true
	s.mu.Unlock()
	s.setBusy(true)
	return nil
}

func (s *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	s.mu.Lock()
	user := s.user
	s.mu.Unlock()
	if !s.ipTrusted && user == "" {
		if s.authOffered() {
			return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
		}
		s.cfg().Logger.Info("relay refused", "remote", s.ip.String(), "rcpt", to)
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Unable to relay"}
	}
	if _, domain, ok := strings.Cut(to, "@"); !ok || domain == "" {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Recipient address needs a domain"}
	}
	if !validAddress(to) {
		return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 1, 3}, Message: "Invalid recipient address"}
	}
	rcpt := Recipient{Address: to}
	if opts != nil {
		// go-smtp checks an rfc822 ORCPT, but passes a utf-8 one with
		// control characters and bytes that are not UTF-8.
		if orcpt := opts.OriginalRecipient; !utf8.ValidString(orcpt) || strings.ContainsFunc(orcpt, unicode.IsControl) {
			return &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 4}, Message: "Malformed ORCPT parameter value"}
		}
		for _, n := range opts.Notify {
			rcpt.Notify = append(rcpt.Notify, string(n))
		}
		if opts.OriginalRecipient != "" {
			rcpt.ORCPT = strings.ToLower(string(opts.OriginalRecipientType)) + ";" + opts.OriginalRecipient
		}
	}
	s.mu.Lock()
	s.env.Recipients = append(s.env.Recipients, rcpt)
	s.mu.Unlock()
	return nil
}

// authOffered mirrors go-smtp's rule for advertising AUTH.
func (s *session) authOffered() bool {
	if len(s.cfg().Users) == 0 {
		return false
	}
	_, isTLS := s.conn.TLSConnectionState()
	return isTLS || s.cfg().AllowInsecureAuth
}

func (s *session) Data(r io.Reader) error {
	cfg := s.cfg()
	now := cfg.Now()
	id := newMessageID()
	s.mu.Lock()
	env := s.env
	env.Recipients = slices.Clone(s.env.Recipients)
	user, o := s.user, s.origin
	s.mu.Unlock()
	if len(env.Recipients) == 0 {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 5, 1}, Message: "No valid recipients"}
	}
	fast, done := fastDATA(r, s.conn)
	defer done()
	in := &dataStream{r: fast}
	br := bufio.NewReaderSize(in, 64<<10)
	header, err := msgheader.Read(br, cfg.MaxHeaderSize)
	if err != nil {
		return s.dataError(in, err)
	}
	// RFC 5322 has no NUL anywhere in a header. A next hop that drops
	// NULs would read "\x00X-MS-Exchange-Organization-AuthAs:" as a field
	// the header firewall never saw as one.
	if bytes.IndexByte(header, 0) >= 0 {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "NUL character in the message header"}
	}
	if hops := countFields(header, "Received"); hops >= cfg.MaxHopCount {
		cfg.Logger.Warn("message refused: too many hops", "hops", hops, "remote", s.ip.String(), "from", env.From)
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 4, 6}, Message: "Hop count exceeded - possible mail loop"}
	}
	if !cfg.Organization {
		header = permissions.Filter(header, permissions.ReceivePolicy())
	}
	stamp := s.stamp(id, now, user, o)
	body := io.MultiReader(bytes.NewReader(stamp), bytes.NewReader(header), br)
	meta := map[string]string{
		"client-ip":          s.ip.String(),
		"helo":               o.helo,
		"network-message-id": id,
	}
	if user != "" {
		meta["auth-user"] = user
	}
	if s.peer != "" {
		meta["organization-peer"] = s.peer
	}
	// Kept for Get-Message, which would otherwise read every queued
	// file to show its subject.
	if subject := msgheader.Get(header, "Subject"); subject != "" {
		meta["subject"] = displaySubject(subject)
	}
	if mid := msgheader.Get(header, "Message-ID"); mid != "" && len(mid) <= 998 {
		meta["message-id"] = mid
	}
	env.Meta = meta
	qid, err := s.b.spool.Put(env, body)
	if err != nil {
		return s.dataError(in, err)
	}
	cfg.Logger.Info("message accepted", "queue_id", qid, "network_message_id", id, "from", env.From,
		"rcpts", len(env.Recipients), "remote", s.ip.String())
	return nil
}

// dataError answers a message that was not stored. When reading the
// client's data failed, that failure decides the reply, whatever the spool
// made of it.
func (s *session) dataError(in *dataStream, err error) error {
	cfg := s.cfg()
	if in.err != nil {
		err = in.err
	}
	var se *smtp.SMTPError
	var ne net.Error
	switch {
	case errors.Is(err, smtp.ErrDataTooLarge):
		return smtp.ErrDataTooLarge
	case errors.As(err, &se):
		return se
	case errors.Is(err, smtp.ErrTooLongLine):
		// go-smtp cannot read past the line; it closes the connection
		// after this reply. Permanent: the same message fails again.
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0},
			Message: fmt.Sprintf("Message line longer than %d bytes; encode long lines", s.b.srv.smtp.MaxLineLength)}
	case errors.As(err, &ne) && ne.Timeout():
		// The connection reads nothing more (see conn), so what the
		// client sends on is never taken for commands.
		cfg.Logger.Info("message transfer timed out", "remote", s.ip.String())
		return &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 4, 2}, Message: "Timeout waiting for message data, closing connection"}
	case in.err != nil:
		cfg.Logger.Info("message transfer aborted", "err", err, "remote", s.ip.String())
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 4, 0}, Message: "Message transfer aborted"}
	case errors.Is(err, msgheader.ErrTooLarge):
		return &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Header block too large"}
	case cfg.IsStorageError(err):
		cfg.Logger.Error("queue storage failed; message not accepted", "err", err, "remote", s.ip.String())
		return &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 3, 1}, Message: "Insufficient system storage"}
	}
	cfg.Logger.Error("message not accepted", "err", err, "remote", s.ip.String())
	return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Temporary failure, message not accepted"}
}

func (s *session) Reset() {
	s.mu.Lock()
	s.env, s.origin, s.inTxn = Envelope{}, origin{}, false
	s.mu.Unlock()
	s.setBusy(false)
}

// setBusy marks the connection as carrying a transaction, which a
// shutdown waits for.
func (s *session) setBusy(busy bool) {
	if c, ok := s.conn.Conn().(*conn); ok {
		c.busy.Store(busy)
	}
}

func (s *session) Logout() error { return nil }

// stamp returns the header fields this server adds on top: Received: first,
// as RFC 5321 requires, then the organization headers.
func (s *session) stamp(id string, now time.Time, user string, o origin) []byte {
	cfg := s.cfg()
	with := "ESMTP"
	if o.tls != nil {
		with += "S"
	}
	if user != "" {
		with += "A"
	}
	if cfg.Organization {
		with = "ESMTPSA" // mutual TLS: the certificate authenticated the client
	}
	helo := o.helo
	if helo == "" {
		helo = "unknown"
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "Received: from %s ([%s])\r\n\tby %s (sendconn) with %s", sanitize(helo), s.ip, cfg.Hostname, with)
	if o.tls != nil {
		fmt.Fprintf(&b, " (version=%s cipher=%s)", tls.VersionName(o.tls.Version), tls.CipherSuiteName(o.tls.CipherSuite))
	}
	fmt.Fprintf(&b, "\r\n\tid %s; %s\r\n", id, now.Format(time.RFC1123Z))
	if cfg.Organization {
		// The server that first accepted the message stamped the
		// organization headers; they travel with it.
		return b.Bytes()
	}
	authAs := "Anonymous"
	if user != "" {
		authAs = "Internal"
	}
	fmt.Fprintf(&b, "X-MS-Exchange-Organization-Network-Message-Id: %s\r\n", id)
	fmt.Fprintf(&b, "X-MS-Exchange-Organization-AuthSource: %s\r\n", cfg.Hostname)
	fmt.Fprintf(&b, "X-MS-Exchange-Organization-AuthAs: %s\r\n", authAs)
	fmt.Fprintf(&b, "X-MS-Exchange-Organization-OriginalArrivalTime: %s\r\n", now.UTC().Format("02 Jan 2006 15:04:05.0000 (UTC)"))
	return b.Bytes()
}

// sanitize keeps a client-chosen EHLO name from breaking the header.
func sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '(' || r == ')' {
			return '_'
		}
		return r
	}, s)
}

// newMessageID returns a random UUID, Exchange's Network-Message-Id form.
func newMessageID() string {
	var u [16]byte
	_, _ = rand.Read(u[:])
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}

// loginServer is the server side of AUTH LOGIN, which go-sasl only ships as
// a client.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the user name
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.user, string(response))
	}
	return nil, true, errors.New("unexpected AUTH LOGIN response")
}

// listener hands go-smtp each connection as a conn. With a limit (sem not
// nil) it answers connections beyond it with 421 instead of leaving them
// waiting in the backlog.
type listener struct {
	net.Listener
	sem   chan struct{}
	log   *slog.Logger
	conns *connSet
}

// connSet is the open connections, so that a shutdown can close the idle
// ones.
type connSet struct {
	mu sync.Mutex
	m  map[*conn]struct{}
}

func (cs *connSet) add(c *conn) *conn {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[*conn]struct{}{}
	}
	cs.m[c] = struct{}{}
	c.set = cs
	return c
}

func (cs *connSet) remove(c *conn) {
	cs.mu.Lock()
	delete(cs.m, c)
	cs.mu.Unlock()
}

func (cs *connSet) closeIdle() {
	cs.mu.Lock()
	var idle []*conn
	for c := range cs.m {
		if !c.busy.Load() {
			idle = append(idle, c)
		}
	}
	cs.mu.Unlock()
	for _, c := range idle {
		_ = c.Close()
	}
}

func (l *listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.sem == nil {
			return l.conns.add(&conn{Conn: c}), nil
		}
		select {
		case l.sem <- struct{}{}:
			return l.conns.add(&conn{Conn: c, release: func() { <-l.sem }}), nil
		default:
			l.log.Warn("connection refused: too many connections", "remote", c.RemoteAddr().String(), "limit", cap(l.sem))
			_ = c.SetWriteDeadline(time.Now().Add(time.Second))
			_, _ = io.WriteString(c, "421 4.3.2 Too many connections, try again later\r\n")
			_ = c.Close()
		}
	}
}

// conn is a client connection that reads nothing more once a read timed
// out: every later Read reports io.EOF, so go-smtp ends the session.
//
// go-smtp sets one read deadline per command, and the DATA command's also
// covers the message. When it passes mid-message, go-smtp answers and goes
// back to reading commands, with a fresh deadline, from the middle of the
// message: a client that stalls and then sends on has the rest of its
// message read as commands, and a "MAIL FROM: ... DATA ... ." inside it
// is accepted as a second message nobody sent. A BDAT chunk that times
// out is the same. RFC 5321 (4.5.3.2) has the server close the connection
// after a timeout; this makes sure it does.
type conn struct {
	net.Conn
	timedOut atomic.Bool
	busy     atomic.Bool // in a transaction (MAIL to its end)
	once     sync.Once
	release  func() // gives back the connection's slot; nil without a limit
	set      *connSet
}

func (c *conn) Read(p []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, io.EOF
	}
	n, err := c.Conn.Read(p)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		c.timedOut.Store(true)
	}
	return n, err
}

func (c *conn) Close() error {
	c.once.Do(func() {
		if c.release != nil {
			c.release()
		}
		if c.set != nil {
			c.set.remove(c)
		}
	})
	return c.Conn.Close()
}

// dataStream passes the message data through, failing it at the first
// CR or LF that is not part of a CRLF, and remembers the first error the
// data had (a bare line ending, or what go-smtp's reader returned: too
// large, line too long, a timeout, the client gone).
//
// go-smtp ends DATA only at CRLF.CRLF, but would store "\n.\r\n",
// "\n.\n" or "\r.\r\n" inside a message as they are, and a next hop
// that takes one of them for the end of data would read what follows as
// commands: SMTP smuggling (CVE-2023-51764 and the like). The delivery
// side makes a bare LF a CRLF but sends a bare CR on unchanged, and the
// header firewall ends lines at LF only, so a bare CR could also hide a
// header field from it. RFC 5321 (2.3.8) allows CR and LF only together,
// so such data is refused with 550 5.6.11, Exchange's code for bare line
// feeds; in a BDAT chunk too. Commands may still end with a bare LF: a command line
// cannot end a message.
type dataStream struct {
	r      io.Reader
	lastCR bool // the byte before was a CR
	err    error
}

var errBareLineEnding = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 6, 11},
	Message: "Bare CR or LF in message data; lines must end with CRLF"}

func (d *dataStream) Read(p []byte) (int, error) {
	if d.err != nil {
		return 0, d.err
	}
	n, err := d.r.Read(p)
	if i := d.bareLineEnding(p[:n]); i >= 0 {
		d.err = errBareLineEnding
		return i, d.err
	}
	switch {
	case err == io.EOF && d.lastCR:
		d.err = errBareLineEnding
		return n, d.err
	case err != nil && err != io.EOF:
		d.err = err
	}
	return n, err
}

// bareLineEnding returns the index in p of the first CR not followed by
// LF or LF not preceded by CR, or -1, and carries a final CR over to the
// next call. It jumps from CR to CR (bytes.IndexByte) rather than looking
// at every byte: between two CRs there may be no LF at all.
func (d *dataStream) bareLineEnding(p []byte) int {
	off := 0
	for off < len(p) {
		if d.lastCR {
			if p[off] != '\n' {
				return off
			}
			d.lastCR = false
			off++
			continue
		}
		cr := bytes.IndexByte(p[off:], '\r')
		end := len(p)
		if cr >= 0 {
			end = off + cr
		}
		if lf := bytes.IndexByte(p[off:end], '\n'); lf >= 0 {
			return off + lf
		}
		if cr < 0 {
			return -1
		}
		d.lastCR = true
		off = end + 1
	}
	return -1
}

type slogErrorLog struct{ log *slog.Logger }

func (l slogErrorLog) Printf(format string, v ...any) {
	l.log.Debug("smtp server", "msg", fmt.Sprintf(format, v...))
}
func (l slogErrorLog) Println(v ...any) { l.log.Debug("smtp server", "msg", fmt.Sprint(v...)) }

// displaySubject decodes RFC 2047 words for display and keeps at most 255
// characters, enough for a queue listing.
func displaySubject(raw string) string {
	if dec, err := new(mime.WordDecoder).DecodeHeader(raw); err == nil {
		raw = dec
	}
	raw = strings.ToValidUTF8(raw, "\uFFFD")
	// A decoded word may carry any byte: no CR, LF or terminal escape
	// reaches a listing.
	raw = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, raw)
	if r := []rune(raw); len(r) > 255 {
		raw = string(r[:255])
	}
	return raw
}

// countFields counts the header fields named name (case-insensitively).
func countFields(hdr []byte, name string) int {
	n := 0
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			hdr = nil
		}
		if len(line) > len(name) && line[len(name)] == ':' && strings.EqualFold(string(line[:len(name)]), name) {
			n++
		}
	}
	return n
}
