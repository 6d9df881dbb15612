package store

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// The conformance tests run against both backends: bbolt on a temporary
// file, etcd on one embedded server per test binary (started in TestMain,
// on 127.0.0.1 only), each test under its own key prefix.

// testEtcd is the embedded server's client URL, "127.0.0.1:port".
var testEtcd string

// testEtcdServer is an etcd listening on 127.0.0.1 only: embedded, or,
// when STORE_TEST_ETCD names an etcd binary (Debian's etcd-server is
// 3.4), that binary, to check the client against an older server.
type testEtcdServer struct {
	dir                  string
	clientPort, peerPort int
	e                    *embed.Etcd
	cmd                  *exec.Cmd
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func newTestEtcdServer(dir string) (*testEtcdServer, error) {
	s := &testEtcdServer{dir: dir}
	var err error
	if s.clientPort, err = freePort(); err != nil {
		return nil, err
	}
	if s.peerPort, err = freePort(); err != nil {
		return nil, err
	}
	return s, s.start()
}

func (s *testEtcdServer) addr() string { return fmt.Sprintf("127.0.0.1:%d", s.clientPort) }

func (s *testEtcdServer) start() error {
	if bin := os.Getenv("STORE_TEST_ETCD"); bin != "" {
		return s.startBinary(bin)
	}
	cfg := embed.NewConfig()
	cfg.Name = "test"
	cfg.Dir = s.dir
	curl := url.URL{Scheme: "http", Host: s.addr()}
	purl := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", s.peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{curl}, []url.URL{curl}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{purl}, []url.URL{purl}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	// Fast elections and no fsync keep the tests quick; a 10 ms tick also
	// makes etcd's minimum lease TTL (1.5 election timeouts) well under a
	// second, so a 1 s registry ttl means 1 s.
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.UnsafeNoFsync = true
	cfg.Logger = "zap"
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return err
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return fmt.Errorf("embedded etcd did not become ready")
	}
	s.e = e
	return nil
}

func (s *testEtcdServer) startBinary(bin string) error {
	curl := "http://" + s.addr()
	purl := fmt.Sprintf("http://127.0.0.1:%d", s.peerPort)
	cmd := exec.Command(bin, "--name", "test", "--data-dir", s.dir,
		"--listen-client-urls", curl, "--advertise-client-urls", curl,
		"--listen-peer-urls", purl, "--initial-advertise-peer-urls", purl,
		"--initial-cluster", "test="+purl, "--heartbeat-interval", "10", "--election-timeout", "100",
		"--log-level", "error", "--logger", "zap")
	if err := cmd.Start(); err != nil {
		return err
	}
	s.cmd = cmd
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.addr()}, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err = cli.Get(ctx, "ready")
		cancel()
		if err == nil {
			return nil
		}
	}
	s.stop()
	return fmt.Errorf("%s did not become ready: %v", bin, err)
}

func (s *testEtcdServer) stop() {
	if s.e != nil {
		s.e.Close()
		s.e = nil
	}
	if s.cmd != nil {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		_ = s.cmd.Wait()
		s.cmd = nil
	}
}

// runTests starts the shared etcd around the tests.
func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "store-test-etcd-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	srv, err := newTestEtcdServer(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "start embedded etcd:", err)
		return 1
	}
	defer srv.stop()
	testEtcd = srv.addr()
	return m.Run()
}

var prefixSeq atomic.Int64

var unsafePrefixChars = regexp.MustCompile(`[^A-Za-z0-9_-]+`)

// etcdSpec is a fresh prefix on the shared server.
func etcdSpec(t *testing.T) string {
	name := unsafePrefixChars.ReplaceAllString(t.Name(), "-")
	return fmt.Sprintf("etcd://%s/test/%s-%d", testEtcd, name, prefixSeq.Add(1))
}

func tempEtcd(t *testing.T, opts Options) Backend {
	t.Helper()
	if opts.LockTimeout == 0 {
		opts.LockTimeout = 5 * time.Second
	}
	s, err := Open(etcdSpec(t), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// reopen is a second client on the same store, as another process would
// have.
func reopen(t *testing.T, s Backend, opts Options) Backend {
	t.Helper()
	s2, err := Open(s.String(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2
}

// forEachBackend runs a backend-independent test on each backend.
func forEachBackend(t *testing.T, fn func(t *testing.T, s Backend)) {
	t.Run("bbolt", func(t *testing.T) { fn(t, tempStore(t)) })
	t.Run("etcd", func(t *testing.T) { fn(t, tempEtcd(t, Options{})) })
}

// testClient is a raw etcd client for looking under the store.
func testClient(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{testEtcd}, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// rawGet reads one configuration key the way the backend stores it,
// bypassing the object logic.
func rawGet(t *testing.T, s Backend, bucket, key []byte) []byte {
	t.Helper()
	switch s := s.(type) {
	case *Bolt:
		db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var v []byte
		_ = db.View(func(btx *bolt.Tx) error {
			if b := btx.Bucket(bucket); b != nil {
				if got := b.Get(key); got != nil {
					v = append([]byte{}, got...)
				}
			}
			return nil
		})
		return v
	case *etcdBackend:
		resp, err := testClient(t).Get(context.Background(), s.configKey(bucket, key))
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 {
			return nil
		}
		return append([]byte{}, resp.Kvs[0].Value...)
	}
	t.Fatalf("unknown backend %T", s)
	return nil
}

// rawPut writes one configuration key behind the object logic's back.
func rawPut(t *testing.T, s Backend, bucket, key, value []byte) {
	t.Helper()
	switch s := s.(type) {
	case *Bolt:
		if err := ensureDir(filepath.Dir(s.Path())); err != nil {
			t.Fatal(err)
		}
		db, err := bolt.Open(s.Path(), 0o600, &bolt.Options{Timeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		err = db.Update(func(btx *bolt.Tx) error {
			b, err := btx.CreateBucketIfNotExists(bucket)
			if err != nil {
				return err
			}
			return b.Put(key, value)
		})
		if err != nil {
			t.Fatal(err)
		}
	case *etcdBackend:
		if _, err := testClient(t).Put(context.Background(), s.configKey(bucket, key), string(value)); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("unknown backend %T", s)
	}
}

// rawDump is everything the backend holds for the store, to tell "not
// touched at all" from "written with the same content": the file's bytes,
// or every key under the prefix with its value and ModRevision.
func rawDump(t *testing.T, s Backend) string {
	t.Helper()
	switch s := s.(type) {
	case *Bolt:
		data, err := os.ReadFile(s.Path())
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		return string(data)
	case *etcdBackend:
		resp, err := testClient(t).Get(context.Background(), s.prefix+"/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, kv := range resp.Kvs {
			lines = append(lines, fmt.Sprintf("%s@%d=%q", kv.Key, kv.ModRevision, kv.Value))
		}
		sort.Strings(lines)
		return strings.Join(lines, "\n")
	}
	t.Fatalf("unknown backend %T", s)
	return ""
}

// rawConfig is every configuration key and value, the way Copy must
// reproduce them.
func rawConfig(t *testing.T, s Backend) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := s.(copier).viewKV(context.Background(), func(kv kvTx) error {
		for _, b := range allBuckets {
			err := kv.forEach(b, func(k, v []byte) error {
				out[string(b)+"/"+string(k)] = string(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
