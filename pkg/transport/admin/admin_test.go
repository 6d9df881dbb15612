package admin

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"

	"github.com/sendconn/sendconn/pkg/transport"
)

// fakeAPI records the calls and answers from its fields.
type fakeAPI struct {
	calls []string
	err   error
}

func (f *fakeAPI) Status() transport.Status {
	f.calls = append(f.calls, "Status")
	return transport.Status{Server: "EX01", StoreRevision: 7, Connectors: 2}
}
func (f *fakeAPI) Queues(id string) ([]transport.QueueInfo, error) {
	f.calls = append(f.calls, "Queues "+id)
	return []transport.QueueInfo{{Identity: `EX01\contoso.com`, Status: transport.StatusRetry, MessageCount: 2}}, f.err
}
func (f *fakeAPI) Messages(q string) ([]transport.MessageInfo, error) {
	f.calls = append(f.calls, "Messages "+q)
	return []transport.MessageInfo{{Identity: `EX01\contoso.com\1`, Subject: "hi"}}, f.err
}
func (f *fakeAPI) RetryQueue(_ context.Context, id string, resubmit bool) (int, error) {
	f.calls = append(f.calls, fmt.Sprint("RetryQueue ", id, " ", resubmit))
	return 3, f.err
}
func (f *fakeAPI) SuspendQueue(id string) error {
	f.calls = append(f.calls, "SuspendQueue "+id)
	return f.err
}
func (f *fakeAPI) ResumeQueue(_ context.Context, id string) error {
	f.calls = append(f.calls, "ResumeQueue "+id)
	return f.err
}
func (f *fakeAPI) SuspendMessage(_ context.Context, id string) error {
	f.calls = append(f.calls, "SuspendMessage "+id)
	return f.err
}
func (f *fakeAPI) ResumeMessage(_ context.Context, id string) error {
	f.calls = append(f.calls, "ResumeMessage "+id)
	return f.err
}
func (f *fakeAPI) RemoveMessage(_ context.Context, id string, ndr bool) (int, error) {
	f.calls = append(f.calls, fmt.Sprint("RemoveMessage ", id, " ", ndr))
	return 1, f.err
}

func serve(t *testing.T, api API) (string, *Client) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "admin.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = Serve(ctx, ln, api, nil); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return path, NewClient(path)
}

func TestSocketIsPrivate(t *testing.T) {
	path, _ := serve(t, &fakeAPI{})
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}
	if _, err := Listen(path); err == nil {
		t.Error("a second listener took a socket that answers")
	}
}

// A socket left by a serve that died is replaced; a plain file is not.
func TestStaleSocketReplaced(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody answers
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln2.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket left behind after Close: %v", err)
	}
	plain := filepath.Join(dir, "file")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen(plain); err == nil {
		t.Error("a regular file was replaced by the socket")
	}
}

func TestClientCallsTheAPI(t *testing.T) {
	api := &fakeAPI{}
	_, c := serve(t, api)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil || st.Server != "EX01" || st.StoreRevision != 7 || st.Connectors != 2 {
		t.Errorf("Status = %+v, %v", st, err)
	}
	qs, err := c.Queues(ctx, `EX01\contoso.com`)
	if err != nil || len(qs) != 1 || qs[0].Status != transport.StatusRetry || qs[0].MessageCount != 2 {
		t.Errorf("Queues = %+v, %v", qs, err)
	}
	ms, err := c.Messages(ctx, "contoso.com")
	if err != nil || len(ms) != 1 || ms[0].Subject != "hi" {
		t.Errorf("Messages = %+v, %v", ms, err)
	}
	if n, err := c.QueueOp(ctx, "retry", "Unreachable", true); n != 3 || err != nil {
		t.Errorf("retry = %d, %v", n, err)
	}
	for _, op := range []string{"suspend", "resume"} {
		if _, err := c.QueueOp(ctx, op, "contoso.com", false); err != nil {
			t.Error(err)
		}
		if _, err := c.MessageOp(ctx, op, "m1", false); err != nil {
			t.Error(err)
		}
	}
	if n, err := c.MessageOp(ctx, "remove", `EX01\contoso.com\m1`, true); n != 1 || err != nil {
		t.Errorf("remove = %d, %v", n, err)
	}
	want := []string{"Status", `Queues EX01\contoso.com`, "Messages contoso.com", "RetryQueue Unreachable true",
		"SuspendQueue contoso.com", "SuspendMessage m1", "ResumeQueue contoso.com", "ResumeMessage m1",
		`RemoveMessage EX01\contoso.com\m1 true`}
	if fmt.Sprint(api.calls) != fmt.Sprint(want) {
		t.Errorf("calls\n%q\nwant\n%q", api.calls, want)
	}
}

func TestErrorKinds(t *testing.T) {
	for _, tc := range []struct {
		err  error
		kind string
	}{
		{fmt.Errorf("x: %w", transport.ErrNoSuchQueue), KindNotFound},
		{fmt.Errorf("x: %w", transport.ErrNoSuchMessage), KindNotFound},
		{fmt.Errorf("x: %w", transport.ErrInvalidOp), KindInvalid},
		{fmt.Errorf("x: %w", transport.ErrOtherServer), KindInvalid},
		{fmt.Errorf("x: %w", transport.ErrBusy), KindBusy},
		{errors.New("disk on fire"), KindInternal},
	} {
		_, c := serve(t, &fakeAPI{err: tc.err})
		_, err := c.Queues(context.Background(), "")
		var ae *Error
		if !errors.As(err, &ae) || ae.Kind != tc.kind || ae.Message != tc.err.Error() {
			t.Errorf("%v came back as %#v", tc.err, err)
		}
	}
}

func TestNotRunning(t *testing.T) {
	c := NewClient(filepath.Join(t.TempDir(), "none.sock"))
	if _, err := c.Queues(context.Background(), ""); !errors.Is(err, ErrNotRunning) {
		t.Errorf("err = %v, want ErrNotRunning", err)
	}
}
