package store

// kvTx is the key/value layer the object logic (objTx, prepare, the
// migrations, Copy) is written over, so that every backend stores the same
// keys with the same bytes and a rule such as "a rename moves the name
// index entry" exists once. A bucket is a flat namespace of keys; keys
// iterate in byte order, as bbolt's do.
type kvTx interface {
	// get returns nil for a missing key or bucket. The slice is only valid
	// until the transaction ends and must not be modified.
	get(bucket, key []byte) []byte
	put(bucket, key, value []byte) error
	del(bucket, key []byte) error
	// forEach visits a bucket's keys in byte order; an error from fn stops
	// it and is returned.
	forEach(bucket []byte, fn func(k, v []byte) error) error
	// createBucket makes an empty bucket exist. bbolt needs this (an older
	// sendconn reading the file expects every bucket of its schema to be
	// there); etcd has no buckets, only key prefixes, so it is a no-op.
	createBucket(bucket []byte) error
}

// emptyKV is a store that does not exist yet: it reads as empty and takes
// no writes (writes are refused earlier, by objTx.checkWritable).
type emptyKV struct{}

func (emptyKV) get(_, _ []byte) []byte                            { return nil }
func (emptyKV) put(_, _, _ []byte) error                          { return ErrReadOnly }
func (emptyKV) del(_, _ []byte) error                             { return ErrReadOnly }
func (emptyKV) forEach(_ []byte, _ func(k, v []byte) error) error { return nil }
func (emptyKV) createBucket(_ []byte) error                       { return ErrReadOnly }
