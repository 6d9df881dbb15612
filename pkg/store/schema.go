package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// currentSchema is the schema version this code writes. Each migration
// takes a store from version n to n+1 inside the opening transaction, so a
// store is never half-migrated.
const currentSchema = 1

var allBuckets = [][]byte{bucketMeta, bucketConnectors, bucketConnectorNames, bucketSecrets}

// migrations[n] takes a store from version n+1 to n+2. Version 0 with a
// meta bucket cannot exist (version 1 is the first written).
var migrations = []func(*bolt.Tx) error{}

func migrate(btx *bolt.Tx, from uint32) error {
	if from == 0 {
		return fmt.Errorf("store meta bucket has no schema version")
	}
	for v := from; v < currentSchema; v++ {
		if err := migrations[v-1](btx); err != nil {
			return fmt.Errorf("migrate store schema %d to %d: %w", v, v+1, err)
		}
	}
	return nil
}
