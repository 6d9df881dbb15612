package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/sendconn/sendconn/pkg/store"
	"github.com/sendconn/sendconn/pkg/transport/admin"
)

// TestMain lets the test binary act as sendconn (and as small helper
// programs) inside testscript scripts.
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"sendconn": func() { os.Exit(run(os.Args[1:], newApp(systemStreams(), os.Getenv))) },
		// holdstore PATH READYFILE: take the store's write lock, say so in
		// READYFILE, and hold it until killed.
		"holdstore": func() {
			sig := make(chan os.Signal, 1)
			signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
			err := store.OpenBolt(os.Args[1], store.Options{}).Update(context.Background(), func(store.Tx) error {
				if err := os.WriteFile(os.Args[2], []byte("held\n"), 0o600); err != nil {
					return err
				}
				<-sig
				return nil
			})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			os.Exit(0)
		},
		"smtpsink":   smtpSinkMain,
		"smtpsubmit": smtpSubmitMain,
		"dnsserver":  dnsServerMain,
		"etcdserver": etcdServerMain,
	})
}

func TestScripts(t *testing.T) {
	testscript.Run(t, scriptParams("testdata/script"))
}

// scriptParams are the scripts' environment and commands; the interop
// tier runs some of the scripts again against real peers.
func scriptParams(dir string, files ...string) testscript.Params {
	return testscript.Params{
		Dir:                 dir,
		Files:               files,
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("SENDCONN_STORE", filepath.Join(env.WorkDir, "sendconn.db"))
			env.Setenv("SENDCONN_SERVER_NAME", "EX01")
			env.Setenv("SENDCONN_STORE_TIMEOUT", "2s")
			// Everything serve writes stays in the script's directory,
			// also when the tests run as root.
			env.Setenv("SENDCONN_ADMIN_SOCKET", filepath.Join(env.WorkDir, "admin.sock"))
			env.Setenv("SENDCONN_LOGS_MESSAGE_TRACKING_LOG_PATH", filepath.Join(env.WorkDir, "logs", "MessageTracking"))
			env.Setenv("SENDCONN_LOGS_SEND_PROTOCOL_LOG_PATH", filepath.Join(env.WorkDir, "logs", "ProtocolLog", "SmtpSend"))
			// etcdserver runs this etcd binary instead of the embedded one.
			env.Setenv("SENDCONN_TEST_ETCD", os.Getenv("SENDCONN_TEST_ETCD"))
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"waitfile":   cmdWaitFile,
			"stripids":   cmdStripIDs,
			"filemode":   cmdFileMode,
			"notexists":  cmdNotExists,
			"envfile":    cmdEnvFile,
			"waitqueue":  cmdWaitQueue,
			"waitconfig": cmdWaitConfig,
			"gencert":    cmdGenCert,
			"genorg":     cmdGenOrg,
			"storestate": cmdStoreState,
		},
		Condition: storeCondition(false),
	}
}

// storeCondition answers [etcd]: whether the scripts run on etcd.
func storeCondition(etcd bool) func(string) (bool, error) {
	return func(cond string) (bool, error) {
		if cond == "etcd" {
			return etcd, nil
		}
		return false, fmt.Errorf("unknown condition %q", cond)
	}
}

// storestate save FILE | same FILE: record the store's state in FILE, or
// check that it is still the state recorded there. For a bbolt store the
// state is the file's bytes (so "same" means nothing wrote to it at all);
// for etcd it is the revision with every connector (credential included),
// access list and accepted domain.
func cmdStoreState(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 || (args[0] != "save" && args[0] != "same") || (neg && args[0] == "save") {
		ts.Fatalf("usage: storestate save|same FILE")
	}
	spec := ts.Getenv("SENDCONN_STORE")
	var state []byte
	if strings.HasPrefix(spec, "etcd") {
		b, err := store.Open(spec, store.Options{})
		ts.Check(err)
		defer b.Close()
		ts.Check(b.View(context.Background(), func(tx store.Tx) error {
			fmt.Fprintf(&buf{&state}, "revision %d\n", tx.Revision())
			conns, err := tx.Connectors()
			if err != nil {
				return err
			}
			for _, c := range conns {
				acl, err := tx.ACL(c.Guid)
				if err != nil {
					return err
				}
				pw := ""
				if c.AuthenticationCredential != nil {
					pw = c.AuthenticationCredential.Password.Reveal()
				}
				fmt.Fprintf(&buf{&state}, "%+v %q %+v\n", c, pw, acl)
			}
			domains, err := tx.AcceptedDomains()
			fmt.Fprintf(&buf{&state}, "%+v\n", domains)
			return err
		}))
	} else {
		var err error
		if state, err = os.ReadFile(spec); os.IsNotExist(err) {
			state, err = []byte("absent"), nil
		}
		ts.Check(err)
	}
	file := ts.MkAbs(args[1])
	if args[0] == "save" {
		ts.Check(os.WriteFile(file, state, 0o600))
		return
	}
	saved, err := os.ReadFile(file)
	ts.Check(err)
	if same := string(saved) == string(state); same == neg {
		if neg {
			ts.Fatalf("the store is still as recorded in %s", args[1])
		}
		ts.Fatalf("the store changed since %s was recorded", args[1])
	}
}

// buf appends to a byte slice.
type buf struct{ b *[]byte }

func (w *buf) Write(p []byte) (int, error) { *w.b = append(*w.b, p...); return len(p), nil }

// waitfile FILE: wait (bounded) until FILE exists — the way scripts wait for
// a background process, never with sleep.
func cmdWaitFile(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 1 {
		ts.Fatalf("usage: waitfile FILE")
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(ts.MkAbs(args[0])); err == nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	ts.Fatalf("%s did not appear within 20s", args[0])
}

// stripids IN OUT: copy IN to OUT without the lines that differ between
// two stores holding the same configuration (Guid, timestamps).
func cmdStripIDs(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: stripids IN OUT")
	}
	var kept []string
	for _, line := range strings.Split(ts.ReadFile(args[0]), "\n") {
		if strings.Contains(line, `"Guid"`) || strings.Contains(line, `"WhenCreated"`) || strings.Contains(line, `"WhenChanged"`) {
			continue
		}
		kept = append(kept, line)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[1]), []byte(strings.Join(kept, "\n")), 0o644))
}

// filemode FILE MODE: check a file's permission bits (octal).
func cmdFileMode(ts *testscript.TestScript, neg bool, args []string) {
	if len(args) != 2 {
		ts.Fatalf("usage: filemode FILE MODE")
	}
	fi, err := os.Stat(ts.MkAbs(args[0]))
	ts.Check(err)
	if got := fmt.Sprintf("%o", fi.Mode().Perm()); (got == args[1]) == neg {
		ts.Fatalf("%s has mode %s, want %s%s", args[0], got, map[bool]string{true: "not ", false: ""}[neg], args[1])
	}
}

// notexists FILE: fail if FILE exists.
func cmdNotExists(ts *testscript.TestScript, neg bool, args []string) {
	for _, a := range args {
		if _, err := os.Stat(ts.MkAbs(a)); err == nil {
			ts.Fatalf("%s exists", a)
		}
	}
}

// waitqueue IDENTITY STATUS [COUNT]: wait (bounded) until the running
// serve (at $SENDCONN_ADMIN_SOCKET) shows the queue in STATUS, holding
// COUNT messages when given; STATUS "gone" waits until it is not listed.
// Scripts wait for a state, never with sleep.
func cmdWaitQueue(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 || len(args) > 3 {
		ts.Fatalf("usage: waitqueue IDENTITY STATUS [COUNT]")
	}
	c := admin.NewClient(ts.Getenv("SENDCONN_ADMIN_SOCKET"))
	var last string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		qs, err := c.Queues(context.Background(), "")
		last = fmt.Sprint(qs, err)
		found, listed := false, false
		for _, q := range qs {
			if strings.EqualFold(q.NextHopDomain, args[0]) {
				listed = true
				if q.Status == args[1] && (len(args) < 3 || fmt.Sprint(q.MessageCount) == args[2]) {
					found = true
				}
			}
		}
		if err == nil && (found || (args[1] == "gone" && !listed)) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	ts.Fatalf("queue %s did not reach %s within 20s; last seen: %s", args[0], args[1], last)
}

// waitconfig [SOCKET [WITHIN]]: wait until the serve at SOCKET (default
// $SENDCONN_ADMIN_SOCKET) routes with the store's current revision, so a
// script can rely on a change it just made; WITHIN (default 20s) bounds
// the wait, and a script that gives it asserts how fast a change arrives.
func cmdWaitConfig(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) > 2 {
		ts.Fatalf("usage: waitconfig [SOCKET [WITHIN]]")
	}
	socket, within := ts.Getenv("SENDCONN_ADMIN_SOCKET"), 20*time.Second
	if len(args) > 0 {
		socket = ts.MkAbs(args[0])
	}
	if len(args) > 1 {
		d, err := time.ParseDuration(args[1])
		ts.Check(err)
		within = d
	}
	var want uint64
	st, err := store.Open(ts.Getenv("SENDCONN_STORE"), store.Options{})
	ts.Check(err)
	defer st.Close()
	ts.Check(st.View(context.Background(), func(tx store.Tx) error { want = tx.Revision(); return nil }))
	c := admin.NewClient(socket)
	var last string
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		status, err := c.Status(context.Background())
		if err == nil && status.StoreRevision >= want {
			return
		}
		last = fmt.Sprint(status.StoreRevision, err)
		time.Sleep(20 * time.Millisecond)
	}
	ts.Fatalf("serve at %s did not load store revision %d within %s; last seen: %s", socket, want, within, last)
}
