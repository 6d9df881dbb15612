package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Status is where one recipient of a message stands.
type Status int

const (
	// Pending recipients still have to be tried (again).
	Pending Status = iota
	// Delivered recipients were accepted by the next hop.
	Delivered
	// Failed recipients were refused for good (a 5xx, or a rule that can
	// never be met); they get an NDR.
	Failed
	// Expired recipients were still pending when the message outlived
	// transport.message-expiration-timeout; they get an NDR too.
	Expired
)

var statusNames = [...]string{"pending", "delivered", "failed", "expired"}

func (s Status) String() string {
	if s >= 0 && int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// Final reports whether nothing more will be done for the recipient.
func (s Status) Final() bool { return s == Delivered || s == Failed || s == Expired }

// MarshalText spells the status by name so envelopes stay readable and do
// not depend on the order of the constants.
func (s Status) MarshalText() ([]byte, error) {
	if s < 0 || int(s) >= len(statusNames) {
		return nil, fmt.Errorf("unknown recipient status %d", int(s))
	}
	return []byte(statusNames[s]), nil
}

// UnmarshalText accepts the names MarshalText writes.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if string(b) == n {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("unknown recipient status %q", b)
}

// Recipient is one envelope recipient and its delivery state.
type Recipient struct {
	Address string
	// Notify and ORCPT are the RFC 3461 parameters the submitter gave for
	// this recipient: NOTIFY keywords (NEVER, SUCCESS, FAILURE, DELAY) and
	// the original recipient ("rfc822;a@b"). Empty when not given.
	Notify []string
	ORCPT  string

	Status      Status
	Attempts    int
	NextAttempt time.Time // zero: as soon as possible
	LastAttempt time.Time // zero: never tried
	LastError   string    // last SMTP reply or error text
	// Host is the remote server that gave LastError; "" when the reply is
	// this server's own (a connection failure, a routing rule).
	Host string
	// Queue is the next hop the recipient was last routed to (a delivery
	// queue's NextHopDomain, or "Unreachable"); it decides the wording of
	// an expiry NDR.
	Queue string
	// Notified is set once the delivery status notification for the
	// recipient's final status has been queued (or was not wanted); a
	// message leaves the queue only when every recipient is final and
	// notified.
	Notified bool
}

// Message is a stored message: its envelope and delivery state. Values
// returned by the Queue are copies; changing one changes nothing stored
// until it is passed to Update.
type Message struct {
	// ID is assigned by Put: unique, sortable by arrival, safe as a file name.
	ID string
	// From is the reverse-path; "" is the null sender.
	From       string
	Recipients []Recipient
	Received   time.Time
	// Size is the number of body bytes stored.
	Size int64
	// Meta holds small facts the transport keeps (client IP, auth user,
	// EHLO name, …).
	Meta map[string]string
	// Return and EnvelopeID are the RFC 3461 RET ("FULL", "HDRS" or "")
	// and ENVID parameters of MAIL FROM, fixed at Put.
	Return     string
	EnvelopeID string

	// Suspended messages are not delivered until resumed
	// (Suspend-Message); DelayNotified records that the one delay DSN the
	// message may get has been queued. Both change with Update.
	Suspended     bool
	DelayNotified bool
}

// Envelope is what Put stores besides the body.
type Envelope struct {
	From       string
	Recipients []Recipient // Address, Notify and ORCPT are taken; the rest starts fresh
	Meta       map[string]string
	Return     string
	EnvelopeID string
}

// Done reports whether every recipient is final and notified, so the
// message can be removed.
func (m *Message) Done() bool {
	for _, r := range m.Recipients {
		if !r.Status.Final() || (r.Status != Delivered && !r.Notified) {
			return false
		}
	}
	return true
}

// clone is a deep copy, so callers never share maps or slices with the
// index.
func (m *Message) clone() *Message {
	c := *m
	c.Recipients = append([]Recipient(nil), m.Recipients...)
	for i := range c.Recipients {
		c.Recipients[i].Notify = slices.Clone(c.Recipients[i].Notify)
	}
	c.Meta = maps.Clone(m.Meta)
	return &c
}

// formatVersion is the envelope format this code writes and reads.
const formatVersion = 1

// The fields added after the first release are all optional, so an
// envelope written before them reads as "not given".
type envelope struct {
	Version       int               `json:"v"`
	ID            string            `json:"id"`
	From          string            `json:"from"`
	Received      time.Time         `json:"received"`
	Size          int64             `json:"size"`
	Meta          map[string]string `json:"meta,omitempty"`
	Return        string            `json:"ret,omitempty"`
	EnvelopeID    string            `json:"envid,omitempty"`
	Suspended     bool              `json:"suspended,omitempty"`
	DelayNotified bool              `json:"delay_notified,omitempty"`
	Recipients    []envRecipient    `json:"rcpts"`
}

type envRecipient struct {
	Address     string    `json:"addr"`
	Notify      []string  `json:"notify,omitempty"`
	ORCPT       string    `json:"orcpt,omitempty"`
	Status      Status    `json:"status"`
	Attempts    int       `json:"attempts,omitempty"`
	NextAttempt time.Time `json:"next,omitzero"`
	LastAttempt time.Time `json:"last,omitzero"`
	LastError   string    `json:"error,omitempty"`
	Host        string    `json:"host,omitempty"`
	Queue       string    `json:"queue,omitempty"`
	Notified    bool      `json:"notified,omitempty"`
}

func encodeEnvelope(m *Message) ([]byte, error) {
	e := envelope{
		Version:  formatVersion,
		ID:       m.ID,
		From:     m.From,
		Received: m.Received,
		Size:     m.Size,
		Meta:     m.Meta,

		Return:        m.Return,
		EnvelopeID:    m.EnvelopeID,
		Suspended:     m.Suspended,
		DelayNotified: m.DelayNotified,
	}
	for _, r := range m.Recipients {
		e.Recipients = append(e.Recipients, envRecipient(r))
	}
	b, err := json.Marshal(&e)
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// errNewerFormat marks an envelope written by a newer sendconn: Open fails
// rather than quarantine what a newer version can still deliver.
var errNewerFormat = errors.New("envelope format is newer than this sendconn supports")

func decodeEnvelope(b []byte) (*Message, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return nil, err
	}
	if e.Version > formatVersion {
		return nil, fmt.Errorf("version %d: %w", e.Version, errNewerFormat)
	}
	if e.Version != formatVersion {
		return nil, fmt.Errorf("unknown envelope version %d", e.Version)
	}
	m := &Message{
		ID:       e.ID,
		From:     e.From,
		Received: e.Received,
		Size:     e.Size,
		Meta:     e.Meta,

		Return:        e.Return,
		EnvelopeID:    e.EnvelopeID,
		Suspended:     e.Suspended,
		DelayNotified: e.DelayNotified,
	}
	for _, r := range e.Recipients {
		m.Recipients = append(m.Recipients, Recipient(r))
	}
	if err := validateMessage(m); err != nil {
		return nil, err
	}
	return m, nil
}

// validateMessage checks what Put and Update accept and what Open expects
// to find. Addresses and meta must be valid UTF-8 because JSON would
// silently replace invalid bytes, and a stored address must be the one
// received.
func validateMessage(m *Message) error {
	if !validID(m.ID) {
		return fmt.Errorf("invalid message id %q", m.ID)
	}
	if !utf8.ValidString(m.From) {
		return fmt.Errorf("sender %q is not valid UTF-8", m.From)
	}
	if len(m.Recipients) == 0 {
		return errors.New("no recipients")
	}
	for _, r := range m.Recipients {
		if r.Address == "" {
			return errors.New("empty recipient address")
		}
		if !utf8.ValidString(r.Address) {
			return fmt.Errorf("recipient %q is not valid UTF-8", r.Address)
		}
		if r.Status < Pending || r.Status > Expired {
			return fmt.Errorf("recipient %s: unknown status %d", r.Address, int(r.Status))
		}
		if r.Attempts < 0 {
			return fmt.Errorf("recipient %s: negative attempt count", r.Address)
		}
		if !utf8.ValidString(r.LastError) {
			return fmt.Errorf("recipient %s: last error is not valid UTF-8", r.Address)
		}
		if !utf8.ValidString(r.ORCPT) || !utf8.ValidString(r.Queue) || !utf8.ValidString(r.Host) {
			return fmt.Errorf("recipient %s: parameters are not valid UTF-8", r.Address)
		}
		for _, n := range r.Notify {
			if !utf8.ValidString(n) {
				return fmt.Errorf("recipient %s: NOTIFY is not valid UTF-8", r.Address)
			}
		}
	}
	for k, v := range m.Meta {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return fmt.Errorf("meta %q is not valid UTF-8", k)
		}
	}
	if m.Size < 0 {
		return errors.New("negative size")
	}
	if !utf8.ValidString(m.EnvelopeID) || !utf8.ValidString(m.Return) {
		return errors.New("DSN parameters are not valid UTF-8")
	}
	return nil
}

const idLen = 24

func validID(id string) bool {
	if len(id) != idLen {
		return false
	}
	return strings.IndexFunc(id, func(r rune) bool {
		return (r < '0' || r > '9') && (r < 'a' || r > 'f')
	}) < 0
}
