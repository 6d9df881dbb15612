package transport

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
	"github.com/sendconn/sendconn/pkg/transport/delivery"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/receive"
)

// memSource is a configuration that tests change while the server runs.
type memSource struct {
	mu   sync.Mutex
	snap Snapshot
	fail bool
}

func (m *memSource) Revision(context.Context) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return 0, fmt.Errorf("store is busy")
	}
	return m.snap.Revision, nil
}

func (m *memSource) Snapshot(context.Context) (*Snapshot, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail {
		return nil, fmt.Errorf("store is busy")
	}
	s := m.snap
	return &s, nil
}

func (m *memSource) set(conns ...connector.SendConnector) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.snap.Revision++
	m.snap.Connectors = conns
	m.snap.ACLs = map[string]permissions.ACL{}
	for _, c := range conns {
		m.snap.ACLs[c.Guid] = permissions.DefaultACL("CONTOSO")
	}
}

func smartHost(t testing.TB, name, space string, port int) connector.SendConnector {
	t.Helper()
	as, err := connector.ParseAddressSpace(space)
	if err != nil {
		t.Fatal(err)
	}
	c, _, err := connector.New(connector.Defaults{ServerName: "EX01"}, connector.UsageCustom, connector.Patch{
		Name:          connector.Some(name),
		AddressSpaces: connector.ListPatch[connector.AddressSpace]{Replace: connector.Some([]connector.AddressSpace{as})},
		SmartHosts:    connector.ListPatch[connector.SmartHost]{Replace: connector.Some([]connector.SmartHost{{IP: netip.MustParseAddr("127.0.0.1")}})},
		Port:          connector.Some(port),
	})
	if err != nil {
		t.Fatal(err)
	}
	c.Guid = fmt.Sprintf("00000000-0000-4000-8000-%012d", port)
	return c
}

func testOptions(dir string) Options {
	return Options{
		ServerName: "EX01",
		QueueDir:   filepath.Join(dir, "queue"),
		Receive: receive.Config{
			Hostname:       "ex01.contoso.com",
			RemoteIPRanges: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")},
			MaxMessageSize: 10 << 20, MaxRecipients: 100, MaxConnections: 1000,
			CommandTimeout: 10 * time.Second, DataTimeout: 10 * time.Second,
		},
		Delivery:        delivery.Config{ServerFQDN: "ex01.contoso.com", DialTimeout: 2 * time.Second},
		Retry:           Retry{TransientFailureRetryCount: 6, TransientFailureRetryInterval: 200 * time.Millisecond, MessageRetryInterval: 200 * time.Millisecond, MessageExpirationTimeout: time.Hour},
		ReloadInterval:  100 * time.Millisecond,
		ShutdownTimeout: 5 * time.Second,
	}
}

// running is a Server serving on loopback until the test ends.
type running struct {
	addr   string
	srv    *Server
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, opts Options, src Source) *running {
	t.Helper()
	srv, err := New(context.Background(), opts, src)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{addr: ln.Addr().String(), srv: srv, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- srv.Run(ctx, ln) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) {
	r.cancel()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		r.done <- nil
	case <-time.After(10 * time.Second):
		t.Error("server did not stop within 10 s")
	}
}

func submit(addr string, rcpts ...string) error {
	c, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("app1.contoso.com"); err != nil {
		return err
	}
	if err := c.SendMail("app@contoso.com", rcpts, strings.NewReader(
		"From: app@contoso.com\r\nSubject: test\r\nX-MS-Exchange-Organization-SCL: -1\r\n\r\nbody\r\n")); err != nil {
		return err
	}
	return c.Quit()
}

func TestBifurcationAcrossConnectors(t *testing.T) {
	a := testsmtp.Start(t, testsmtp.Options{})
	b := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Contoso subdomains", "*.contoso.com;5", a.Port()), smartHost(t, "Everything else", "*;1", b.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submit(r.addr, "x@sales.contoso.com", "y@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	am, bm := a.Wait(t, 1, 10*time.Second), b.Wait(t, 1, 10*time.Second)
	time.Sleep(300 * time.Millisecond)
	if len(a.Messages()) != 1 || len(b.Messages()) != 1 {
		t.Fatalf("A got %d, B got %d; want one each", len(a.Messages()), len(b.Messages()))
	}
	if got := am[0].Rcpts; len(got) != 1 || got[0] != "x@sales.contoso.com" {
		t.Errorf("A got %v", got)
	}
	if got := bm[0].Rcpts; len(got) != 1 || got[0] != "y@fabrikam.com" {
		t.Errorf("B got %v", got)
	}
	if strings.Contains(string(am[0].Data), "X-MS-Exchange-Organization-") {
		t.Errorf("organization headers left for an anonymous smart host:\n%s", am[0].Data)
	}
}

func TestUnreachableUntilAConnectorAppears(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Contoso only", "contoso.com", sink.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if n := len(sink.Messages()); n != 0 {
		t.Fatalf("%d messages delivered without a route", n)
	}
	src.set(smartHost(t, "Contoso only", "contoso.com", sink.Port()), smartHost(t, "Everything", "*", sink.Port()+0))
	sink.Wait(t, 1, 5*time.Second)
}

func TestRetryUntilTheSmartHostIsUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", port))
	r := startServer(t, testOptions(t.TempDir()), src)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(600 * time.Millisecond) // a few failed attempts
	sink := testsmtp.StartOn(t, fmt.Sprintf("127.0.0.1:%d", port), testsmtp.Options{})
	sink.Wait(t, 1, 10*time.Second)
}

func TestUnreadableStoreKeepsTheLastConfiguration(t *testing.T) {
	sink := testsmtp.Start(t, testsmtp.Options{})
	src := &memSource{}
	src.set(smartHost(t, "Out", "*", sink.Port()))
	r := startServer(t, testOptions(t.TempDir()), src)
	src.mu.Lock()
	src.fail = true
	src.mu.Unlock()
	time.Sleep(300 * time.Millisecond)
	if err := submit(r.addr, "bob@fabrikam.com"); err != nil {
		t.Fatal(err)
	}
	sink.Wait(t, 1, 5*time.Second)
}

// TestMain lets the test binary act as a serve process that can be killed.
func TestMain(m *testing.M) {
	if os.Getenv("TRANSPORT_TEST_SERVE") != "" {
		os.Exit(helperServe())
	}
	os.Exit(m.Run())
}

// helperServe runs a Server configured from the environment until killed,
// writing its address to the ready file.
func helperServe() int {
	dir := os.Getenv("TRANSPORT_TEST_DIR")
	var port int
	fmt.Sscan(os.Getenv("TRANSPORT_TEST_SINK_PORT"), &port)
	src := &memSource{}
	src.set(smartHost(&testing.T{}, "Out", "*", port))
	opts := testOptions(dir)
	srv, err := New(context.Background(), opts, src)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ready := filepath.Join(dir, "ready")
	_ = os.WriteFile(ready+".tmp", []byte(ln.Addr().String()), 0o600)
	_ = os.Rename(ready+".tmp", ready)
	if err := srv.Run(context.Background(), ln); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func spawnServe(t *testing.T, dir string, sinkPort int) (*exec.Cmd, string) {
	t.Helper()
	ready := filepath.Join(dir, "ready")
	_ = os.Remove(ready)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "TRANSPORT_TEST_SERVE=1", "TRANSPORT_TEST_DIR="+dir, fmt.Sprintf("TRANSPORT_TEST_SINK_PORT=%d", sinkPort))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if b, err := os.ReadFile(ready); err == nil {
			return cmd, string(b)
		}
		if time.Now().After(deadline) {
			t.Fatal("serve helper did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestKillDuringLoadLosesNothingAcknowledged kill -9s a serve process while
// 500 messages are being submitted concurrently, restarts it, and checks
// that every message that got a 250 reaches the smart host.
func TestKillDuringLoadLosesNothingAcknowledged(t *testing.T) {
	if testing.Short() {
		t.Skip("spawns processes")
	}
	// The smart host refuses everything until the restart, so delivery
	// cannot race the kill: what arrives later came from the queue.
	var accepting atomic.Bool
	sink := testsmtp.Start(t, testsmtp.Options{Rcpt: func(string) error {
		if !accepting.Load() {
			return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "not yet"}
		}
		return nil
	}})
	dir := t.TempDir()
	cmd, addr := spawnServe(t, dir, sink.Port())

	const total = 500
	var mu sync.Mutex
	acked := map[string]bool{}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 50)
	var killOnce sync.Once
	var sent atomic.Int32
	for i := 0; i < total; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			rcpt := fmt.Sprintf("r%03d@fabrikam.com", i)
			if err := submit(addr, rcpt); err == nil {
				mu.Lock()
				acked[rcpt] = true
				mu.Unlock()
			}
			if sent.Add(1) == total/2 {
				killOnce.Do(func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
			}
		}(i)
	}
	wg.Wait()
	_ = cmd.Wait()
	// With nothing acknowledged the test would prove nothing.
	if len(acked) == 0 {
		t.Fatal("no submission was acknowledged before the kill")
	}
	t.Logf("%d of %d acknowledged before the kill", len(acked), total)
	accepting.Store(true)
	cmd2, _ := spawnServe(t, dir, sink.Port())
	defer func() { _ = cmd2.Process.Signal(syscall.SIGTERM); _ = cmd2.Wait() }()

	deadline := time.Now().Add(60 * time.Second)
	for {
		got := map[string]bool{}
		for _, m := range sink.Messages() {
			for _, r := range m.Rcpts {
				got[r] = true
			}
		}
		missing := 0
		for r := range acked {
			if !got[r] {
				missing++
			}
		}
		if missing == 0 {
			t.Logf("%d acknowledged, all delivered after the restart", len(acked))
			return
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(len(got))
			t.Fatalf("%d acknowledged messages lost (delivered %s)", missing, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Once the quick retries are used up, a next hop that cannot be reached
// at all waits OutboundConnectionFailureRetryInterval (Exchange's queue
// retry), while a next hop that answered with a temporary failure waits
// MessageRetryInterval.
func TestRetryIntervalsByKindOfFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	busy := testsmtp.Start(t, testsmtp.Options{Rcpt: func(string) error {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 2}, Message: "try later"}
	}})
	src := &memSource{}
	src.set(smartHost(t, "Dead", "dead.example", dead), smartHost(t, "Busy", "busy.example", busy.Port()))
	opts := testOptions(t.TempDir())
	opts.Retry.TransientFailureRetryCount = 0
	opts.Retry.MessageRetryInterval = time.Hour
	opts.Retry.OutboundConnectionFailureRetryInterval = 10 * time.Minute
	r := startServer(t, opts, src)
	if err := submit(r.addr, "a@dead.example", "b@busy.example"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "both queues in Retry", 10*time.Second, func() bool {
		qs, _ := r.srv.Queues("")
		n := 0
		for _, q := range qs {
			if q.Status == StatusRetry {
				n++
			}
		}
		return n == 2
	})
	qs, _ := r.srv.Queues("")
	for _, q := range qs {
		want := 10 * time.Minute
		if q.NextHopConnector == "Busy" {
			want = time.Hour
		}
		if got := time.Until(q.NextRetryTime); got < want-time.Minute || got > want {
			t.Errorf("%s (%s): next retry in %v, want about %v", q.NextHopConnector, q.LastError, got.Round(time.Second), want)
		}
	}
}
