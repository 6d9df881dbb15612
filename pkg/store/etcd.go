package store

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The etcd backend keeps, under the spec's prefix:
//
//	<prefix>/config/<bucket>/<key>   the configuration, the buckets of tx.go
//	<prefix>/servers/<folded name>   the registry's persistent server records
//	<prefix>/alive/<folded name>     a server's heartbeat, bound to its lease
//
// A transaction reads the whole config range in one Get (one revision),
// runs fn against that snapshot with its own writes overlaid, and commits
// with one Txn that only succeeds if meta/revision and meta/schema are
// unchanged since the read. Every committing write bumps meta/revision and
// every schema change writes meta/schema, so a lost compare means another
// writer got in between, and fn is run again on a fresh read: optimistic
// concurrency instead of bbolt's file lock, with the same guarantee that no
// update is lost.
type etcdBackend struct {
	spec      string
	endpoints []string
	prefix    string
	opts      Options
	tls       *tls.Config
	password  string

	mu     sync.Mutex
	cli    *clientv3.Client
	closed bool
	done   chan struct{} // closed by Close, to end watches
}

// maxTxnAttempts bounds the retries of an Update that keeps losing its
// compare. Each retry is a fresh read, so only a store that many writers
// hammer at once gets there.
const maxTxnAttempts = 50

// defaultMaxTxnOps is etcd's default --max-txn-ops, the most puts and
// deletes one Txn may carry.
const defaultMaxTxnOps = 128

func openEtcd(spec string, tlsScheme bool, rest string, opts Options) (*etcdBackend, error) {
	eo := opts.Etcd
	secure := tlsScheme || eo.CAFile != "" || eo.CertFile != "" || eo.KeyFile != ""
	endpoints, prefix, err := parseEtcdSpec(rest, secure)
	if err != nil {
		return nil, fmt.Errorf("open store %q: %w", redactSpec(spec), err)
	}
	e := &etcdBackend{spec: spec, endpoints: endpoints, prefix: prefix, opts: opts.withDefaults(), done: make(chan struct{})}
	if secure {
		if e.tls, err = etcdTLSConfig(eo); err != nil {
			return nil, fmt.Errorf("open store %s: %w", spec, err)
		}
	}
	switch {
	case eo.PasswordFile != "" && eo.Password.IsSet():
		return nil, fmt.Errorf("open store %s: give the etcd password or a password file, not both", spec)
	case eo.PasswordFile != "":
		data, err := os.ReadFile(eo.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("open store %s: read etcd password file: %w", spec, err)
		}
		line, _, _ := strings.Cut(string(data), "\n")
		e.password = strings.TrimSuffix(line, "\r")
		if e.password == "" {
			return nil, fmt.Errorf("open store %s: etcd password file %s is empty", spec, eo.PasswordFile)
		}
	default:
		e.password = eo.Password.Reveal()
	}
	if (e.password != "") != (eo.Username != "") {
		return nil, fmt.Errorf("open store %s: etcd authentication needs both a username and a password", spec)
	}
	return e, nil
}

func etcdTLSConfig(o EtcdOptions) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read etcd CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("etcd CA file %s holds no PEM certificate", o.CAFile)
		}
		cfg.RootCAs = pool
	}
	if (o.CertFile == "") != (o.KeyFile == "") {
		return nil, errors.New("an etcd client certificate needs both a certificate file and a key file")
	}
	if o.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(o.CertFile, o.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load etcd client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}

func (e *etcdBackend) String() string { return e.spec }

// client connects on first use rather than in Open, so that a server can
// start (and retry) while etcd is down, and a command that fails to parse
// its arguments never waits for etcd.
func (e *etcdBackend) client() (*clientv3.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, fmt.Errorf("store %s is closed", e)
	}
	if e.cli != nil {
		return e.cli, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: e.endpoints,
		// Bounds the login of an etcd with authentication: the only
		// thing New waits for.
		DialTimeout:          e.opts.LockTimeout,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: 10 * time.Second,
		TLS:                  e.tls,
		Username:             e.opts.Etcd.Username,
		Password:             e.password,
		// Errors come back to the caller; the client must not write to
		// the CLI's stderr on its own.
		Logger: zap.NewNop(),
		// gRPC's reconnect backoff grows to two minutes; a server whose
		// etcd restarted should be back within seconds, inside one
		// LockTimeout.
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})},
	})
	if err != nil {
		return nil, e.wrapErr(context.Background(), "connect", err)
	}
	e.cli = cli
	return cli, nil
}

// Close ends watches and the connection. A Registration whose heartbeat
// is still running fails its beats from now on: Withdraw it first.
func (e *etcdBackend) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	close(e.done)
	if e.cli == nil {
		return nil
	}
	if err := e.cli.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("close store %s: %w", e, err)
	}
	return nil
}

// opContext bounds one request by LockTimeout.
func (e *etcdBackend) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, e.opts.LockTimeout)
}

// UnavailableError reports an etcd that did not answer in time or has no
// leader.
type UnavailableError struct {
	Store  string
	Reason string
	Err    error
}

func (e *UnavailableError) Error() string {
	return fmt.Sprintf("store %s is unavailable: %s", e.Store, e.Reason)
}
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }
func (e *UnavailableError) Unwrap() error        { return e.Err }

// wrapErr names the store in an etcd error, telling an unreachable etcd
// (ErrUnavailable) from a refusal. A caller's own cancellation is returned
// as it is: the store did nothing wrong.
func (e *etcdBackend) wrapErr(ctx context.Context, what string, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded), status.Code(err) == codes.DeadlineExceeded:
		return &UnavailableError{Store: e.spec, Reason: fmt.Sprintf("no answer within %v (%s)", e.opts.LockTimeout, what), Err: err}
	case status.Code(err) == codes.Unavailable, errors.Is(err, rpctypes.ErrNoLeader), errors.Is(err, rpctypes.ErrTimeout),
		errors.Is(err, rpctypes.ErrTimeoutDueToLeaderFail), errors.Is(err, rpctypes.ErrTimeoutDueToConnectionLost):
		return &UnavailableError{Store: e.spec, Reason: fmt.Sprintf("%s: %v", what, err), Err: err}
	}
	return fmt.Errorf("store %s: %s: %w", e.spec, what, err)
}

func (e *etcdBackend) configPrefix() string { return e.prefix + "/config/" }

func (e *etcdBackend) configKey(bucket, key []byte) string {
	return e.configPrefix() + string(bucket) + "/" + string(key)
}

// etcdSnapshot is the config range as one Get saw it.
type etcdSnapshot struct {
	data      map[string]map[string][]byte // bucket → key → value
	keys      int
	schemaMod int64 // ModRevision of meta/schema, 0 if absent
	revMod    int64 // ModRevision of meta/revision, 0 if absent
	copyMod   int64 // ModRevision of meta/copying, 0 if absent
}

func (e *etcdBackend) read(ctx context.Context) (*etcdSnapshot, error) {
	cli, err := e.client()
	if err != nil {
		return nil, err
	}
	opCtx, cancel := e.opContext(ctx)
	defer cancel()
	resp, err := cli.Get(opCtx, e.configPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, e.wrapErr(ctx, "read", err)
	}
	snap := &etcdSnapshot{data: map[string]map[string][]byte{}}
	for _, kv := range resp.Kvs {
		bucket, key, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), e.configPrefix()), "/")
		if !ok {
			continue // not a bucket's key: nothing of this schema
		}
		if snap.data[bucket] == nil {
			snap.data[bucket] = map[string][]byte{}
		}
		v := kv.Value
		if v == nil {
			v = []byte{} // present but empty is not missing
		}
		snap.data[bucket][key] = v
		snap.keys++
		if bucket == string(bucketMeta) {
			switch key {
			case string(keySchema):
				snap.schemaMod = kv.ModRevision
			case string(keyRevision):
				snap.revMod = kv.ModRevision
			case string(keyCopying):
				snap.copyMod = kv.ModRevision
			}
		}
	}
	return snap, nil
}

// etcdKV is the key/value layer of one etcd transaction: the snapshot with
// the transaction's writes laid over it.
type etcdKV struct {
	snap   *etcdSnapshot
	writes map[string]map[string]etcdWrite
}

type etcdWrite struct {
	value   []byte
	deleted bool
}

func newEtcdKV(snap *etcdSnapshot) *etcdKV {
	return &etcdKV{snap: snap, writes: map[string]map[string]etcdWrite{}}
}

func (k *etcdKV) get(bucket, key []byte) []byte {
	if w, ok := k.writes[string(bucket)][string(key)]; ok {
		if w.deleted {
			return nil
		}
		return w.value
	}
	return k.snap.data[string(bucket)][string(key)]
}

func (k *etcdKV) set(bucket, key []byte, w etcdWrite) {
	b := k.writes[string(bucket)]
	if b == nil {
		b = map[string]etcdWrite{}
		k.writes[string(bucket)] = b
	}
	b[string(key)] = w
}

func (k *etcdKV) put(bucket, key, value []byte) error {
	if strings.Contains(string(bucket), "/") {
		return fmt.Errorf("bucket name %q has a /", bucket)
	}
	k.set(bucket, key, etcdWrite{value: append([]byte{}, value...)})
	return nil
}

func (k *etcdKV) del(bucket, key []byte) error {
	k.set(bucket, key, etcdWrite{deleted: true})
	return nil
}

func (k *etcdKV) forEach(bucket []byte, fn func(k, v []byte) error) error {
	seen := map[string]bool{}
	var keys []string
	for key := range k.snap.data[string(bucket)] {
		seen[key] = true
		keys = append(keys, key)
	}
	for key := range k.writes[string(bucket)] {
		if !seen[key] {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys) // byte order, as bbolt iterates
	for _, key := range keys {
		if v := k.get(bucket, []byte(key)); v != nil {
			if err := fn([]byte(key), v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (k *etcdKV) createBucket([]byte) error { return nil }

// ops are the puts and deletes that change the snapshot into the overlay,
// in key order. Writes that leave a key as it was are dropped: they would
// cost operations of the Txn's limited budget for nothing.
func (k *etcdKV) ops(e *etcdBackend) []clientv3.Op {
	var buckets []string
	for b := range k.writes {
		buckets = append(buckets, b)
	}
	sort.Strings(buckets)
	var ops []clientv3.Op
	for _, b := range buckets {
		var keys []string
		for key := range k.writes[b] {
			keys = append(keys, key)
		}
		sort.Strings(keys)
		for _, key := range keys {
			w := k.writes[b][key]
			old, had := k.snap.data[b][key]
			full := e.configKey([]byte(b), []byte(key))
			switch {
			case w.deleted && had:
				ops = append(ops, clientv3.OpDelete(full))
			case !w.deleted && (!had || !bytes.Equal(old, w.value)):
				ops = append(ops, clientv3.OpPut(full, string(w.value)))
			}
		}
	}
	return ops
}

// View runs fn on one consistent read of the configuration. A prefix that
// holds nothing reads as an empty store and is not created; an older
// schema is migrated first, as bbolt does.
func (e *etcdBackend) View(ctx context.Context, fn func(Tx) error) error {
	return e.viewKV(ctx, func(kv kvTx) error { return fn(&objTx{kv: kv}) })
}

func (e *etcdBackend) viewKV(ctx context.Context, fn func(kvTx) error) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		snap, err := e.read(ctx)
		if err != nil {
			return err
		}
		kv := newEtcdKV(snap)
		v, err := schemaVersion(kv)
		if err != nil {
			return fmt.Errorf("store %s: %w", e, err)
		}
		if v != 0 && v < currentSchema {
			if err := e.Update(ctx, func(Tx) error { return nil }); err != nil {
				return err
			}
			continue
		}
		return fn(kv)
	}
}

// Update runs fn on a fresh read and commits its writes in one Txn,
// running it again when another writer committed in between. When etcd
// stops answering during the commit itself, the error wraps ErrUnavailable
// and the change may have landed: etcd cannot say, so the caller re-reads.
func (e *etcdBackend) Update(ctx context.Context, fn func(Tx) error) error {
	return e.updateKV(ctx, func(kv kvTx) (bool, error) { return updateTx(kv, e.opts, fn) })
}

func (e *etcdBackend) updateKV(ctx context.Context, fn func(kvTx) (bool, error)) error {
	for attempt := 1; ; attempt++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		snap, err := e.read(ctx)
		if err != nil {
			return err
		}
		kv := newEtcdKV(snap)
		wrote, err := fn(kv)
		if err != nil {
			if errors.Is(err, ErrNewerSchema) || errors.Is(err, errNoSchema) {
				return fmt.Errorf("store %s: %w", e, err)
			}
			return err
		}
		if !wrote {
			return nil
		}
		ops := kv.ops(e)
		if len(ops) == 0 {
			return nil
		}
		ok, err := e.commit(ctx, snap, ops)
		if err != nil || ok {
			return err
		}
		if attempt == maxTxnAttempts {
			return fmt.Errorf("store %s is busy: %d attempts in a row lost to concurrent writers: %w", e, attempt, ErrBusy)
		}
		// Jitter, growing with the attempts, so that writers that
		// collided do not collide again in lockstep.
		wait := time.Duration(rand.Int64N(int64(min(attempt, 10))*int64(5*time.Millisecond))) + time.Millisecond
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait):
		}
	}
}

// commit applies ops if nobody committed since snap was read, and reports
// whether it did.
func (e *etcdBackend) commit(ctx context.Context, snap *etcdSnapshot, ops []clientv3.Op) (bool, error) {
	cli, err := e.client()
	if err != nil {
		return false, err
	}
	opCtx, cancel := e.opContext(ctx)
	defer cancel()
	resp, err := cli.Txn(opCtx).If(
		clientv3.Compare(clientv3.ModRevision(e.configKey(bucketMeta, keySchema)), "=", snap.schemaMod),
		clientv3.Compare(clientv3.ModRevision(e.configKey(bucketMeta, keyRevision)), "=", snap.revMod),
	).Then(ops...).Commit()
	if err != nil {
		return false, e.txnErr(ctx, len(ops), err)
	}
	return resp.Succeeded, nil
}

// txnErr explains etcd's limits on one Txn. The Txn is atomic, so nothing
// of a refused change was written.
func (e *etcdBackend) txnErr(ctx context.Context, n int, err error) error {
	switch {
	case errors.Is(err, rpctypes.ErrTooManyOps):
		return fmt.Errorf("store %s: this change writes %d keys, more than etcd takes in one transaction (its --max-txn-ops, %d by default); nothing was written: %w", e, n, defaultMaxTxnOps, err)
	case errors.Is(err, rpctypes.ErrRequestTooLarge):
		return fmt.Errorf("store %s: this change is larger than etcd takes in one request (its --max-request-bytes); nothing was written: %w", e, err)
	}
	return e.wrapErr(ctx, "commit", err)
}

// Watch follows the config range with an etcd watch. The client resumes
// a broken stream by itself; when the watch ends anyway (etcd restarted
// without the revision we were at, lost its leader, or the connection
// could not be made), it is made again from the last revision seen, and
// the channel fires if events may have been missed.
func (e *etcdBackend) Watch(ctx context.Context) <-chan struct{} {
	ch := make(chan struct{}, 1)
	go e.watch(ctx, ch)
	return ch
}

func (e *etcdBackend) watch(ctx context.Context, ch chan struct{}) {
	defer close(ch)
	fire := func() {
		select {
		case ch <- struct{}{}:
		default: // one pending notification covers any number of changes
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-e.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var next int64 // the revision to resume from; 0: now
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		if cli, err := e.client(); err == nil {
			opts := []clientv3.OpOption{clientv3.WithPrefix(), clientv3.WithCreatedNotify()}
			if next > 0 {
				opts = append(opts, clientv3.WithRev(next))
			}
			wctx, wcancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
			for resp := range cli.Watch(wctx, e.configPrefix(), opts...) {
				if resp.CompactRevision != 0 {
					// What happened between next and the compaction is
					// gone: start from now, and say something changed.
					next = 0
					fire()
					break
				}
				if err := resp.Err(); err != nil {
					break
				}
				if resp.Created && next == 0 {
					// A new watch (not a resumed one) cannot know what
					// changed before it started; it sees what comes
					// after the revision it was created at.
					fire()
					next = resp.Header.Revision + 1
				}
				for _, ev := range resp.Events {
					// Not the header's revision: a watch catching up
					// gets old events under the current revision.
					next = max(next, ev.Kv.ModRevision+1)
				}
				if len(resp.Events) > 0 {
					fire()
				}
				backoff = 100 * time.Millisecond
			}
			wcancel()
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
