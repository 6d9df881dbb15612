package transport

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
)

// After traffic the counters name the connector that carried it, and the
// queue gauges follow the queue.
func TestMetrics(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Out", "fabrikam.com", sink.Port()), smartHost(t, "Dead", "tailspin.test", deadPort(t)))
	reg := prometheus.NewRegistry()
	opts := testOptions(t.TempDir())
	opts.Metrics = reg
	r := startServer(t, opts, src)
	if err := submit(r.addr, "bob@fabrikam.com", "dan@tailspin.test", "eve@nowhere.example"); err != nil {
		t.Fatal(err)
	}
	sink.Wait(t, 1, 5*time.Second)
	m := r.srv.metrics
	waitFor(t, "the deferred counters", 5*time.Second, func() bool {
		return testutil.ToFloat64(m.deferred.WithLabelValues("Dead")) >= 1 && testutil.ToFloat64(m.deferred.WithLabelValues("")) >= 1 &&
			testutil.ToFloat64(m.delivered.WithLabelValues("Out")) >= 1
	})
	if got := testutil.ToFloat64(m.received); got != 1 {
		t.Errorf("received = %v", got)
	}
	if got := testutil.ToFloat64(m.delivered.WithLabelValues("Out")); got != 1 {
		t.Errorf("delivered{Out} = %v", got)
	}
	if got := testutil.ToFloat64(m.delivered.WithLabelValues("Dead")); got != 0 {
		t.Errorf("delivered{Dead} = %v", got)
	}
	if got := testutil.ToFloat64(m.tls.WithLabelValues("Out", "plain")); got != 1 {
		t.Errorf("sessions{Out,plain} = %v", got)
	}
	if n := testutil.CollectAndCount(m.latency); n != 1 {
		t.Errorf("%d latency series", n)
	}
	expo, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range expo {
		names = append(names, mf.GetName())
		if mf.GetName() != "sendconn_queue_messages" {
			continue
		}
		seen := map[string]bool{}
		for _, metric := range mf.GetMetric() {
			for _, l := range metric.GetLabel() {
				if l.GetName() == "queue" {
					seen[l.GetValue()] = metric.GetGauge().GetValue() == 1
				}
			}
		}
		if !seen["[127.0.0.1]"] || !seen["Unreachable"] {
			t.Errorf("queue gauges %v", seen)
		}
	}
	for _, want := range []string{"sendconn_queue_length", "sendconn_queue_oldest_message_age_seconds", "sendconn_store_reloads_total"} {
		if !strings.Contains(strings.Join(names, " "), want) {
			t.Errorf("%s not exported (have %v)", want, names)
		}
	}
}
