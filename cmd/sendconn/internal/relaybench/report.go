package main

import (
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"time"
)

func (r *runResult) rate() float64 {
	if r.e2e <= 0 {
		return 0
	}
	return float64(r.n) / r.e2e.Seconds()
}

func (r *runResult) cpuPerMsg() time.Duration {
	return r.cpu / time.Duration(max(r.n, 1))
}

// otherPct is the foreign load during the run in % of the whole machine.
func (r *runResult) otherPct() float64 {
	if r.wall <= 0 {
		return 0
	}
	// tick granularity can make the estimate slightly negative
	return max(0, 100*r.other.Seconds()/r.wall.Seconds()/float64(runtime.NumCPU()))
}

func (r *runResult) progressLine() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s run %d:", r.scen, r.mta, r.run)
	if len(r.lat) > 0 {
		p50, p99 := percentiles(r.lat)
		fmt.Fprintf(&b, " latency p50=%s p99=%s (%d samples)", ms(p50), ms(p99), len(r.lat))
	} else {
		fmt.Fprintf(&b, " e2e %.3fs = %.1f msg/s, inject %.3fs", r.e2e.Seconds(), r.rate(), r.inject.Seconds())
	}
	fmt.Fprintf(&b, ", MTA CPU %.2fs (%s/msg), idle RSS %s, peak %s, ΣPSS %s, sink got %d/%d, machine %.0f%% busy before, other load ≈%.0f%%",
		r.cpu.Seconds(), ms(r.cpuPerMsg()), mib(r.idleKB), mibWho(r.peakKB, r.peakWho), mib(r.pssKB), r.received, r.n, r.busyBefore, r.otherPct())
	return b.String()
}

// agg is one MTA's successful runs of one scenario.
type agg struct {
	runs   []*runResult
	failed int
}

func (a *agg) ok() bool { return a != nil && len(a.runs) > 0 }

func (a *agg) medianRate() float64 {
	return median(collect(a.runs, func(r *runResult) float64 { return r.rate() }))
}

func (a *agg) medianCPU() time.Duration {
	return time.Duration(median(collect(a.runs, func(r *runResult) float64 { return float64(r.cpuPerMsg()) })))
}

// maxPeak is the largest per-process VmHWM over the runs, with its process.
func (a *agg) maxPeak() (int64, string) {
	var kb int64
	who := ""
	for _, r := range a.runs {
		if r.peakKB > kb {
			kb, who = r.peakKB, r.peakWho
		}
	}
	return kb, who
}

func (a *agg) maxAboveIdle() int64 {
	var kb int64
	for _, r := range a.runs {
		kb = max(kb, r.peakKB-r.idleKB)
	}
	return kb
}

func (a *agg) maxPSS() int64 {
	var kb int64
	for _, r := range a.runs {
		kb = max(kb, r.pssKB)
	}
	return kb
}

func (a *agg) latencies() []time.Duration {
	var all []time.Duration
	for _, r := range a.runs {
		all = append(all, r.lat...)
	}
	return all
}

func (b *bench) aggregate(sc, kind string) *agg {
	a := &agg{}
	for _, r := range b.results {
		if r.scen != sc || r.mta != kind {
			continue
		}
		if r.err != nil {
			a.failed++
			continue
		}
		a.runs = append(a.runs, r)
	}
	return a
}

func (b *bench) report(w io.Writer, facts string) {
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | sendconn msg/s | Postfix msg/s | ratio | sendconn CPU/msg | Postfix CPU/msg | sendconn peak RSS | Postfix peak RSS (largest process) | p50 / p99 latency (sendconn) | p50 / p99 latency (Postfix) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, sc := range b.scenarios {
		s, p := b.aggregate(sc.key, "sendconn"), b.aggregate(sc.key, "postfix")
		cells := []string{sc.title}
		rate := func(a *agg) string {
			switch {
			case !sc.postfix && a == p:
				return "-"
			case !a.ok():
				return "failed"
			case sc.samples > 0:
				return "-"
			case sc.key == "35m":
				return fmt.Sprintf("%.2f (%.2f s)", a.medianRate(), 1/a.medianRate()) + failedMark(a)
			}
			return fmt.Sprintf("%.1f", a.medianRate()) + failedMark(a)
		}
		cells = append(cells, rate(s), rate(p))
		if sc.samples == 0 && s.ok() && p.ok() && sc.postfix {
			cells = append(cells, fmt.Sprintf("%.2f", s.medianRate()/p.medianRate()))
		} else {
			cells = append(cells, "-")
		}
		cpu := func(a *agg) string {
			if !a.ok() {
				return "-"
			}
			return ms(a.medianCPU())
		}
		cells = append(cells, cpu(s), cpu(p))
		if s.ok() {
			kb, _ := s.maxPeak()
			if sc.key == "35m" {
				cells = append(cells, fmt.Sprintf("+%s above idle (peak %s)", mib(s.maxAboveIdle()), mib(kb)))
			} else {
				cells = append(cells, mib(kb))
			}
		} else {
			cells = append(cells, "-")
		}
		if p.ok() {
			kb, who := p.maxPeak()
			cells = append(cells, fmt.Sprintf("%s (%s; ΣPSS %s)", mib(kb), who, mib(p.maxPSS())))
		} else {
			cells = append(cells, "-")
		}
		lat := func(a *agg) string {
			l := a.latencies()
			if len(l) == 0 {
				return "-"
			}
			p50, p99 := percentiles(l)
			return ms(p50) + " / " + ms(p99)
		}
		cells = append(cells, lat(s), lat(p))
		fmt.Fprintln(w, "| "+strings.Join(cells, " | ")+" |")
	}
	fmt.Fprintln(w)
	for _, sc := range b.scenarios {
		switch {
		case sc.samples > 0:
			if d := b.aggregate(sc.key, "direct"); d.ok() {
				p50, p99 := percentiles(d.latencies())
				fmt.Fprintf(w, "Latency floor without an MTA (smtp-source straight to smtp-sink, same method): p50 %s / p99 %s; the relay's own share is roughly the difference.\n\n", ms(p50), ms(p99))
			}
		case sc.key == "1m":
			if s := b.aggregate(sc.key, "sendconn"); s.ok() {
				kb, _ := s.maxPeak()
				verdict := "met"
				if kb >= 200*1024 {
					verdict = "NOT met"
				}
				fmt.Fprintf(w, "1m: sendconn peak RSS %s, target < 200 MB %s.\n\n", mib(kb), verdict)
			}
		}
	}
	fmt.Fprintln(w, facts+".")
	fmt.Fprintln(w)
	fmt.Fprintln(w, `msg/s: median over the runs of N / (smtp-source start → smtp-sink has message N), one warm-up message per run excluded; ratio = sendconn median / Postfix median. `+
		`CPU/msg: median of (user+sys CPU of the MTA's process group over that interval, incl. children reaped by Postfix's master) / N. `+
		`sendconn peak RSS: VmHWM of the serve process at the end of the run (largest over runs); 35m: VmHWM at the end minus VmRSS right after start-up, before any message (largest over runs). `+
		`Postfix peak RSS: VmHWM of its largest single process (sampled every 0.5 s and at the end, so processes that exited between samples are missed); ΣPSS: largest sampled sum of PSS over all its processes (shared pages split), a fairer total for a multi-process MTA. `+
		`Latency: smtp-source -m 1 -s 1 start → sink stamp, sequential; p99 of 20 samples is the maximum; "-" where not measured (throughput runs cannot attribute a sink record to a message). `+
		`MB = MiB.`)
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Per run (busy before = whole machine in the second before timing; other load = whole-machine busy CPU during the run minus MTA, sink, client and harness; both in % of all cores; high values mean foreign load disturbed the run):")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| scenario | MTA | run | result | e2e s | msg/s | inject msg/s | MTA CPU s | CPU/msg | peak RSS (process) | ΣPSS | sink got | busy before | other load |")
	fmt.Fprintln(w, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, r := range b.results {
		if r.err != nil {
			msg := strings.ReplaceAll(firstLine(r.err.Error()), "|", "/")
			fmt.Fprintf(w, "| %s | %s | %d | failed: %s | | | | | | | | | | |\n", r.scen, r.mta, r.run, msg)
			continue
		}
		e2e, rate, inj := "-", "-", "-"
		result := "ok"
		if len(r.lat) > 0 {
			p50, p99 := percentiles(r.lat)
			result = "p50 " + ms(p50) + ", p99 " + ms(p99)
		} else {
			e2e, rate = fmt.Sprintf("%.3f", r.e2e.Seconds()), fmt.Sprintf("%.1f", r.rate())
			if r.inject > 0 {
				inj = fmt.Sprintf("%.1f", float64(r.n)/r.inject.Seconds())
			}
		}
		cpu, cpuMsg := fmt.Sprintf("%.2f", r.cpu.Seconds()), ms(r.cpuPerMsg())
		if r.mta == "direct" {
			cpu, cpuMsg = "-", "-"
		}
		fmt.Fprintf(w, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %d/%d | %.0f%% | %.0f%% |\n",
			r.scen, r.mta, r.run, result, e2e, rate, inj, cpu, cpuMsg,
			mibWho(r.peakKB, r.peakWho), mib(r.pssKB), r.received, r.n, r.busyBefore, r.otherPct())
	}
}

func failedMark(a *agg) string {
	if a.failed > 0 {
		return fmt.Sprintf(" (%d failed)", a.failed)
	}
	return ""
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func collect(rs []*runResult, f func(*runResult) float64) []float64 {
	out := make([]float64, 0, len(rs))
	for _, r := range rs {
		out = append(out, f(r))
	}
	return out
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// percentiles: p50 is the median, p99 the nearest-rank 99th percentile
// (with fewer than 100 samples, the maximum).
func percentiles(d []time.Duration) (p50, p99 time.Duration) {
	f := make([]float64, len(d))
	for i, x := range d {
		f[i] = float64(x)
	}
	p50 = time.Duration(median(f))
	s := slices.Clone(d)
	slices.Sort(s)
	rank := int(math.Ceil(0.99 * float64(len(s))))
	p99 = s[max(rank, 1)-1]
	return p50, p99
}

func ms(d time.Duration) string {
	v := float64(d) / float64(time.Millisecond)
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	}
	return fmt.Sprintf("%.2f ms", v)
}

func mib(kb int64) string {
	if kb <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MB", float64(kb)/1024)
}

func mibWho(kb int64, who string) string {
	if kb <= 0 {
		return "n/a"
	}
	return mib(kb) + " (" + who + ")"
}
