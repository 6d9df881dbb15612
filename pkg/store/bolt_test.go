package store

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

// The test binary doubles as a second process for lock and concurrency
// tests: with STORE_TEST_HELPER set, TestMain runs the helper instead.
func TestMain(m *testing.M) {
	switch os.Getenv("STORE_TEST_HELPER") {
	case "":
		os.Exit(runTests(m))
	case "hold":
		os.Exit(helperHold(os.Getenv("STORE_TEST_PATH")))
	case "add":
		os.Exit(helperAdd(os.Getenv("STORE_TEST_SPEC"), os.Getenv("STORE_TEST_PREFIX")))
	}
}

// helperHold opens the store for writing, says "held" and keeps the write
// transaction open until its standard input closes.
func helperHold(path string) int {
	err := OpenBolt(path, Options{}).Update(context.Background(), func(Tx) error {
		fmt.Println("held")
		_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
		return nil
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// helperAdd adds ten address spaces to connector "Shared", one
// read-modify-write transaction each, on the store spec names.
func helperAdd(spec, prefix string) int {
	s, err := Open(spec, Options{LockTimeout: 30 * time.Second})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer s.Close()
	for i := 0; i < 10; i++ {
		err := s.Update(context.Background(), func(tx Tx) error {
			c, err := tx.Connector("shared")
			if err != nil {
				return err
			}
			a, _ := connector.ParseAddressSpace(fmt.Sprintf("%s-%d.example", prefix, i))
			c.AddressSpaces = append(c.AddressSpaces, a)
			return tx.UpdateConnector(&c)
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	return 0
}

func newTestConnector(t *testing.T, name string) connector.SendConnector {
	t.Helper()
	var p connector.Patch
	p.Name = connector.Some(name)
	a, _ := connector.ParseAddressSpace("*")
	p.AddressSpaces.Replace = connector.Some([]connector.AddressSpace{a})
	c, _, err := connector.New(connector.Defaults{ServerName: "EX01"}, connector.UsageCustom, p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tempStore(t *testing.T) *Bolt {
	t.Helper()
	return OpenBolt(filepath.Join(t.TempDir(), "state", "sendconn.db"), Options{LockTimeout: 300 * time.Millisecond})
}

func create(t *testing.T, s Store, c connector.SendConnector) connector.SendConnector {
	t.Helper()
	err := s.Update(context.Background(), func(tx Tx) error { return tx.CreateConnector(&c, permissions.DefaultACL("CONTOSO")) })
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateGetListDelete(t *testing.T) { forEachBackend(t, testCreateGetListDelete) }

func testCreateGetListDelete(t *testing.T, s Backend) {
	ctx := context.Background()
	a := create(t, s, newTestConnector(t, "To Internet"))
	create(t, s, newTestConnector(t, "Another"))
	if !connector.LooksLikeGuid(a.Guid) || a.WhenCreated.IsZero() {
		t.Fatalf("create did not assign guid/time: %+v", a)
	}
	err := s.View(ctx, func(tx Tx) error {
		for _, id := range []string{"To Internet", "to internet", "TO INTERNET", a.Guid, strings.ToUpper(a.Guid), "{" + a.Guid + "}", `EX01\To Internet`} {
			c, err := tx.Connector(id)
			if err != nil || c.Guid != a.Guid {
				t.Errorf("Connector(%q) = %v, %v", id, c.Guid, err)
			}
		}
		if _, err := tx.Connector("Nope"); !errors.Is(err, ErrNotFound) || err.Error() != `connector "Nope" not found` {
			t.Errorf("missing connector: %v", err)
		}
		list, err := tx.Connectors()
		if err != nil || len(list) != 2 || list[0].Name != "Another" || list[1].Name != "To Internet" {
			t.Errorf("Connectors() = %v, %v", list, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx Tx) error { return tx.DeleteConnector(a.Guid) }); err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx Tx) error {
		if _, err := tx.Connector("To Internet"); !errors.Is(err, ErrNotFound) {
			t.Errorf("deleted connector still found: %v", err)
		}
		return nil
	})
}

func TestDuplicateNameAndRename(t *testing.T) { forEachBackend(t, testDuplicateNameAndRename) }

func testDuplicateNameAndRename(t *testing.T, s Backend) {
	ctx := context.Background()
	a := create(t, s, newTestConnector(t, "Alpha"))
	create(t, s, newTestConnector(t, "Beta"))
	dup := newTestConnector(t, "ALPHA")
	err := s.Update(ctx, func(tx Tx) error { return tx.CreateConnector(&dup, permissions.DefaultACL("CONTOSO")) })
	if !errors.Is(err, ErrExists) || err.Error() != `connector "ALPHA" already exists` {
		t.Errorf("duplicate name: %v", err)
	}
	a.Name = "beta"
	if err := s.Update(ctx, func(tx Tx) error { return tx.UpdateConnector(&a) }); !errors.Is(err, ErrExists) {
		t.Errorf("rename onto an existing name: %v", err)
	}
	a.Name = "Gamma"
	if err := s.Update(ctx, func(tx Tx) error { return tx.UpdateConnector(&a) }); err != nil {
		t.Fatal(err)
	}
	a.Name = "GAMMA" // a case-only rename keeps the same index entry
	if err := s.Update(ctx, func(tx Tx) error { return tx.UpdateConnector(&a) }); err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx Tx) error {
		if _, err := tx.Connector("alpha"); !errors.Is(err, ErrNotFound) {
			t.Errorf("old name still resolves: %v", err)
		}
		c, err := tx.Connector("gamma")
		if err != nil || c.Name != "GAMMA" || c.Guid != a.Guid {
			t.Errorf("renamed: %+v %v", c, err)
		}
		return nil
	})
}

func TestSecretsKeptApartFromRecords(t *testing.T) {
	forEachBackend(t, testSecretsKeptApartFromRecords)
}

func testSecretsKeptApartFromRecords(t *testing.T, s Backend) {
	ctx := context.Background()
	c := newTestConnector(t, "Relay")
	c.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret("s3cret-pw")}
	c = create(t, s, c)
	_ = s.View(ctx, func(tx Tx) error {
		got, err := tx.Connector("Relay")
		if err != nil || got.AuthenticationCredential == nil || got.AuthenticationCredential.Password.Reveal() != "s3cret-pw" {
			t.Errorf("credential not restored: %+v %v", got.AuthenticationCredential, err)
		}
		return nil
	})
	// The record itself must not carry the password: only the secrets bucket does.
	rec := rawGet(t, s, bucketConnectors, []byte(c.Guid))
	if rec == nil || strings.Contains(string(rec), "s3cret-pw") {
		t.Errorf("password in connector record: %s", rec)
	}
	if string(rawGet(t, s, bucketSecrets, []byte(c.Guid))) != "s3cret-pw" {
		t.Error("password not in secrets bucket")
	}
}

func TestRevisionBumpsOnEveryWrite(t *testing.T) { forEachBackend(t, testRevisionBumpsOnEveryWrite) }

func testRevisionBumpsOnEveryWrite(t *testing.T, s Backend) {
	ctx := context.Background()
	rev := func() (r uint64) {
		_ = s.View(ctx, func(tx Tx) error { r = tx.Revision(); return nil })
		return r
	}
	if rev() != 0 {
		t.Fatal("empty store should be at revision 0")
	}
	c := create(t, s, newTestConnector(t, "A"))
	if rev() != 1 {
		t.Errorf("after create: %d", rev())
	}
	_ = s.Update(ctx, func(tx Tx) error { return nil }) // a no-op transaction is not a write
	if rev() != 1 {
		t.Errorf("after no-op: %d", rev())
	}
	c.Comment = "x"
	_ = s.Update(ctx, func(tx Tx) error { return tx.UpdateConnector(&c) })
	_ = s.Update(ctx, func(tx Tx) error { return tx.DeleteConnector(c.Guid) })
	if rev() != 3 {
		t.Errorf("after update+delete: %d", rev())
	}
}

func TestFailedUpdateChangesNothing(t *testing.T) { forEachBackend(t, testFailedUpdateChangesNothing) }

func testFailedUpdateChangesNothing(t *testing.T, s Backend) {
	ctx := context.Background()
	create(t, s, newTestConnector(t, "A"))
	before := rawDump(t, s)
	err := s.Update(ctx, func(tx Tx) error {
		c := newTestConnector(t, "B")
		if err := tx.CreateConnector(&c, permissions.DefaultACL("CONTOSO")); err != nil {
			return err
		}
		return errors.New("validation failed later")
	})
	if err == nil {
		t.Fatal("want the error back")
	}
	if after := rawDump(t, s); before != after {
		t.Error("store changed by a failed transaction")
	}
}

func TestReadingAMissingStoreCreatesNothing(t *testing.T) {
	forEachBackend(t, testReadingAMissingStoreCreatesNothing)
}

func testReadingAMissingStoreCreatesNothing(t *testing.T, s Backend) {
	var n int
	err := s.View(context.Background(), func(tx Tx) error {
		list, err := tx.Connectors()
		n = len(list)
		if _, err := tx.Connector("x"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Connector on empty store: %v", err)
		}
		return err
	})
	if err != nil || n != 0 {
		t.Fatalf("View = %d, %v", n, err)
	}
	if b, ok := s.(*Bolt); ok {
		if _, err := os.Stat(filepath.Dir(b.Path())); !errors.Is(err, fs.ErrNotExist) {
			t.Error("View created the store directory")
		}
	}
	if dump := rawDump(t, s); dump != "" {
		t.Errorf("View created the store: %s", dump)
	}
	err = s.Update(context.Background(), func(tx Tx) error { return tx.DeleteConnector("x") })
	if !errors.Is(err, ErrNotFound) {
		t.Errorf("delete on empty store: %v", err)
	}
}

func TestFileModes(t *testing.T) {
	s := tempStore(t)
	create(t, s, newTestConnector(t, "A"))
	fi, err := os.Stat(s.Path())
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("store file mode %v, %v", fi.Mode().Perm(), err)
	}
	di, err := os.Stat(filepath.Dir(s.Path()))
	if err != nil || di.Mode().Perm() != 0o700 {
		t.Errorf("store dir mode %v, %v", di.Mode().Perm(), err)
	}
}

func TestNewerSchemaRefused(t *testing.T) { forEachBackend(t, testNewerSchemaRefused) }

func testNewerSchemaRefused(t *testing.T, s Backend) {
	create(t, s, newTestConnector(t, "A"))
	rawPut(t, s, bucketMeta, keySchema, binary.BigEndian.AppendUint32(nil, currentSchema+1))
	for _, op := range []func(context.Context, func(Tx) error) error{s.View, s.Update} {
		err := op(context.Background(), func(Tx) error { return nil })
		if !errors.Is(err, ErrNewerSchema) || !strings.Contains(err.Error(), "upgrade sendconn") {
			t.Errorf("newer schema: %v", err)
		}
	}
}

// TestLockHeldByAnotherProcess holds the write lock in a second process and
// checks that this one gives up after its timeout with ErrBusy naming the
// holder, rather than hanging.
func TestLockHeldByAnotherProcess(t *testing.T) {
	s := tempStore(t)
	create(t, s, newTestConnector(t, "A"))
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "STORE_TEST_HELPER=hold", "STORE_TEST_PATH="+s.Path())
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); _ = cmd.Wait() }()
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "held\n" {
		t.Fatalf("helper: %q %v", line, err)
	}
	start := time.Now()
	for name, op := range map[string]func(context.Context, func(Tx) error) error{"view": s.View, "update": s.Update} {
		err := op(context.Background(), func(Tx) error { return nil })
		var busy *BusyError
		if !errors.Is(err, ErrBusy) || !errors.As(err, &busy) {
			t.Fatalf("%s: want ErrBusy, got %v", name, err)
		}
		want := fmt.Sprintf("pid %d", cmd.Process.Pid)
		if !strings.Contains(err.Error(), "is busy (held by another sendconn process: "+want) {
			t.Errorf("%s: message should name the holder: %v", name, err)
		}
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("waited %v, the timeout is 300ms", waited)
	}
}

// TestConcurrentWritersLoseNoUpdate runs four processes that each do ten
// read-modify-write transactions on the same connector; every change must
// survive: bbolt serialises them on its file lock, etcd retries the ones
// that lost their compare.
func TestConcurrentWritersLoseNoUpdate(t *testing.T) {
	forEachBackend(t, testConcurrentWritersLoseNoUpdate)
}

func testConcurrentWritersLoseNoUpdate(t *testing.T, s Backend) {
	create(t, s, newTestConnector(t, "Shared"))
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for p := 0; p < 4; p++ {
		wg.Add(1)
		go func(p int) {
			defer wg.Done()
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), "STORE_TEST_HELPER=add", "STORE_TEST_SPEC="+s.String(), fmt.Sprintf("STORE_TEST_PREFIX=p%d", p))
			if out, err := cmd.CombinedOutput(); err != nil {
				errs <- fmt.Errorf("writer %d: %v: %s", p, err, out)
			}
		}(p)
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
		if len(c.AddressSpaces) != 1+40 {
			t.Errorf("got %d address spaces, want 41: updates were lost", len(c.AddressSpaces))
		}
		if tx.Revision() != 41 {
			t.Errorf("revision %d, want 41", tx.Revision())
		}
		return nil
	})
}
