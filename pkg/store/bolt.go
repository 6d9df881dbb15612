package store

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

// The bbolt file's bucket tree (schema version 2):
//
//	meta/
//	    schema          uint32, big-endian: the schema version written
//	    revision        uint64, big-endian: bumped by every committing write
//	connectors/
//	    <guid>          JSON of connector.SendConnector, password excluded
//	connector-names/
//	    <folded name>   <guid>: the case-insensitive name index
//	secrets/
//	    <guid>          the AuthenticationCredential password, raw bytes
//	acls/
//	    <guid>          JSON of the connector's permissions.ACL (since 2)
//	accepted-domains/
//	    <guid>          JSON of connector.AcceptedDomain (since 2)
//
// Passwords live apart from the records so that nothing that encodes a
// connector can carry one by accident. An access list shares its
// connector's key, so a rename leaves it where it is and a delete takes it
// in the same transaction.
var (
	bucketMeta            = []byte("meta")
	bucketConnectors      = []byte("connectors")
	bucketConnectorNames  = []byte("connector-names")
	bucketSecrets         = []byte("secrets")
	bucketACLs            = []byte("acls")
	bucketAcceptedDomains = []byte("accepted-domains")

	keySchema   = []byte("schema")
	keyRevision = []byte("revision")
)

// DefaultLockTimeout bounds the wait for another process's lock.
const DefaultLockTimeout = 5 * time.Second

// Options tune a Bolt store.
type Options struct {
	// LockTimeout bounds the wait for a lock held by another process;
	// after it, operations fail with ErrBusy. Zero means DefaultLockTimeout.
	LockTimeout time.Duration
	// Now is the clock for WhenCreated/WhenChanged; nil means time.Now.
	Now func() time.Time
	// OrganizationDomain names the organization's Exchange Servers group in
	// the default access lists a schema 1 store's connectors get when it is
	// migrated. Empty means DefaultOrganizationDomain.
	OrganizationDomain string
}

// DefaultOrganizationDomain is organization.domain's default.
const DefaultOrganizationDomain = "SENDCONN"

// Bolt is the embedded store on a bbolt file. It holds no file open
// between operations: each View or Update opens the file, runs one
// transaction and closes it, so the CLI and a running server can share the
// file and a lock is never held longer than one command.
type Bolt struct {
	path string
	opts Options
}

// OpenBolt returns a store on the file at path. Nothing is opened or created
// until the first operation; the first Update creates the file (0600) and
// its directory (0700) if needed.
func OpenBolt(path string, opts Options) *Bolt {
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = DefaultLockTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.OrganizationDomain == "" {
		opts.OrganizationDomain = DefaultOrganizationDomain
	}
	return &Bolt{path: path, opts: opts}
}

// Path is the store file.
func (b *Bolt) Path() string { return b.path }

// View runs fn in a read-only transaction. A store that does not exist yet
// reads as empty and is not created.
func (b *Bolt) View(ctx context.Context, fn func(Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := os.Stat(b.path); errors.Is(err, fs.ErrNotExist) {
		return fn(&boltTx{})
	}
	db, err := b.open(true)
	if err != nil {
		return err
	}
	needsMigration := false
	err = db.View(func(btx *bolt.Tx) error {
		v, err := schemaVersion(btx)
		if err != nil {
			return err
		}
		if v < currentSchema {
			needsMigration = true
			return nil
		}
		return fn(&boltTx{tx: btx})
	})
	closeErr := db.Close()
	if needsMigration {
		// An older store is migrated by the first command that reads it;
		// that takes the write lock once.
		if err := b.Update(ctx, func(Tx) error { return nil }); err != nil {
			return err
		}
		return b.View(ctx, fn)
	}
	if err != nil {
		return err
	}
	return closeErr
}

// Update runs fn in a read-write transaction, migrating an older schema
// first, and commits if fn returns nil.
func (b *Bolt) Update(ctx context.Context, fn func(Tx) error) error {
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
	migrated := false
	err = db.Update(func(btx *bolt.Tx) error {
		var err error
		if migrated, err = prepare(btx, b.opts); err != nil {
			return err
		}
		t := &boltTx{tx: btx, writable: true, now: b.opts.Now}
		if err := fn(t); err != nil {
			return err
		}
		if !t.dirty && !migrated {
			// Rolling back keeps a command that changed nothing from
			// touching the file at all: bbolt would otherwise write a new
			// meta page.
			return errNothingWritten
		}
		if t.dirty {
			return bumpRevision(btx)
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

func schemaVersion(btx *bolt.Tx) (uint32, error) {
	meta := btx.Bucket(bucketMeta)
	if meta == nil {
		return 0, nil
	}
	v := meta.Get(keySchema)
	if len(v) != 4 {
		return 0, fmt.Errorf("store meta/schema is corrupt")
	}
	n := binary.BigEndian.Uint32(v)
	if n > currentSchema {
		return 0, fmt.Errorf("%w: schema %d, this sendconn understands up to %d; upgrade sendconn", ErrNewerSchema, n, currentSchema)
	}
	return n, nil
}

// errNothingWritten rolls back an Update that changed nothing.
var errNothingWritten = errors.New("nothing written")

// prepare creates the bucket tree of a new file or migrates an older one,
// and reports whether it did either.
func prepare(btx *bolt.Tx, opts Options) (bool, error) {
	v, err := schemaVersion(btx)
	if err != nil {
		return false, err
	}
	if v == currentSchema {
		return false, nil
	}
	if v == 0 && btx.Bucket(bucketMeta) == nil {
		if err := createBuckets(btx); err != nil {
			return false, err
		}
	} else if err := migrate(btx, v, opts); err != nil {
		return false, err
	}
	meta := btx.Bucket(bucketMeta)
	return true, meta.Put(keySchema, binary.BigEndian.AppendUint32(nil, currentSchema))
}

func createBuckets(btx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := btx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

func bumpRevision(btx *bolt.Tx) error {
	meta := btx.Bucket(bucketMeta)
	var rev uint64
	if v := meta.Get(keyRevision); len(v) == 8 {
		rev = binary.BigEndian.Uint64(v)
	}
	return meta.Put(keyRevision, binary.BigEndian.AppendUint64(nil, rev+1))
}

// boltTx implements Tx. A nil tx is the empty store that does not exist yet.
type boltTx struct {
	tx       *bolt.Tx
	writable bool
	dirty    bool
	now      func() time.Time
}

func (t *boltTx) bucket(name []byte) *bolt.Bucket {
	if t.tx == nil {
		return nil
	}
	return t.tx.Bucket(name)
}

func (t *boltTx) Revision() uint64 {
	if b := t.bucket(bucketMeta); b != nil {
		if v := b.Get(keyRevision); len(v) == 8 {
			return binary.BigEndian.Uint64(v)
		}
	}
	return 0
}

func (t *boltTx) Connectors() ([]connector.SendConnector, error) {
	b := t.bucket(bucketConnectors)
	if b == nil {
		return nil, nil
	}
	var out []connector.SendConnector
	err := b.ForEach(func(k, v []byte) error {
		c, err := t.decodeConnector(k, v)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return foldName(out[i].Name) < foldName(out[j].Name) })
	return out, err
}

func (t *boltTx) Connector(identity string) (connector.SendConnector, error) {
	notFound := &NotFoundError{Kind: "connector", Identity: identity}
	b := t.bucket(bucketConnectors)
	if b == nil {
		return connector.SendConnector{}, notFound
	}
	guid := strings.ToLower(strings.Trim(identity, "{}"))
	if connector.LooksLikeGuid(guid) {
		if v := b.Get([]byte(guid)); v != nil {
			return t.decodeConnector([]byte(guid), v)
		}
	}
	names := t.bucket(bucketConnectorNames)
	if g := names.Get([]byte(foldName(identity))); g != nil {
		return t.decodeConnector(g, b.Get(g))
	}
	// "Server\Name": connectors are organization-wide, the server part only
	// disambiguates in Exchange, so the name decides.
	if i := strings.LastIndexByte(identity, '\\'); i >= 0 {
		if g := names.Get([]byte(foldName(identity[i+1:]))); g != nil {
			return t.decodeConnector(g, b.Get(g))
		}
	}
	return connector.SendConnector{}, notFound
}

func (t *boltTx) decodeConnector(key, v []byte) (connector.SendConnector, error) {
	var c connector.SendConnector
	if v == nil {
		return c, fmt.Errorf("store is inconsistent: name index points at missing connector %s", key)
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decode connector %s: %w", key, err)
	}
	if c.AuthenticationCredential != nil {
		if s := t.bucket(bucketSecrets).Get(key); s != nil {
			c.AuthenticationCredential.Password = connector.NewSecret(string(s))
		}
	}
	return c, nil
}

func (t *boltTx) CreateConnector(c *connector.SendConnector, acl permissions.ACL) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	names := t.tx.Bucket(bucketConnectorNames)
	if names.Get([]byte(foldName(c.Name))) != nil {
		return &ExistsError{Kind: "connector", Name: c.Name}
	}
	guid, err := newGuid()
	if err != nil {
		return err
	}
	now := t.now().UTC().Truncate(time.Second)
	c.Guid, c.WhenCreated, c.WhenChanged = guid, now, now
	if err := t.putConnector(c); err != nil {
		return err
	}
	return t.putACL(guid, acl)
}

func (t *boltTx) UpdateConnector(c *connector.SendConnector) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	b := t.tx.Bucket(bucketConnectors)
	old := b.Get([]byte(c.Guid))
	if old == nil {
		return &NotFoundError{Kind: "connector", Identity: c.Guid}
	}
	var prev connector.SendConnector
	if err := json.Unmarshal(old, &prev); err != nil {
		return fmt.Errorf("decode connector %s: %w", c.Guid, err)
	}
	names := t.tx.Bucket(bucketConnectorNames)
	if foldName(prev.Name) != foldName(c.Name) {
		if names.Get([]byte(foldName(c.Name))) != nil {
			return &ExistsError{Kind: "connector", Name: c.Name}
		}
		if err := names.Delete([]byte(foldName(prev.Name))); err != nil {
			return err
		}
	}
	c.WhenCreated = prev.WhenCreated
	c.WhenChanged = t.now().UTC().Truncate(time.Second)
	return t.putConnector(c)
}

func (t *boltTx) putConnector(c *connector.SendConnector) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode connector %q: %w", c.Name, err)
	}
	key := []byte(c.Guid)
	if err := t.tx.Bucket(bucketConnectors).Put(key, v); err != nil {
		return err
	}
	if err := t.tx.Bucket(bucketConnectorNames).Put([]byte(foldName(c.Name)), key); err != nil {
		return err
	}
	secrets := t.tx.Bucket(bucketSecrets)
	if cred := c.AuthenticationCredential; cred != nil && cred.Password.IsSet() {
		err = secrets.Put(key, []byte(cred.Password.Reveal()))
	} else {
		err = secrets.Delete(key)
	}
	t.dirty = true
	return err
}

func (t *boltTx) DeleteConnector(guid string) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	key := []byte(guid)
	v := t.tx.Bucket(bucketConnectors).Get(key)
	if v == nil {
		return &NotFoundError{Kind: "connector", Identity: guid}
	}
	var c connector.SendConnector
	if err := json.Unmarshal(v, &c); err != nil {
		return fmt.Errorf("decode connector %s: %w", guid, err)
	}
	for _, del := range []struct {
		bucket, key []byte
	}{
		{bucketConnectors, key},
		{bucketConnectorNames, []byte(foldName(c.Name))},
		{bucketSecrets, key},
		{bucketACLs, key},
	} {
		if err := t.tx.Bucket(del.bucket).Delete(del.key); err != nil {
			return err
		}
	}
	t.dirty = true
	return nil
}

func (t *boltTx) checkWritable() error {
	if !t.writable {
		return ErrReadOnly
	}
	return nil
}

// foldName is the key of the case-insensitive name index.
func foldName(name string) string { return strings.ToLower(name) }

// newGuid returns a random (version 4) UUID in Exchange's lower-case form.
func newGuid() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("generate guid: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

// lockHolder names the process holding a lock on the file, from
// /proc/locks (Linux); empty when it cannot tell.
func lockHolder(path string) string {
	return findLockHolder(path, "/proc/locks", "/proc")
}

func (t *boltTx) ACL(guid string) (permissions.ACL, error) {
	if t.bucket(bucketConnectors) == nil || t.bucket(bucketConnectors).Get([]byte(guid)) == nil {
		return nil, &NotFoundError{Kind: "connector", Identity: guid}
	}
	v := t.bucket(bucketACLs).Get([]byte(guid))
	if v == nil {
		return nil, fmt.Errorf("store is inconsistent: connector %s has no access list", guid)
	}
	var acl permissions.ACL
	if err := json.Unmarshal(v, &acl); err != nil {
		return nil, fmt.Errorf("decode access list of connector %s: %w", guid, err)
	}
	return acl, nil
}

func (t *boltTx) PutACL(guid string, acl permissions.ACL) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	if t.tx.Bucket(bucketConnectors).Get([]byte(guid)) == nil {
		return &NotFoundError{Kind: "connector", Identity: guid}
	}
	return t.putACL(guid, acl)
}

func (t *boltTx) putACL(guid string, acl permissions.ACL) error {
	if acl == nil {
		acl = permissions.ACL{} // an emptied list stays a list, not a missing one
	}
	v, err := json.Marshal(acl)
	if err != nil {
		return fmt.Errorf("encode access list of connector %s: %w", guid, err)
	}
	t.dirty = true
	return t.tx.Bucket(bucketACLs).Put([]byte(guid), v)
}

func (t *boltTx) AcceptedDomains() ([]connector.AcceptedDomain, error) {
	b := t.bucket(bucketAcceptedDomains)
	if b == nil {
		return nil, nil
	}
	var out []connector.AcceptedDomain
	err := b.ForEach(func(k, v []byte) error {
		var d connector.AcceptedDomain
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode accepted domain %s: %w", k, err)
		}
		out = append(out, d)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return foldName(out[i].Name) < foldName(out[j].Name) })
	return out, err
}

// AcceptedDomain scans: an organization has a handful of accepted domains,
// and an index would be one more thing to keep consistent.
func (t *boltTx) AcceptedDomain(identity string) (connector.AcceptedDomain, error) {
	all, err := t.AcceptedDomains()
	if err != nil {
		return connector.AcceptedDomain{}, err
	}
	guid := strings.ToLower(strings.Trim(identity, "{}"))
	for _, match := range []func(d connector.AcceptedDomain) bool{
		func(d connector.AcceptedDomain) bool { return d.Guid == guid },
		func(d connector.AcceptedDomain) bool { return strings.EqualFold(d.Name, identity) },
		func(d connector.AcceptedDomain) bool { return strings.EqualFold(d.DomainName, identity) },
	} {
		for _, d := range all {
			if match(d) {
				return d, nil
			}
		}
	}
	return connector.AcceptedDomain{}, &NotFoundError{Kind: "accepted domain", Identity: identity}
}

func (t *boltTx) CreateAcceptedDomain(d *connector.AcceptedDomain) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	all, err := t.AcceptedDomains()
	if err != nil {
		return err
	}
	for _, other := range all {
		switch {
		case strings.EqualFold(other.Name, d.Name):
			return &ExistsError{Kind: "accepted domain", Name: d.Name}
		case other.DomainName == d.DomainName:
			return &ExistsError{Kind: "accepted domain", Name: d.DomainName}
		}
	}
	guid, err := newGuid()
	if err != nil {
		return err
	}
	now := t.now().UTC().Truncate(time.Second)
	d.Guid, d.WhenCreated, d.WhenChanged = guid, now, now
	if len(all) == 0 {
		d.Default = true
	}
	if d.Default {
		for _, other := range all {
			if other.Default {
				other.Default, other.WhenChanged = false, now
				if err := t.putAcceptedDomain(&other); err != nil {
					return err
				}
			}
		}
	}
	return t.putAcceptedDomain(d)
}

func (t *boltTx) putAcceptedDomain(d *connector.AcceptedDomain) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode accepted domain %q: %w", d.Name, err)
	}
	t.dirty = true
	return t.tx.Bucket(bucketAcceptedDomains).Put([]byte(d.Guid), v)
}

func (t *boltTx) DeleteAcceptedDomain(guid string) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	b := t.tx.Bucket(bucketAcceptedDomains)
	if b.Get([]byte(guid)) == nil {
		return &NotFoundError{Kind: "accepted domain", Identity: guid}
	}
	t.dirty = true
	return b.Delete([]byte(guid))
}
