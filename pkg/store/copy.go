package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// CopyStats says what Copy wrote.
type CopyStats struct {
	Keys            int // configuration keys written
	Connectors      int
	AcceptedDomains int
	// Transactions is how many commits the copy took: 1 for bbolt, one
	// per batch for etcd.
	Transactions int
}

// keyCopying marks an etcd prefix that a Copy is writing in batches. It
// holds the copy's random id, which every batch compares, so that two
// copies into one prefix cannot interleave; the last batch deletes it
// with the same Txn that writes meta/schema.
var keyCopying = []byte("copying")

// copier is what Copy needs of a backend beyond Backend.
type copier interface {
	viewKV(ctx context.Context, fn func(kvTx) error) error
	// restore writes data into the store, reporting how many commits and
	// keys that took.
	restore(ctx context.Context, data *configData) (txns, keys int, err error)
}

type kvPair struct{ bucket, key, value []byte }

// configData is a whole configuration: every key of every bucket of
// allBuckets, meta/schema last so that a target that has it is complete.
type configData struct {
	pairs    []kvPair
	revision uint64
}

// Copy copies a whole configuration from one store to another: every key
// of every configuration bucket, byte for byte, so that Guids, timestamps,
// passwords, access lists and accepted domains are the same and `get`
// shows the same on both. The server registry is not copied: servers
// register with the store they run on. An older source is migrated first
// (reading it does that); the target gets the current schema.
//
// The target must hold no connector and no accepted domain (an error
// wrapping ErrExists otherwise); whatever else it holds is replaced. Its
// Revision does not go backwards: a target that was already written
// continues from the larger of the two revisions, so that servers
// following it notice the change.
//
// A bbolt target is written in one transaction. An etcd target with more
// keys than one Txn takes is written in batches, meta/schema in the last.
// Should the copy stop half-way, the prefix holds keys but no schema:
// every View or Update of it then fails saying the copy was interrupted,
// rather than showing a partial configuration, and running the same Copy
// again wipes the partial keys and starts over.
func Copy(ctx context.Context, from, to Backend) (CopyStats, error) {
	src, ok := from.(copier)
	if !ok {
		return CopyStats{}, fmt.Errorf("copy from %s: not a store this sendconn can copy", from)
	}
	dst, ok := to.(copier)
	if !ok {
		return CopyStats{}, fmt.Errorf("copy to %s: not a store this sendconn can copy", to)
	}
	if from.String() == to.String() {
		return CopyStats{}, fmt.Errorf("copy %s onto itself", from)
	}
	data := &configData{}
	var stats CopyStats
	err := src.viewKV(ctx, func(kv kvTx) error {
		v, err := schemaVersion(kv)
		if err != nil {
			return err
		}
		if v == 0 {
			return fmt.Errorf("there is no store there: %w", ErrNotFound)
		}
		data.revision = readRevision(kv)
		var schema []byte
		for _, b := range allBuckets {
			err := kv.forEach(b, func(k, v []byte) error {
				// bbolt's slices die with the transaction.
				p := kvPair{bucket: b, key: bytes.Clone(k), value: append([]byte{}, v...)}
				switch {
				case bytes.Equal(b, bucketMeta) && bytes.Equal(k, keySchema):
					schema = p.value
					return nil
				case bytes.Equal(b, bucketMeta) && (bytes.Equal(k, keyRevision) || bytes.Equal(k, keyCopying)):
					return nil // written by restore
				case bytes.Equal(b, bucketConnectors):
					stats.Connectors++
				case bytes.Equal(b, bucketAcceptedDomains):
					stats.AcceptedDomains++
				}
				data.pairs = append(data.pairs, p)
				return nil
			})
			if err != nil {
				return err
			}
		}
		data.pairs = append(data.pairs, kvPair{bucket: bucketMeta, key: keySchema, value: schema})
		return nil
	})
	if err != nil {
		return CopyStats{}, fmt.Errorf("copy from %s: %w", from, err)
	}
	stats.Transactions, stats.Keys, err = dst.restore(ctx, data)
	if err != nil {
		return CopyStats{}, fmt.Errorf("copy to %s: %w", to, err)
	}
	return stats, nil
}

// checkCopyTarget refuses a target that holds configuration, and tells
// whether it was ever written (its revision then must not go backwards).
func checkCopyTarget(kv kvTx) (uint64, error) {
	_, err := schemaVersion(kv)
	if errors.Is(err, errNoSchema) {
		return readRevision(kv), nil // an interrupted copy: start it over
	}
	if err != nil {
		return 0, err
	}
	for _, b := range [][]byte{bucketConnectors, bucketAcceptedDomains} {
		if kv.forEach(b, func(_, _ []byte) error { return errStop }) != nil {
			return 0, fmt.Errorf("the store already holds connectors or accepted domains; copy only into an empty store: %w", ErrExists)
		}
	}
	return readRevision(kv), nil
}

// copyRevision keeps the target's Revision growing.
func copyRevision(src, dst uint64) uint64 {
	if dst >= src {
		return dst + 1
	}
	return src
}

func (b *Bolt) restore(ctx context.Context, data *configData) (int, int, error) {
	keys := len(data.pairs)
	err := b.update(ctx, func(btx *bolt.Tx) (bool, error) {
		kv := boltKV{btx}
		dstRev, err := checkCopyTarget(kv)
		if err != nil {
			return false, err
		}
		for _, name := range allBuckets {
			if err := btx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return false, err
			}
		}
		if err := createBuckets(kv); err != nil {
			return false, err
		}
		for _, p := range data.pairs {
			if err := kv.put(p.bucket, p.key, p.value); err != nil {
				return false, err
			}
		}
		if rev := copyRevision(data.revision, dstRev); rev > 0 {
			keys++
			if err := kv.put(bucketMeta, keyRevision, binary.BigEndian.AppendUint64(nil, rev)); err != nil {
				return false, err
			}
		}
		return true, nil
	})
	return 1, keys, err
}

// Batches stay well under etcd's default limits of 128 operations and
// 1.5 MiB per request.
const (
	copyBatchOps   = 100
	copyBatchBytes = 1 << 20
)

func (e *etcdBackend) restore(ctx context.Context, data *configData) (txns, keys int, err error) {
	snap, err := e.read(ctx)
	if err != nil {
		return 0, 0, err
	}
	dstRev, err := checkCopyTarget(newEtcdKV(snap))
	if err != nil {
		return 0, 0, err
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return 0, 0, err
	}
	copyID := hex.EncodeToString(id[:])
	markerKey := e.configKey(bucketMeta, keyCopying)

	// etcd refuses a Txn whose puts fall in one of its delete ranges, so
	// the target's keys are deleted one by one, and only those the copy
	// does not overwrite anyway.
	schema := data.pairs[len(data.pairs)-1] // meta/schema, last
	revKey, schemaKey := e.configKey(bucketMeta, keyRevision), e.configKey(bucketMeta, keySchema)
	written := map[string]bool{revKey: true, schemaKey: true, markerKey: true}
	var puts []clientv3.Op
	var sizes []int
	for _, p := range data.pairs[:len(data.pairs)-1] {
		k := e.configKey(p.bucket, p.key)
		written[k] = true
		puts = append(puts, clientv3.OpPut(k, string(p.value)))
		sizes = append(sizes, len(k)+len(p.value))
	}
	var ops []clientv3.Op
	for b, bucketKeys := range snap.data {
		for k := range bucketKeys {
			if full := e.configKey([]byte(b), []byte(k)); !written[full] {
				ops = append(ops, clientv3.OpDelete(full))
			}
		}
	}
	deletes := len(ops)
	ops = append(ops, puts...)
	sizes = append(make([]int, deletes), sizes...)
	var tail []clientv3.Op
	if rev := copyRevision(data.revision, dstRev); rev > 0 {
		tail = append(tail, clientv3.OpPut(revKey, string(binary.BigEndian.AppendUint64(nil, rev))))
	}
	tail = append(tail, clientv3.OpPut(schemaKey, string(schema.value)))
	keys = len(puts) + len(tail)

	cli, err := e.client()
	if err != nil {
		return 0, 0, err
	}
	guard := []clientv3.Cmp{
		clientv3.Compare(clientv3.ModRevision(schemaKey), "=", snap.schemaMod),
		clientv3.Compare(clientv3.ModRevision(revKey), "=", snap.revMod),
		clientv3.Compare(clientv3.ModRevision(markerKey), "=", snap.copyMod),
	}
	commit := func(ops []clientv3.Op) error {
		opCtx, cancel := e.opContext(ctx)
		defer cancel()
		resp, err := cli.Txn(opCtx).If(guard...).Then(ops...).Commit()
		if err != nil {
			return e.txnErr(ctx, len(ops), err)
		}
		if !resp.Succeeded {
			return errors.New("the store was written to while copying; run the copy again")
		}
		return nil
	}

	if snap.copyMod != 0 {
		tail = append(tail, clientv3.OpDelete(markerKey)) // an interrupted copy's
	}
	if len(ops)+len(tail) <= copyBatchOps && sum(sizes) <= copyBatchBytes {
		return 1, keys, commit(append(ops, tail...))
	}
	if snap.copyMod != 0 {
		tail = tail[:len(tail)-1] // the first batch overwrites it
	}
	// In batches: the first takes the prefix (writes the marker and
	// removes the schema, so that the target reads as unfinished until
	// the last; meta/revision stays, so a re-run still knows how far it
	// went); each later one only lands while the marker is ours.
	n, i := 0, 0
	for first := true; first || i < len(ops); first = false {
		batch := []clientv3.Op{}
		if first {
			batch = append(batch, clientv3.OpPut(markerKey, copyID))
			if snap.schemaMod != 0 {
				batch = append(batch, clientv3.OpDelete(schemaKey))
			}
		}
		size := 0
		for ; i < len(ops) && len(batch) < copyBatchOps && (size == 0 || size+sizes[i] <= copyBatchBytes); i++ {
			batch = append(batch, ops[i])
			size += sizes[i]
		}
		if err := commit(batch); err != nil {
			return n, 0, err
		}
		n++
		if first {
			guard = []clientv3.Cmp{clientv3.Compare(clientv3.Value(markerKey), "=", copyID)}
		}
	}
	if err := commit(append(tail, clientv3.OpDelete(markerKey))); err != nil {
		return n, 0, err
	}
	return n + 1, keys, nil
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}
