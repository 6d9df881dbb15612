package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// mta is one relay under test, started fresh for every run.
type mta interface {
	name() string
	pgid() int // process group holding all its processes
	alive() bool
	stop()
}

// directMTA is no MTA at all: the client talks to the sink. It gives the
// harness's own floor (client start-up, sink, loopback) for the latency
// scenario.
type directMTA struct{}

func (directMTA) name() string { return "direct" }
func (directMTA) pgid() int    { return -1 } // matches no process
func (directMTA) alive() bool  { return true }
func (directMTA) stop()        {}

// scenario is one row of the table.
type scenario struct {
	key      string
	title    string
	size     int // smtp-source -l
	n        int // messages per run (throughput mode)
	sessions int
	samples  int // > 0: latency mode, this many sequential single messages
	runs     int
	postfix  bool
}

// runResult is what one run of one MTA measured.
type runResult struct {
	scen, mta string
	run       int
	err       error

	n        int
	e2e      time.Duration // injection start -> sink has message n
	inject   time.Duration // injection start -> smtp-source exited
	received int           // messages at the sink (after a 1s grace), warm-up excluded
	cpu      time.Duration // MTA process group, user+sys, over the measured interval
	wall     time.Duration // the measured interval
	lat      []time.Duration

	peakKB  int64  // largest VmHWM of one process of the MTA (sendconn: its only process)
	peakWho string // which process that was
	pssKB   int64  // largest sampled sum of PSS over the MTA's processes
	idleKB  int64  // VmRSS of the MTA's largest process after start, before anything was sent

	busyBefore float64       // % of all CPUs busy in the second before the measured interval
	busy       time.Duration // whole machine's busy CPU over the measured interval
	other      time.Duration // busy minus MTA, sink, client and harness: foreign load (approx.)
}

const (
	sender    = "sender@contoso.com"
	recipient = "rcpt@fabrikam.com"
)

func (b *bench) runOne(ctx context.Context, sc *scenario, kind string, run int) (res *runResult, err error) {
	res = &runResult{scen: sc.key, mta: kind, run: run, n: sc.n}
	if sc.samples > 0 {
		res.n = sc.samples
	}
	dir := filepath.Join(b.work, fmt.Sprintf("%s-%s-%d", sc.key, kind, run))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return res, err
	}
	if !b.keep {
		defer os.RemoveAll(dir)
	}
	// Whatever the previous run left to write back (its queue files, the
	// directory it deleted) is flushed now, not during this run, so that
	// neither relay pays for the other's disk work.
	syscall.Sync()
	if b.waitIdle > 0 {
		if err := waitIdle(ctx, b.waitIdle, b.idlePct); err != nil {
			return res, err
		}
	}
	sinkPort, err := freePort(12525)
	if err != nil {
		return res, err
	}
	mtaPort, err := freePort(sinkPort+1, sinkPort)
	if err != nil {
		return res, err
	}
	sk, err := startSink(ctx, dir, sinkPort, b.readyTimeout)
	if err != nil {
		return res, err
	}
	defer sk.stop()

	var m mta
	switch kind {
	case "direct":
		m = directMTA{}
	case "sendconn":
		sm, err := startSendconn(ctx, b.tmpl, dir, mtaPort, sinkPort, b.readyTimeout)
		if err != nil {
			return res, err
		}
		m = sm
	case "postfix":
		pm, err := startPostfix(ctx, dir, mtaPort, sinkPort, b.readyTimeout)
		if err != nil {
			return res, err
		}
		m = pm
	default:
		return res, fmt.Errorf("unknown MTA %q", kind)
	}
	defer m.stop()
	addr := "127.0.0.1:" + strconv.Itoa(mtaPort)
	if kind == "direct" {
		addr = sk.addr
	}

	// If the MTA dies, the waits below end at once instead of at -timeout.
	outer := ctx
	ctx, died := watchMTA(ctx, m)
	defer died(nil)
	defer func() {
		if err != nil && outer.Err() == nil && ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", context.Cause(ctx), err)
		}
	}()

	// RSS after start, before anything is sent: the base of "above idle".
	res.idleKB = largestRSS(m.pgid())
	mem := startSampler(m.pgid(), 500*time.Millisecond)
	defer mem.finish()

	// One warm-up message: connections, processes and caches exist before
	// timing starts; it is not counted.
	if _, err := b.smtpSource(ctx, dir, "warmup", addr, 1, 1, 512, b.timeout); err != nil {
		return res, fmt.Errorf("warm-up: %w", err)
	}
	if _, err := sk.wait(ctx, 1, b.timeout); err != nil {
		return res, fmt.Errorf("warm-up message: %w", err)
	}
	base := sk.count()
	// Machine-wide CPU use in the second before timing starts: a hint
	// whether something else was running.
	if res.busyBefore, err = busyPct(ctx, time.Second); err != nil {
		return res, err
	}

	pg := m.pgid()
	cpu0, busy0, self0, sink0 := groupCPU(pg), machineBusy(), selfCPU(), sk.cpu()
	var client time.Duration
	t0 := time.Now()
	var tEnd time.Time
	if sc.samples > 0 {
		for i := 1; i <= sc.samples; i++ {
			s0 := time.Now()
			c, err := b.smtpSource(ctx, dir, "latency", addr, 1, 1, sc.size, time.Minute)
			client += c
			if err != nil {
				return res, fmt.Errorf("latency sample %d: %w", i, err)
			}
			at, err := sk.wait(ctx, base+i, time.Minute)
			if err != nil {
				return res, fmt.Errorf("latency sample %d: %w", i, err)
			}
			res.lat = append(res.lat, at.Sub(s0))
			tEnd = at
		}
	} else {
		c, err := b.smtpSource(ctx, dir, "inject", addr, sc.n, sc.sessions, sc.size, b.timeout)
		client = c
		res.inject = time.Since(t0)
		if err != nil {
			return res, fmt.Errorf("injection: %w", err)
		}
		at, err := sk.wait(ctx, base+sc.n, b.timeout)
		if err != nil {
			return res, fmt.Errorf("delivery: %w", err)
		}
		res.e2e = at.Sub(t0)
		tEnd = at
	}
	res.cpu = groupCPU(pg) - cpu0
	res.busy = machineBusy() - busy0
	res.other = res.busy - res.cpu - (sk.cpu() - sink0) - client - (selfCPU() - self0)
	res.wall = tEnd.Sub(t0)
	peak := mem.finish()
	res.peakKB, res.peakWho, res.pssKB = peak.hwmKB, peak.who, peak.pssKB

	// Anything beyond n (duplicates, bounces) would show up here.
	select {
	case <-ctx.Done():
		return res, ctx.Err()
	case <-time.After(time.Second):
	}
	res.received = sk.count() - base
	if res.received != res.n {
		logf("WARNING: %s %s run %d: the sink received %d messages, expected %d", sc.key, kind, run, res.received, res.n)
	}
	return res, nil
}

// watchMTA returns a context that ends, with the reason as its cause, when
// m's main process is gone.
func watchMTA(parent context.Context, m mta) (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	go func() {
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if !m.alive() {
					cancel(fmt.Errorf("%s exited during the run", m.name()))
					return
				}
			}
		}
	}()
	return ctx, cancel
}

// smtpSource runs one bounded smtp-source against addr and returns its CPU
// time. Its output is appended to DIR/TAG.out.
func (b *bench) smtpSource(ctx context.Context, dir, tag, addr string, msgs, sessions, size int, limit time.Duration) (time.Duration, error) {
	outPath := filepath.Join(dir, tag+".out")
	out, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return 0, err
	}
	defer out.Close()
	cmd := exec.Command("smtp-source", "-f", sender, "-t", recipient, "-M", "client.example",
		"-m", strconv.Itoa(msgs), "-s", strconv.Itoa(sessions), "-l", strconv.Itoa(size), addr)
	cmd.Stdout, cmd.Stderr = out, out
	c, err := startChild("smtp-source", cmd)
	if err != nil {
		return 0, err
	}
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.stop(syscall.SIGKILL, 5*time.Second)
		return 0, fmt.Errorf("smtp-source still running after %v%s", limit, tail(outPath))
	case <-ctx.Done():
		c.stop(syscall.SIGKILL, 5*time.Second)
		return 0, ctx.Err()
	}
	if c.err != nil {
		return c.cpu(), fmt.Errorf("smtp-source: %w%s", c.err, tail(outPath))
	}
	return c.cpu(), nil
}

// largestRSS is the VmRSS of the largest process in group pgid.
func largestRSS(pgid int) int64 {
	var max int64
	for _, st := range groupMembers(pgid) {
		if v, err := statusKB(st.pid, "VmRSS"); err == nil && v > max {
			max = v
		}
	}
	return max
}

// memPeak is what the sampler saw.
type memPeak struct {
	hwmKB int64 // largest VmHWM of a single process
	who   string
	pssKB int64 // largest sum of PSS over the group at one sample
}

// sampler reads the memory of an MTA's process group periodically and
// once more at the end: VmHWM per process (the kernel's own peak, so exact
// for processes alive at a sample) and the group's summed PSS (shared pages
// divided among the processes sharing them, a fair total for a
// multi-process MTA, but only as good as the sampling).
type sampler struct {
	pgid int
	stop chan struct{}
	done chan struct{}
	once sync.Once
	peak memPeak
}

func startSampler(pgid int, every time.Duration) *sampler {
	s := &sampler{pgid: pgid, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			s.sample()
			select {
			case <-t.C:
			case <-s.stop:
				s.sample()
				return
			}
		}
	}()
	return s
}

func (s *sampler) sample() {
	var sum int64
	for _, st := range groupMembers(s.pgid) {
		if st.state == 'Z' || st.state == 'X' {
			continue
		}
		if v, err := statusKB(st.pid, "VmHWM"); err == nil && v > s.peak.hwmKB {
			s.peak.hwmKB, s.peak.who = v, procComm(st.pid)
		}
		if v, err := pssKB(st.pid); err == nil {
			sum += v
		}
	}
	if sum > s.peak.pssKB {
		s.peak.pssKB = sum
	}
}

// finish takes a last sample and stops; it may be called more than once.
func (s *sampler) finish() memPeak {
	s.once.Do(func() { close(s.stop) })
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		logf("WARNING: memory sampler did not stop")
		return memPeak{}
	}
	return s.peak
}

// busyPct is the machine-wide CPU use over the next d, in % of all CPUs.
func busyPct(ctx context.Context, d time.Duration) (float64, error) {
	b0, t0 := machineBusy(), time.Now()
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-time.After(d):
	}
	return 100 * (machineBusy() - b0).Seconds() / time.Since(t0).Seconds() / float64(runtime.NumCPU()), nil
}

// waitIdle waits, at most limit, until the machine is at most pct % busy
// over one second; after limit it measures anyway and says so.
func waitIdle(ctx context.Context, limit time.Duration, pct float64) error {
	deadline := time.Now().Add(limit)
	for {
		b, err := busyPct(ctx, time.Second)
		if err != nil {
			return err
		}
		if b <= pct {
			return nil
		}
		if time.Now().After(deadline) {
			logf("machine still %.0f%% busy after waiting %v; measuring anyway", b, limit)
			return nil
		}
	}
}
