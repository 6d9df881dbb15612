package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bolt is the embedded store on a bbolt file. It holds no file open
// between operations: each View or Update opens the file, runs one
// transaction and closes it, so the CLI and a running server can share the
// file and a lock is never held longer than one command.
//
// The file has one bucket per configuration bucket (see tx.go) and a
// "servers" bucket for the registry (see bolt_registry.go).
type Bolt struct {
	path string
	spec string // how Open was given it, for String
	opts Options
}

// OpenBolt returns a store on the file at path. Nothing is opened or created
// until the first operation; the first Update creates the file (0600) and
// its directory (0700) if needed.
func OpenBolt(path string, opts Options) *Bolt {
	return &Bolt{path: path, spec: path, opts: opts.withDefaults()}
}

// Path is the store file.
func (b *Bolt) Path() string { return b.path }

// String is the spec the store was opened with.
func (b *Bolt) String() string { return b.spec }

// Watch returns nil: bbolt has no change notification for writes by
// other processes, so a server polls Revision, which is one cheap read.
func (b *Bolt) Watch(context.Context) <-chan struct{} { return nil }

// Close does nothing: a Bolt holds nothing open between operations.
func (b *Bolt) Close() error { return nil }

// View runs fn in a read-only transaction. A store that does not exist yet
// reads as empty and is not created.
func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	return b.viewKV(ctx, func(kv kvTx) error { return fn(&objTx{kv: kv}) })
}

// viewKV runs fn on the configuration at the current schema, migrating an
// older store first.
func (b *Bolt) viewKV(ctx context.Context, fn func(kvTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fileMissing(b.path) {
		return fn(emptyKV{})
	}
	db, err := b.open(true)
	if err != nil {
		return err
	}
	needsMigration := false
	err = db.View(func(btx *bolt.Tx) error {
		kv := boltKV{btx}
		v, err := schemaVersion(kv)
		if err != nil {
			return err
		}
		if v != 0 && v < currentSchema {
			needsMigration = true
			return nil
		}
		return fn(kv)
	})
	closeErr := db.Close()
	if needsMigration {
		// An older store is migrated by the first command that reads it;
		// that takes the write lock once.
		if err := b.Update(ctx, func(Tx) error { return nil }); err != nil {
			return err
		}
		return b.viewKV(ctx, fn)
	}
	if err != nil {
		return err
	}
	return closeErr
}

// Update runs fn in a read-write transaction, migrating an older schema
// first, and commits if fn returns nil.
func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
	return b.update(ctx, func(btx *bolt.Tx) (bool, error) {
		return updateTx(boltKV{btx}, b.opts, fn)
	})
}

// update runs fn in a write transaction and commits only if fn reports
// that it wrote something.
func (b *Bolt) update(ctx context.Context, fn func(*bolt.Tx) (bool, error)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ensureDir(filepath.Dir(b.path)); err != nil {
		return err
	}
	db, err := b.open(false)
	if err != nil {
		return err
	}
	err = db.Update(func(btx *bolt.Tx) error {
		wrote, err := fn(btx)
		if err != nil {
			return err
		}
		if !wrote {
			// Rolling back keeps a command that changed nothing from
			// touching the file at all: bbolt would otherwise write a new
			// meta page.
			return errNothingWritten
		}
		return nil
	})
	if errors.Is(err, errNothingWritten) {
		err = nil
	}
	if closeErr := db.Close(); err == nil && closeErr != nil {
		err = fmt.Errorf("close store %s: %w", b.path, closeErr)
	}
	return err
}

func (b *Bolt) open(readOnly bool) (*bolt.DB, error) {
	db, err := bolt.Open(b.path, 0o600, &bolt.Options{Timeout: b.opts.LockTimeout, ReadOnly: readOnly})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, &BusyError{Path: b.path, Holder: lockHolder(b.path)}
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", b.path, err)
	}
	return db, nil
}

// ensureDir creates the store's directory 0700 when it is missing; an
// existing directory is left as the admin made it.
func ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create store directory: %w", err)
	}
	return nil
}

// BusyError reports a lock held by another process past the timeout.
type BusyError struct {
	Path   string
	Holder string // "pid 1234 (sendconn serve)" when it can be found
}

func (e *BusyError) Error() string {
	holder := "another sendconn process"
	if e.Holder != "" {
		holder += ": " + e.Holder
	}
	return fmt.Sprintf("store %s is busy (held by %s)", e.Path, holder)
}

func (e *BusyError) Is(target error) bool { return target == ErrBusy }

// errNothingWritten rolls back an Update that changed nothing.
var errNothingWritten = errors.New("nothing written")

// lockHolder names the process holding a lock on the file, from
// /proc/locks (Linux); empty when it cannot tell.
func lockHolder(path string) string {
	return findLockHolder(path, "/proc/locks", "/proc")
}

// boltKV is the key/value layer on a bbolt transaction: a bucket is a
// top-level bbolt bucket, so the file keeps the layout it always had.
type boltKV struct{ tx *bolt.Tx }

func (k boltKV) get(bucket, key []byte) []byte {
	if b := k.tx.Bucket(bucket); b != nil {
		return b.Get(key)
	}
	return nil
}

func (k boltKV) put(bucket, key, value []byte) error {
	b := k.tx.Bucket(bucket)
	if b == nil {
		return fmt.Errorf("store has no bucket %s", bucket)
	}
	return b.Put(key, value)
}

func (k boltKV) del(bucket, key []byte) error {
	if b := k.tx.Bucket(bucket); b != nil {
		return b.Delete(key)
	}
	return nil
}

func (k boltKV) forEach(bucket []byte, fn func(k, v []byte) error) error {
	if b := k.tx.Bucket(bucket); b != nil {
		return b.ForEach(fn)
	}
	return nil
}

func (k boltKV) createBucket(bucket []byte) error {
	_, err := k.tx.CreateBucketIfNotExists(bucket)
	return err
}
