//go:build reliability

// The reliability tier: tests that try to make sendconn serve lose mail —
// SIGKILL under load, a smart host that fails in every way it can, a full
// queue disk, a large backlog — and check that every message serve
// acknowledged with 250 reaches the smart host. Duplicates are allowed
// where a crash falls between a delivery and its record (and counted);
// loss never is.
//
//	make reliability
//	go test -tags reliability -count=1 -run '^TestReliability' -v -timeout 15m ./cmd/sendconn
//
// The default run takes about 80 s on a 2-core machine. Knobs
// (environment):
//
//   - RELIABILITY_BACKLOG: TestReliabilityLoad's backlog, default 5000.
//     The full run is RELIABILITY_BACKLOG=100000 make reliability (about
//     5 minutes for that test alone).
//   - RELIABILITY_MAX_RSS_MB: its memory bound (default: see the test).
//   - RELIABILITY_QUEUE_RETRY=1: drain the backlog with `sendconn queue
//     retry` instead of waiting for the retry schedule.
//   - RELIABILITY_KILLS: TestReliabilityCrash's SIGKILLs, default 12
//     (at least 10).
//   - RELIABILITY_SEED: the crash test's random kill points; the seed of
//     every run is logged.
//
// The harness is in reliability_harness_test.go. TestReliabilityDiskFull
// mounts a tmpfs and is skipped, saying why, when it cannot (not root).
package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// relFastRetry makes serve retry a failed delivery after 1 s (and 2 s once
// the quick retries, of which there are plenty, are used up), so that a
// smart host coming back is used within seconds.
var relFastRetry = []string{
	"SENDCONN_TRANSPORT_TRANSIENT_FAILURE_RETRY_INTERVAL=1s",
	"SENDCONN_TRANSPORT_TRANSIENT_FAILURE_RETRY_COUNT=1000",
	"SENDCONN_TRANSPORT_MESSAGE_RETRY_INTERVAL=2s",
	"SENDCONN_TRANSPORT_OUTBOUND_CONNECTION_FAILURE_RETRY_INTERVAL=2s",
}

func relEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

// relTally compares what the clients were told with what the smart host
// accepted.
type relTally struct {
	acked          int
	lost           []string // acknowledged, never delivered
	dupIDs         []string // delivered more than once
	extraCopies    int      // copies beyond the first, over all ids
	unackedArrived int      // not acknowledged, delivered anyway
	unknown        []string // delivered, never submitted
}

func relCompare(l *relLedger, got map[string]int) relTally {
	var t relTally
	acked := l.ackedIDs()
	t.acked = len(acked)
	submitted := make(map[string]bool, len(acked))
	for _, id := range acked {
		submitted[id] = true
		if got[id] == 0 {
			t.lost = append(t.lost, id)
		}
	}
	for id := range l.notAckedIDs() {
		submitted[id] = true
		if got[id] > 0 {
			t.unackedArrived++
		}
	}
	for id, n := range got {
		if n > 1 {
			t.dupIDs = append(t.dupIDs, id)
			t.extraCopies += n - 1
		}
		if !submitted[id] {
			t.unknown = append(t.unknown, id)
		}
	}
	slices.Sort(t.lost)
	slices.Sort(t.dupIDs)
	slices.Sort(t.unknown)
	return t
}

func (r relTally) String() string {
	return fmt.Sprintf("acknowledged %d, delivered %d, duplicated %d (%d extra copies), lost %d; not acknowledged but delivered %d",
		r.acked, r.acked-len(r.lost), len(r.dupIDs), r.extraCopies, len(r.lost), r.unackedArrived)
}

// relFirst returns at most n of ids, for messages.
func relFirst(ids []string, n int) string {
	if len(ids) > n {
		return strings.Join(ids[:n], " ") + fmt.Sprintf(" … (%d in all)", len(ids))
	}
	return strings.Join(ids, " ")
}

// relCheck fails the test for every acknowledged message that did not
// arrive (naming them, with what the message tracking log says of the
// first few), for copies that arrived damaged, for notifications (nothing
// here may bounce or be delayed for hours) and for mail nobody sent.
func relCheck(t *testing.T, srv *relServe, sink *relSink, r relTally) {
	t.Helper()
	if len(r.lost) > 0 {
		var why strings.Builder
		for _, id := range r.lost[:min(len(r.lost), 5)] {
			lines := srv.tracking(id+relIDDomain, 10)
			fmt.Fprintf(&why, "\n  %s: message tracking log:", id)
			if len(lines) == 0 {
				why.WriteString(" nothing")
			}
			for _, l := range lines {
				fmt.Fprintf(&why, "\n    %s", l)
			}
		}
		t.Errorf("LOST: %d acknowledged message(s) never reached the smart host: %s%s", len(r.lost), relFirst(r.lost, 50), why.String())
	}
	if len(r.unknown) > 0 {
		t.Errorf("the smart host got %d message(s) no client submitted: %s", len(r.unknown), relFirst(r.unknown, 20))
	}
	damaged, ndrs, foreign := sink.problems()
	if len(damaged) > 0 {
		var ids []string
		for id := range damaged {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		t.Errorf("%d message(s) arrived damaged (body not as sent): %s", len(ids), relFirst(ids, 20))
	}
	if len(ndrs) > 0 {
		t.Errorf("%d notification(s) from the null sender reached the smart host: %q", len(ndrs), ndrs[:min(len(ndrs), 5)])
	}
	if foreign > 0 {
		t.Errorf("%d message(s) without a Message-ID of ours reached the smart host", foreign)
	}
}

// relWaitDrained waits at most d until the smart host has every
// acknowledged message and the queue directory holds no message (what was
// stored but not acknowledged must go too). It reports what is missing or
// stuck as test errors and returns how long the acknowledged messages took
// to arrive, and whether all went well.
func relWaitDrained(t *testing.T, srv *relServe, sink *relSink, l *relLedger, d time.Duration) (time.Duration, bool) {
	t.Helper()
	start := time.Now()
	acked := l.ackedIDs()
	ok := true
	if !relWaitFor(d, func() bool { return sink.has(acked) }) {
		t.Errorf("after %v the smart host still lacks acknowledged messages (listed below)", d)
		ok = false
	}
	took := time.Since(start)
	if !relWaitFor(max(d-took, 5*time.Second), func() bool { return srv.queued() == 0 }) {
		var states strings.Builder
		// The latest state: <id>.env once updated, else the envelope at
		// the end of <id>.msg.
		msgs, _ := filepath.Glob(filepath.Join(srv.queue, "?", "*.msg"))
		for _, f := range msgs[:min(len(msgs), 3)] {
			b, err := os.ReadFile(strings.TrimSuffix(f, ".msg") + ".env")
			if err != nil {
				b, _ = os.ReadFile(f)
				b = b[max(len(b)-2048, 0):]
			}
			fmt.Fprintf(&states, "\n  %s: %s", filepath.Base(f), b)
		}
		t.Errorf("STUCK: the queue still holds %d message(s) after %v: %s%s", srv.queued(), d, relFirst(srv.queueLeft(), 20), states.String())
		ok = false
	}
	return took, ok
}

// relDrain is relWaitDrained, then a clean stop (SIGTERM) of serve, after
// which no message file may be left in the queue directory.
func relDrain(t *testing.T, srv *relServe, sink *relSink, l *relLedger, d time.Duration) time.Duration {
	t.Helper()
	took, _ := relWaitDrained(t, srv, sink, l, d)
	srv.stop()
	if left := srv.queueLeft(); len(left) > 0 {
		t.Errorf("the queue directory is not empty after a clean stop: %s", relFirst(left, 20))
	}
	return took
}

// TestReliabilityCrash: 8 clients submit in a loop while serve is killed
// with SIGKILL 100–700 ms after each (re)start, at least 10 times, and
// restarted on the same queue and port. During every third interval the
// smart host answers 451 after DATA, so kills also land on retry-state
// updates and restarts find a backlog. Every message that got 250 must
// reach the smart host; duplicates are counted and bounded (a kill can
// duplicate only the deliveries it interrupted between the smart host's
// 250 and the queue's record, at most the connector's 20 in flight);
// afterwards the queue must drain and a clean stop must leave no message
// files.
func TestReliabilityCrash(t *testing.T) {
	const (
		clients  = 8
		perConn  = 20
		size     = 2048
		inFlight = 20 // transport.max-per-domain-outbound-connections
	)
	kills := max(relEnvInt(t, "RELIABILITY_KILLS", 12), 10)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("RELIABILITY_SEED"); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("RELIABILITY_SEED=%q: %v", v, err)
		}
	}
	t.Logf("RELIABILITY_SEED=%d", seed)
	rng := rand.New(rand.NewPCG(seed, 0x5e9dc099))

	sink := relStartSink(t, relOK)
	srv := newRelServe(t, t.TempDir(), sink.port, append(slices.Clone(relFastRetry),
		fmt.Sprintf("SENDCONN_TRANSPORT_MAX_PER_DOMAIN_OUTBOUND_CONNECTIONS=%d", inFlight)))
	srv.start()

	ledger := newRelLedger()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopLoad := func() {
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(45 * time.Second):
			t.Fatalf("the clients did not stop within 45s")
		}
	}
	t.Cleanup(stopLoad)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			relClient(ctx, ledger, srv.addr, fmt.Sprintf("crash-c%d", c), 0, perConn, size)
		}()
	}

	var points []string
	for i := range kills {
		before := len(ledger.ackedIDs())
		refusing := i%3 == 1
		if refusing {
			sink.setMode(relData451)
		}
		d := 100*time.Millisecond + time.Duration(rng.Int64N(int64(600*time.Millisecond)))
		time.Sleep(d)
		srv.kill()
		sink.setMode(relOK)
		point := fmt.Sprintf("%dms(+%d)", d.Milliseconds(), len(ledger.ackedIDs())-before)
		if refusing {
			point += "[451]"
		}
		points = append(points, point)
		srv.start()
	}
	// The last restart takes load for a moment too.
	time.Sleep(700 * time.Millisecond)
	stopLoad()
	t.Logf("killed %d times, at (ms after ready, +messages acknowledged meanwhile, [451]: the smart host refused meanwhile): %s",
		kills, strings.Join(points, " "))
	t.Logf("the smart host answered 451 after DATA %d times", sink.misbehaved.Load())
	t.Logf("clients: %s", ledger.summary())
	if len(ledger.ackedIDs()) < kills*10 {
		t.Errorf("only %d messages were acknowledged: the load did not reach serve", len(ledger.ackedIDs()))
	}

	took := relDrain(t, srv, sink, ledger, 60*time.Second)
	r := relCompare(ledger, sink.counts())
	t.Logf("drained in %v; %s", took.Round(time.Millisecond), r)
	relCheck(t, srv, sink, r)
	// A kill can duplicate the deliveries it interrupted between the
	// smart host's 250 and the queue's record: at most those in flight
	// through the connector.
	if bound := kills * inFlight; r.extraCopies > bound {
		t.Errorf("%d extra copies over %d kills: more than the %d the deliveries in flight explain (duplicated: %s)",
			r.extraCopies, kills, bound, relFirst(r.dupIDs, 20))
	}
	if r.acked > 0 {
		t.Logf("duplicates: %.2f%% of acknowledged messages, %.1f per kill", 100*float64(len(r.dupIDs))/float64(r.acked), float64(r.extraCopies)/float64(kills))
	}
}

// TestReliabilitySmartHostOutages: for each way a smart host can fail,
// messages are submitted while it fails, serve must defer every one of
// them (and bounce none), and once the smart host recovers every message
// must arrive exactly once — the smart host never said 250 while failing,
// so a second copy would be serve's invention.
func TestReliabilitySmartHostOutages(t *testing.T) {
	const n = 20
	for _, mode := range []relMode{relRefuse, relCloseAtOnce, relDropMidData, relGreeting421, relMail451, relRcpt451, relData451, relStall} {
		t.Run(mode.String(), func(t *testing.T) {
			sink := relStartSink(t, mode)
			// The stall is cut by the connector's inactivity timeout:
			// 2 s instead of 10 min.
			srv := newRelServe(t, t.TempDir(), sink.port, relFastRetry, "--connection-inactivity-timeout", "00:00:02")
			srv.start()
			failing := time.Now()

			ledger := newRelLedger()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			var wg sync.WaitGroup
			for c := range 2 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					relClient(ctx, ledger, srv.addr, fmt.Sprintf("%s-c%d", mode, c), n/2, 5, 4096)
				}()
			}
			wg.Wait()
			if acked := len(ledger.ackedIDs()); acked != n {
				t.Fatalf("serve acknowledged %d of %d messages while the smart host was down: %s", acked, n, ledger.summary())
			}
			// Fail for 3 s at least, and until serve has deferred as
			// often as every message once and then once more on retry.
			const deferred = `msg="delivery deferred"`
			if !relWaitFor(15*time.Second, func() bool {
				return srv.logCount(deferred) >= 2*n && time.Since(failing) >= 3*time.Second
			}) {
				t.Fatalf("serve deferred %d times in 15s, want at least %d (every message, then a retry)", srv.logCount(deferred), 2*n)
			}
			defers, misbehaved := srv.logCount(deferred), sink.misbehaved.Load()
			if mode != relRefuse && misbehaved == 0 {
				t.Fatalf("the smart host never got to misbehave")
			}
			if got := sink.counts(); len(got) > 0 {
				t.Fatalf("the smart host accepted %d message(s) while failing", len(got))
			}
			sink.setMode(relOK)
			recovered := time.Now()

			took := relDrain(t, srv, sink, ledger, 20*time.Second)
			r := relCompare(ledger, sink.counts())
			t.Logf("%s: failing for %v (serve deferred %d times, the smart host misbehaved %d times); after recovery delivered in %v; %s",
				mode, recovered.Sub(failing).Round(time.Millisecond), defers, misbehaved, took.Round(time.Millisecond), r)
			relCheck(t, srv, sink, r)
			if len(r.dupIDs) > 0 {
				t.Errorf("DUPLICATED without a crash: %s", relFirst(r.dupIDs, 20))
			}
		})
	}
}

// TestReliabilityDiskFull: the queue directory is a 2 MB tmpfs and the
// smart host is down, so the queue fills. serve must refuse DATA with a
// 4xx once a message no longer fits, deliver every message it
// acknowledged once the smart host is back, deliver none it refused, and
// accept mail again, without a restart, once deliveries freed the space.
func TestReliabilityDiskFull(t *testing.T) {
	const size = 16 << 10
	dir := t.TempDir()
	queue := filepath.Join(dir, "queue")
	if err := os.Mkdir(queue, 0o700); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Skip("skipped: mounting a small tmpfs for the queue needs root (euid is not 0)")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", queue).CombinedOutput(); err != nil {
		t.Skipf("skipped: cannot mount a 2 MB tmpfs on the queue directory: %v: %s", err, strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() {
		// serve is stopped by then (its cleanup was registered later).
		if out, err := exec.Command("umount", queue).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s; trying a lazy unmount", queue, err, out)
			_ = exec.Command("umount", "-l", queue).Run()
		}
	})
	free := func() int64 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(queue, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * st.Bsize
	}

	sink := relStartSink(t, relRefuse)
	srv := newRelServe(t, dir, sink.port, relFastRetry)
	srv.start()

	// Fill: one client, 16 KB messages, until 10 in a row are refused.
	ledger := newRelLedger()
	var firstRefusal string
	var c *smtp.Client
	refusedInARow, n := 0, 0
	for ; n < 1000 && refusedInARow < 10; n++ {
		if c == nil {
			var err error
			if c, err = relDial(srv.addr); err != nil {
				t.Fatalf("connect to serve: %v", err)
			}
		}
		id := fmt.Sprintf("full-%d", n)
		err := relSend(c, id, size)
		ledger.record(id, err)
		var se *smtp.SMTPError
		switch {
		case err == nil:
			refusedInARow = 0
		case errors.As(err, &se) && se.Code >= 400 && se.Code < 500:
			refusedInARow++
			if firstRefusal == "" {
				firstRefusal = fmt.Sprintf("%d %d.%d.%d %s", se.Code, se.EnhancedCode[0], se.EnhancedCode[1], se.EnhancedCode[2], se.Message)
				t.Logf("message %d refused: %s", n, firstRefusal)
			}
			_ = c.Reset()
		default:
			c.Close()
			t.Fatalf("message %d on a full disk: %v (want 250 or a 4xx)", n, err)
		}
	}
	_ = c.Quit()
	acked := ledger.ackedIDs()
	fullFree := free()
	t.Logf("filling: %d messages of %d KB sent, %s; %d bytes free on the queue's filesystem",
		n, size>>10, ledger.summary(), fullFree)
	if firstRefusal == "" {
		t.Fatalf("serve accepted %d messages of %d KB on a 2 MB filesystem and never refused one", n, size>>10)
	}
	if !strings.HasPrefix(firstRefusal, "452 4.3.1") {
		t.Errorf("a full queue disk was answered %q, want 452 4.3.1", firstRefusal)
	}
	if len(acked) == 0 {
		t.Fatalf("serve acknowledged nothing: %s", ledger.summary())
	}
	// Some retries meet the full disk while the smart host is down.
	time.Sleep(2 * time.Second)

	sink.setMode(relOK)
	took, ok := relWaitDrained(t, srv, sink, ledger, 60*time.Second)
	if !ok {
		r := relCompare(ledger, sink.counts())
		relCheck(t, srv, sink, r)
		t.FailNow()
	}
	// Nothing refused may arrive: give a straggler a moment to show.
	time.Sleep(time.Second)
	got := sink.counts()
	var refusedArrived []string
	for id := range ledger.notAckedIDs() {
		if got[id] > 0 {
			refusedArrived = append(refusedArrived, id)
		}
	}
	slices.Sort(refusedArrived)
	if len(refusedArrived) > 0 {
		t.Errorf("%d message(s) refused with a 4xx were delivered anyway: %s", len(refusedArrived), relFirst(refusedArrived, 20))
	}
	first := relCompare(ledger, got)
	failedUpdates := srv.logCount(`msg="queue update failed`)
	t.Logf("smart host back: the acknowledged messages arrived in %v; %s; refused with 4xx but delivered %d; %d bytes free (was %d); serve logged %d failed queue updates meanwhile",
		took.Round(time.Millisecond), first, len(refusedArrived), free(), fullFree, failedUpdates)
	// A retry whose new state the full disk refused waits its interval
	// like any other; it must not come round again at once.
	if failedUpdates > 10*len(acked) {
		t.Errorf("%d failed queue updates for %d messages in a few seconds: serve retries what it cannot record in a loop", failedUpdates, len(acked))
	}

	// The space is back: serve takes mail again, without a restart.
	again := newRelLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	relClient(ctx, again, srv.addr, "again", 10, 10, size)
	if len(again.ackedIDs()) != 10 {
		t.Errorf("after the queue drained serve acknowledged %d of 10 messages: %s", len(again.ackedIDs()), again.summary())
	}
	for _, id := range again.ackedIDs() {
		ledger.record(id, nil)
	}
	for id, what := range again.notAckedIDs() {
		ledger.record(id, errors.New(what))
	}
	relDrain(t, srv, sink, ledger, 30*time.Second)
	t.Logf("after the drain, without a restart: %s", relCompare(again, sink.counts()))
	r := relCompare(ledger, sink.counts())
	t.Logf("in all: %s", r)
	relCheck(t, srv, sink, r)
	if len(r.dupIDs) > 0 {
		t.Errorf("DUPLICATED without a crash: %s", relFirst(r.dupIDs, 20))
	}
}

// TestReliabilityLoad: 200 clients at once build a backlog of
// RELIABILITY_BACKLOG messages (default 5000) while the smart host is
// down; every message meets the dead smart host once and waits for its
// retry. Then the smart host comes back and every message must arrive
// exactly once when its retry falls due (with RELIABILITY_QUEUE_RETRY=1 the
// operator's `sendconn queue retry` makes them due at once instead).
// serve's peak resident memory (VmHWM) must stay under
// RELIABILITY_MAX_RSS_MB, by default 128 MB plus 5 KB per backlog message
// (152 MB for 5,000, 616 MB for 100,000): serve keeps an index of every
// queued message in memory, so its memory grows with the backlog (about
// 70 MB at 5,000 and 460 MB at 100,000 were measured on a 2-core
// machine).
func TestReliabilityLoad(t *testing.T) {
	const (
		clients = 200
		size    = 2048
	)
	backlog := relEnvInt(t, "RELIABILITY_BACKLOG", 5000)
	maxRSS := int64(relEnvInt(t, "RELIABILITY_MAX_RSS_MB", 128+backlog*5/1024)) << 10 // kB
	adminRetry := os.Getenv("RELIABILITY_QUEUE_RETRY") == "1"
	perClient := (backlog + clients - 1) / clients
	// One retry per message while the backlog forms (and none for the
	// default backlog, which forms in about 10 s): the first attempt
	// fails at once, the retry comes this long after it.
	retryAfter := 15*time.Second + time.Duration(backlog)*time.Millisecond
	if adminRetry {
		retryAfter = time.Hour
	}

	sink := relStartSink(t, relRefuse)
	srv := newRelServe(t, t.TempDir(), sink.port, []string{
		"SENDCONN_TRANSPORT_TRANSIENT_FAILURE_RETRY_COUNT=0",
		"SENDCONN_TRANSPORT_MESSAGE_RETRY_INTERVAL=" + retryAfter.String(),
		"SENDCONN_TRANSPORT_OUTBOUND_CONNECTION_FAILURE_RETRY_INTERVAL=" + retryAfter.String(),
	})
	srv.start()
	pid := srv.cmd.Process.Pid

	var peakRSS int64 // the sampler's until sampleDone is closed
	sampleDone := make(chan struct{})
	stopSampling := make(chan struct{})
	go func() {
		defer close(sampleDone)
		for {
			if m, err := relReadMem(pid); err == nil {
				peakRSS = max(peakRSS, m.rss)
			}
			select {
			case <-stopSampling:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	var stopOnce sync.Once
	stopSampler := func() {
		stopOnce.Do(func() { close(stopSampling) })
		<-sampleDone
	}
	defer stopSampler()

	ledger := newRelLedger()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(backlog)*10*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for c := range clients {
		count := min(perClient, backlog-c*perClient)
		if count <= 0 {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			relClient(ctx, ledger, srv.addr, fmt.Sprintf("load-c%d", c), count, count, size)
		}()
	}
	wg.Wait()
	submitted := time.Since(start)
	acked := len(ledger.ackedIDs())
	t.Logf("backlog: %d clients submitted in %v (%.0f messages/s): %s",
		clients, submitted.Round(time.Millisecond), float64(acked)/submitted.Seconds(), ledger.summary())
	if acked != backlog {
		t.Errorf("serve acknowledged %d of %d messages under %d concurrent clients: %s", acked, backlog, clients, ledger.summary())
	}
	const deferred = `msg="delivery deferred"`
	if !relWaitFor(time.Minute+time.Duration(backlog)*time.Millisecond, func() bool { return srv.logCount(deferred) >= acked }) {
		t.Errorf("serve deferred %d of %d messages after the backlog formed", srv.logCount(deferred), acked)
	}
	t.Logf("backlog of %d queued and each message deferred once %v after the first submission",
		srv.queued(), time.Since(start).Round(time.Millisecond))
	memBacklog, _ := relReadMem(pid)

	sink.setMode(relOK)
	up := time.Now()
	if adminRetry {
		out, err := srv.runWithin(5*time.Minute, "queue", "retry", "[127.0.0.1]")
		if err != nil {
			t.Errorf("sendconn queue retry [127.0.0.1] failed after %v: %v: %s", time.Since(up).Round(time.Millisecond), err, strings.TrimSpace(out))
		} else {
			t.Logf("sendconn queue retry [127.0.0.1] took %v: %s", time.Since(up).Round(time.Millisecond), strings.TrimSpace(out))
		}
	}
	bound := retryAfter + time.Minute + time.Duration(backlog)*5*time.Millisecond
	if adminRetry {
		bound = 2*time.Minute + time.Duration(backlog)*5*time.Millisecond
	}
	if !relWaitFor(bound, func() bool { return sink.has(ledger.ackedIDs()) }) {
		t.Errorf("the backlog did not drain within %v of the smart host's return: %d of %d arrived, %d still queued",
			bound, len(sink.counts()), acked, srv.queued())
	}
	arrived := time.Since(up)
	relWaitFor(30*time.Second, func() bool { return srv.queued() == 0 })
	memDrained, _ := relReadMem(pid)
	stopSampler()

	relDrain(t, srv, sink, ledger, 30*time.Second)
	r := relCompare(ledger, sink.counts())
	first, last := sink.span()
	t.Logf("all arrived %v after the smart host came back, delivering for %v (%.0f messages/s); %s",
		arrived.Round(time.Millisecond), last.Sub(first).Round(time.Millisecond), float64(r.acked)/max(last.Sub(first).Seconds(), 0.001), r)
	t.Logf("serve memory: VmRSS %d MB with the backlog queued, %d MB after the drain, highest sampled %d MB; VmHWM (peak) %d MB; bound %d MB",
		memBacklog.rss>>10, memDrained.rss>>10, peakRSS>>10, memDrained.hwm>>10, maxRSS>>10)
	relCheck(t, srv, sink, r)
	if len(r.dupIDs) > 0 {
		t.Errorf("DUPLICATED without a crash: %s", relFirst(r.dupIDs, 20))
	}
	// The kernel updates VmHWM lazily, so a sample may exceed it.
	if peak := max(memDrained.hwm, peakRSS); peak == 0 {
		t.Errorf("could not read serve's memory from /proc/%d/status", pid)
	} else if peak > maxRSS {
		t.Errorf("serve's peak RSS was %d MB, over the bound of %d MB", peak>>10, maxRSS>>10)
	}
}
