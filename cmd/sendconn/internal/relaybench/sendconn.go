package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// connectorCount is how many Send connectors serve routes against: one
// '*' connector to the sink plus distinct domain connectors.
const connectorCount = 100

// sendconnTemplate is a store with the benchmark's connectors, made once
// per harness run with the CLI and copied into every run's directory.
type sendconnTemplate struct {
	bin   string
	db    string
	names []string
}

// sendconnEnv is the environment for one sendconn directory: the parent's
// environment without SENDCONN_* variables, plus everything pointing into
// dir, so neither /etc/sendconn nor /var/lib/sendconn is used.
func sendconnEnv(dir string, listen string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SENDCONN_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"SENDCONN_CONFIG="+filepath.Join(dir, "sendconn.yaml"),
		"SENDCONN_STORE="+filepath.Join(dir, "s.db"),
		"SENDCONN_SERVER_NAME=EX01",
		"SENDCONN_QUEUE_DIR="+filepath.Join(dir, "q"),
		"SENDCONN_ADMIN_SOCKET="+filepath.Join(dir, "a.sock"),
		"SENDCONN_LOGS_MESSAGE_TRACKING_LOG_PATH="+filepath.Join(dir, "trk"),
		"SENDCONN_LOGS_SEND_PROTOCOL_LOG_PATH="+filepath.Join(dir, "proto"),
		"SENDCONN_RECEIVE_LISTEN="+listen,
		"SENDCONN_LOG_LEVEL=warn",
	)
}

func writeSendconnConfig(dir string) error {
	return os.WriteFile(filepath.Join(dir, "sendconn.yaml"), []byte("# relaybench: defaults only; settings come from SENDCONN_* variables\n"), 0o644)
}

// sendconnCLI runs one bounded sendconn command in dir's environment.
func sendconnCLI(ctx context.Context, bin, dir string, stdin io.Reader, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = sendconnEnv(dir, "127.0.0.1:1")
	cmd.Stdin = stdin
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("sendconn %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}

// makeSendconnTemplate creates the connector set: "Out" for '*' and
// connectorCount-1 connectors for domNN.example, all to the smart host
// 127.0.0.1:sinkPort (every run rewrites the port to its own sink's).
func makeSendconnTemplate(ctx context.Context, bin, dir string, sinkPort int) (*sendconnTemplate, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := writeSendconnConfig(dir); err != nil {
		return nil, err
	}
	t := &sendconnTemplate{bin: bin, db: filepath.Join(dir, "s.db")}
	port := strconv.Itoa(sinkPort)
	add := func(name, space string) error {
		_, err := sendconnCLI(ctx, bin, dir, nil, "new", "--name", name, "--address-spaces", space,
			"--smart-hosts", "127.0.0.1", "--port", port, "-o", "name")
		if err == nil {
			t.names = append(t.names, name)
		}
		return err
	}
	if err := add("Out", "*"); err != nil {
		return nil, err
	}
	for i := 1; i < connectorCount; i++ {
		if err := add(fmt.Sprintf("Dom%02d", i), fmt.Sprintf("dom%d.example", i)); err != nil {
			return nil, err
		}
	}
	out, err := sendconnCLI(ctx, bin, dir, nil, "get", "-o", "name")
	if err != nil {
		return nil, err
	}
	if n := len(strings.Fields(out)); n != connectorCount {
		return nil, fmt.Errorf("template store has %d connectors, want %d", n, connectorCount)
	}
	return t, nil
}

// sendconnMTA is one `sendconn serve` in its own process group.
type sendconnMTA struct {
	c   *child
	dir string
}

func (m *sendconnMTA) name() string { return "sendconn" }
func (m *sendconnMTA) pgid() int    { return m.c.pid() }
func (m *sendconnMTA) alive() bool  { return !m.c.exited() }

func startSendconn(ctx context.Context, t *sendconnTemplate, dir string, mtaPort, sinkPort int, readyTimeout time.Duration) (*sendconnMTA, error) {
	if err := writeSendconnConfig(dir); err != nil {
		return nil, err
	}
	if err := copyFile(t.db, filepath.Join(dir, "s.db")); err != nil {
		return nil, err
	}
	// Point every connector at this run's sink (one transaction).
	if _, err := sendconnCLI(ctx, t.bin, dir, strings.NewReader(strings.Join(t.names, "\n")+"\n"),
		"set", "-", "--port", strconv.Itoa(sinkPort)); err != nil {
		return nil, err
	}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(mtaPort))
	ready := filepath.Join(dir, "ready")
	logPath := filepath.Join(dir, "serve.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	cmd := exec.Command(t.bin, "serve", "--ready-file", ready)
	cmd.Env = sendconnEnv(dir, listen)
	cmd.Stdout, cmd.Stderr = lf, lf
	c, err := startChild("sendconn serve", cmd)
	if err != nil {
		return nil, err
	}
	m := &sendconnMTA{c: c, dir: dir}
	if err := waitReadyFile(ctx, ready, readyTimeout, c); err != nil {
		m.stop()
		return nil, fmt.Errorf("sendconn serve: %w%s", err, tail(logPath))
	}
	if err := waitBanner(ctx, listen, readyTimeout, c.exited); err != nil {
		m.stop()
		return nil, fmt.Errorf("sendconn serve on %s: %w%s", listen, err, tail(logPath))
	}
	return m, nil
}

func waitReadyFile(ctx context.Context, path string, timeout time.Duration, c *child) error {
	deadline := time.Now().Add(timeout)
	for {
		if b, err := os.ReadFile(path); err == nil && len(bytes.TrimSpace(b)) > 0 {
			return nil
		}
		if c.exited() {
			return fmt.Errorf("exited before ready (%v)", c.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no ready file after %v", timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// stop: SIGTERM lets deliveries in flight finish (transport.shutdown-timeout
// defaults to 30s), so the grace period is a little longer; then SIGKILL.
func (m *sendconnMTA) stop() {
	if m == nil {
		return
	}
	m.c.stop(syscall.SIGTERM, 40*time.Second)
	if m.c.exited() && m.c.err != nil {
		logf("sendconn serve exited: %v%s", m.c.err, tail(filepath.Join(m.dir, "serve.log")))
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
