package transport

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
)

// report is a delivery status notification as a test reads it.
type report struct {
	from, to string
	subject  string
	text     string
	status   string // the message/delivery-status part
	original string // the third part, headers or whole message
	origType string
}

// parseReport checks the RFC 3464 structure of a notification the sink
// received and returns its parts.
func parseReport(t *testing.T, m testsmtp.Message) report {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("notification does not parse: %v\n%s", err, m.Data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" {
		t.Fatalf("Content-Type %q (%v), want multipart/report; report-type=delivery-status", msg.Header.Get("Content-Type"), err)
	}
	r := report{from: m.From, subject: msg.Header.Get("Subject")}
	if len(m.Rcpts) > 0 {
		r.to = m.Rcpts[0]
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		p, err := mr.NextPart()
		if err == io.EOF {
			if i != 3 {
				t.Fatalf("%d parts, want 3", i)
			}
			return r
		}
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		body, _ := io.ReadAll(p)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch i {
		case 0:
			if ct != "text/plain" {
				t.Errorf("part 1 is %s", ct)
			}
			r.text = string(body)
		case 1:
			if ct != "message/delivery-status" {
				t.Errorf("part 2 is %s", ct)
			}
			// Unfolded, so tests can look for whole field values.
			r.status = strings.NewReplacer("\r\n ", " ", "\r\n\t", "\t").Replace(string(body))
		case 2:
			r.origType, r.original = ct, string(body)
		}
	}
}

// notices returns the notifications (null sender) among the sink's
// messages.
func notices(s *testsmtp.Server) []testsmtp.Message {
	var out []testsmtp.Message
	for _, m := range s.Messages() {
		if m.From == "" {
			out = append(out, m)
		}
	}
	return out
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func deadPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	return port
}

// submitFrom sends one message with the given envelope and DSN options.
func submitFrom(addr, from string, mopts *smtp.MailOptions, rcpts map[string]*smtp.RcptOptions, order ...string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("app1.contoso.com"); err != nil {
		return err
	}
	if err := c.Mail(from, mopts); err != nil {
		return err
	}
	for _, r := range order {
		if err := c.Rcpt(r, rcpts[r]); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	_, _ = io.WriteString(w, "From: app@contoso.com\r\nSubject: quarterly report\r\nMessage-ID: <q1@contoso.com>\r\n"+
		"X-MS-Exchange-Organization-SCL: -1\r\nX-MS-Exchange-Forest-RulesExecuted: yes\r\n\r\nbody line\r\n")
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// A 5xx for one recipient gets the sender one NDR naming that recipient
// and quoting the remote reply, routed like other mail; the recipient the
// smart host took is not in it; the attached original has lost its
// Organization and Forest headers; the message then leaves the queue.
func TestPermanentFailureSendsOneNDR(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "nobody: user unknown"}
		}
		return nil
	}})
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", sink.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "nobody@fabrikam.com", "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NDR", 10*time.Second, func() bool { return len(notices(sink)) == 1 })
	waitFor(t, "an empty queue", 5*time.Second, func() bool { return r.srv.queue.Len() == 0 })
	time.Sleep(300 * time.Millisecond)
	ns := notices(sink)
	if len(ns) != 1 {
		t.Fatalf("%d notifications, want 1", len(ns))
	}
	rep := parseReport(t, ns[0])
	if rep.to != "app@contoso.com" || !strings.HasPrefix(rep.subject, "Undeliverable: quarterly report") {
		t.Errorf("NDR to %q, subject %q", rep.to, rep.subject)
	}
	for _, want := range []string{"Final-Recipient: rfc822;nobody@fabrikam.com", "Action: failed", "Status: 5.1.1", "550 5.1.1 nobody: user unknown"} {
		if !strings.Contains(rep.status, want) {
			t.Errorf("delivery-status lacks %q:\n%s", want, rep.status)
		}
	}
	if strings.Contains(rep.status, "bob@fabrikam.com") {
		t.Errorf("the delivered recipient is in the NDR:\n%s", rep.status)
	}
	if !strings.Contains(rep.original, "Subject: quarterly report") || strings.Contains(rep.original, "X-MS-Exchange-Organization-") ||
		strings.Contains(rep.original, "X-MS-Exchange-Forest-") {
		t.Errorf("attached original (%s):\n%s", rep.origType, rep.original)
	}
}

// A message from the null sender never gets a notification, so two
// servers cannot bounce a bounce back and forth.
func TestNullSenderGetsNoNDR(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
	}})
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", sink.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submitFrom(r.addr, "", nil, nil, "nobody@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "an empty queue", 10*time.Second, func() bool { return r.srv.queue.Len() == 0 })
	time.Sleep(300 * time.Millisecond)
	if n := len(sink.Messages()); n != 0 {
		t.Errorf("%d messages reached the sink, want none", n)
	}
}

// NOTIFY=NEVER suppresses the NDR; NOTIFY=SUCCESS gets a "relayed"
// notice from a next hop that does not speak DSN, and the parameters
// themselves from one that does.
func TestNotifyParameters(t *testing.T) {
	plain := testsmtp.Start(t, testsmtp.Options{Rcpt: func(to string) error {
		if strings.HasPrefix(to, "nobody@") {
			return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "user unknown"}
		}
		return nil
	}})
	dsnHost := testsmtp.Start(t, testsmtp.Options{DSN: true})
	src := &memSource{}
	src.set(smartHost(t, "Plain", "*", plain.Port()), smartHost(t, "Capable", "dsn.example;1", dsnHost.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	never := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifyNever}}
	success := &smtp.RcptOptions{Notify: []smtp.DSNNotify{smtp.DSNNotifySuccess, smtp.DSNNotifyFailure},
		OriginalRecipient: "Bob@fabrikam.com", OriginalRecipientType: smtp.DSNAddressTypeRFC822}
	err := submitFrom(r.addr, "app@contoso.com", &smtp.MailOptions{Return: smtp.DSNReturnHeaders, EnvelopeID: "QQ314159"},
		map[string]*smtp.RcptOptions{"nobody@fabrikam.com": never, "bob@fabrikam.com": success, "carol@dsn.example": success},
		"nobody@fabrikam.com", "bob@fabrikam.com", "carol@dsn.example")
	if err != nil {
		t.Fatal(err)
	}
	dsnHost.Wait(t, 1, 10*time.Second)
	waitFor(t, "the relayed notice", 10*time.Second, func() bool { return len(notices(plain)) >= 1 })
	waitFor(t, "an empty queue", 5*time.Second, func() bool { return r.srv.queue.Len() == 0 })
	time.Sleep(300 * time.Millisecond)
	ns := notices(plain)
	if len(ns) != 1 {
		t.Fatalf("%d notifications, want only the relayed notice for bob", len(ns))
	}
	rep := parseReport(t, ns[0])
	if !strings.Contains(rep.status, "Action: relayed") || !strings.Contains(rep.status, "bob@fabrikam.com") ||
		strings.Contains(rep.status, "nobody@") || strings.Contains(rep.status, "carol@") {
		t.Errorf("relayed notice:\n%s", rep.status)
	}
	if !strings.Contains(rep.status, "Original-Envelope-Id: QQ314159") || !strings.Contains(rep.status, "Original-Recipient: rfc822;Bob@fabrikam.com") {
		t.Errorf("ENVID/ORCPT not reported:\n%s", rep.status)
	}
	got := dsnHost.Messages()[0]
	if got.Ret != "HDRS" || got.EnvID != "QQ314159" || got.Notify[0] != "SUCCESS,FAILURE" || !strings.EqualFold(got.ORCPT[0], "rfc822;Bob@fabrikam.com") {
		t.Errorf("parameters passed on: RET=%q ENVID=%q NOTIFY=%q ORCPT=%q", got.Ret, got.EnvID, got.Notify, got.ORCPT)
	}
}

// With the smart host down, the sender gets exactly one delay notice once
// DelayNotificationTimeout has passed, then exactly one NDR (4.4.7
// QUEUE.Expired, quoting the last error) at expiry, and the message
// leaves the queue.
func TestDelayNoticeThenExpiry(t *testing.T) {
	notify := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Dead", "fabrikam.com", deadPort(t)), smartHost(t, "Home", "contoso.com", notify.Port()))
	opts := testOptions(t.TempDir())
	opts.Retry.MessageExpirationTimeout = 2500 * time.Millisecond
	opts.Retry.DelayNotificationTimeout = 800 * time.Millisecond
	r := startServer(t, opts, src)
	if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the delay notice", 5*time.Second, func() bool { return len(notices(notify)) >= 1 })
	waitFor(t, "the NDR", 10*time.Second, func() bool { return len(notices(notify)) >= 2 })
	waitFor(t, "an empty queue", 5*time.Second, func() bool { return r.srv.queue.Len() == 0 })
	time.Sleep(1500 * time.Millisecond)
	ns := notices(notify)
	if len(ns) != 2 {
		t.Fatalf("%d notifications, want one delay notice and one NDR", len(ns))
	}
	delay, ndr := parseReport(t, ns[0]), parseReport(t, ns[1])
	if !strings.Contains(delay.status, "Action: delayed") || !strings.Contains(delay.status, "Status: 4.") ||
		!strings.Contains(delay.status, "Will-Retry-Until:") || delay.origType != "text/rfc822-headers" {
		t.Errorf("delay notice (%s):\n%s", delay.origType, delay.status)
	}
	if !strings.Contains(ndr.status, "Action: failed") || !strings.Contains(ndr.status, "Status: 4.4.7") ||
		!strings.Contains(ndr.status, "QUEUE.Expired") || !strings.Contains(ndr.status, "Last error: 4") {
		t.Errorf("expiry NDR:\n%s", ndr.status)
	}
}

// A recipient no connector takes expires from Unreachable with the reason
// Exchange gives.
func TestExpiryFromUnreachable(t *testing.T) {
	notify := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Home", "contoso.com", notify.Port()))
	opts := testOptions(t.TempDir())
	opts.Retry.MessageExpirationTimeout = time.Second
	r := startServer(t, opts, src)
	if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "bob@nowhere.example"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NDR", 10*time.Second, func() bool { return len(notices(notify)) >= 1 })
	rep := parseReport(t, notices(notify)[0])
	if !strings.Contains(rep.status, "message expired in unreachable destination queue. Reason: A matching connector cannot be found") {
		t.Errorf("unreachable expiry NDR:\n%s", rep.status)
	}
}

// Get-Queue shows a dead smart host's queue in Retry with its LastError;
// Retry-Queue delivers as soon as the host is back, long before the next
// scheduled retry.
func TestQueueRetryAfterOutage(t *testing.T) {
	port := deadPort(t)
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", port))
	opts := testOptions(t.TempDir())
	opts.Retry.TransientFailureRetryCount = 0
	opts.Retry.MessageRetryInterval = time.Hour
	r := startServer(t, opts, src)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	var q QueueInfo
	waitFor(t, "the queue in Retry", 10*time.Second, func() bool {
		qs, err := r.srv.Queues("")
		if err != nil || len(qs) != 1 {
			return false
		}
		q = qs[0]
		return q.Status == StatusRetry
	})
	if q.Identity != `EX01\[127.0.0.1]` || q.DeliveryType != SmartHostConnectorDelivery || q.MessageCount != 1 ||
		q.LastError == "" || q.RetryCount != 1 || q.NextRetryTime.Before(time.Now().Add(50*time.Minute)) {
		t.Errorf("queue %+v", q)
	}
	// The queue shows the stored state as soon as the attempt is recorded;
	// the message stays Active until its worker lets it go.
	var ms []MessageInfo
	var err error
	waitFor(t, "the message in Retry", 5*time.Second, func() bool {
		ms, err = r.srv.Messages(q.Identity)
		return err == nil && len(ms) == 1 && ms[0].Status == StatusRetry
	})
	if ms[0].Subject != "test" || ms[0].Recipients[0].LastError == "" {
		t.Fatalf("messages %+v, %v", ms, err)
	}
	sink := testsmtp.StartOn(t, fmt.Sprintf("127.0.0.1:%d", port), testsmtp.Options{})
	if _, err := r.srv.RetryQueue(context.Background(), "Unreachable", false); err == nil {
		t.Error("Retry-Queue of Unreachable without resubmit was accepted")
	}
	if n, err := r.srv.RetryQueue(context.Background(), `ex01\[127.0.0.1]`, false); err != nil || n != 1 {
		t.Fatalf("RetryQueue = %d, %v", n, err)
	}
	sink.Wait(t, 1, 5*time.Second)
}

// A suspended queue keeps its mail, across a restart, until resumed.
func TestSuspendAndResumeQueue(t *testing.T) {
	port := deadPort(t)
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", port))
	dir := t.TempDir()
	opts := testOptions(dir)
	r := startServer(t, opts, src)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the queue", 5*time.Second, func() bool { qs, _ := r.srv.Queues(""); return len(qs) == 1 })
	if err := r.srv.SuspendQueue("[127.0.0.1]"); err != nil {
		t.Fatal(err)
	}
	qs, _ := r.srv.Queues("[127.0.0.1]")
	if len(qs) != 1 || qs[0].Status != StatusSuspended {
		t.Fatalf("after suspend: %+v", qs)
	}
	r.stop(t)

	sink := testsmtp.StartOn(t, fmt.Sprintf("127.0.0.1:%d", port), testsmtp.Options{})
	r2 := startServer(t, opts, src)
	time.Sleep(700 * time.Millisecond)
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages left a suspended queue", n)
	}
	if err := r2.srv.ResumeQueue(context.Background(), `EX01\[127.0.0.1]`); err != nil {
		t.Fatal(err)
	}
	sink.Wait(t, 1, 5*time.Second)
}

// Remove-Message -WithNDR takes the message out and bounces it with
// QUEUE.Admin; without, it goes silently.
func TestRemoveMessage(t *testing.T) {
	notify := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Dead", "fabrikam.com", deadPort(t)), smartHost(t, "Home", "contoso.com", notify.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	for range 2 {
		if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "bob@fabrikam.com"); err != nil {
			t.Fatal(err)
		}
	}
	var ms []MessageInfo
	waitFor(t, "two queued messages", 5*time.Second, func() bool { ms, _ = r.srv.Messages(""); return len(ms) == 2 })
	if _, err := r.srv.RemoveMessage(context.Background(), "0000000000000000deadbeef", true); err == nil {
		t.Error("removing an unknown message succeeded")
	}
	if n, err := r.srv.RemoveMessage(context.Background(), ms[0].Identity, true); err != nil || n != 1 {
		t.Fatalf("RemoveMessage = %d, %v", n, err)
	}
	if n, err := r.srv.RemoveMessage(context.Background(), ms[1].QueueID, false); err != nil || n != 1 {
		t.Fatalf("RemoveMessage = %d, %v", n, err)
	}
	waitFor(t, "the NDR", 5*time.Second, func() bool { return len(notices(notify)) >= 1 })
	waitFor(t, "an empty queue", 5*time.Second, func() bool { return r.srv.queue.Len() == 0 })
	time.Sleep(300 * time.Millisecond)
	if n := len(notices(notify)); n != 1 {
		t.Fatalf("%d notifications, want 1", n)
	}
	rep := parseReport(t, notices(notify)[0])
	if !strings.Contains(rep.status, "550 4.3.2 QUEUE.Admin; message deleted by administrative action") {
		t.Errorf("NDR:\n%s", rep.status)
	}
}

// A message bigger than every connector that would take it bounces at
// once with ROUTING.SizeLimit.
func TestSizeLimitNDR(t *testing.T) {
	notify := testsmtp.Start(t, testsmtp.Options{})
	small := smartHost(t, "Small", "fabrikam.com", notify.Port())
	small.MaxMessageSize = 100
	src := &memSource{}
	src.set(small, smartHost(t, "Home", "contoso.com", notify.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submitFrom(r.addr, "app@contoso.com", nil, nil, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the NDR", 10*time.Second, func() bool { return len(notices(notify)) == 1 })
	rep := parseReport(t, notices(notify)[0])
	if !strings.Contains(rep.status, "Status: 5.3.4") || !strings.Contains(rep.status, "550 5.3.4 ROUTING.SizeLimit") {
		t.Errorf("NDR:\n%s", rep.status)
	}
	if n := len(notify.Messages()); n != 1 {
		t.Errorf("%d messages at the host, want only the NDR", n)
	}
}
