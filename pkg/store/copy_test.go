package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

// fill gives a store a bit of everything: connectors with and without a
// password, a changed access list, accepted domains.
func fill(t *testing.T, s Backend, connectors int) {
	t.Helper()
	ctx := context.Background()
	c := newTestConnector(t, "To Fabrikam")
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("copy-pw")}
	c = create(t, s, c)
	for i := 1; i < connectors; i++ {
		create(t, s, newTestConnector(t, fmt.Sprintf("Connector %03d", i)))
	}
	acl, _, err := permissions.DefaultACL("CONTOSO").Remove(permissions.ACE{User: permissions.AnonymousLogon, ExtendedRights: permissions.RightsOf(permissions.SendHeadersRouting)})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.PutACL(c.Guid, acl) }); err != nil {
		t.Fatal(err)
	}
	for _, d := range []connector.AcceptedDomain{newDomain(t, "Contoso", "contoso.com", "Authoritative"), newDomain(t, "Fabrikam", "fabrikam.com", "InternalRelay")} {
		if err := s.Update(ctx, func(tx Tx) error { return tx.CreateAcceptedDomain(&d) }); err != nil {
			t.Fatal(err)
		}
	}
}

// snapshotOf is what `get` would show: every object, passwords included.
type storeView struct {
	Connectors []connector.SendConnector
	ACLs       map[string]permissions.ACL
	Passwords  map[string]string
	Domains    []connector.AcceptedDomain
}

func snapshotOf(t *testing.T, s Store) storeView {
	t.Helper()
	v := storeView{ACLs: map[string]permissions.ACL{}, Passwords: map[string]string{}}
	err := s.View(context.Background(), func(tx Tx) error {
		var err error
		if v.Connectors, err = tx.Connectors(); err != nil {
			return err
		}
		for _, c := range v.Connectors {
			if v.ACLs[c.Guid], err = tx.ACL(c.Guid); err != nil {
				return err
			}
			if c.AuthenticationCredential != nil {
				v.Passwords[c.Guid] = c.AuthenticationCredential.Password.Reveal()
			}
		}
		v.Domains, err = tx.AcceptedDomains()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func withoutRevision(m map[string]string) map[string]string {
	delete(m, "meta/revision")
	return m
}

func TestCopyRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := tempStore(t)
	fill(t, src, 3)
	want := snapshotOf(t, src)
	if want.Passwords[want.Connectors[len(want.Connectors)-1].Guid] != "copy-pw" {
		t.Fatalf("fixture lacks its password: %+v", want.Passwords)
	}

	mid := tempEtcd(t, Options{})
	stats, err := Copy(ctx, src, mid)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Connectors != 3 || stats.AcceptedDomains != 2 || stats.Transactions != 1 || stats.Keys != len(rawConfig(t, src)) {
		t.Errorf("stats %+v", stats)
	}
	if got := snapshotOf(t, mid); !reflect.DeepEqual(got, want) {
		t.Errorf("bbolt → etcd:\n got %+v\nwant %+v", got, want)
	}
	if got, w := rawConfig(t, mid), rawConfig(t, src); !reflect.DeepEqual(got, w) {
		t.Errorf("keys differ after bbolt → etcd:\n got %v\nwant %v", got, w)
	}

	back := OpenBolt(filepath.Join(t.TempDir(), "back.db"), Options{})
	if _, err := Copy(ctx, mid, back); err != nil {
		t.Fatal(err)
	}
	if got := snapshotOf(t, back); !reflect.DeepEqual(got, want) {
		t.Errorf("etcd → bbolt:\n got %+v\nwant %+v", got, want)
	}
	if got, w := rawConfig(t, back), rawConfig(t, src); !reflect.DeepEqual(got, w) {
		t.Errorf("keys differ after the round trip:\n got %v\nwant %v", got, w)
	}
	// The registry is not configuration.
	reg, err := src.Register(ctx, ServerInfo{Name: "EX01"}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Withdraw(ctx)
	other := tempEtcd(t, Options{})
	if _, err := Copy(ctx, src, other); err != nil {
		t.Fatal(err)
	}
	if list, _ := other.Servers(ctx); len(list) != 0 {
		t.Errorf("registry copied: %v", list)
	}
}

func TestCopyRefusesNonEmptyTarget(t *testing.T) {
	ctx := context.Background()
	src := tempStore(t)
	fill(t, src, 1)
	forEachBackend(t, func(t *testing.T, dst Backend) {
		create(t, dst, newTestConnector(t, "Already here"))
		before := rawDump(t, dst)
		_, err := Copy(ctx, src, dst)
		if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "copy to "+dst.String()) {
			t.Errorf("copy onto a connector: %v", err)
		}
		if rawDump(t, dst) != before {
			t.Error("refused copy wrote something")
		}
		// Only an accepted domain counts too.
		dst2 := reopenFresh(t, dst)
		d := newDomain(t, "Contoso", "contoso.com", "")
		if err := dst2.Update(ctx, func(tx Tx) error { return tx.CreateAcceptedDomain(&d) }); err != nil {
			t.Fatal(err)
		}
		if _, err := Copy(ctx, src, dst2); !errors.Is(err, ErrExists) {
			t.Errorf("copy onto an accepted domain: %v", err)
		}
	})
	if _, err := Copy(ctx, src, src); err == nil {
		t.Error("copy onto itself accepted")
	}
	if _, err := Copy(ctx, tempStore(t), tempEtcd(t, Options{})); !errors.Is(err, ErrNotFound) {
		t.Errorf("copy from nothing: %v", err)
	}
}

// reopenFresh is a new empty store of the same kind.
func reopenFresh(t *testing.T, s Backend) Backend {
	if _, ok := s.(*Bolt); ok {
		return tempStore(t)
	}
	return tempEtcd(t, Options{})
}

// An emptied store (written, then everything deleted) is a fine target,
// and its revision keeps growing.
func TestCopyIntoEmptiedStoreKeepsRevisionGrowing(t *testing.T) {
	ctx := context.Background()
	src := tempStore(t)
	fill(t, src, 1)
	srcRev := revision(t, src)
	forEachBackend(t, func(t *testing.T, dst Backend) {
		for i := 0; i < int(srcRev)+2; i++ {
			c := create(t, dst, newTestConnector(t, "Temp"))
			if err := dst.Update(ctx, func(tx Tx) error { return tx.DeleteConnector(c.Guid) }); err != nil {
				t.Fatal(err)
			}
		}
		before := revision(t, dst)
		if _, err := Copy(ctx, src, dst); err != nil {
			t.Fatal(err)
		}
		if after := revision(t, dst); after != before+1 {
			t.Errorf("revision %d → %d (source %d)", before, after, srcRev)
		}
		if got, want := snapshotOf(t, dst), snapshotOf(t, src); !reflect.DeepEqual(got, want) {
			t.Errorf("copy into an emptied store:\n got %+v\nwant %+v", got, want)
		}
	})
}

// More keys than one Txn takes: the copy goes in batches, and an
// interrupted one is detected and can be run again.
func TestCopyToEtcdInBatches(t *testing.T) {
	ctx := context.Background()
	src := tempStore(t)
	fill(t, src, 60) // ~250 keys
	dst := tempEtcd(t, Options{})

	// An interrupted copy: some keys and the marker, no schema.
	rawPut(t, dst, bucketMeta, keyCopying, []byte("an-old-copy"))
	rawPut(t, dst, bucketConnectors, []byte("00000000-0000-4000-8000-000000000000"), []byte(`{"Name":"Half"}`))
	err := dst.View(ctx, func(Tx) error { return nil })
	if err == nil || !strings.Contains(err.Error(), "a copy into it was interrupted") {
		t.Errorf("View of an interrupted copy: %v", err)
	}
	if err := dst.Update(ctx, func(Tx) error { return nil }); err == nil {
		t.Error("Update of an interrupted copy accepted")
	}

	stats, err := Copy(ctx, src, dst)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Transactions < 3 || stats.Connectors != 60 {
		t.Errorf("stats %+v", stats)
	}
	if got, want := rawConfig(t, dst), rawConfig(t, src); !reflect.DeepEqual(withoutRevision(got), withoutRevision(want)) {
		t.Errorf("batched copy differs: %d keys, want %d", len(got), len(want))
	}
	if got, want := snapshotOf(t, dst), snapshotOf(t, src); !reflect.DeepEqual(got, want) {
		t.Error("batched copy shows differently")
	}
	if v := rawGet(t, dst, bucketMeta, keyCopying); v != nil {
		t.Errorf("copy marker left behind: %s", v)
	}
}

// An older source is migrated before it is copied.
func TestCopyMigratesSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sendconn.db")
	copyFile(t, "testdata/schema1.db", path)
	src := OpenBolt(path, Options{OrganizationDomain: "CONTOSO"})
	dst := tempEtcd(t, Options{})
	if _, err := Copy(context.Background(), src, dst); err != nil {
		t.Fatal(err)
	}
	if v := rawGet(t, dst, bucketMeta, keySchema); binary.BigEndian.Uint32(v) != currentSchema {
		t.Errorf("target schema %x", v)
	}
	view := snapshotOf(t, dst)
	if len(view.Connectors) != 2 || len(view.ACLs) != 2 {
		t.Errorf("migrated copy: %+v", view)
	}
}
