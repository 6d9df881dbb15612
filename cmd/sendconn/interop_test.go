//go:build interop

// The interop tier: sendconn between real peers nobody here wrote. swaks
// submits to sendconn serve, Postfix's smtp-sink plays the smart host.
// Run with 'make interop' (.ci/install-peers installs both).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// interopEnv is one sendconn installation in a temporary directory.
type interopEnv struct {
	t    *testing.T
	bin  string
	dir  string
	env  []string
	port int // serve's listening port
}

var sendconnBin string

func buildOnce(t *testing.T) string {
	t.Helper()
	if sendconnBin != "" {
		return sendconnBin
	}
	for _, tool := range []string{"smtp-sink", "swaks", "nsd"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (run .ci/install-peers): %v", tool, err)
		}
	}
	bin := filepath.Join(os.TempDir(), fmt.Sprintf("sendconn-interop-%d", os.Getpid()))
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	sendconnBin = bin
	return bin
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func newInteropEnv(t *testing.T, extraEnv ...string) *interopEnv {
	dir := t.TempDir()
	e := &interopEnv{t: t, bin: buildOnce(t), dir: dir, port: freePort(t)}
	e.env = append(os.Environ(),
		"SENDCONN_STORE="+filepath.Join(dir, "sendconn.db"),
		"SENDCONN_QUEUE_DIR="+filepath.Join(dir, "queue"),
		"SENDCONN_SERVER_NAME=EX01",
		"SENDCONN_SERVER_FQDN=ex01.contoso.com",
		"SENDCONN_ORGANIZATION_DOMAIN=CONTOSO",
		fmt.Sprintf("SENDCONN_RECEIVE_LISTEN=127.0.0.1:%d", e.port),
		"SENDCONN_TRANSPORT_TRANSIENT_FAILURE_RETRY_INTERVAL=1s",
		"SENDCONN_TRANSPORT_MESSAGE_RETRY_INTERVAL=1s",
		"SENDCONN_TRANSPORT_OUTBOUND_CONNECTION_FAILURE_RETRY_INTERVAL=1s",
		"SENDCONN_TRANSPORT_SHUTDOWN_TIMEOUT=5s",
		"SENDCONN_ADMIN_SOCKET="+filepath.Join(dir, "admin.sock"),
		"SENDCONN_LOGS_MESSAGE_TRACKING_LOG_PATH="+filepath.Join(dir, "logs", "MessageTracking"),
		"SENDCONN_LOGS_SEND_PROTOCOL_LOG_PATH="+filepath.Join(dir, "logs", "ProtocolLog", "SmtpSend"),
	)
	e.env = append(e.env, extraEnv...)
	return e
}

// run runs a sendconn command and fails the test if it fails.
func (e *interopEnv) run(args ...string) string {
	e.t.Helper()
	cmd := exec.Command(e.bin, args...)
	cmd.Env = e.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		e.t.Fatalf("sendconn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// serve starts sendconn serve and waits for its ready file.
func (e *interopEnv) serve() *exec.Cmd {
	e.t.Helper()
	ready := filepath.Join(e.dir, "ready")
	_ = os.Remove(ready)
	cmd := exec.Command(e.bin, "serve", "--ready-file", ready)
	cmd.Env = e.env
	log, err := os.OpenFile(filepath.Join(e.dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		e.t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		log.Close()
		if e.t.Failed() {
			b, _ := os.ReadFile(filepath.Join(e.dir, "serve.log"))
			e.t.Logf("serve log:\n%s", b)
		}
	})
	waitFor(e.t, 20*time.Second, func() bool { _, err := os.Stat(ready); return err == nil }, "serve to be ready")
	return cmd
}

// sink is a running smtp-sink writing each transaction to a file.
type sink struct {
	port int
	dir  string
	cmd  *exec.Cmd
}

func startSink(t *testing.T, port int, extra ...string) *sink {
	t.Helper()
	return startSinkOn(t, "127.0.0.1", port, extra...)
}

// startSinkOn starts smtp-sink on ip:port (port 0: a free one).
func startSinkOn(t *testing.T, ip string, port int, extra ...string) *sink {
	t.Helper()
	if port == 0 {
		port = freePort(t)
	}
	s := &sink{port: port, dir: t.TempDir()}
	args := append([]string{"-u", currentUser(), "-d", filepath.Join(s.dir, "%M.")}, extra...)
	args = append(args, net.JoinHostPort(ip, fmt.Sprint(port)), "100")
	s.cmd = exec.Command("smtp-sink", args...)
	var stderr bytes.Buffer
	s.cmd.Stderr = &stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.cmd.Process.Kill(); _ = s.cmd.Wait() })
	waitFor(t, 10*time.Second, func() bool {
		c, err := net.Dial("tcp", net.JoinHostPort(ip, fmt.Sprint(port)))
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "smtp-sink to listen: "+stderr.String())
	return s
}

func currentUser() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	return "root"
}

// messages returns the dumped transactions.
func (s *sink) messages(t *testing.T) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.dir, "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

func (s *sink) wait(t *testing.T, n int) []string {
	t.Helper()
	waitFor(t, 30*time.Second, func() bool { return len(s.messages(t)) >= n }, fmt.Sprintf("%d messages at the sink", n))
	// A dump file is written while the transaction runs; give the last one
	// time to be complete.
	time.Sleep(200 * time.Millisecond)
	return s.messages(t)
}

func waitFor(t *testing.T, d time.Duration, ok func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// swaks submits one message to serve; extra arguments pass through.
func (e *interopEnv) swaks(to string, extra ...string) (string, error) {
	args := append([]string{"--server", "127.0.0.1", "--port", fmt.Sprint(e.port),
		"--from", "app@contoso.com", "--to", to, "--helo", "app1.contoso.com",
		"--header", "X-MS-Exchange-Organization-AuthAs: Internal",
		"--header", "X-MS-Exchange-Organization-SCL: -1",
		"--header", "Resent-From: ops@contoso.com",
		"--body", "interop body line 1\nline 2 with . and ..\n.starts with a dot\n"}, extra...)
	out, err := exec.Command("swaks", args...).CombinedOutput()
	return string(out), err
}

// headerLines returns the header lines of a sink dump after smtp-sink's own
// envelope lines and Received: line.
func headerLines(dump string) []string {
	hdr, _, _ := strings.Cut(dump, "\n\n")
	var out []string
	sc := bufio.NewScanner(strings.NewReader(hdr))
	skipping := false
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "X-Client-") || strings.HasPrefix(line, "X-Helo-Args") || strings.HasPrefix(line, "X-Mail-Args") || strings.HasPrefix(line, "X-Rcpt-Args") {
			continue
		}
		if strings.HasPrefix(line, "Received:") {
			skipping = strings.Contains(line, "smtp-sink")
		} else if line != "" && line[0] != ' ' && line[0] != '\t' {
			skipping = false
		}
		if strings.Contains(line, "by smtp-sink (smtp-sink)") {
			skipping = true
			// remove the Received: start already appended
			if n := len(out); n > 0 && strings.HasPrefix(out[n-1], "Received:") {
				out = out[:n-1]
			}
			continue
		}
		if !skipping {
			out = append(out, line)
		}
	}
	return out
}

func has(lines []string, prefix string) bool {
	for _, l := range lines {
		if strings.HasPrefix(strings.ToLower(l), strings.ToLower(prefix)) {
			return true
		}
	}
	return false
}

// Seed 004 end to end, then the header firewall recipe applied while
// serve runs, then ExternalAuthoritative with Organization granted.
func TestInteropSmartHostAndHeaderFirewall(t *testing.T) {
	e := newInteropEnv(t)
	sk := startSink(t, 0)
	e.run("new", "--name", "Smart host to Internet", "--address-spaces", "*", "--dns-routing-enabled=false",
		"--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(sk.port))
	e.serve()

	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	dump := sk.wait(t, 1)[0]
	lines := headerLines(dump)
	if !has(lines, "Received: from app1.contoso.com") || !strings.Contains(dump, "(sendconn)") {
		t.Errorf("no Received: line from serve:\n%s", dump)
	}
	if has(lines, "X-MS-Exchange-Organization-") {
		t.Errorf("organization headers left for an anonymous smart host:\n%s", dump)
	}
	if !strings.Contains(dump, "interop body line 1\nline 2 with . and ..\n.starts with a dot\n") {
		t.Errorf("body not intact:\n%s", dump)
	}

	e.run("permission", "remove", "Smart host to Internet", "--user", `NT AUTHORITY\ANONYMOUS LOGON`,
		"--extended-rights", "ms-Exch-Send-Headers-Routing")
	time.Sleep(2500 * time.Millisecond) // the promise: within 2 s, no restart
	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	dumps := sk.wait(t, 2)
	second := newest(t, sk, dumps)
	lines = headerLines(second)
	if has(lines, "Received:") || has(lines, "Resent-") {
		t.Errorf("Received:/Resent-* left after the recipe:\n%s", second)
	}

	e.run("set", "Smart host to Internet", "--smart-host-auth-mechanism", "ExternalAuthoritative")
	e.run("permission", "add", "Smart host to Internet", "--user", `MS Exchange\Externally Secured Servers`,
		"--extended-rights", "ms-Exch-Send-Headers-Organization")
	time.Sleep(2500 * time.Millisecond)
	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	third := newest(t, sk, sk.wait(t, 3))
	if !has(headerLines(third), "X-MS-Exchange-Organization-Network-Message-Id") {
		t.Errorf("organization headers did not reach an externally secured partner:\n%s", third)
	}
	if has(headerLines(third), "X-MS-Exchange-Organization-AuthAs: Internal") {
		t.Errorf("the client's spoofed AuthAs survived receipt:\n%s", third)
	}
}

// newest returns the dump that arrived last.
func newest(t *testing.T, s *sink, _ []string) string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(s.dir, "*"))
	var latest string
	var when time.Time
	for _, f := range files {
		st, err := os.Stat(f)
		if err == nil && !st.ModTime().Before(when) {
			latest, when = f, st.ModTime()
		}
	}
	b, _ := os.ReadFile(latest)
	return string(b)
}

// Two connectors: the more specific address space wins whatever its cost,
// and one message to both recipients reaches each sink once.
func TestInteropTwoConnectors(t *testing.T) {
	e := newInteropEnv(t)
	a, b := startSink(t, 0), startSink(t, 0)
	e.run("new", "Contoso subdomains", "--address-spaces", "*.contoso.com;5", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(a.port))
	e.run("new", "Everything else", "--address-spaces", "*;1", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(b.port))
	e.serve()
	if out, err := e.swaks("x@sales.contoso.com,y@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	a.wait(t, 1)
	b.wait(t, 1)
	time.Sleep(time.Second) // time for a wrongly routed second copy to show
	aMsgs, bMsgs := a.messages(t), b.messages(t)
	if len(aMsgs) != 1 || !strings.Contains(aMsgs[0], "X-Rcpt-Args: <x@sales.contoso.com>") || strings.Contains(aMsgs[0], "fabrikam") && strings.Contains(aMsgs[0], "X-Rcpt-Args: <y@") {
		t.Errorf("sink A got %d messages:\n%s", len(aMsgs), strings.Join(aMsgs, "\n---\n"))
	}
	if len(bMsgs) != 1 || !strings.Contains(bMsgs[0], "X-Rcpt-Args: <y@fabrikam.com>") {
		t.Errorf("sink B got %d messages:\n%s", len(bMsgs), strings.Join(bMsgs, "\n---\n"))
	}
}

// A client outside receive.remote-ip-ranges is refused relay.
func TestInteropRelayRefused(t *testing.T) {
	e := newInteropEnv(t, "SENDCONN_RECEIVE_REMOTE_IP_RANGES=127.0.0.1/32")
	sk := startSink(t, 0)
	e.run("new", "Out", "--address-spaces", "*", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(sk.port))
	e.serve()
	out, err := e.swaks("bob@fabrikam.com", "--local-interface", "127.0.0.2")
	if err == nil || !strings.Contains(out, "550 5.7.1 Unable to relay") {
		t.Errorf("relay from 127.0.0.2 was not refused (err %v):\n%s", err, out)
	}
}

// The smart host is down, then up: the message is delivered on a retry.
func TestInteropSmartHostDownThenUp(t *testing.T) {
	e := newInteropEnv(t)
	port := freePort(t)
	e.run("new", "Out", "--address-spaces", "*", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(port))
	e.serve()
	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	time.Sleep(1500 * time.Millisecond) // at least one failed attempt
	sk := startSink(t, port)
	sk.wait(t, 1)
}

// RequireTLS against a smart host without STARTTLS: nothing is sent.
func TestInteropRequireTLSWithoutSTARTTLS(t *testing.T) {
	e := newInteropEnv(t)
	sk := startSink(t, 0) // smtp-sink offers no STARTTLS
	e.run("new", "Out", "--address-spaces", "*", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(sk.port), "--require-tls")
	e.serve()
	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	time.Sleep(3 * time.Second)
	if n := len(sk.messages(t)); n != 0 {
		t.Errorf("%d messages reached a smart host without TLS", n)
	}
	log, _ := os.ReadFile(filepath.Join(e.dir, "serve.log"))
	if !bytes.Contains(log, []byte("5.7.3 STARTTLS is required")) {
		t.Errorf("serve did not say why it held the message:\n%s", log)
	}
}

// startNSD runs NLnet Labs' NSD, authoritative for the given zones, on a
// free 127.0.0.1 port, as an unprivileged foreground process; it returns
// "127.0.0.1:port".
func startNSD(t *testing.T, zones map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	conf := fmt.Sprintf(`server:
  ip-address: 127.0.0.1
  port: %d
  username: ""
  chroot: ""
  zonesdir: "%[2]s"
  database: ""
  zonelistfile: "%[2]s/zone.list"
  xfrdfile: "%[2]s/xfrd.state"
  xfrdir: "%[2]s"
  pidfile: "%[2]s/nsd.pid"
  logfile: "%[2]s/nsd.log"
  server-count: 1
remote-control:
  control-enable: no
`, port, dir)
	for name, zone := range zones {
		conf += fmt.Sprintf("zone:\n  name: %s\n  zonefile: %s.zone\n", name, name)
		if err := os.WriteFile(filepath.Join(dir, name+".zone"), []byte(zone), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	confPath := filepath.Join(dir, "nsd.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("nsd-checkconf", confPath).CombinedOutput(); err != nil {
		t.Fatalf("nsd-checkconf: %v\n%s", err, out)
	}
	cmd := exec.Command("nsd", "-d", "-c", confPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	waitFor(t, 10*time.Second, func() bool {
		log, _ := os.ReadFile(filepath.Join(dir, "nsd.log"))
		return bytes.Contains(log, []byte("nsd started"))
	}, "nsd to start")
	return addr
}

// Seed 000's Internet connector against a DNS server nobody here wrote:
// NSD serves example.test with MX 10 mx1 (down) and MX 20 mx2 (smtp-sink),
// so the message reaches mx2; a null MX domain bounces, and the NDR finds
// its way to the sender's domain through NSD as well.
func TestInteropMXThroughNSD(t *testing.T) {
	mx2 := startSinkOn(t, "127.0.0.3", 0)
	dns := startNSD(t, map[string]string{
		"example.test": `$ORIGIN example.test.
$TTL 300
@   IN SOA ns hostmaster 1 60 60 60 60
@   IN NS ns
ns  IN A 127.0.0.1
@   IN MX 10 mx1
@   IN MX 20 mx2
mx1 IN A 127.0.0.2
mx2 IN A 127.0.0.3
`,
		"contoso.com": `$ORIGIN contoso.com.
$TTL 300
@   IN SOA ns hostmaster 1 60 60 60 60
@   IN NS ns
ns  IN A 127.0.0.1
@   IN MX 10 mx2.example.test.
`,
		"nullmx.test": `$ORIGIN nullmx.test.
$TTL 300
@   IN SOA ns hostmaster 1 60 60 60 60
@   IN NS ns
ns  IN A 127.0.0.1
@   IN MX 0 .
`,
	})
	e := newInteropEnv(t, "SENDCONN_DNS_INTERNAL_SERVERS="+dns)
	e.run("new", "--name", "Internet", "--internet", "--address-spaces", "*", "--port", fmt.Sprint(mx2.port))
	e.serve()
	if out, err := e.swaks("a@example.test"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	if got := mx2.wait(t, 1); !strings.Contains(got[0], "X-Rcpt-Args: <a@example.test>") {
		t.Fatalf("mx2 got:\n%s", got[0])
	}
	if out, err := e.swaks("b@nullmx.test"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	ndr := newest(t, mx2, mx2.wait(t, 2))
	for _, want := range []string{"X-Mail-Args: <>", "X-Rcpt-Args: <app@contoso.com>", "multipart/report", "Final-Recipient: rfc822;b@nullmx.test", "Status: 5.1.10"} {
		if !strings.Contains(ndr, want) {
			t.Errorf("NDR lacks %q:\n%s", want, ndr)
		}
	}
	if strings.Contains(ndr, "X-MS-Exchange-Organization-") {
		t.Errorf("the NDR carries Organization headers:\n%s", ndr)
	}
}

// The Prometheus endpoint, fetched with curl after traffic, counts the
// delivery under the connector that carried it.
func TestInteropMetrics(t *testing.T) {
	port := freePort(t)
	e := newInteropEnv(t, fmt.Sprintf("SENDCONN_ADMIN_METRICS_LISTEN=127.0.0.1:%d", port))
	sk := startSink(t, 0)
	e.run("new", "--name", "Smart host to Internet", "--address-spaces", "*", "--smart-hosts", "127.0.0.1", "--port", fmt.Sprint(sk.port))
	e.serve()
	if out, err := e.swaks("bob@fabrikam.com"); err != nil {
		t.Fatalf("swaks: %v\n%s", err, out)
	}
	sk.wait(t, 1)
	want := `sendconn_recipients_delivered_total{connector="Smart host to Internet"} 1`
	var body string
	waitFor(t, 10*time.Second, func() bool {
		out, err := exec.Command("curl", "-fsS", fmt.Sprintf("http://127.0.0.1:%d/metrics", port)).Output()
		body = string(out)
		return err == nil && strings.Contains(body, want)
	}, "the delivered counter at /metrics")
	for _, series := range []string{"sendconn_messages_received_total 1", `sendconn_outbound_sessions_total{connector="Smart host to Internet",outcome="plain"} 1`, "sendconn_queue_length 0"} {
		if !strings.Contains(body, series) {
			t.Errorf("/metrics lacks %q", series)
		}
	}
}

// TestInteropMultiServerOnDebianEtcd runs the multi-server scenario
// (testdata/script/multi_server.txtar: three serve processes, two sites)
// on Debian's etcd instead of the one embedded in the test binary.
func TestInteropMultiServerOnDebianEtcd(t *testing.T) {
	bin, err := exec.LookPath("etcd")
	if err != nil {
		t.Fatal("etcd is not installed (.ci/install-peers installs Debian's etcd-server)")
	}
	t.Setenv("SENDCONN_TEST_ETCD", bin)
	testscript.Run(t, scriptParams("", "testdata/script/multi_server.txtar"))
}
