package transport

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/logfile"
	"github.com/sendconn/sendconn/pkg/transport/routing"
	"github.com/sendconn/sendconn/pkg/transport/tracking"
)

// A delivery leaves RECEIVE then SEND with the connector and the remote's
// 250; a permanent failure leaves FAIL and DSN.
func TestTrackingLog(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
		}
		return nil
	}})
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", sink.Port()))
	r, logDir := startTracked(t, src)
	if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "bob@fabrikam.com", "nobody@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return len(notices(sink)) == 1 && r.srv.queue.Len() == 0 })

	bob, err := tracking.Search(logDir, tracking.Filter{Recipients: []string{"bob@fabrikam.com"}})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, e := range bob {
		ids = append(ids, e.EventID)
	}
	if strings.Join(ids, ",") != "RECEIVE,SEND" {
		t.Fatalf("events for bob: %v", ids)
	}
	send := bob[1]
	if send.ConnectorID != "Out" || !strings.HasPrefix(send.RecipientStatus[0], "250") || send.Sender != "app@contoso.com" ||
		send.Subject != "quarterly report" || send.MessageID != "<q1@contoso.com>" {
		t.Errorf("SEND event %+v", send)
	}
	fails, _ := tracking.Search(logDir, tracking.Filter{EventID: "FAIL"})
	if len(fails) != 1 || fails[0].Recipients[0] != "nobody@fabrikam.com" || !strings.HasPrefix(fails[0].RecipientStatus[0], "550 5.1.1") {
		t.Errorf("FAIL events %+v", fails)
	}
	dsns, _ := tracking.Search(logDir, tracking.Filter{EventID: "DSN"})
	if len(dsns) != 1 || dsns[0].RelatedRecipientAddress != "nobody@fabrikam.com" || dsns[0].Recipients[0] != "app@contoso.com" {
		t.Errorf("DSN events %+v", dsns)
	}
}

// A recipient no connector takes leaves one DEFER from ROUTING when it
// enters Unreachable, however often it is looked at; Retry-Queue
// -Resubmit leaves RESUBMIT; the delivery once a connector appears, SEND.
func TestTrackingUnreachableAndResubmit(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Contoso only", "contoso.com", sink.Port()))
	r, logDir := startTracked(t, src)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	events := func() []string {
		es, err := tracking.Search(logDir, tracking.Filter{Recipients: []string{"bob@fabrikam.com"}})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.Source+"/"+e.EventID)
		}
		return ids
	}
	waitFor(t, "the DEFER event", 5*time.Second, func() bool { return len(events()) == 2 })
	for range 2 {
		if n, err := r.srv.RetryQueue(context.Background(), "Unreachable", true); err != nil || n != 1 {
			t.Fatalf("resubmit: %d messages, %v", n, err)
		}
	}
	waitFor(t, "two RESUBMIT events", 5*time.Second, func() bool { return len(events()) == 4 })
	src.set(smartHost(t, "Everything", "*", sink.Port()))
	sink.Wait(t, 1, 5*time.Second)
	waitFor(t, "the SEND event", 5*time.Second, func() bool { return len(events()) == 5 })
	want := "SMTP/RECEIVE,ROUTING/DEFER,ADMIN/RESUBMIT,ADMIN/RESUBMIT,SMTP/SEND"
	if got := strings.Join(events(), ","); got != want {
		t.Errorf("events\n got %s\nwant %s", got, want)
	}
	defers, _ := tracking.Search(logDir, tracking.Filter{EventID: "DEFER"})
	if len(defers) != 1 || defers[0].RecipientStatus[0] != routing.NoMatchingConnector {
		t.Errorf("DEFER events %+v", defers)
	}
}

// startTracked starts a server writing its message tracking log to the
// directory it returns.
func startTracked(t *testing.T, src Source) (*running, string) {
	t.Helper()
	dir := t.TempDir()
	logDir := filepath.Join(dir, "MessageTracking")
	tl, err := tracking.Open(logfile.Config{Dir: logDir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	opts := testOptions(dir)
	opts.Tracking = tl
	return startServer(t, opts, src), logDir
}
