package tracking

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/logfile"
)

var t0 = time.Date(2026, 11, 23, 18, 2, 40, 123_000_000, time.UTC)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func openLog(t *testing.T, cfg logfile.Config) *Log {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = t.TempDir()
	}
	if cfg.Now == nil {
		cfg.Now = (&clock{t: t0}).Now
	}
	l, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// sample is one message's life: received for two recipients, sent to one,
// failed for the other, with a DSN to the sender.
func sample() []Event {
	base := Event{
		ServerHostname:    "relay01",
		InternalMessageID: "0123456789abcdef01234567",
		MessageID:         "<a1b2@contoso.com>",
		Sender:            "Alice@Contoso.com",
		ReturnPath:        "Alice@Contoso.com",
		Subject:           `Re: budget, "final" version`,
		TotalBytes:        2048,
		RecipientCount:    2,
		Directionality:    "Originating",
	}
	recv := base
	recv.Time = t0
	recv.ClientIP, recv.ClientHostname, recv.ServerIP = "192.0.2.50", "app.contoso.com", "192.0.2.10"
	recv.SourceContext, recv.ConnectorID, recv.Source, recv.EventID = "08DC69C7905A4050", "relay01\\Default", "SMTP", "RECEIVE"
	recv.Recipients = []string{"bob@fabrikam.com", "carol@tailspin.com"}

	send := base
	send.Time = t0.Add(2 * time.Second)
	send.ServerIP, send.ConnectorID, send.Source, send.EventID = "203.0.113.25", "To Internet", "SMTP", "SEND"
	send.Recipients = []string{"bob@fabrikam.com"}
	send.RecipientStatus = []string{"250 2.0.0 OK <queued as 4Vx>"}
	send.RecipientCount = 1

	fail := base
	fail.Time = t0.Add(3 * time.Second)
	fail.ConnectorID, fail.Source, fail.EventID = "To Internet", "SMTP", "FAIL"
	fail.Recipients = []string{"carol@tailspin.com"}
	fail.RecipientStatus = []string{"550 5.1.1 RESOLVER.ADR.RecipNotFound, not found"}
	fail.RecipientCount = 1

	dsn := Event{
		Time:              t0.Add(4 * time.Second),
		ServerHostname:    "relay01",
		Source:            "DSN",
		EventID:           "DSN",
		InternalMessageID: "0123456789abcdef01234568",
		MessageID:         "<dsn-1@relay01.contoso.com>",
		Recipients:        []string{"Alice@Contoso.com"},
		RecipientCount:    1,
		Reference:         "<a1b2@contoso.com>",
		Subject:           "Undeliverable: Re: budget",
		TotalBytes:        4096,
		Directionality:    "Originating",
	}
	return []Event{recv, send, fail, dsn}
}

func ids(evs []Event) []string {
	var out []string
	for _, e := range evs {
		out = append(out, e.EventID)
	}
	return out
}

func TestLogAndSearch(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, logfile.Config{Dir: dir, Version: "test"})
	for _, e := range sample() {
		if err := l.Log(e); err != nil {
			t.Fatal(err)
		}
	}

	all, err := Search(dir, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(all, sample()) {
		t.Errorf("round trip:\n%+v\nwant\n%+v", all, sample())
	}

	for _, tc := range []struct {
		name string
		f    Filter
		want []string
	}{
		{"sender", Filter{Sender: "alice@contoso.COM"}, []string{"RECEIVE", "SEND", "FAIL"}},
		{"recipient", Filter{Recipients: []string{"CAROL@tailspin.com"}}, []string{"RECEIVE", "FAIL"}},
		{"any recipient", Filter{Recipients: []string{"nobody@x", "alice@contoso.com", "bob@fabrikam.com"}}, []string{"RECEIVE", "SEND", "DSN"}},
		{"message-id with brackets", Filter{MessageID: "<a1b2@contoso.com>"}, []string{"RECEIVE", "SEND", "FAIL"}},
		{"message-id without", Filter{MessageID: "a1b2@contoso.com"}, []string{"RECEIVE", "SEND", "FAIL"}},
		{"event-id", Filter{EventID: "send"}, []string{"SEND"}},
		{"start inclusive", Filter{Start: t0.Add(2 * time.Second)}, []string{"SEND", "FAIL", "DSN"}},
		{"end exclusive", Filter{End: t0.Add(2 * time.Second)}, []string{"RECEIVE"}},
		{"range", Filter{Start: t0.Add(time.Second), End: t0.Add(4 * time.Second)}, []string{"SEND", "FAIL"}},
		{"combined", Filter{Sender: "alice@contoso.com", EventID: "FAIL", Recipients: []string{"carol@tailspin.com"}}, []string{"FAIL"}},
		{"no match", Filter{Sender: "mallory@x"}, nil},
		{"result size", Filter{ResultSize: 2}, []string{"RECEIVE", "SEND"}},
		{"unlimited", Filter{ResultSize: -1}, []string{"RECEIVE", "SEND", "FAIL", "DSN"}},
	} {
		got, err := Search(dir, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !reflect.DeepEqual(ids(got), tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, ids(got), tc.want)
		}
	}
	send, _ := Search(dir, Filter{EventID: "SEND"})
	if len(send) != 1 || send[0].RecipientStatus[0] != "250 2.0.0 OK <queued as 4Vx>" || send[0].ConnectorID != "To Internet" {
		t.Errorf("SEND event %+v", send)
	}
}

func TestFileFormat(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, logfile.Config{Dir: dir, Version: "1.0"})
	e := sample()[1]
	e.Recipients = []string{"a@x", "b@y"}
	e.RecipientStatus = []string{"250 ok", "550 no; really not"}
	if err := l.Log(e); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, err := os.ReadFile(filepath.Join(dir, "MSGTRK20261123-1.LOG"))
	if err != nil {
		t.Fatal(err)
	}
	want := "#Software: sendconn\n#Version: 1.0\n#Log-type: Message Tracking Log\n#Date: 2026-11-23T18:02:40.123Z\n" +
		"#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,connector-id,source,event-id,internal-message-id,message-id,network-message-id,recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,reference,message-subject,sender-address,return-path,directionality\n" +
		`2026-11-23T18:02:42.123Z,,,203.0.113.25,relay01,,To Internet,SMTP,SEND,0123456789abcdef01234567,<a1b2@contoso.com>,,a@x;b@y,"250 ok;550 no, really not",2048,1,,,"Re: budget, ""final"" version",Alice@Contoso.com,Alice@Contoso.com,Originating` + "\n"
	if string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	got, _ := Search(dir, Filter{})
	if len(got) != 1 || !reflect.DeepEqual(got[0].RecipientStatus, []string{"250 ok", "550 no, really not"}) || got[0].Subject != `Re: budget, "final" version` {
		t.Errorf("read back %+v", got)
	}
}

func TestDefaultResultSizeAndRotation(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, logfile.Config{Dir: dir, MaxFileSize: 16 << 10})
	for i := range DefaultResultSize + 5 {
		if err := l.Log(Event{Time: t0.Add(time.Duration(i) * time.Millisecond), EventID: "RECEIVE", MessageID: fmt.Sprintf("<%d@x>", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if paths, _ := logfile.Files(dir, Prefix); len(paths) < 2 {
		t.Fatalf("files %v, want rotation", paths)
	}
	// Another log's files in the same directory are not read.
	os.WriteFile(filepath.Join(dir, "MSGTRKMD20261123-1.LOG"), []byte("#Fields: date-time,event-id\n2026-11-23T18:02:40.123Z,DELIVER\n"), 0o640)

	got, err := Search(dir, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != DefaultResultSize {
		t.Errorf("%d results, want %d", len(got), DefaultResultSize)
	}
	for i, e := range got {
		if e.MessageID != fmt.Sprintf("<%d@x>", i) {
			t.Fatalf("result %d is %s: not in order", i, e.MessageID)
		}
	}
	all, _ := Search(dir, Filter{ResultSize: -1})
	if len(all) != DefaultResultSize+5 {
		t.Errorf("unlimited: %d results", len(all))
	}
}

func TestSearchWhileAppending(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, logfile.Config{Dir: dir, MaxFileSize: 8 << 10})
	// A half-written line of another writer at the end of a file.
	l.Log(sample()[0])
	paths, _ := logfile.Files(dir, Prefix)
	f, _ := os.OpenFile(paths[0], os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString("2026-11-23T18:02:41.000Z,,,,,\"half")
	f.Close()
	if got, err := Search(dir, Filter{}); err != nil || len(got) != 1 {
		t.Fatalf("with a half line: %d events, %v", len(got), err)
	}

	// The half line is ended when the writer reopens; use a fresh dir for
	// the concurrent part so counting stays simple.
	dir = t.TempDir()
	l = openLog(t, logfile.Config{Dir: dir, MaxFileSize: 8 << 10})
	const n = 300
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := range n {
			e := sample()[1]
			e.MessageID = fmt.Sprintf("<%d@x>", i)
			if err := l.Log(e); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	defer func() { <-done }() // a failing check must not leave it writing
	want := sample()[1]
	last := 0
	for searching := true; searching; {
		select {
		case <-done:
			searching = false
		default:
		}
		got, err := Search(dir, Filter{ResultSize: -1})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) < last {
			t.Fatalf("%d events after %d", len(got), last)
		}
		last = len(got)
		for i, e := range got {
			w := want
			w.MessageID = fmt.Sprintf("<%d@x>", i)
			if !reflect.DeepEqual(e, w) {
				t.Fatalf("event %d mangled: %+v", i, e)
			}
		}
	}
	if last != n {
		t.Errorf("%d events at the end, want %d", last, n)
	}
}

func TestMissingDirAndNilLog(t *testing.T) {
	got, err := Search(filepath.Join(t.TempDir(), "never-created"), Filter{})
	if err != nil || got != nil {
		t.Errorf("missing dir: %v, %v", got, err)
	}
	var l *Log
	if err := l.Log(sample()[0]); err != nil {
		t.Error(err)
	}
	if err := l.Close(); err != nil {
		t.Error(err)
	}
}

func TestZeroTimeUsesClock(t *testing.T) {
	dir := t.TempDir()
	l := openLog(t, logfile.Config{Dir: dir})
	l.Log(Event{EventID: "EXPIRE", Recipients: []string{"x@y"}})
	got, _ := Search(dir, Filter{})
	if len(got) != 1 || !got[0].Time.Equal(t0) || got[0].Recipients[0] != "x@y" || got[0].RecipientStatus != nil {
		t.Errorf("%+v", got)
	}
	if strings.Contains(fmt.Sprint(got[0].Time.Location()), "Local") {
		t.Error("time not UTC")
	}
}
