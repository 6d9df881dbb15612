package transport

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/dsn"
	"github.com/sendconn/sendconn/pkg/transport/queue"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// Meta keys of the notifications this server writes, so that queue
// listings and logs can tell them apart from the mail they are about.
const (
	metaDSN      = "dsn"      // the Action: failed, delayed, relayed
	metaOriginal = "original" // queue id of the message the notice is about
	metaSubject  = "subject"
)

// notifyFailures queues one NDR covering every recipient of m that failed
// or expired and has not been notified, and marks them notified. A null
// sender never gets one (RFC 5321 §4.5.5), nor a recipient whose NOTIFY
// excludes FAILURE. If the NDR cannot be queued the recipients stay
// unnotified and the scheduler tries again.
func (s *Server) notifyFailures(m *queue.Message) {
	var idx []int
	for i, r := range m.Recipients {
		if (r.Status == queue.Failed || r.Status == queue.Expired) && !r.Notified {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return
	}
	if err := s.queueNotice(m, dsn.Failed, idx, time.Time{}); err != nil {
		s.log.Error("cannot queue the non-delivery report; will try again", "queue_id", m.ID, "err", err)
		return
	}
	for _, i := range idx {
		m.Recipients[i].Notified = true
	}
}

// delayNotice queues the one delay notice m may get, for its recipients
// still waiting, and marks m so it gets no other.
func (s *Server) delayNotice(m *queue.Message, now time.Time, rt Retry) {
	var idx []int
	for i, r := range m.Recipients {
		if r.Status == queue.Pending && r.Attempts > 0 {
			idx = append(idx, i)
		}
	}
	var until time.Time
	if rt.MessageExpirationTimeout > 0 {
		until = m.Received.Add(rt.MessageExpirationTimeout)
	}
	if err := s.queueNotice(m, dsn.Delayed, idx, until); err != nil {
		s.log.Error("cannot queue the delay notice; will try again", "queue_id", m.ID, "err", err)
		return
	}
	m.DelayNotified = true
}

// notifyRelayed tells senders who asked for success notices that the
// message went to a next hop that will not send them (RFC 3461 §6.2.2).
func (s *Server) notifyRelayed(m *queue.Message, idx []int) {
	if err := s.queueNotice(m, dsn.Relayed, idx, time.Time{}); err != nil {
		s.log.Error("cannot queue the relayed notice", "queue_id", m.ID, "err", err)
	}
}

// queueNotice composes a notification about m's recipients idx and puts
// it in the queue from the null sender, to be routed like any other
// message. Recipients whose NOTIFY rules it out are left out; with none
// left, or a null sender, nothing is sent and that is not an error.
func (s *Server) queueNotice(m *queue.Message, action dsn.Action, idx []int, until time.Time) error {
	if m.From == "" {
		if action == dsn.Failed {
			s.log.Info("no notification for a null-sender message", "queue_id", m.ID)
		}
		return nil
	}
	rep := dsn.Report{
		ReportingMTA: s.opts.ServerFQDN,
		ArrivalDate:  m.Received,
		EnvelopeID:   m.EnvelopeID,
		To:           m.From,
		Date:         s.opts.Now(),
		MessageID:    newNoticeID(s.opts.ServerFQDN),
		Return:       returnOf(m.Return),
		OriginalSize: m.Size,
	}
	for _, i := range idx {
		r := m.Recipients[i]
		if !dsn.Wants(r.Notify, action) {
			continue
		}
		rep.Recipients = append(rep.Recipients, dsn.Recipient{
			Address:           r.Address,
			OriginalRecipient: r.ORCPT,
			Action:            action,
			Status:            dsn.StatusOf(r.LastError),
			Reply:             r.LastError,
			RemoteMTA:         r.Host,
			LastAttempt:       r.LastAttempt,
			WillRetryUntil:    until,
		})
	}
	if len(rep.Recipients) == 0 {
		return nil
	}
	body, err := s.queue.Body(m.ID)
	if err != nil {
		return fmt.Errorf("open the original: %w", err)
	}
	defer body.Close()
	rep.Original = body
	var buf bytes.Buffer
	if err := dsn.Compose(&buf, rep); err != nil {
		return fmt.Errorf("compose the notification: %w", err)
	}
	subject := m.Meta[metaSubject]
	env := queue.Envelope{
		From:       "",
		Recipients: []queue.Recipient{{Address: m.From}},
		Meta: map[string]string{
			metaDSN: string(action), metaOriginal: m.ID, metaSubject: noticeSubject(action, subject),
		},
	}
	n, err := s.queue.PutEnvelope(env, &buf)
	if err != nil {
		return err
	}
	s.metrics.notification(string(action))
	var about []string
	for _, r := range rep.Recipients {
		about = append(about, r.Address)
	}
	s.track(m, tracking.Event{EventID: "DSN", Source: "DSN", Recipients: []string{m.From},
		RelatedRecipientAddress: strings.Join(about, ";"), Reference: n.ID, SourceContext: string(action)})
	s.log.Info("notification queued", "queue_id", n.ID, "original", m.ID, "action", string(action), "to", m.From, "rcpts", len(rep.Recipients))
	s.schedule(n)
	return nil
}

func wantsSuccess(notify []string) bool { return dsn.Wants(notify, dsn.Relayed) }

func returnOf(ret string) dsn.Return {
	switch strings.ToUpper(ret) {
	case "FULL":
		return dsn.ReturnFull
	case "HDRS":
		return dsn.ReturnHeaders
	}
	return dsn.ReturnDefault
}

func noticeSubject(action dsn.Action, subject string) string {
	prefix := map[dsn.Action]string{dsn.Failed: "Undeliverable", dsn.Delayed: "Delivery delayed", dsn.Relayed: "Relayed"}[action]
	if subject == "" {
		return prefix
	}
	return prefix + ": " + subject
}

func newNoticeID(fqdn string) string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:]) + "@" + fqdn
}
