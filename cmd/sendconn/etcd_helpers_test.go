package main

import (
	"crypto/x509"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// etcdServerMain is the etcdserver script command: etcdserver DATADIR
// READYFILE runs an etcd on free 127.0.0.1 ports (the same ones again when
// DATADIR was used before) until SIGINT/SIGTERM and writes its client
// address to READYFILE once it serves. It is etcd
// embedded in the test binary, or, when SENDCONN_TEST_ETCD names an etcd
// binary (Debian's etcd-server in CI), that binary.
func etcdServerMain() {
	dir, ready := os.Args[1], os.Args[2]
	// A restart on the same data directory keeps the ports: the member's
	// peer address is part of its data, and the servers know the client
	// address.
	var client, peer string
	portsFile := filepath.Join(dir, "ports")
	if b, err := os.ReadFile(portsFile); err == nil {
		fmt.Sscan(string(b), &client, &peer)
	} else {
		client = fmt.Sprintf("127.0.0.1:%d", freeTCPPort())
		peer = fmt.Sprintf("127.0.0.1:%d", freeTCPPort())
		if err := os.MkdirAll(dir, 0o700); err != nil {
			fatal(err)
		}
		if err := os.WriteFile(portsFile, []byte(client+" "+peer+"\n"), 0o600); err != nil {
			fatal(err)
		}
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	if bin := os.Getenv("SENDCONN_TEST_ETCD"); bin != "" {
		cmd := exec.Command(bin, "--name", "test", "--data-dir", dir,
			"--listen-client-urls", "http://"+client, "--advertise-client-urls", "http://"+client,
			"--listen-peer-urls", "http://"+peer, "--initial-advertise-peer-urls", "http://"+peer,
			"--initial-cluster", "test=http://"+peer, "--log-level", "error")
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Start(); err != nil {
			fatal(err)
		}
		// Ready when the client port answers.
		deadline := time.Now().Add(30 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", client, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				fatal(fmt.Errorf("%s did not listen on %s within 30s", bin, client))
			}
			time.Sleep(50 * time.Millisecond)
		}
		if err := writeAtomic(ready, client); err != nil {
			fatal(err)
		}
		<-sig
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		os.Exit(0)
	}
	e, err := startEmbeddedEtcd(dir, client, peer)
	if err != nil {
		fatal(err)
	}
	if err := writeAtomic(ready, client); err != nil {
		fatal(err)
	}
	<-sig
	e.Close()
	os.Exit(0)
}

// startEmbeddedEtcd runs a one-member etcd on the given 127.0.0.1
// addresses and returns once it serves.
func startEmbeddedEtcd(dir, client, peer string) (*embed.Etcd, error) {
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = "test", dir
	curl, purl := url.URL{Scheme: "http", Host: client}, url.URL{Scheme: "http", Host: peer}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.Logger, cfg.LogLevel = "zap", "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, err
	}
	select {
	case <-e.Server.ReadyNotify():
		return e, nil
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd did not become ready")
	}
}

// bboltOnlyScripts test what only a store file has: its lock, its file
// mode, its path in messages.
var bboltOnlyScripts = map[string]bool{"store_busy": true, "multi_server": true}

// TestScriptsOnEtcd runs the scripts again with the store on etcd (an
// etcd embedded in this test process, each script under its own prefix):
// every command must behave the same on both stores.
func TestScriptsOnEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	client := fmt.Sprintf("127.0.0.1:%d", freeTCPPort())
	e, err := startEmbeddedEtcd(t.TempDir(), client, fmt.Sprintf("127.0.0.1:%d", freeTCPPort()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	var files []string
	names, err := filepath.Glob("testdata/script/*.txtar")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range names {
		if !bboltOnlyScripts[strings.TrimSuffix(filepath.Base(f), ".txtar")] {
			files = append(files, f)
		}
	}
	p := scriptParams("", files...)
	p.Condition = storeCondition(true)
	setup := p.Setup
	var seq atomic.Int64
	p.Setup = func(env *testscript.Env) error {
		if err := setup(env); err != nil {
			return err
		}
		env.Setenv("SENDCONN_STORE", fmt.Sprintf("etcd://%s/script%d", client, seq.Add(1)))
		return nil
	}
	testscript.Run(t, p)
}

func freeTCPPort() int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// cmdGenOrg is genorg DIR NAME...: an organization CA (DIR/ca.pem) and,
// per NAME, a certificate valid for it for server and client
// authentication (DIR/NAME.pem, DIR/NAME.key), as organization.* wants.
func cmdGenOrg(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) < 2 {
		ts.Fatalf("usage: genorg DIR NAME...")
	}
	pki := newScriptPKI(ts, args[0], "sendconn test organization CA")
	for _, name := range args[1:] {
		pki.issue(name+".pem", name+".key", []string{name}, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	}
}
