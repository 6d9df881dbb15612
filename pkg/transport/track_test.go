package transport

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/logfile"
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
	dir := t.TempDir()
	logDir := filepath.Join(dir, "MessageTracking")
	tl, err := tracking.Open(logfile.Config{Dir: logDir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tl.Close() })
	opts := testOptions(dir)
	opts.Tracking = tl
	r := startServer(t, opts, src)
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
