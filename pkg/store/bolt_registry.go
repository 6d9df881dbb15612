package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The bbolt registry is one bucket beside the configuration's:
//
//	servers/
//	    <folded name>   JSON of serverRecord
//
// A heartbeat rewrites LastHeartbeat in place; the record is Down when that
// is older than its TTL. Its writes never touch meta/revision, so a
// server polling Revision does not reload its configuration for them.
var bucketServers = []byte("servers")

// Register writes the record and starts the heartbeat (see Registry).
func (b *Bolt) Register(ctx context.Context, info ServerInfo, ttl time.Duration) (Registration, error) {
	rec, err := newServerRecord(info, ttl, b.opts.Now())
	if err != nil {
		return nil, err
	}
	err = b.update(ctx, func(btx *bolt.Tx) (bool, error) {
		servers, err := btx.CreateBucketIfNotExists(bucketServers)
		if err != nil {
			return false, err
		}
		return true, putServer(servers, rec)
	})
	if err != nil {
		return nil, fmt.Errorf("register server %q: %w", info.Name, err)
	}
	return startRegistration(ctx, &boltHeartbeat{b: b, rec: rec}, ttl/3), nil
}

func putServer(servers *bolt.Bucket, rec *serverRecord) error {
	v, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode server %q: %w", rec.Name, err)
	}
	return servers.Put([]byte(foldName(rec.Name)), v)
}

func getServer(servers *bolt.Bucket, name string) (*serverRecord, error) {
	if servers == nil {
		return nil, nil
	}
	v := servers.Get([]byte(foldName(name)))
	if v == nil {
		return nil, nil
	}
	var rec serverRecord
	if err := json.Unmarshal(v, &rec); err != nil {
		return nil, fmt.Errorf("decode server %q: %w", name, err)
	}
	return &rec, nil
}

type boltHeartbeat struct {
	b   *Bolt
	rec *serverRecord // only the registration's goroutine, then Withdraw, use it
}

// mine runs fn on the record if this registration still owns it.
func (h *boltHeartbeat) mine(ctx context.Context, fn func(rec *serverRecord)) (lost bool, err error) {
	err = h.b.update(ctx, func(btx *bolt.Tx) (bool, error) {
		servers := btx.Bucket(bucketServers)
		cur, err := getServer(servers, h.rec.Name)
		if err != nil {
			return false, err
		}
		if cur == nil || cur.Instance != h.rec.Instance {
			lost = true
			return false, nil
		}
		fn(h.rec)
		return true, putServer(servers, h.rec)
	})
	return lost, err
}

func (h *boltHeartbeat) beat(ctx context.Context) (bool, error) {
	return h.mine(ctx, func(rec *serverRecord) { rec.LastHeartbeat = h.b.opts.Now().UTC() })
}

func (h *boltHeartbeat) withdraw(ctx context.Context) error {
	_, err := h.mine(ctx, func(rec *serverRecord) {
		rec.Stopped = true
		rec.LastHeartbeat = h.b.opts.Now().UTC()
	})
	if err != nil {
		return fmt.Errorf("withdraw server %q: %w", h.rec.Name, err)
	}
	return nil
}

// Servers lists the registry (see Registry).
func (b *Bolt) Servers(ctx context.Context) ([]ServerInfo, error) {
	var out []ServerInfo
	err := b.viewServers(ctx, func(servers *bolt.Bucket) error {
		now := b.opts.Now()
		return servers.ForEach(func(k, v []byte) error {
			var rec serverRecord
			if err := json.Unmarshal(v, &rec); err != nil {
				return fmt.Errorf("decode server %s: %w", k, err)
			}
			out = append(out, boltServerInfo(&rec, now))
			return nil
		})
	})
	sortServers(out)
	return out, err
}

func boltServerInfo(rec *serverRecord, now time.Time) ServerInfo {
	info := rec.info()
	switch {
	case rec.Stopped:
		info.Status = ServerStopped
	case now.Sub(rec.LastHeartbeat) > time.Duration(rec.TTLMillis)*time.Millisecond:
		info.Status = ServerDown
	default:
		info.Status = ServerUp
	}
	return info
}

// viewServers runs fn on the servers bucket, if there is one, without
// creating or migrating anything.
func (b *Bolt) viewServers(ctx context.Context, fn func(*bolt.Bucket) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if fileMissing(b.path) {
		return nil // no store, no servers
	}
	db, err := b.open(true)
	if err != nil {
		return err
	}
	err = db.View(func(btx *bolt.Tx) error {
		if servers := btx.Bucket(bucketServers); servers != nil {
			return fn(servers)
		}
		return nil
	})
	if closeErr := db.Close(); err == nil {
		err = closeErr
	}
	return err
}

// RemoveServer deletes a server's record (see Registry).
func (b *Bolt) RemoveServer(ctx context.Context, name string) error {
	if fileMissing(b.path) {
		return &NotFoundError{Kind: "server", Identity: name}
	}
	return b.update(ctx, func(btx *bolt.Tx) (bool, error) {
		servers := btx.Bucket(bucketServers)
		rec, err := getServer(servers, name)
		if err != nil {
			return false, err
		}
		if rec == nil {
			return false, &NotFoundError{Kind: "server", Identity: name}
		}
		if boltServerInfo(rec, b.opts.Now()).Status == ServerUp {
			return false, &ServerUpError{Name: rec.Name}
		}
		return true, servers.Delete([]byte(foldName(name)))
	})
}

func fileMissing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}
