package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/sendconn/sendconn/pkg/permissions"
)

// currentSchema is the schema version this code writes. Each migration
// takes a store from version n to n+1 inside the transaction that found it
// older, so a store is never half-migrated.
const currentSchema = 2

// allBuckets is the configuration: what a new store is created with and
// what Copy copies. The server registry is deliberately not in it.
var allBuckets = [][]byte{bucketMeta, bucketConnectors, bucketConnectorNames, bucketSecrets, bucketACLs, bucketAcceptedDomains}

// migrations[n] takes a store from version n+1 to n+2. Version 0 with a
// meta bucket cannot exist (version 1 is the first written).
var migrations = []func(kvTx, Options) error{
	addPermissionsAndAcceptedDomains,
}

// errNoSchema marks a store that holds configuration keys but no schema
// version. A transaction never leaves one (the schema is written with the
// first keys); only a copy into an etcd prefix that was interrupted between
// its batches does, since Copy writes meta/schema last.
var errNoSchema = errors.New("store holds configuration but no schema version (a copy into it was interrupted: run the copy again to finish it)")

// schemaVersion is the store's schema version, 0 for a store that does not
// exist yet (nothing stored at all).
func schemaVersion(kv kvTx) (uint32, error) {
	v := kv.get(bucketMeta, keySchema)
	if v == nil {
		if hasConfig(kv) {
			return 0, errNoSchema
		}
		return 0, nil
	}
	if len(v) != 4 {
		return 0, fmt.Errorf("store meta/schema is corrupt")
	}
	n := binary.BigEndian.Uint32(v)
	if n == 0 {
		return 0, fmt.Errorf("store meta/schema is corrupt")
	}
	if n > currentSchema {
		return 0, fmt.Errorf("%w: schema %d, this sendconn understands up to %d; upgrade sendconn", ErrNewerSchema, n, currentSchema)
	}
	return n, nil
}

var errStop = errors.New("stop")

// hasConfig reports whether any configuration bucket holds a key.
func hasConfig(kv kvTx) bool {
	for _, b := range allBuckets {
		if kv.forEach(b, func(_, _ []byte) error { return errStop }) != nil {
			return true
		}
	}
	return false
}

// prepare creates the buckets of a new store or migrates an older one, and
// reports whether it did either.
func prepare(kv kvTx, opts Options) (bool, error) {
	v, err := schemaVersion(kv)
	if err != nil {
		return false, err
	}
	if v == currentSchema {
		return false, nil
	}
	if v == 0 {
		if err := createBuckets(kv); err != nil {
			return false, err
		}
	} else if err := migrate(kv, v, opts); err != nil {
		return false, err
	}
	return true, kv.put(bucketMeta, keySchema, binary.BigEndian.AppendUint32(nil, currentSchema))
}

func createBuckets(kv kvTx) error {
	for _, name := range allBuckets {
		if err := kv.createBucket(name); err != nil {
			return fmt.Errorf("create bucket %s: %w", name, err)
		}
	}
	return nil
}

func migrate(kv kvTx, from uint32, opts Options) error {
	for v := from; v < currentSchema; v++ {
		if err := migrations[v-1](kv, opts); err != nil {
			return fmt.Errorf("migrate store schema %d to %d: %w", v, v+1, err)
		}
	}
	return nil
}

// addPermissionsAndAcceptedDomains (1 → 2) gives every connector the access
// list a new connector gets, so that the header firewall treats connectors
// made before permissions existed the way Exchange would, and adds the
// accepted-domains bucket.
func addPermissionsAndAcceptedDomains(kv kvTx, opts Options) error {
	if err := kv.createBucket(bucketACLs); err != nil {
		return err
	}
	if err := kv.createBucket(bucketAcceptedDomains); err != nil {
		return err
	}
	v, err := json.Marshal(permissions.DefaultACL(opts.OrganizationDomain))
	if err != nil {
		return err
	}
	return kv.forEach(bucketConnectors, func(guid, _ []byte) error {
		if kv.get(bucketACLs, guid) != nil {
			return nil
		}
		return kv.put(bucketACLs, guid, v)
	})
}
