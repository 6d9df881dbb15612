package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"
)

// postfixSizeLimit raises message_size_limit (default 10240000) so the
// 35 MB scenario fits; it does not change how Postfix queues or delivers.
const postfixSizeLimit = 40000000

// postfixMTA is a private Postfix instance: its own config directory,
// queue_directory and data_directory under the run directory, chroot off,
// one SMTP listener on 127.0.0.1:port and relayhost = the sink. It never
// touches /etc/postfix/main.cf or the system instance's queue, and has no
// listener on port 25.
type postfixMTA struct {
	dir    string // run/postfix
	cfg    string // config directory (postfix -c)
	queue  string
	master int // pid of master = its process group (master calls setsid)
}

func (m *postfixMTA) name() string { return "postfix" }
func (m *postfixMTA) pgid() int    { return m.master }
func (m *postfixMTA) alive() bool  { return m.master != 0 && pidAlive(m.master) }

var mainCF = template.Must(template.New("main.cf").Parse(`# relaybench: private benchmark instance, loopback only
compatibility_level = 3.6
queue_directory = {{.Queue}}
data_directory = {{.Data}}
mail_owner = postfix
setgid_group = postdrop
syslog_name = relaybench-postfix
maillog_file_prefixes = {{.Dir}}
maillog_file = {{.Dir}}/maillog
myhostname = relaybench.invalid
mydomain = relaybench.invalid
myorigin = $myhostname
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [127.0.0.1]:{{.SinkPort}}
message_size_limit = {{.SizeLimit}}
biff = no
`))

// masterCF: chroot "n" everywhere (no jail to populate) and the only
// network listener is 127.0.0.1:MTA port.
var masterCF = template.Must(template.New("master.cf").Parse(`# relaybench: minimal services, chroot off, loopback listener only
127.0.0.1:{{.MTAPort}} inet n - n - - smtpd
pickup     unix  n - n 60    1 pickup
cleanup    unix  n - n -     0 cleanup
qmgr       unix  n - n 300   1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -     - trivial-rewrite
bounce     unix  - - n -     0 bounce
defer      unix  - - n -     0 bounce
trace      unix  - - n -     0 bounce
verify     unix  - - n -     1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -     - proxymap
proxywrite unix  - - n -     1 proxymap
smtp       unix  - - n -     - smtp
relay      unix  - - n -     - smtp
showq      unix  n - n -     - showq
error      unix  - - n -     - error
retry      unix  - - n -     - error
discard    unix  - - n -     - discard
local      unix  - n n -     - local
virtual    unix  - n n -     - virtual
lmtp       unix  - - n -     - lmtp
anvil      unix  - - n -     1 anvil
scache     unix  - - n -     1 scache
postlog    unix-dgram n - n - 1 postlogd
`))

// postfixCheck fails early with a useful message when the private
// instance cannot work here.
func postfixCheck() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the private Postfix needs root (postfix start); use -postfix=false")
	}
	for _, tool := range []string{"postfix", "postconf"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found (Debian package postfix): %w", tool, err)
		}
	}
	if _, err := user.Lookup("postfix"); err != nil {
		return fmt.Errorf("user postfix: %w", err)
	}
	return nil
}

func postfixVersion() string {
	out, err := runBounded(context.Background(), 10*time.Second, "postconf", "-d", "-h", "mail_version")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(out)
}

func startPostfix(ctx context.Context, runDir string, mtaPort, sinkPort int, readyTimeout time.Duration) (*postfixMTA, error) {
	m := &postfixMTA{dir: filepath.Join(runDir, "postfix")}
	m.cfg = filepath.Join(m.dir, "etc")
	m.queue = filepath.Join(m.dir, "spool")
	data := filepath.Join(m.dir, "data")
	for _, d := range []string{m.cfg, m.queue, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// queue_directory stays root-owned (postfix start creates its
	// subdirectories); data_directory must belong to mail_owner, or master
	// cannot create master.lock.
	pu, err := user.Lookup("postfix")
	if err != nil {
		return nil, err
	}
	uid, _ := strconv.Atoi(pu.Uid)
	gid, _ := strconv.Atoi(pu.Gid)
	if err := os.Chown(data, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chmod(data, 0o700); err != nil {
		return nil, err
	}
	vals := map[string]any{
		"Queue": m.queue, "Data": data, "Dir": m.dir,
		"SinkPort": sinkPort, "MTAPort": mtaPort, "SizeLimit": postfixSizeLimit,
	}
	for name, t := range map[string]*template.Template{"main.cf": mainCF, "master.cf": masterCF} {
		var b bytes.Buffer
		if err := t.Execute(&b, vals); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(m.cfg, name), b.Bytes(), 0o644); err != nil {
			return nil, err
		}
	}
	if out, err := runBounded(ctx, readyTimeout, "postfix", "-c", m.cfg, "check"); err != nil {
		return nil, fmt.Errorf("postfix check: %w\n%s", err, out)
	}
	out, err := runBounded(ctx, readyTimeout, "postfix", "-c", m.cfg, "start")
	// Whatever happened, a master may be running now: find it so that
	// stop can end it.
	m.master = m.readMasterPID()
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("postfix start: %w\n%s%s", err, out, tail(filepath.Join(m.dir, "maillog")))
	}
	if m.master == 0 {
		m.stop()
		return nil, fmt.Errorf("postfix start: no master.pid in %s", m.queue)
	}
	if st, err := readStat(m.master); err != nil || st.pgrp != m.master {
		logf("WARNING: postfix master %d is not a process group leader; CPU of its live children is not counted", m.master)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", mtaPort)
	if err := waitBanner(ctx, addr, readyTimeout, func() bool { return !pidAlive(m.master) }); err != nil {
		m.stop()
		return nil, fmt.Errorf("postfix smtpd on %s: %w%s", addr, err, tail(filepath.Join(m.dir, "maillog")))
	}
	return m, nil
}

func (m *postfixMTA) readMasterPID() int {
	b, err := os.ReadFile(filepath.Join(m.queue, "pid", "master.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// stop runs `postfix -c DIR stop` (TERM to the master), waits for the
// master's whole process group to be gone (children exit shortly after
// the master), and kills what is left. Bounded throughout.
func (m *postfixMTA) stop() {
	if m == nil || m.cfg == "" {
		return
	}
	if m.master == 0 {
		m.master = m.readMasterPID()
	}
	if m.master == 0 {
		return
	}
	if out, err := runBounded(context.Background(), 20*time.Second, "postfix", "-c", m.cfg, "stop"); err != nil {
		logf("postfix stop: %v %s", err, strings.TrimSpace(out))
	}
	pg := m.master
	if !waitGroupGone(pg, 20*time.Second) || pidAlive(m.master) {
		logf("postfix (master %d) still running after stop, SIGKILL", m.master)
		_ = syscall.Kill(-pg, syscall.SIGKILL)
		_ = syscall.Kill(m.master, syscall.SIGKILL)
		if !waitGroupGone(pg, 5*time.Second) {
			logf("WARNING: postfix processes of group %d survived SIGKILL", pg)
		}
	}
	m.master = 0
	m.cfg = ""
}

// pidAlive: the process exists and is not a zombie.
func pidAlive(pid int) bool {
	st, err := readStat(pid)
	return err == nil && st.state != 'Z' && st.state != 'X'
}

// runBounded runs a short command with a time limit, in its own process
// group, and returns its combined output.
func runBounded(ctx context.Context, limit time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	// Output goes to a file, not a pipe: a daemon the command starts
	// (postfix start -> master) could inherit a pipe and keep Wait waiting.
	f, err := os.CreateTemp("", "relaybench-cmd-*.out")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	err = cmd.Run()
	out, _ := os.ReadFile(f.Name())
	return string(out), err
}
