package transport

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the Prometheus series serve exports (docs/metrics.md lists
// them). A nil *metrics records nothing, so the transport runs the same
// with metrics off.
type metrics struct {
	received      prometheus.Counter
	delivered     *prometheus.CounterVec // by connector
	deferred      *prometheus.CounterVec // by connector ("" when unroutable)
	failed        *prometheus.CounterVec // by connector ("" when unroutable)
	notifications *prometheus.CounterVec // by action
	latency       *prometheus.HistogramVec
	tls           *prometheus.CounterVec // by connector and outcome
	reloads       *prometheus.CounterVec // by result
}

func newMetrics(reg prometheus.Registerer, s *Server) *metrics {
	if reg == nil {
		return nil
	}
	m := &metrics{
		received: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendconn_messages_received_total",
			Help: "Messages accepted (250 to DATA) and queued.",
		}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_recipients_delivered_total",
			Help: "Recipients a next hop accepted, by Send connector.",
		}, []string{"connector"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_recipients_deferred_total",
			Help: "Delivery attempts that failed transiently and will be retried, by Send connector (empty: no connector took the recipient).",
		}, []string{"connector"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_recipients_failed_total",
			Help: "Recipients that failed permanently or expired, by Send connector (empty: routing, expiry or an administrator).",
		}, []string{"connector"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_notifications_total",
			Help: "Delivery status notifications queued, by action (failed, delayed, relayed).",
		}, []string{"action"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sendconn_delivery_latency_seconds",
			Help:    "Time from acceptance to delivery of a recipient, by Send connector.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400},
		}, []string{"connector"}),
		tls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_outbound_sessions_total",
			Help: "Outbound SMTP sessions opened, by Send connector and TLS outcome (tls, plain, tls_failed, failed).",
		}, []string{"connector", "outcome"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendconn_store_reloads_total",
			Help: "Configuration reloads from the store, by result (ok, error).",
		}, []string{"result"}),
	}
	// Both results exist from the start, so a rate over them works
	// before the first failure.
	m.reloads.WithLabelValues("ok")
	m.reloads.WithLabelValues("error")
	reg.MustRegister(m.received, m.delivered, m.deferred, m.failed, m.notifications, m.latency, m.tls, m.reloads,
		&queueCollector{s: s})
	return m
}

func (m *metrics) messageReceived() {
	if m != nil {
		m.received.Inc()
	}
}

func (m *metrics) recipientDelivered(connector string, received time.Time, now time.Time) {
	if m != nil {
		m.delivered.WithLabelValues(connector).Inc()
		m.latency.WithLabelValues(connector).Observe(now.Sub(received).Seconds())
	}
}

func (m *metrics) recipientDeferred(connector string) {
	if m != nil {
		m.deferred.WithLabelValues(connector).Inc()
	}
}

func (m *metrics) recipientFailed(connector string) {
	if m != nil {
		m.failed.WithLabelValues(connector).Inc()
	}
}

func (m *metrics) notification(action string) {
	if m != nil {
		m.notifications.WithLabelValues(action).Inc()
	}
}

func (m *metrics) session(connector, outcome string) {
	if m != nil {
		m.tls.WithLabelValues(connector, outcome).Inc()
	}
}

func (m *metrics) reload(err error) {
	if m == nil {
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.reloads.WithLabelValues(result).Inc()
}

// queueCollector reports the queues at scrape time, from the same view
// Get-Queue shows, so the numbers never disagree with it.
type queueCollector struct{ s *Server }

var (
	queueMessagesDesc = prometheus.NewDesc("sendconn_queue_messages",
		"Messages waiting in a queue (one per next hop, and Unreachable).",
		[]string{"queue", "delivery_type", "connector", "status"}, nil)
	queueOldestDesc = prometheus.NewDesc("sendconn_queue_oldest_message_age_seconds",
		"Age of the oldest message waiting in a queue.",
		[]string{"queue", "delivery_type", "connector"}, nil)
	queueTotalDesc = prometheus.NewDesc("sendconn_queue_length",
		"Messages in the queue directory, whatever their state.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueMessagesDesc
	ch <- queueOldestDesc
	ch <- queueTotalDesc
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	ch <- prometheus.MustNewConstMetric(queueTotalDesc, prometheus.GaugeValue, float64(s.queue.Len()))
	qs, err := s.Queues("")
	if err != nil {
		return
	}
	now := s.opts.Now()
	oldest := s.oldestPerQueue()
	for _, q := range qs {
		ch <- prometheus.MustNewConstMetric(queueMessagesDesc, prometheus.GaugeValue, float64(q.MessageCount), q.NextHopDomain, q.DeliveryType, q.NextHopConnector, q.Status)
		if t, ok := oldest[q.NextHopDomain+"\x00"+q.NextHopConnector]; ok {
			ch <- prometheus.MustNewConstMetric(queueOldestDesc, prometheus.GaugeValue, now.Sub(t).Seconds(), q.NextHopDomain, q.DeliveryType, q.NextHopConnector)
		}
	}
}

// oldestPerQueue is the arrival time of the oldest message in each queue,
// by next hop and connector name.
func (s *Server) oldestPerQueue() map[string]time.Time {
	cfg := s.config.Load()
	out := map[string]time.Time{}
	for _, m := range s.queue.Messages() {
		for _, p := range place(cfg, m) {
			k := p.key.nextHop + "\x00" + p.connector
			if t, ok := out[k]; !ok || m.Received.Before(t) {
				out[k] = m.Received
			}
		}
	}
	return out
}
