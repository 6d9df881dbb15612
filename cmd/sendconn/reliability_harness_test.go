//go:build reliability

// The harness of the reliability tier (reliability_test.go): a real
// sendconn serve child process that can be killed with SIGKILL, a smart
// host in this process that counts what it accepted and misbehaves on
// demand, and SMTP clients that keep a ledger of what serve acknowledged.
// Everything listens on 127.0.0.1 only; every wait is bounded, and every
// process and socket is closed by t.Cleanup.
package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/sendconn/sendconn/pkg/transport/queue"
)

// relBin is the sendconn binary, built once per test binary run.
var relBin struct {
	once sync.Once
	path string
	out  []byte
	err  error
}

// relBuild builds sendconn (the package under test, from this directory)
// once. The binary goes next to the test binary: under go test that is
// go's own work directory, which go test removes when it is done.
func relBuild(t *testing.T) string {
	t.Helper()
	relBin.once.Do(func() {
		dir := os.TempDir()
		if exe, err := os.Executable(); err == nil {
			dir = filepath.Dir(exe)
		}
		relBin.path = filepath.Join(dir, fmt.Sprintf("sendconn-reliability-%d", os.Getpid()))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		relBin.out, relBin.err = exec.CommandContext(ctx, "go", "build", "-o", relBin.path, ".").CombinedOutput()
	})
	if relBin.err != nil {
		t.Fatalf("go build: %v\n%s", relBin.err, relBin.out)
	}
	return relBin.path
}

// relFreePort returns a loopback port nobody listens on right now.
func relFreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// relWaitFor polls ok for at most d; it reports whether ok became true.
// It polls every 50 ms, or less often when ok itself is slow (a directory
// of 100,000 files), so that the polling does not compete with serve.
func relWaitFor(d time.Duration, ok func() bool) bool {
	deadline := time.Now().Add(d)
	for {
		start := time.Now()
		if ok() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(max(50*time.Millisecond, 4*time.Since(start)))
	}
}

// ---------------------------------------------------------------------
// serve

// relServe is one sendconn installation in a directory, and the serve
// process currently running on it (if any). The listening port stays the
// same across restarts, so clients reconnect to the same address.
type relServe struct {
	t     *testing.T
	bin   string
	dir   string
	queue string // queue.dir
	addr  string // receive.listen, 127.0.0.1:port
	env   []string
	log   *os.File

	cmd    *exec.Cmd
	done   chan struct{} // closed when cmd has been waited for
	starts int

	countMu sync.Mutex
	counts  map[string]*relLogCount // logCount's progress
}

// newRelServe prepares an installation in dir (the queue in dir/queue,
// which may already exist, e.g. as a mount point) with one Send connector
// "Out" for '*' through the smart host on 127.0.0.1:sinkPort. extraEnv
// (SENDCONN_...=...) comes last and so wins; connector arguments are
// added to `sendconn new`.
func newRelServe(t *testing.T, dir string, sinkPort int, extraEnv []string, connectorArgs ...string) *relServe {
	t.Helper()
	s := &relServe{
		t:     t,
		bin:   relBuild(t),
		dir:   dir,
		queue: filepath.Join(dir, "queue"),
		addr:  fmt.Sprintf("127.0.0.1:%d", relFreePort(t)),
	}
	s.env = append(os.Environ(),
		"SENDCONN_STORE="+filepath.Join(dir, "s.db"),
		"SENDCONN_SERVER_NAME=EX01",
		"SENDCONN_SERVER_FQDN=ex01.contoso.com",
		"SENDCONN_QUEUE_DIR="+s.queue,
		"SENDCONN_RECEIVE_LISTEN="+s.addr,
		"SENDCONN_ADMIN_SOCKET="+filepath.Join(dir, "admin.sock"),
		"SENDCONN_LOGS_MESSAGE_TRACKING_LOG_PATH="+filepath.Join(dir, "logs", "MessageTracking"),
		"SENDCONN_LOGS_SEND_PROTOCOL_LOG_PATH="+filepath.Join(dir, "logs", "ProtocolLog", "SmtpSend"),
		"SENDCONN_TRANSPORT_SHUTDOWN_TIMEOUT=5s",
	)
	s.env = append(s.env, extraEnv...)
	var err error
	if s.log, err = os.OpenFile(filepath.Join(dir, "serve.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.running() {
			_ = s.cmd.Process.Signal(syscall.SIGKILL)
			s.waitExit(10 * time.Second)
		}
		s.log.Close()
		if t.Failed() {
			t.Logf("serve log (the last 60 lines but routine ones):\n%s", s.logTail(60))
		}
	})
	args := append([]string{"new", "--name", "Out", "--address-spaces", "*",
		"--smart-hosts", "127.0.0.1", "--port", strconv.Itoa(sinkPort)}, connectorArgs...)
	s.run(args...)
	return s
}

// run runs a sendconn command against the installation; it must succeed
// within 30 s.
func (s *relServe) run(args ...string) string {
	s.t.Helper()
	out, err := s.runWithin(30*time.Second, args...)
	if err != nil {
		s.t.Fatalf("sendconn %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// runWithin runs a sendconn command, killing it after d.
func (s *relServe) runWithin(d time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.bin, args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (s *relServe) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// start starts serve and waits (at most 20 s) for its ready file, which it
// writes once it accepts mail.
func (s *relServe) start() {
	s.t.Helper()
	if s.running() {
		s.t.Fatal("serve is already running")
	}
	ready := filepath.Join(s.dir, "ready")
	_ = os.Remove(ready)
	s.starts++
	fmt.Fprintf(s.log, "=== reliability test: start %d of serve\n", s.starts)
	cmd := exec.Command(s.bin, "serve", "--ready-file", ready)
	cmd.Env = s.env
	cmd.Stdout, cmd.Stderr = s.log, s.log
	// A backstop for a test binary that dies without running its
	// cleanups (a panic, go test's -timeout): the child dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		s.t.Fatalf("start serve: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done = cmd, done
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(ready); err == nil {
			return
		}
		select {
		case <-done:
			s.t.Fatalf("serve (start %d) exited before it was ready: %v\n%s", s.starts, cmd.ProcessState, s.logTail(30))
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("serve (start %d) not ready within 20s\n%s", s.starts, s.logTail(30))
		}
	}
}

// waitExit waits at most d for the process to be reaped.
func (s *relServe) waitExit(d time.Duration) bool {
	select {
	case <-s.done:
		return true
	case <-time.After(d):
		return false
	}
}

// kill sends SIGKILL and waits until the process is gone (its queue lock
// and listening socket with it).
func (s *relServe) kill() {
	s.t.Helper()
	fmt.Fprintf(s.log, "=== reliability test: SIGKILL\n")
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	if !s.waitExit(10 * time.Second) {
		s.t.Fatalf("serve pid %d did not die within 10s of SIGKILL", s.cmd.Process.Pid)
	}
}

// stop sends SIGTERM and expects serve to exit 0 within its shutdown
// timeout (5 s) and a margin.
func (s *relServe) stop() {
	s.t.Helper()
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	if !s.waitExit(20 * time.Second) {
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		s.waitExit(10 * time.Second)
		s.t.Fatalf("serve did not exit within 20s of SIGTERM")
	}
	if code := s.cmd.ProcessState.ExitCode(); code != 0 {
		s.t.Errorf("serve exited %d after SIGTERM, want 0 (%v)", code, s.cmd.ProcessState)
	}
}

// queueLeft lists what is left of messages in the queue directory (at
// the top, as earlier versions kept them, or in the subdirectories):
// messages, envelopes, bodies, temporary files, and anything in corrupt/.
func (s *relServe) queueLeft() []string {
	var left []string
	for _, pat := range []string{"*.env", "*.body", "*.env.tmp", "?/*.msg", "?/*.msg.tmp", "?/*.env", "?/*.body", "?/*.env.tmp", "corrupt/*"} {
		m, _ := filepath.Glob(filepath.Join(s.queue, pat))
		for _, f := range m {
			left = append(left, strings.TrimPrefix(f, s.queue+"/"))
		}
	}
	slices.Sort(left)
	return left
}

// queued counts the queued messages: as the running serve lists them
// (small messages live in its log, not in files of their own), or, when it
// is not running, by opening its queue as the next start would; -1 when
// neither answers.
func (s *relServe) queued() int {
	if !s.running() {
		q, err := queue.Open(s.queue, queue.Options{})
		if err != nil {
			return -1
		}
		defer q.Close()
		return q.Len()
	}
	out, err := s.runWithin(30*time.Second, "message", "get", "-o", "name")
	if err != nil {
		return -1
	}
	return len(strings.Fields(out))
}

func (s *relServe) logText() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "serve.log"))
	return string(b)
}

// logCount counts the lines of serve's log that contain substr. It reads
// only what was appended since its last call for the same substr.
func (s *relServe) logCount(substr string) int {
	s.countMu.Lock()
	defer s.countMu.Unlock()
	if s.counts == nil {
		s.counts = map[string]*relLogCount{}
	}
	c := s.counts[substr]
	if c == nil {
		c = &relLogCount{}
		s.counts[substr] = c
	}
	f, err := os.Open(filepath.Join(s.dir, "serve.log"))
	if err != nil {
		return c.n
	}
	defer f.Close()
	b, err := io.ReadAll(io.NewSectionReader(f, c.off, 1<<62))
	if err != nil {
		return c.n
	}
	if i := bytes.LastIndexByte(b, '\n'); i >= 0 {
		// Whole lines only: the last one may be half written.
		c.n += bytes.Count(b[:i+1], []byte(substr))
		c.off += int64(i + 1)
	}
	return c.n
}

// relLogCount is how far logCount has read for one substring.
type relLogCount struct {
	off int64
	n   int
}

// logTail returns the last n lines of serve's log that are not routine
// (a message accepted, delivered or deferred, a next hop that failed),
// then its last 5 lines.
func (s *relServe) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(s.logText(), "\n"), "\n")
	var notable []string
	for _, l := range lines {
		routine := false
		for _, r := range []string{`msg="message accepted"`, "msg=delivered", `msg="delivery deferred"`, `msg="next hop failed, trying the next"`} {
			routine = routine || strings.Contains(l, r)
		}
		if !routine {
			notable = append(notable, l)
		}
	}
	if len(notable) > n {
		notable = notable[len(notable)-n:]
	}
	last := lines[max(len(lines)-5, 0):]
	return strings.Join(notable, "\n") + "\n--- last lines:\n" + strings.Join(last, "\n")
}

// tracking returns the message tracking log lines that mention needle (at
// most max), to say what became of a message.
func (s *relServe) tracking(needle string, max int) []string {
	files, _ := filepath.Glob(filepath.Join(s.dir, "logs", "MessageTracking", "*"))
	var out []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, needle) && len(out) < max {
				out = append(out, line)
			}
		}
	}
	return out
}

// relMem is a reading of /proc/PID/status, in kB.
type relMem struct{ rss, hwm int64 }

func relReadMem(pid int) (relMem, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return relMem{}, err
	}
	var m relMem
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, _ := strconv.ParseInt(f[0], 10, 64)
		switch k {
		case "VmRSS":
			m.rss = n
		case "VmHWM":
			m.hwm = n
		}
	}
	return m, nil
}

// ---------------------------------------------------------------------
// the smart host

// relMode is how the smart host behaves.
type relMode int32

const (
	relOK          relMode = iota
	relRefuse              // not listening: connections are refused
	relCloseAtOnce         // accept, then close without a word
	relDropMidData         // close the connection after part of the message
	relGreeting421         // 421 instead of the 220 greeting
	relMail451             // 451 to MAIL FROM
	relRcpt451             // 451 to RCPT TO
	relData451             // 451 after the end of DATA
	relStall               // accept, then never say anything
)

func (m relMode) String() string {
	return [...]string{"ok", "refuse", "close-at-once", "drop-mid-data", "greeting-421",
		"mail-451", "rcpt-451", "data-451", "stall"}[m]
}

// relIDDomain ends the Message-ID of every message the tests submit:
// <ID@reliability.test>.
const relIDDomain = "@reliability.test"

// relSink is a smart host on 127.0.0.1 that records, per Message-ID, how
// many copies it accepted (answered 250 to the end of DATA).
type relSink struct {
	t    *testing.T
	addr string
	port int
	mode atomic.Int32

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{}
	got     map[string]int // our Message-ID -> copies accepted
	damaged map[string]int // copies whose body did not end as it was sent
	ndrs    []string       // messages from the null sender: their Subject
	foreign int            // accepted messages without one of our ids
	closed  bool

	first, last time.Time // of the copies accepted

	wg         sync.WaitGroup
	misbehaved atomic.Int64 // times the sink misbehaved
}

func relStartSink(t *testing.T, mode relMode) *relSink {
	t.Helper()
	port := relFreePort(t)
	s := &relSink{
		t: t, port: port, addr: fmt.Sprintf("127.0.0.1:%d", port),
		conns: map[net.Conn]struct{}{}, got: map[string]int{}, damaged: map[string]int{},
	}
	s.mode.Store(int32(mode))
	if mode != relRefuse {
		s.listen()
	}
	t.Cleanup(s.close)
	return s
}

func (s *relSink) listen() {
	s.t.Helper()
	var ln net.Listener
	var err error
	// The port was ours a moment ago; give a straggler a moment to let go.
	for range 50 {
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("smart host cannot listen again on %s: %v", s.addr, err)
	}
	s.mu.Lock()
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go s.acceptLoop(ln)
}

func (s *relSink) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			time.Sleep(10 * time.Millisecond) // EMFILE and the like
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.serveConn(c)
			c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

// setMode changes the behaviour from the next connection or command on.
// Going to relRefuse closes the listener and every open connection (the
// host went away); leaving it listens again on the same port.
func (s *relSink) setMode(m relMode) {
	s.t.Helper()
	prev := relMode(s.mode.Swap(int32(m)))
	switch {
	case m == relRefuse && prev != relRefuse:
		s.mu.Lock()
		ln := s.ln
		s.ln = nil
		var conns []net.Conn
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		if ln != nil {
			ln.Close()
		}
		for _, c := range conns {
			c.Close()
		}
	case m != relRefuse && prev == relRefuse:
		s.listen()
	}
}

func (s *relSink) close() {
	s.mu.Lock()
	s.closed = true
	ln := s.ln
	s.ln = nil
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	if ln != nil {
		ln.Close()
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.t.Errorf("smart host connections did not end within 10s of closing")
	}
}

// counts returns a copy of the per-id counts.
func (s *relSink) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.got))
	for k, v := range s.got {
		out[k] = v
	}
	return out
}

// span returns when the first and the last copy were accepted.
func (s *relSink) span() (first, last time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.first, s.last
}

// has reports whether every id has reached the sink.
func (s *relSink) has(ids []string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if s.got[id] == 0 {
			return false
		}
	}
	return true
}

// problems returns what must never be seen: damaged bodies, notifications
// (a bounce or delay notice means serve gave up on something) and
// messages that were not ours.
func (s *relSink) problems() (damaged map[string]int, ndrs []string, foreign int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	damaged = make(map[string]int, len(s.damaged))
	for k, v := range s.damaged {
		damaged[k] = v
	}
	return damaged, slices.Clone(s.ndrs), s.foreign
}

func (s *relSink) write(c net.Conn, text string) bool {
	_ = c.SetWriteDeadline(time.Now().Add(30 * time.Second))
	_, err := io.WriteString(c, text)
	return err == nil
}

// serveConn speaks just enough ESMTP for sendconn, misbehaving as the mode
// says at the moment each decision is taken.
func (s *relSink) serveConn(c net.Conn) {
	switch relMode(s.mode.Load()) {
	case relCloseAtOnce:
		s.misbehaved.Add(1)
		return
	case relGreeting421:
		s.misbehaved.Add(1)
		s.write(c, "421 4.3.2 sink.test Service not available, closing transmission channel\r\n")
		return
	case relStall:
		s.misbehaved.Add(1)
		// Read and say nothing until serve gives up (or a minute).
		_ = c.SetReadDeadline(time.Now().Add(time.Minute))
		_, _ = io.Copy(io.Discard, c)
		return
	}
	if !s.write(c, "220 sink.test ESMTP reliability sink\r\n") {
		return
	}
	br := bufio.NewReader(c)
	var from string
	inTx, rcpts := false, 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		mode := relMode(s.mode.Load())
		var reply string
		switch strings.ToUpper(verb) {
		case "EHLO":
			reply = "250-sink.test\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES"
			inTx, rcpts = false, 0
		case "HELO":
			reply = "250 sink.test"
			inTx, rcpts = false, 0
		case "MAIL":
			switch {
			case mode == relMail451:
				s.misbehaved.Add(1)
				reply = "451 4.3.0 MAIL refused for now"
			case inTx:
				reply = "503 5.5.1 Nested MAIL"
			default:
				path := arg
				if i := strings.Index(path, "<"); i >= 0 {
					path = path[i+1:]
				}
				from, _, _ = strings.Cut(path, ">")
				inTx, rcpts = true, 0
				reply = "250 2.1.0 OK"
			}
		case "RCPT":
			switch {
			case !inTx:
				reply = "503 5.5.1 MAIL first"
			case mode == relRcpt451:
				s.misbehaved.Add(1)
				reply = "451 4.3.0 RCPT refused for now"
			default:
				rcpts++
				reply = "250 2.1.5 OK"
			}
		case "DATA":
			if !inTx || rcpts == 0 {
				reply = "554 5.5.1 No valid recipients"
				break
			}
			if !s.write(c, "354 End data with <CR><LF>.<CR><LF>\r\n") {
				return
			}
			data, id, ok := s.readData(br, c, mode == relDropMidData)
			if !ok {
				return // dropped on purpose, or the client went away
			}
			inTx, rcpts = false, 0
			if relMode(s.mode.Load()) == relData451 {
				s.misbehaved.Add(1)
				reply = "451 4.3.0 Message not accepted for now"
				break
			}
			s.record(from, id, data)
			reply = "250 2.0.0 OK queued"
		case "RSET":
			inTx, rcpts = false, 0
			reply = "250 2.0.0 OK"
		case "NOOP":
			reply = "250 2.0.0 OK"
		case "QUIT":
			s.write(c, "221 2.0.0 Bye\r\n")
			return
		default:
			reply = "500 5.5.2 Command not recognized"
		}
		if !s.write(c, reply+"\r\n") {
			return
		}
	}
}

// readData reads a message up to the lone dot, undoing dot-stuffing, and
// picks out our Message-ID. With drop it stops after the header and two
// lines of the body and reports !ok, leaving the caller to close the
// connection in the middle of the transfer.
func (s *relSink) readData(br *bufio.Reader, c net.Conn, drop bool) (data, id string, ok bool) {
	var b strings.Builder
	inHeader, bodyLines := true, 0
	for {
		_ = c.SetReadDeadline(time.Now().Add(2 * time.Minute))
		line, err := br.ReadString('\n')
		if err != nil {
			return "", "", false
		}
		if line == ".\r\n" || line == ".\n" {
			if drop {
				// The whole message fitted before we could drop it
				// half-way: drop it at the end instead, unanswered.
				s.misbehaved.Add(1)
				return "", "", false
			}
			return b.String(), id, true
		}
		line = strings.TrimPrefix(line, ".") // dot-stuffing
		b.WriteString(line)
		switch {
		case inHeader && (line == "\r\n" || line == "\n"):
			inHeader = false
		case inHeader:
			if k, v, found := strings.Cut(line, ":"); found && strings.EqualFold(k, "Message-ID") {
				v = strings.Trim(strings.TrimSpace(v), "<>")
				if strings.HasSuffix(v, relIDDomain) {
					id = strings.TrimSuffix(v, relIDDomain)
				}
			}
		default:
			bodyLines++
			if drop && bodyLines >= 2 {
				s.misbehaved.Add(1)
				return "", "", false
			}
		}
	}
}

func (s *relSink) record(from, id, data string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	if s.first.IsZero() {
		s.first = now
	}
	s.last = now
	switch {
	case from == "":
		subject := ""
		for _, l := range strings.Split(data, "\n") {
			if strings.HasPrefix(strings.ToLower(l), "subject:") {
				subject = strings.TrimSpace(l[len("subject:"):])
				break
			}
		}
		s.ndrs = append(s.ndrs, subject)
	case id == "":
		s.foreign++
	default:
		s.got[id]++
		if !strings.HasSuffix(data, "token "+id+"\r\n") {
			s.damaged[id]++
		}
	}
}

// ---------------------------------------------------------------------
// clients

// relMessage is a message of about size bytes whose last line carries the
// id, so a truncated copy shows.
func relMessage(id string, size int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: App <app@contoso.com>\r\nTo: Bob <bob@fabrikam.com>\r\nSubject: reliability %s\r\n"+
		"Message-ID: <%s%s>\r\nDate: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n",
		id, id, relIDDomain, time.Now().Format(time.RFC1123Z))
	const line = "The quick brown fox jumps over the lazy dog. 0123456789 abcdefghij\r\n"
	for b.Len() < size {
		b.WriteString(line)
	}
	fmt.Fprintf(&b, "token %s\r\n", id)
	return b.String()
}

// relLedger is what the clients know: which ids serve acknowledged (250
// to DATA) and which it did not (an error or another reply: such a
// message may or may not have been stored).
type relLedger struct {
	mu       sync.Mutex
	acked    []string
	notAcked map[string]string // id -> what the client saw
	codes    map[int]int       // SMTP replies other than success, by code
	netErrs  int               // transactions cut by a connection error
	dialErrs int               // connections that could not be opened
}

func newRelLedger() *relLedger {
	return &relLedger{notAcked: map[string]string{}, codes: map[int]int{}}
}

func (l *relLedger) record(id string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.acked = append(l.acked, id)
		return
	}
	l.notAcked[id] = err.Error()
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		l.codes[se.Code]++
	} else {
		l.netErrs++
	}
}

func (l *relLedger) dialFailed() {
	l.mu.Lock()
	l.dialErrs++
	l.mu.Unlock()
}

func (l *relLedger) ackedIDs() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.acked)
}

func (l *relLedger) notAckedIDs() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.notAcked))
	for k, v := range l.notAcked {
		out[k] = v
	}
	return out
}

func (l *relLedger) summary() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	codes := make([]int, 0, len(l.codes))
	for c := range l.codes {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var parts []string
	for _, c := range codes {
		parts = append(parts, fmt.Sprintf("%d×%d", l.codes[c], c))
	}
	if len(parts) == 0 {
		parts = []string{"none"}
	}
	return fmt.Sprintf("acknowledged %d, not acknowledged %d (SMTP replies: %s; connection errors: %d), failed connects %d",
		len(l.acked), len(l.notAcked), strings.Join(parts, " "), l.netErrs, l.dialErrs)
}

// relDial opens an SMTP session to serve; every command of it is bounded
// by 15 s.
func relDial(addr string) (*smtp.Client, error) {
	conn, err := net.DialTimeout("tcp", addr, 3*time.Second)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(conn)
	c.CommandTimeout = 15 * time.Second
	c.SubmissionTimeout = 15 * time.Second
	if err := c.Hello("app1.contoso.com"); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// relSend submits one message; nil means serve answered 250 to DATA.
func relSend(c *smtp.Client, id string, size int) error {
	if err := c.Mail("app@contoso.com", nil); err != nil {
		return err
	}
	if err := c.Rcpt("bob@fabrikam.com", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, relMessage(id, size)); err != nil {
		_ = w.Close()
		return err
	}
	return w.Close()
}

// relClient submits messages named prefix-0, prefix-1, ... to addr,
// perConn per connection, each id once (an id that was not acknowledged
// is not sent again: what serve did with it is for the test to find out).
// With count > 0 it stops after count messages; it always stops when ctx
// ends. A failed connect is retried after 20 ms until ctx ends.
func relClient(ctx context.Context, l *relLedger, addr, prefix string, count, perConn, size int) {
	var c *smtp.Client
	defer func() {
		if c != nil {
			_ = c.Close()
		}
	}()
	inConn := 0
	for n := 0; count <= 0 || n < count; n++ {
		for c == nil {
			if ctx.Err() != nil {
				return
			}
			var err error
			if c, err = relDial(addr); err != nil {
				l.dialFailed()
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
			inConn = 0
		}
		if ctx.Err() != nil {
			return
		}
		id := fmt.Sprintf("%s-%d", prefix, n)
		err := relSend(c, id, size)
		l.record(id, err)
		inConn++
		if err != nil || inConn >= perConn {
			if err == nil {
				_ = c.Quit()
			}
			_ = c.Close()
			c = nil
		}
	}
}
