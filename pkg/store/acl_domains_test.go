package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

func readACL(t *testing.T, s Store, guid string) (permissions.ACL, error) {
	t.Helper()
	var acl permissions.ACL
	err := s.View(context.Background(), func(tx Tx) error {
		var err error
		acl, err = tx.ACL(guid)
		return err
	})
	return acl, err
}

func TestACLLivesWithItsConnector(t *testing.T) { forEachBackend(t, testACLLivesWithItsConnector) }

func testACLLivesWithItsConnector(t *testing.T, s Backend) {
	ctx := context.Background()
	c := create(t, s, newTestConnector(t, "To Internet"))
	acl, err := readACL(t, s, c.Guid)
	if err != nil || !reflect.DeepEqual(acl, permissions.DefaultACL("CONTOSO")) {
		t.Fatalf("new connector's ACL = %v, %v", acl, err)
	}

	// A change is stored and bumps the revision.
	changed, _, err := acl.Remove(permissions.ACE{User: permissions.AnonymousLogon, ExtendedRights: permissions.RightsOf(permissions.SendHeadersRouting)})
	if err != nil {
		t.Fatal(err)
	}
	before := revision(t, s)
	if err := s.Update(ctx, func(tx Tx) error { return tx.PutACL(c.Guid, changed) }); err != nil {
		t.Fatal(err)
	}
	if after := revision(t, s); after != before+1 {
		t.Errorf("revision %d → %d after PutACL", before, after)
	}

	// A rename keeps it.
	c.Name = "Renamed"
	if err := s.Update(ctx, func(tx Tx) error { return tx.UpdateConnector(&c) }); err != nil {
		t.Fatal(err)
	}
	acl, err = readACL(t, s, c.Guid)
	if err != nil || !reflect.DeepEqual(acl, changed) {
		t.Errorf("ACL after rename = %v, %v; want %v", acl, err, changed)
	}
	if acl.Effective(permissions.AnonymousLogon) != 0 {
		t.Errorf("anonymous kept %v after the recipe", acl.Effective(permissions.AnonymousLogon))
	}

	// A delete takes it, and a connector that is gone has no ACL to put.
	if err := s.Update(ctx, func(tx Tx) error { return tx.DeleteConnector(c.Guid) }); err != nil {
		t.Fatal(err)
	}
	if _, err := readACL(t, s, c.Guid); !errors.Is(err, ErrNotFound) {
		t.Errorf("ACL of a deleted connector: %v", err)
	}
	err = s.Update(ctx, func(tx Tx) error { return tx.PutACL(c.Guid, changed) })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("PutACL on a deleted connector: %v", err)
	}
	if v := rawGet(t, s, bucketACLs, []byte(c.Guid)); v != nil {
		t.Errorf("acls/%s left behind: %s", c.Guid, v)
	}
}

func TestEmptiedACLStaysAList(t *testing.T) { forEachBackend(t, testEmptiedACLStaysAList) }

func testEmptiedACLStaysAList(t *testing.T, s Backend) {
	c := create(t, s, newTestConnector(t, "Bare"))
	if err := s.Update(context.Background(), func(tx Tx) error { return tx.PutACL(c.Guid, nil) }); err != nil {
		t.Fatal(err)
	}
	acl, err := readACL(t, s, c.Guid)
	if err != nil || len(acl) != 0 {
		t.Errorf("emptied ACL = %v, %v", acl, err)
	}
}

func revision(t *testing.T, s Store) uint64 {
	t.Helper()
	var rev uint64
	if err := s.View(context.Background(), func(tx Tx) error { rev = tx.Revision(); return nil }); err != nil {
		t.Fatal(err)
	}
	return rev
}

func newDomain(t *testing.T, name, domain, typ string) connector.AcceptedDomain {
	t.Helper()
	d, err := connector.NewAcceptedDomain(name, domain, typ)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAcceptedDomains(t *testing.T) { forEachBackend(t, testAcceptedDomains) }

func testAcceptedDomains(t *testing.T, s Backend) {
	ctx := context.Background()
	add := func(d connector.AcceptedDomain) (connector.AcceptedDomain, error) {
		err := s.Update(ctx, func(tx Tx) error { return tx.CreateAcceptedDomain(&d) })
		return d, err
	}
	contoso, err := add(newDomain(t, "Contoso", "Contoso.COM", "Authoritative"))
	if err != nil || !contoso.Default || contoso.DomainName != "contoso.com" || !connector.LooksLikeGuid(contoso.Guid) {
		t.Fatalf("first domain = %+v, %v (want the default, lower-cased)", contoso, err)
	}
	sub, err := add(newDomain(t, "Contoso subdomains", "*.corp.contoso.com", "InternalRelay"))
	if err != nil || sub.Default {
		t.Fatalf("second domain = %+v, %v", sub, err)
	}
	for _, dup := range []connector.AcceptedDomain{
		newDomain(t, "CONTOSO", "other.example", ""),
		newDomain(t, "Other", "CONTOSO.com", ""),
	} {
		if _, err := add(dup); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate %+v: %v", dup, err)
		}
	}
	fab := newDomain(t, "Fabrikam", "fabrikam.com", "ExternalRelay")
	fab.Default = true
	if _, err := add(fab); err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx Tx) error {
		all, err := tx.AcceptedDomains()
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		defaults := 0
		for _, d := range all {
			names = append(names, d.Name)
			if d.Default {
				defaults++
			}
		}
		if want := []string{"Contoso", "Contoso subdomains", "Fabrikam"}; !reflect.DeepEqual(names, want) {
			t.Errorf("AcceptedDomains() names = %v, want %v", names, want)
		}
		if defaults != 1 {
			t.Errorf("%d default domains, want 1", defaults)
		}
		for _, id := range []string{"contoso", "CONTOSO.COM", contoso.Guid, "{" + contoso.Guid + "}"} {
			if d, err := tx.AcceptedDomain(id); err != nil || d.Guid != contoso.Guid || d.Default {
				t.Errorf("AcceptedDomain(%q) = %+v, %v", id, d, err)
			}
		}
		if _, err := tx.AcceptedDomain("nope"); !errors.Is(err, ErrNotFound) || err.Error() != `accepted domain "nope" not found` {
			t.Errorf("missing domain: %v", err)
		}
		return nil
	})
	if err := s.Update(ctx, func(tx Tx) error { return tx.DeleteAcceptedDomain(sub.Guid) }); err != nil {
		t.Fatal(err)
	}
	err = s.Update(ctx, func(tx Tx) error { return tx.DeleteAcceptedDomain(sub.Guid) })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("second delete: %v", err)
	}
}

// testdata/schema1.db was written by the first released schema: connectors
// "To Internet" and "To Fabrikam.com" (with a BasicAuth credential), no
// access lists, no accepted domains. Opening it must migrate it in place.
// On etcd, its keys are loaded under a prefix as they are.
func TestMigrateSchema1(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "sendconn.db")
		copyFile(t, "testdata/schema1.db", path)
		testMigrateSchema1(t, OpenBolt(path, Options{OrganizationDomain: "CONTOSO"}))
	})
	t.Run("etcd", func(t *testing.T) {
		s := tempEtcd(t, Options{OrganizationDomain: "CONTOSO"})
		loadBoltFile(t, "testdata/schema1.db", s)
		testMigrateSchema1(t, s)
	})
}

// loadBoltFile puts every key of a bbolt file's buckets into an etcd store.
func loadBoltFile(t *testing.T, path string, s Backend) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_ = db.View(func(btx *bolt.Tx) error {
		return btx.ForEach(func(bucket []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				rawPut(t, s, bucket, k, v)
				return nil
			})
		})
	})
}

func testMigrateSchema1(t *testing.T, s Backend) {
	ctx := context.Background()
	revBefore := rawGet(t, s, bucketMeta, keyRevision)
	var guids []string
	err := s.View(ctx, func(tx Tx) error {
		list, err := tx.Connectors()
		if err != nil {
			return err
		}
		for _, c := range list {
			guids = append(guids, c.Guid)
			acl, err := tx.ACL(c.Guid)
			if err != nil {
				return err
			}
			if !reflect.DeepEqual(acl, permissions.DefaultACL("CONTOSO")) {
				t.Errorf("%s: migrated ACL = %v", c.Name, acl)
			}
		}
		fab, err := tx.Connector("to fabrikam.com")
		if err != nil {
			return err
		}
		if cred := fab.AuthenticationCredential; cred == nil || cred.Password.Reveal() != "secret-pw" {
			t.Errorf("credential lost in migration: %+v", cred)
		}
		domains, err := tx.AcceptedDomains()
		if err != nil || len(domains) != 0 {
			t.Errorf("accepted domains after migration = %v, %v", domains, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(guids) != 2 {
		t.Fatalf("connectors after migration: %v", guids)
	}
	if v := rawGet(t, s, bucketMeta, keySchema); binary.BigEndian.Uint32(v) != currentSchema {
		t.Errorf("schema after migration = %x, want %d", v, currentSchema)
	}
	if rev := rawGet(t, s, bucketMeta, keyRevision); !bytes.Equal(rev, revBefore) {
		t.Errorf("revision %x → %x: a migration is not a configuration change", revBefore, rev)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// An Update that writes nothing must leave the store as it was, byte for
// byte: "nothing changed" in the CLI is a promise about the file (and,
// on etcd, about every key's ModRevision).
func TestUpdateWithoutChangesLeavesFileAlone(t *testing.T) {
	forEachBackend(t, testUpdateWithoutChangesLeavesFileAlone)
}

func testUpdateWithoutChangesLeavesFileAlone(t *testing.T, s Backend) {
	c := create(t, s, newTestConnector(t, "Quiet"))
	before := rawDump(t, s)
	err := s.Update(context.Background(), func(tx Tx) error {
		_, err := tx.ACL(c.Guid)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if after := rawDump(t, s); before != after {
		t.Error("a read-only Update rewrote the store")
	}
}
