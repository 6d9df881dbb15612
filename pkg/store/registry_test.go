package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func servers(t *testing.T, r Registry) map[string]ServerInfo {
	t.Helper()
	list, err := r.Servers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ServerInfo{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out
}

// waitStatus polls until the server has the status, up to d.
func waitStatus(t *testing.T, r Registry, name string, want ServerStatus, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		got := servers(t, r)[name].Status
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server %s is %v after %v, want %v", name, got, d, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestRegistryLifecycle(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Backend) {
		ctx := context.Background()
		if list, err := s.Servers(ctx); err != nil || len(list) != 0 {
			t.Fatalf("empty registry: %v, %v", list, err)
		}
		info := ServerInfo{
			Name: "EX02", Fqdn: "ex02.contoso.com", Site: "Default-First-Site", Roles: []string{"hub", "frontend"},
			Address: "10.0.0.2:25", Version: "1.2.3",
		}
		up, err := s.Register(ctx, info, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		// A crashed server: its heartbeat stops without a Withdraw.
		crashCtx, crash := context.WithCancel(ctx)
		if _, err := s.Register(crashCtx, ServerInfo{Name: "ex01"}, time.Second); err != nil {
			t.Fatal(err)
		}
		list, err := s.Servers(ctx)
		if err != nil || len(list) != 2 || list[0].Name != "ex01" || list[1].Name != "EX02" {
			t.Fatalf("Servers() = %+v, %v (want ordered by name)", list, err)
		}
		got := list[1]
		if got.Status != ServerUp || got.Started.IsZero() || got.LastHeartbeat.IsZero() {
			t.Errorf("registered server: %+v", got)
		}
		got.Status, got.Started, got.LastHeartbeat = 0, time.Time{}, time.Time{}
		if !reflect.DeepEqual(got, info) {
			t.Errorf("info round trip: %+v, want %+v", got, info)
		}
		if err := s.RemoveServer(ctx, "ex02"); !errors.As(err, new(*ServerUpError)) {
			t.Errorf("removing a running server: %v", err)
		}

		crash()
		waitStatus(t, s, "ex01", ServerDown, 8*time.Second)
		// Heartbeats kept EX02 up all along.
		first := servers(t, s)["EX02"]
		if first.Status != ServerUp {
			t.Errorf("EX02 is %v while heartbeating", first.Status)
		}
		time.Sleep(500 * time.Millisecond)
		if later := servers(t, s)["EX02"]; !later.LastHeartbeat.After(first.LastHeartbeat) {
			t.Errorf("heartbeat not advancing: %v then %v", first.LastHeartbeat, later.LastHeartbeat)
		}

		if err := up.Withdraw(ctx); err != nil {
			t.Fatal(err)
		}
		if st := servers(t, s)["EX02"].Status; st != ServerStopped {
			t.Errorf("withdrawn server is %v", st)
		}
		if err := up.Withdraw(ctx); err != nil {
			t.Errorf("second Withdraw: %v", err)
		}

		for _, name := range []string{"EX01", "ex02"} {
			if err := s.RemoveServer(ctx, name); err != nil {
				t.Errorf("remove %s: %v", name, err)
			}
		}
		if err := s.RemoveServer(ctx, "EX01"); !errors.Is(err, ErrNotFound) {
			t.Errorf("remove twice: %v", err)
		}
		if list, err := s.Servers(ctx); err != nil || len(list) != 0 {
			t.Errorf("after removal: %v, %v", list, err)
		}
	})
}

// A server restarted before its old heartbeat lapsed registers the same
// name again: the new registration owns the record, the old one stops.
func TestRegistryReRegister(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Backend) {
		ctx := context.Background()
		other := s
		if _, ok := s.(*etcdBackend); ok {
			other = reopen(t, s, Options{})
		}
		old, err := s.Register(ctx, ServerInfo{Name: "EX01", Version: "1"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		renewed, err := other.Register(ctx, ServerInfo{Name: "ex01", Version: "2"}, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-old.Lost():
		case <-time.After(5 * time.Second):
			t.Fatal("the older registration did not notice it was replaced")
		}
		if err := old.Withdraw(ctx); err != nil {
			t.Fatal(err)
		}
		got := servers(t, s)["ex01"]
		if got.Status != ServerUp || got.Version != "2" {
			t.Errorf("after the old one withdrew: %+v", got)
		}
		if err := renewed.Withdraw(ctx); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, s, "ex01", ServerStopped, time.Second)
	})
}

// etcd forgets a lease when it is down (or we are cut off) past the ttl;
// the heartbeat takes a new one.
func TestEtcdLeaseReestablished(t *testing.T) {
	s := tempEtcd(t, Options{})
	reg, err := s.Register(context.Background(), ServerInfo{Name: "EX01"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Withdraw(context.Background())
	e := s.(*etcdBackend)
	resp, err := testClient(t).Get(context.Background(), e.aliveKey("EX01"))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("alive key: %v %v", resp, err)
	}
	if _, err := testClient(t).Revoke(context.Background(), clientv3.LeaseID(resp.Kvs[0].Lease)); err != nil {
		t.Fatal(err)
	}
	if st := servers(t, s)["EX01"].Status; st != ServerDown {
		t.Errorf("with the lease revoked: %v", st)
	}
	waitStatus(t, s, "EX01", ServerUp, 5*time.Second)
}

func TestServerStatusString(t *testing.T) {
	for st, want := range map[ServerStatus]string{ServerUnknown: "Unknown", ServerUp: "Up", ServerDown: "Down", ServerStopped: "Stopped"} {
		if st.String() != want {
			t.Errorf("%d: %q", st, st.String())
		}
	}
}

func TestRegisterRefusesBadArguments(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s Backend) {
		for _, c := range []struct {
			name string
			ttl  time.Duration
		}{{"", time.Second}, {"a/b", time.Second}, {"EX01", 100 * time.Millisecond}} {
			if _, err := s.Register(context.Background(), ServerInfo{Name: c.name}, c.ttl); err == nil {
				t.Errorf("Register(%q, %v) accepted", c.name, c.ttl)
			}
		}
	})
}
