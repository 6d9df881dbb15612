package transport

import (
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// track writes one message tracking event about m, filling in what every
// event of the message shares. A failing log is reported, never fatal:
// mail does not stop because its record could not be written.
func (s *Server) track(m *queue.Message, e tracking.Event) {
	if s.opts.Tracking == nil {
		return
	}
	e.ServerHostname = s.opts.ServerFQDN
	e.InternalMessageID = m.ID
	e.MessageID = m.Meta["message-id"]
	e.NetworkMessageID = m.Meta["network-message-id"]
	e.Sender = m.From
	e.ReturnPath = m.From
	e.Subject = m.Meta[metaSubject]
	e.TotalBytes = m.Size
	if e.RecipientCount == 0 {
		e.RecipientCount = len(e.Recipients)
	}
	if err := s.opts.Tracking.Log(e); err != nil {
		s.log.Error("message tracking log not written", "queue_id", m.ID, "event", e.EventID, "err", err)
	}
}

func addresses(rs []queue.Recipient) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Address
	}
	return out
}

// outcome collects one attempt's results per event, so that a message
// gets one SEND, one DEFER and one FAIL line per connector, as Exchange
// writes them, not one per recipient.
type outcome struct {
	recipients []string
	statuses   []string
}

func (o *outcome) add(rcpt, status string) {
	o.recipients = append(o.recipients, rcpt)
	o.statuses = append(o.statuses, status)
}
