package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// sink is a private smtp-sink on 127.0.0.1 acting as the smart host. With
// -c it prints "sess=A quit=B mesg=C\r" after every message and session; a
// goroutine stamps each record with the wall clock as it arrives, so the
// time the sink had message N is known without polling error.
type sink struct {
	c      *child
	addr   string
	errLog string

	mu     sync.Mutex
	recs   []sinkRec
	latest int
	notify chan struct{} // gets a token after every record
	eof    chan struct{} // closed when the sink's output ends
}

type sinkRec struct {
	at   time.Time
	mesg int
}

func startSink(ctx context.Context, dir string, port int, readyTimeout time.Duration) (*sink, error) {
	s := &sink{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		errLog: filepath.Join(dir, "sink.err"),
		notify: make(chan struct{}, 1),
		eof:    make(chan struct{}),
	}
	args := []string{"-c"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "nobody") // smtp-sink refuses root without -u
	}
	args = append(args, s.addr, "1024")
	errf, err := os.Create(s.errLog)
	if err != nil {
		return nil, err
	}
	defer errf.Close()
	// An os.Pipe rather than StdoutPipe: the reader owns its end, so Wait
	// never waits for (or races with) the reading goroutine.
	pr, pw, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("smtp-sink", args...)
	cmd.Stdout, cmd.Stderr = pw, errf
	s.c, err = startChild("smtp-sink", cmd)
	pw.Close()
	if err != nil {
		pr.Close()
		return nil, err
	}
	go s.read(pr)
	if err := waitBanner(ctx, s.addr, readyTimeout, s.c.exited); err != nil {
		s.stop()
		return nil, fmt.Errorf("smtp-sink on %s: %w%s", s.addr, err, tail(s.errLog))
	}
	return s, nil
}

func (s *sink) read(r io.ReadCloser) {
	defer close(s.eof)
	defer r.Close()
	br := bufio.NewReader(r)
	for {
		rec, err := br.ReadString('\r')
		now := time.Now()
		if i := strings.Index(rec, "mesg="); i >= 0 {
			if n, perr := strconv.Atoi(strings.TrimSpace(rec[i+5:])); perr == nil {
				s.mu.Lock()
				s.recs = append(s.recs, sinkRec{now, n})
				if n > s.latest {
					s.latest = n
				}
				s.mu.Unlock()
				select {
				case s.notify <- struct{}{}:
				default:
				}
			}
		}
		if err != nil {
			return
		}
	}
}

// count is the number of messages the sink has accepted so far.
func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest
}

// timeOf is when the sink's message counter first reached target.
func (s *sink) timeOf(target int) (time.Time, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.recs {
		if r.mesg >= target {
			return r.at, true
		}
	}
	return time.Time{}, false
}

// wait blocks until the sink has target messages, at most timeout, and
// returns when the target-th message arrived.
func (s *sink) wait(ctx context.Context, target int, timeout time.Duration) (time.Time, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		if at, ok := s.timeOf(target); ok {
			return at, nil
		}
		select {
		case <-s.notify:
		case <-s.eof:
			if at, ok := s.timeOf(target); ok {
				return at, nil
			}
			return time.Time{}, fmt.Errorf("smtp-sink exited with %d/%d messages%s", s.count(), target, tail(s.errLog))
		case <-t.C:
			return time.Time{}, fmt.Errorf("sink has %d/%d messages after %v", s.count(), target, timeout)
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		}
	}
}

// cpu is the CPU time the sink used so far.
func (s *sink) cpu() time.Duration {
	st, err := readStat(s.c.pid())
	if err != nil {
		return 0
	}
	return time.Duration(st.utime+st.stime) * clockTick
}

func (s *sink) stop() {
	if s == nil {
		return
	}
	s.c.stop(syscall.SIGTERM, 5*time.Second)
	select {
	case <-s.eof:
	case <-time.After(5 * time.Second):
		logf("WARNING: smtp-sink output did not end")
	}
}

// waitBanner waits until something on addr greets with 220, at most
// timeout; dead reports early that the server process is gone.
func waitBanner(ctx context.Context, addr string, timeout time.Duration, dead func() bool) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		if dead != nil && dead() {
			return errors.New("process exited before it answered")
		}
		if last = probeBanner(addr); last == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no 220 greeting within %v: %v", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func probeBanner(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(line, "220") {
		return fmt.Errorf("greeting %q", strings.TrimSpace(line))
	}
	_, _ = io.WriteString(conn, "QUIT\r\n")
	_, _ = br.ReadString('\n')
	return nil
}

// freePort is the first port from start on that 127.0.0.1 can listen on,
// skipping those in avoid.
func freePort(start int, avoid ...int) (int, error) {
next:
	for p := start; p < start+400 && p < 65536; p++ {
		for _, a := range avoid {
			if p == a {
				continue next
			}
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			ln.Close()
			return p, nil
		}
	}
	return 0, fmt.Errorf("no free port on 127.0.0.1 in %d-%d", start, start+399)
}

// tail is the end of a log file, for error messages ("" if empty).
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	const max = 1500
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return "\n--- " + path + ":\n" + strings.TrimRight(string(b), "\n")
}
