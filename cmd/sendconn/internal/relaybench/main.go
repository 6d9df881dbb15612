// Command relaybench measures `sendconn serve` and a private Postfix
// instance side by side on loopback and prints a Markdown comparison.
//
// Topology, for every run of every MTA:
//
//	smtp-source -> MTA on 127.0.0.1:P -> smart host smtp-sink -c on 127.0.0.1:S
//
// Runs are interleaved (sendconn 1, Postfix 1, sendconn 2, …) so drift on a
// shared machine hits both; every run gets a fresh MTA, a fresh sink and a
// fresh queue directory, and one warm-up message that is not counted.
//
//	go run ./cmd/sendconn/internal/relaybench -sendconn bin/sendconn
//	make bench BENCHFLAGS='-runs 5 -scenarios 4k,latency'
//
// Progress goes to stderr, the table to stdout. Everything the harness
// starts runs in its own process group and is stopped on exit, on errors
// and on SIGINT/SIGTERM; every wait is bounded.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"
)

type bench struct {
	sendconn     string
	scenarios    []*scenario
	runs         int
	workdir      string
	work         string // this invocation's directory under workdir
	postfix      bool
	timeout      time.Duration
	readyTimeout time.Duration
	keep         bool
	waitIdle     time.Duration
	idlePct      float64
	tmpl         *sendconnTemplate
	results      []*runResult
}

var allScenarios = []string{"4k", "1m", "latency", "35m"}

// size35m is the body of the "35 MB" message: 35,000,000 bytes, which with
// smtp-source's 80-byte lines, CRLF and headers stays under sendconn's
// default limits (receive 36MB, connector 35MB = 36,700,160 bytes) and the
// private Postfix's raised message_size_limit.
const size35m = 35000000

func main() { os.Exit(run()) }

func run() int {
	var (
		b         bench
		scenarios string
		n4k, n1m  int
		sessions  int
		samples   int
	)
	flag.StringVar(&b.sendconn, "sendconn", "bin/sendconn", "sendconn binary to measure")
	flag.StringVar(&scenarios, "scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	flag.IntVar(&b.runs, "runs", 3, "runs per MTA of each throughput scenario (4k, 1m, 35m)")
	flag.IntVar(&n4k, "n4k", 2000, "messages per run in the 4k scenario")
	flag.IntVar(&n1m, "n1m", 200, "messages per run in the 1m scenario")
	flag.IntVar(&sessions, "sessions", 20, "parallel smtp-source sessions in the 4k and 1m scenarios")
	flag.IntVar(&samples, "samples", 20, "sequential single messages in the latency scenario")
	flag.StringVar(&b.workdir, "workdir", "/var/tmp", "parent directory of the work directory (queues, stores, logs)")
	flag.BoolVar(&b.postfix, "postfix", true, "also measure a private Postfix instance (needs root)")
	flag.DurationVar(&b.timeout, "timeout", 10*time.Minute, "bound for each injection and each wait for delivery")
	flag.DurationVar(&b.readyTimeout, "ready-timeout", 30*time.Second, "bound for starting an MTA or a sink")
	flag.DurationVar(&b.waitIdle, "wait-idle", 0, "before each run, wait up to this long until the machine is at most -idle-pct busy (0: don't wait)")
	flag.Float64Var(&b.idlePct, "idle-pct", 10, "threshold for -wait-idle, in % of all CPUs")
	flag.BoolVar(&b.keep, "keep", false, "keep the work directory (logs, queues) after the run")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "Usage: relaybench [flags]\n\nMeasures sendconn serve and a private Postfix on 127.0.0.1, interleaved, and prints a Markdown table.\n\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		flag.Usage()
		return 2
	}
	if b.runs < 1 || n4k < 1 || n1m < 1 || sessions < 1 || samples < 1 || b.timeout <= 0 || b.readyTimeout <= 0 {
		fmt.Fprintln(os.Stderr, "relaybench: -runs, -n4k, -n1m, -sessions, -samples and the timeouts must be positive")
		return 2
	}
	for _, key := range strings.Split(scenarios, ",") {
		key = strings.TrimSpace(key)
		var sc *scenario
		switch key {
		case "":
			continue
		case "4k":
			sc = &scenario{key: key, title: fmt.Sprintf("4k (4 KB × %d, %d sessions)", n4k, sessions), size: 4096, n: n4k, sessions: sessions, runs: b.runs}
		case "1m":
			sc = &scenario{key: key, title: fmt.Sprintf("1m (1 MB × %d, %d sessions)", n1m, sessions), size: 1 << 20, n: n1m, sessions: sessions, runs: b.runs}
		case "latency":
			sc = &scenario{key: key, title: fmt.Sprintf("latency (4 KB, %d × 1 msg, 1 session)", samples), size: 4096, samples: samples, runs: 1}
		case "35m":
			sc = &scenario{key: key, title: "35m (one 35 MB message)", size: size35m, n: 1, sessions: 1, runs: b.runs}
		default:
			fmt.Fprintf(os.Stderr, "relaybench: unknown scenario %q (have %s)\n", key, strings.Join(allScenarios, ", "))
			return 2
		}
		if slices.ContainsFunc(b.scenarios, func(s *scenario) bool { return s.key == key }) {
			continue
		}
		sc.postfix = b.postfix
		b.scenarios = append(b.scenarios, sc)
	}
	if len(b.scenarios) == 0 {
		fmt.Fprintln(os.Stderr, "relaybench: no scenario selected")
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := b.main(ctx)
	if ctx.Err() != nil {
		logf("interrupted; everything started was stopped")
		return 130
	}
	if err != nil {
		logf("error: %v", err)
		return 1
	}
	for _, r := range b.results {
		if r.err != nil {
			return 1
		}
	}
	return 0
}

func (b *bench) main(ctx context.Context) error {
	bin, err := filepath.Abs(b.sendconn)
	if err != nil {
		return err
	}
	if st, err := os.Stat(bin); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return fmt.Errorf("-sendconn %s: not an executable file (build it with make build)", b.sendconn)
	}
	b.sendconn = bin
	for _, tool := range []string{"smtp-source", "smtp-sink"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (Debian package postfix): %w", tool, err)
		}
	}
	if b.postfix {
		if err := postfixCheck(); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(b.workdir, 0o755); err != nil {
		return err
	}
	b.work, err = os.MkdirTemp(b.workdir, "relaybench.")
	if err != nil {
		return err
	}
	// postfix and nobody (smtp-sink) must be able to traverse it.
	if err := os.Chmod(b.work, 0o755); err != nil {
		return err
	}
	if b.keep {
		defer logf("work directory kept: %s", b.work)
	} else {
		defer os.RemoveAll(b.work)
	}
	facts := machineFacts(b)
	logf("%s", facts)
	logf("work directory %s", b.work)

	logf("creating the sendconn template store (%d connectors)", connectorCount)
	t0 := time.Now()
	b.tmpl, err = makeSendconnTemplate(ctx, b.sendconn, filepath.Join(b.work, "template"), 12525)
	if err != nil {
		return err
	}
	logf("template store ready in %.1fs", time.Since(t0).Seconds())

	mtas := []string{"sendconn"}
	if b.postfix {
		mtas = append(mtas, "postfix")
	}
	for _, sc := range b.scenarios {
		for run := 1; run <= sc.runs; run++ {
			kinds := mtas
			if sc.samples > 0 {
				kinds = append(slices.Clone(mtas), "direct")
			}
			for _, kind := range kinds {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				logf("%s: %s run %d/%d …", sc.key, kind, run, sc.runs)
				res, err := b.runOne(ctx, sc, kind, run)
				res.err = err
				if ctx.Err() != nil {
					return ctx.Err()
				}
				b.results = append(b.results, res)
				if err != nil {
					logf("%s: %s run %d FAILED: %v", sc.key, kind, run, err)
					continue
				}
				logf("%s", res.progressLine())
			}
		}
	}
	b.report(os.Stdout, facts)
	if n := countFailed(b.results); n > 0 {
		return fmt.Errorf("%d run(s) failed (see above)", n)
	}
	return nil
}

func countFailed(rs []*runResult) int {
	n := 0
	for _, r := range rs {
		if r.err != nil {
			n++
		}
	}
	return n
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "relaybench [%s] %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

// machineFacts is the one-line description of where the numbers come from.
func machineFacts(b *bench) string {
	kernel, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	model := "?"
	if ci, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(ci)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	pf := "not measured"
	if b.postfix {
		pf = postfixVersion()
	}
	scv := "?"
	if out, err := runBounded(context.Background(), 10*time.Second, b.sendconn, "version"); err == nil {
		scv = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(out), "sendconn "))
	}
	return fmt.Sprintf("Machine: %d cores (%s), kernel %s, workdir %s on %s, Postfix %s, sendconn %s, %s",
		runtime.NumCPU(), model, strings.TrimSpace(string(kernel)), b.workdir, fsType(b.workdir), pf, scv, time.Now().Format("2006-01-02 15:04 MST"))
}
