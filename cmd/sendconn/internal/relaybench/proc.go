package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// clockTick is the length of one /proc CPU tick. USER_HZ is 100 on every
// Linux architecture Go supports; the kernel ABI fixes it.
const clockTick = 10 * time.Millisecond

// child is a process started by the harness in its own process group
// (pgid = pid), so that it and everything it forks can be signalled at once
// and a Ctrl-C on the terminal reaches only the harness, which then stops
// its children in order.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // Wait's result, valid once done is closed
}

func startChild(name string, cmd *exec.Cmd) (*child, error) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// waitFor waits at most d for the process to exit.
func (c *child) waitFor(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.done:
		return true
	case <-t.C:
		return false
	}
}

// stop sends sig to the child's process group, waits up to grace for the
// leader to exit, then kills the whole group. Anything left in the group
// after the leader is gone is killed too. Every wait is bounded; calling it
// again, or on nil, does nothing harmful.
func (c *child) stop(sig syscall.Signal, grace time.Duration) {
	if c == nil {
		return
	}
	pg := c.pid()
	if !c.exited() {
		_ = syscall.Kill(-pg, sig)
		if !c.waitFor(grace) {
			logf("%s (pid %d) still running %v after %v, sending SIGKILL", c.name, pg, grace, sig)
			_ = syscall.Kill(-pg, syscall.SIGKILL)
			if !c.waitFor(5 * time.Second) {
				logf("WARNING: %s (pid %d) survived SIGKILL", c.name, pg)
			}
		}
	}
	if groupAlive(pg) {
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		if !waitGroupGone(pg, 5*time.Second) {
			logf("WARNING: processes of group %d (%s) survived SIGKILL", pg, c.name)
		}
	}
}

// cpu is the user+system CPU time of an exited child (zero before).
func (c *child) cpu() time.Duration {
	if !c.exited() || c.cmd.ProcessState == nil {
		return 0
	}
	return c.cmd.ProcessState.UserTime() + c.cmd.ProcessState.SystemTime()
}

// procStat is the part of /proc/PID/stat the harness uses.
type procStat struct {
	pid    int
	state  byte
	pgrp   int
	utime  uint64 // ticks
	stime  uint64
	cutime uint64 // reaped children
	cstime uint64
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStat{}, err
	}
	// comm may contain spaces and parentheses: the fields start after the
	// last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStat{}, errors.New("malformed stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return procStat{}, errors.New("short stat")
	}
	num := func(k int) uint64 { v, _ := strconv.ParseUint(f[k], 10, 64); return v }
	s := procStat{pid: pid, state: f[0][0], pgrp: int(num(2))}
	s.utime, s.stime, s.cutime, s.cstime = num(11), num(12), num(13), num(14)
	return s, nil
}

// groupMembers lists the processes whose process group is pgid, zombies
// included (a zombie's CPU is not yet in its parent's cutime/cstime).
func groupMembers(pgid int) []procStat {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []procStat
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		s, err := readStat(pid)
		if err != nil || s.pgrp != pgid {
			continue
		}
		out = append(out, s)
	}
	return out
}

// groupCPU is the CPU time (user+system) used so far by process group
// pgid: every live member's own time plus the time of the children its
// members have already reaped. Postfix's master reaps its short-lived
// smtpd/cleanup/smtp children, so their CPU stays counted after they exit.
func groupCPU(pgid int) time.Duration {
	var ticks uint64
	for _, s := range groupMembers(pgid) {
		ticks += s.utime + s.stime + s.cutime + s.cstime
	}
	return time.Duration(ticks) * clockTick
}

// groupAlive reports whether a non-zombie process is left in group pgid.
func groupAlive(pgid int) bool {
	for _, s := range groupMembers(pgid) {
		if s.state != 'Z' && s.state != 'X' {
			return true
		}
	}
	return false
}

func waitGroupGone(pgid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		if !groupAlive(pgid) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// statusKB reads a "kB" line (VmHWM, VmRSS) of /proc/PID/status.
func statusKB(pid int, key string) (int64, error) {
	return kbField("/proc/"+strconv.Itoa(pid)+"/status", key)
}

// pssKB is the proportional set size of pid (shared pages divided among the
// processes sharing them), from /proc/PID/smaps_rollup.
func pssKB(pid int) (int64, error) {
	return kbField("/proc/"+strconv.Itoa(pid)+"/smaps_rollup", "Pss")
}

func kbField(path, key string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		fs := strings.Fields(rest)
		if len(fs) == 0 {
			break
		}
		return strconv.ParseInt(fs[0], 10, 64)
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

func procComm(pid int) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

// machineBusy is the CPU time all CPUs spent running tasks since boot
// (user+nice+system+steal from /proc/stat). irq and softirq time is left
// out: on loopback it is mostly the benchmark's own network traffic, which
// no process is charged for.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks uint64
	for _, k := range []int{1, 2, 3, 8} {
		v, _ := strconv.ParseUint(f[k], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
}

// selfCPU is the harness's own CPU time (all threads, children excluded).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// fsType names the file system holding dir, from /proc/self/mountinfo
// (the longest mount point that is a prefix of dir).
func fsType(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "?"
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for line := range strings.Lines(string(b)) {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 1 {
			continue
		}
		mp := unescapeMount(pf[4])
		if (abs == mp || strings.HasPrefix(abs, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(best) {
			best, typ = mp, qf[0]
		}
	}
	return typ
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
