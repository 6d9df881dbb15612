package store

import (
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/sendconn/sendconn/pkg/permissions"
)

// currentSchema is the schema version this code writes. Each migration
// takes a store from version n to n+1 inside the opening transaction, so a
// store is never half-migrated.
const currentSchema = 2

var allBuckets = [][]byte{bucketMeta, bucketConnectors, bucketConnectorNames, bucketSecrets, bucketACLs, bucketAcceptedDomains}

// migrations[n] takes a store from version n+1 to n+2. Version 0 with a
// meta bucket cannot exist (version 1 is the first written).
var migrations = []func(*bolt.Tx, Options) error{
	addPermissionsAndAcceptedDomains,
}

func migrate(btx *bolt.Tx, from uint32, opts Options) error {
	if from == 0 {
		return fmt.Errorf("store meta bucket has no schema version")
	}
	for v := from; v < currentSchema; v++ {
		if err := migrations[v-1](btx, opts); err != nil {
			return fmt.Errorf("migrate store schema %d to %d: %w", v, v+1, err)
		}
	}
	return nil
}

// addPermissionsAndAcceptedDomains (1 → 2) gives every connector the access
// list a new connector gets, so that the header firewall treats connectors
// made before permissions existed the way Exchange would, and adds the
// accepted-domains bucket.
func addPermissionsAndAcceptedDomains(btx *bolt.Tx, opts Options) error {
	acls, err := btx.CreateBucketIfNotExists(bucketACLs)
	if err != nil {
		return err
	}
	if _, err := btx.CreateBucketIfNotExists(bucketAcceptedDomains); err != nil {
		return err
	}
	v, err := json.Marshal(permissions.DefaultACL(opts.OrganizationDomain))
	if err != nil {
		return err
	}
	return btx.Bucket(bucketConnectors).ForEach(func(guid, _ []byte) error {
		if acls.Get(guid) != nil {
			return nil
		}
		return acls.Put(guid, v)
	})
}
