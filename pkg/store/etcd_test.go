package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

func addAddressSpace(t *testing.T, s Store, name string) error {
	t.Helper()
	return s.Update(context.Background(), func(tx Tx) error {
		c, err := tx.Connector("shared")
		if err != nil {
			return err
		}
		a, err := connector.ParseAddressSpace(name)
		if err != nil {
			return err
		}
		c.AddressSpaces = append(c.AddressSpaces, a)
		return tx.UpdateConnector(&c)
	})
}

// Writers in one process, each with its own client, as several servers
// and CLIs would be.
func TestEtcdConcurrentClientsLoseNoUpdate(t *testing.T) {
	s := tempEtcd(t, Options{})
	create(t, s, newTestConnector(t, "Shared"))
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for w := 0; w < 4; w++ {
		c := reopen(t, s, Options{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				if err := addAddressSpace(t, c, fmt.Sprintf("w%d-%d.example", w, i)); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	_ = s.View(context.Background(), func(tx Tx) error {
		c, err := tx.Connector("Shared")
		if err != nil {
			t.Fatal(err)
		}
		if len(c.AddressSpaces) != 41 || tx.Revision() != 41 {
			t.Errorf("%d address spaces at revision %d, want 41 and 41", len(c.AddressSpaces), tx.Revision())
		}
		return nil
	})
}

// A commit that loses its compare runs fn again on a fresh read, which
// sees the other writer's change.
func TestEtcdConflictRerunsFn(t *testing.T) {
	s := tempEtcd(t, Options{})
	other := reopen(t, s, Options{})
	create(t, s, newTestConnector(t, "Shared"))
	runs := 0
	err := s.Update(context.Background(), func(tx Tx) error {
		runs++
		c, err := tx.Connector("shared")
		if err != nil {
			return err
		}
		if runs == 1 {
			// Another client commits between this read and its commit.
			if err := addAddressSpace(t, other, "other.example"); err != nil {
				return err
			}
		}
		a, _ := connector.ParseAddressSpace("mine.example")
		c.AddressSpaces = append(c.AddressSpaces, a)
		return tx.UpdateConnector(&c)
	})
	if err != nil {
		t.Fatal(err)
	}
	if runs != 2 {
		t.Errorf("fn ran %d times, want 2", runs)
	}
	_ = s.View(context.Background(), func(tx Tx) error {
		c, _ := tx.Connector("shared")
		var got []string
		for _, a := range c.AddressSpaces {
			got = append(got, a.String())
		}
		if s := strings.Join(got, " "); !strings.Contains(s, "other.example") || !strings.Contains(s, "mine.example") {
			t.Errorf("address spaces %v: one update was lost", got)
		}
		if tx.Revision() != 3 {
			t.Errorf("revision %d, want 3", tx.Revision())
		}
		return nil
	})
}

// closedPort is a port on 127.0.0.1 that nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestEtcdUnreachableIsUnavailable(t *testing.T) {
	const password = "pw-Zq7-never-shown"
	spec := fmt.Sprintf("etcd://127.0.0.1:%d/sendconn", closedPort(t))
	for _, opts := range []Options{
		{LockTimeout: 300 * time.Millisecond},
		{LockTimeout: 300 * time.Millisecond, Etcd: EtcdOptions{Username: "root", Password: connector.NewSecret(password)}},
	} {
		s, err := Open(spec, opts)
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		for name, op := range map[string]func() error{
			"view":    func() error { return s.View(context.Background(), func(Tx) error { return nil }) },
			"update":  func() error { return s.Update(context.Background(), func(Tx) error { return nil }) },
			"servers": func() error { _, err := s.Servers(context.Background()); return err },
			"register": func() error {
				_, err := s.Register(context.Background(), ServerInfo{Name: "EX01"}, time.Second)
				return err
			},
		} {
			err := op()
			if !errors.Is(err, ErrUnavailable) {
				t.Errorf("%s: want ErrUnavailable, got %v", name, err)
				continue
			}
			if !strings.Contains(err.Error(), "store "+spec+" is unavailable") || strings.Contains(err.Error(), password) {
				t.Errorf("%s: %v", name, err)
			}
		}
		if waited := time.Since(start); waited > 4*time.Second {
			t.Errorf("four operations took %v with a 300ms timeout", waited)
		}
		if strings.Contains(s.String(), password) || strings.Contains(fmt.Sprintf("%v %+v %#v", opts, opts, opts), password) {
			t.Error("the password can be printed")
		}
		s.Close()
	}
}

// An Update that exceeds etcd's operations per Txn fails whole.
func TestEtcdTooManyOperations(t *testing.T) {
	s := tempEtcd(t, Options{})
	create(t, s, newTestConnector(t, "First"))
	before := rawDump(t, s)
	err := s.Update(context.Background(), func(tx Tx) error {
		for i := 0; i < 50; i++ { // 3 keys each
			c := newTestConnector(t, fmt.Sprintf("Bulk %d", i))
			if err := tx.CreateConnector(&c, permissions.DefaultACL("CONTOSO")); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "more than etcd takes in one transaction") || !strings.Contains(err.Error(), "nothing was written") {
		t.Fatalf("want a clear refusal, got %v", err)
	}
	if rawDump(t, s) != before {
		t.Error("a refused Update wrote something")
	}
}

// waitFire waits up to d for the channel to fire; it reports false on a
// timeout, and fails on a closed channel.
func waitFire(t *testing.T, ch <-chan struct{}, d time.Duration) bool {
	t.Helper()
	select {
	case _, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return true
	case <-time.After(d):
		return false
	}
}

func TestEtcdWatch(t *testing.T) {
	s := tempEtcd(t, Options{})
	other := reopen(t, s, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx)
	if !waitFire(t, ch, 5*time.Second) {
		t.Fatal("no fire once the watch was set up")
	}

	// Registry heartbeats (ttl 1s: every 333ms) are not configuration.
	reg, err := s.Register(context.Background(), ServerInfo{Name: "EX01"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if waitFire(t, ch, 1200*time.Millisecond) {
		t.Error("a registration or heartbeat fired the watch")
	}
	if err := reg.Withdraw(context.Background()); err != nil {
		t.Fatal(err)
	}

	create(t, other, newTestConnector(t, "From elsewhere"))
	if !waitFire(t, ch, 5*time.Second) {
		t.Fatal("no fire after another client's Update")
	}
	// Coalesced: two writes, at least one fire, and no backlog after.
	create(t, other, newTestConnector(t, "Second"))
	create(t, other, newTestConnector(t, "Third"))
	if !waitFire(t, ch, 5*time.Second) {
		t.Fatal("no fire after two more Updates")
	}
	waitFire(t, ch, 200*time.Millisecond)
	if waitFire(t, ch, 200*time.Millisecond) {
		t.Error("fires did not coalesce")
	}
	// A no-op Update writes nothing, so fires nothing.
	_ = other.Update(context.Background(), func(Tx) error { return nil })
	if waitFire(t, ch, 300*time.Millisecond) {
		t.Error("a no-op Update fired the watch")
	}

	cancel()
	select {
	case _, ok := <-ch:
		if ok {
			if _, ok := <-ch; ok {
				t.Error("channel not closed after ctx ended")
			}
		}
	case <-time.After(5 * time.Second):
		t.Error("channel not closed after ctx ended")
	}
}

// A dedicated etcd that the test stops and starts again: the watch must
// pick up after the restart, and authentication works and keeps the
// password out of sight.
func TestEtcdRestartAndAuth(t *testing.T) {
	srv, err := newTestEtcdServer(filepath.Join(t.TempDir(), "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.stop()
	spec := fmt.Sprintf("etcd://%s/sendconn", srv.addr())
	s, err := Open(spec, Options{LockTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	other, err := Open(spec, Options{LockTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch := s.Watch(ctx)
	if !waitFire(t, ch, 5*time.Second) {
		t.Fatal("no fire once the watch was set up")
	}
	create(t, other, newTestConnector(t, "Before"))
	if !waitFire(t, ch, 5*time.Second) {
		t.Fatal("no fire before the restart")
	}

	// Stopping takes etcd's request timeout (about 5s): it waits for the
	// open watch stream before cutting it.
	srv.stop()
	probe, err := Open(spec, Options{LockTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	if err := probe.View(context.Background(), func(Tx) error { return nil }); !errors.Is(err, ErrUnavailable) {
		t.Errorf("view with etcd down: %v", err)
	}
	if err := srv.start(); err != nil {
		t.Fatal(err)
	}
	waitFire(t, ch, 500*time.Millisecond) // a restarted watch may fire once
	create(t, other, newTestConnector(t, "After"))
	if !waitFire(t, ch, 10*time.Second) {
		t.Fatal("no fire after etcd restarted")
	}

	// Turn authentication on and log in.
	const password = "pw-9fK-secret"
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	actx, acancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer acancel()
	if _, err := cli.UserAdd(actx, "root", password); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.UserGrantRole(actx, "root", "root"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.AuthEnable(actx); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte(password+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	authed, err := Open(spec, Options{LockTimeout: 2 * time.Second, Etcd: EtcdOptions{Username: "root", PasswordFile: pwFile}})
	if err != nil {
		t.Fatal(err)
	}
	defer authed.Close()
	if err := authed.View(context.Background(), func(tx Tx) error {
		list, err := tx.Connectors()
		if len(list) != 2 {
			t.Errorf("connectors as root: %v", list)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	wrong, err := Open(spec, Options{LockTimeout: 2 * time.Second, Etcd: EtcdOptions{Username: "root", Password: connector.NewSecret(password + "-wrong")}})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	err = wrong.View(context.Background(), func(Tx) error { return nil })
	if err == nil || strings.Contains(err.Error(), password) || errors.Is(err, ErrUnavailable) {
		t.Errorf("wrong password: %v", err)
	}
}

// The registry's keys live outside the config range and never bump the
// configuration's revision.
func TestRegistryDoesNotTouchConfiguration(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Backend) {
		create(t, s, newTestConnector(t, "A"))
		before := rawConfig(t, s)
		reg, err := s.Register(context.Background(), ServerInfo{Name: "EX01"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond) // a heartbeat or so
		if err := reg.Withdraw(context.Background()); err != nil {
			t.Fatal(err)
		}
		after := rawConfig(t, s)
		if fmt.Sprint(before) != fmt.Sprint(after) {
			t.Errorf("registry changed the configuration:\n%v\n%v", before, after)
		}
	})
}

// Goroutines a registration started must all be gone after Withdraw.
func TestRegistrationStops(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Backend) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		reg, err := s.Register(ctx, ServerInfo{Name: "EX01"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var failures atomic.Int32
		for i := 0; i < 4; i++ { // concurrent Withdraws are safe
			wg.Add(1)
			go func() {
				defer wg.Done()
				if reg.Withdraw(context.Background()) != nil {
					failures.Add(1)
				}
			}()
		}
		wg.Wait()
		if failures.Load() != 0 {
			t.Error("a concurrent Withdraw failed")
		}
		select {
		case <-reg.(*registration).done:
		default:
			t.Error("heartbeat goroutine still running after Withdraw")
		}

		reg2, err := s.Register(ctx, ServerInfo{Name: "EX02"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		select {
		case <-reg2.(*registration).done:
		case <-time.After(5 * time.Second):
			t.Error("heartbeat goroutine still running after ctx ended")
		}
	})
}
