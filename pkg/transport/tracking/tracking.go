// Package tracking writes and searches the message tracking log: one line
// per thing that happened to a message (received, sent over a connector,
// deferred, failed, DSN generated, expired, …) in the files and columns of
// Exchange's MSGTRK<yyyymmdd>-<n>.LOG, so that `sendconn tracking get`
// answers the questions Get-MessageTrackingLog answers, and Exchange
// log parsers work on it.
//
// The writer is the serve process; Search reads the files directly, from
// any process, while they are being written.
package tracking

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/logfile"
)

// Exchange's names for this log.
const (
	Prefix  = "MSGTRK"
	LogType = "Message Tracking Log"
)

// DefaultMaxDirectorySize is Exchange's MessageTrackingLogMaxDirectorySize
// (1000 MB), used when the Config given to Open has none; it is larger
// than the send protocol log's.
const DefaultMaxDirectorySize = 1000 << 20

// DefaultResultSize is Get-MessageTrackingLog's default -ResultSize.
const DefaultResultSize = 1000

// Fields are the columns, Exchange's names in Exchange's order (the subset
// sendconn has values for).
var Fields = []string{
	"date-time", "client-ip", "client-hostname", "server-ip", "server-hostname",
	"source-context", "connector-id", "source", "event-id", "internal-message-id",
	"message-id", "network-message-id", "recipient-address", "recipient-status",
	"total-bytes", "recipient-count", "related-recipient-address", "reference",
	"message-subject", "sender-address", "return-path", "directionality",
}

// Event is one line of the log.
type Event struct {
	Time              time.Time // zero: the log's clock at Log
	ClientIP          string
	ClientHostname    string
	ServerIP          string
	ServerHostname    string
	SourceContext     string
	ConnectorID       string
	Source            string // SMTP, DNS, QUEUE, ROUTING, ADMIN, DSN
	EventID           string // RECEIVE, SEND, DEFER, FAIL, DSN, EXPIRE, RESUBMIT, ROUTING
	InternalMessageID string
	MessageID         string
	NetworkMessageID  string
	// Recipients is recipient-address, ';'-joined in the file as in
	// Exchange's; RecipientStatus has one entry per recipient (e.g.
	// "250 2.0.0 OK"), ';'-joined too. A ';' inside an entry is written
	// as ',' so that the lists split back into the same entries.
	Recipients              []string
	RecipientStatus         []string
	TotalBytes              int64
	RecipientCount          int
	RelatedRecipientAddress string
	Reference               string
	Subject                 string // message-subject
	Sender                  string // sender-address
	ReturnPath              string
	Directionality          string // Originating, Incoming
}

// Log is an open message tracking log, safe for concurrent use. A nil *Log
// is a valid log that writes nothing, for a server with tracking off.
type Log struct {
	w   *logfile.Writer
	now func() time.Time
}

// Open opens the log in cfg.Dir; Prefix, LogType and Fields are set here,
// and a zero MaxDirectorySize means DefaultMaxDirectorySize.
func Open(cfg logfile.Config) (*Log, error) {
	cfg.Prefix = Prefix
	cfg.LogType = LogType
	cfg.Fields = Fields
	if cfg.MaxDirectorySize <= 0 {
		cfg.MaxDirectorySize = DefaultMaxDirectorySize
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	w, err := logfile.Open(cfg)
	if err != nil {
		return nil, err
	}
	return &Log{w: w, now: cfg.Now}, nil
}

// Log appends e.
func (l *Log) Log(e Event) error {
	if l == nil {
		return nil
	}
	t := e.Time
	if t.IsZero() {
		t = l.now()
	}
	return l.w.Write(
		t.UTC().Format(logfile.TimeLayout),
		e.ClientIP, e.ClientHostname, e.ServerIP, e.ServerHostname,
		e.SourceContext, e.ConnectorID, e.Source, e.EventID, e.InternalMessageID,
		e.MessageID, e.NetworkMessageID,
		joinList(e.Recipients), joinList(e.RecipientStatus),
		strconv.FormatInt(e.TotalBytes, 10), strconv.Itoa(e.RecipientCount),
		e.RelatedRecipientAddress, e.Reference, e.Subject, e.Sender, e.ReturnPath,
		e.Directionality,
	)
}

// Close closes the log file.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	return l.w.Close()
}

// Filter selects events like Get-MessageTrackingLog's parameters; zero
// fields do not filter.
type Filter struct {
	Sender     string   // sender-address, case-insensitive
	Recipients []string // any of the event's recipients equals any of these, case-insensitive
	MessageID  string   // with or without the angle brackets
	EventID    string   // case-insensitive
	Start, End time.Time
	ResultSize int // 0: DefaultResultSize; negative: unlimited
}

var errEnough = errors.New("enough results")

// Search returns the events of the log in dir that match f, oldest file
// first and in file order within a file, at most f.ResultSize. A missing
// directory (no event logged yet) is an empty result. A line being written
// by another process while Search reads is skipped, as are lines whose
// date-time does not parse.
func Search(dir string, f Filter) ([]Event, error) {
	limit := f.ResultSize
	if limit == 0 {
		limit = DefaultResultSize
	}
	paths, err := logfile.Files(dir, Prefix)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("search tracking log: %w", err)
	}
	m := newMatcher(f)
	var out []Event
	for _, p := range paths {
		err := logfile.ReadRecords(p, func(rec map[string]string) error {
			e, ok := parseEvent(rec)
			if !ok || !m.match(&e) {
				return nil
			}
			out = append(out, e)
			if limit > 0 && len(out) >= limit {
				return errEnough
			}
			return nil
		})
		if err == errEnough {
			break
		}
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted by the writer's cleanup since Files
		}
		if err != nil {
			return out, fmt.Errorf("search tracking log: %w", err)
		}
	}
	return out, nil
}

type matcher struct {
	f          Filter
	messageID  string
	recipients map[string]bool
}

func newMatcher(f Filter) *matcher {
	m := &matcher{f: f, messageID: bareID(f.MessageID)}
	if len(f.Recipients) > 0 {
		m.recipients = make(map[string]bool, len(f.Recipients))
		for _, r := range f.Recipients {
			m.recipients[strings.ToLower(strings.TrimSpace(r))] = true
		}
	}
	return m
}

func (m *matcher) match(e *Event) bool {
	f := &m.f
	if f.Sender != "" && !strings.EqualFold(e.Sender, strings.TrimSpace(f.Sender)) {
		return false
	}
	if m.messageID != "" && !strings.EqualFold(bareID(e.MessageID), m.messageID) {
		return false
	}
	if f.EventID != "" && !strings.EqualFold(e.EventID, strings.TrimSpace(f.EventID)) {
		return false
	}
	if !f.Start.IsZero() && e.Time.Before(f.Start) {
		return false
	}
	if !f.End.IsZero() && !e.Time.Before(f.End) {
		return false
	}
	if m.recipients != nil {
		found := false
		for _, r := range e.Recipients {
			if m.recipients[strings.ToLower(r)] {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// bareID drops the angle brackets of a Message-ID, which users type or
// not.
func bareID(id string) string {
	id = strings.TrimSpace(id)
	id = strings.TrimPrefix(id, "<")
	return strings.TrimSuffix(id, ">")
}

func parseEvent(r map[string]string) (Event, bool) {
	t, err := time.Parse(time.RFC3339Nano, r["date-time"])
	if err != nil {
		return Event{}, false
	}
	e := Event{
		Time:                    t.UTC(),
		ClientIP:                r["client-ip"],
		ClientHostname:          r["client-hostname"],
		ServerIP:                r["server-ip"],
		ServerHostname:          r["server-hostname"],
		SourceContext:           r["source-context"],
		ConnectorID:             r["connector-id"],
		Source:                  r["source"],
		EventID:                 r["event-id"],
		InternalMessageID:       r["internal-message-id"],
		MessageID:               r["message-id"],
		NetworkMessageID:        r["network-message-id"],
		Recipients:              splitList(r["recipient-address"]),
		RecipientStatus:         splitList(r["recipient-status"]),
		RelatedRecipientAddress: r["related-recipient-address"],
		Reference:               r["reference"],
		Subject:                 r["message-subject"],
		Sender:                  r["sender-address"],
		ReturnPath:              r["return-path"],
		Directionality:          r["directionality"],
	}
	// Numbers are best effort: Exchange leaves them empty for some events.
	e.TotalBytes, _ = strconv.ParseInt(r["total-bytes"], 10, 64)
	e.RecipientCount, _ = strconv.Atoi(r["recipient-count"])
	return e, true
}

func joinList(list []string) string {
	var b strings.Builder
	for i, s := range list {
		if i > 0 {
			b.WriteByte(';')
		}
		b.WriteString(strings.ReplaceAll(s, ";", ","))
	}
	return b.String()
}

func splitList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ";")
}
