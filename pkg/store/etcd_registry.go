package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The etcd registry is two keys per server, outside the config range so
// that heartbeats never fire Watch:
//
//	<prefix>/servers/<folded name>   JSON of serverRecord, persistent
//	<prefix>/alive/<folded name>     JSON of aliveRecord, bound to a lease
//
// The lease is etcd's own failure detector: when the process dies or is
// cut off for longer than the TTL, etcd deletes the alive key and the
// server reads Down, without anyone having to compare clocks. The
// persistent record keeps LastHeartbeat too, so a Down server still says
// when it was last seen.

type aliveRecord struct {
	LastHeartbeat time.Time `json:"LastHeartbeat"`
	Instance      string    `json:"Instance"`
}

func (e *etcdBackend) serverKey(name string) string { return e.prefix + "/servers/" + foldName(name) }
func (e *etcdBackend) aliveKey(name string) string  { return e.prefix + "/alive/" + foldName(name) }

// Register writes the record and starts the heartbeat (see Registry).
func (e *etcdBackend) Register(ctx context.Context, info ServerInfo, ttl time.Duration) (Registration, error) {
	rec, err := newServerRecord(info, ttl, e.opts.Now())
	if err != nil {
		return nil, err
	}
	h := &etcdHeartbeat{e: e, rec: rec, ttl: ttl}
	if err := h.write(ctx, false, true); err != nil {
		return nil, fmt.Errorf("register server %q: %w", info.Name, err)
	}
	return startRegistration(ctx, h, ttl/3), nil
}

type etcdHeartbeat struct {
	e   *etcdBackend
	ttl time.Duration
	// Only the registration's goroutine, then Withdraw, use these.
	rec    *serverRecord
	lease  clientv3.LeaseID
	modRev int64 // the record's ModRevision after our last write
}

// leaseTTL rounds up: etcd counts leases in seconds, and a lease shorter
// than ttl would read Down too early.
func (h *etcdHeartbeat) leaseTTL() int64 {
	return int64((h.ttl + time.Second - 1) / time.Second)
}

func (h *etcdHeartbeat) beat(ctx context.Context) (bool, error) {
	err := h.write(ctx, false, false)
	if errors.Is(err, errLost) {
		return true, nil
	}
	return false, err
}

func (h *etcdHeartbeat) withdraw(ctx context.Context) error {
	err := h.write(ctx, true, false)
	if errors.Is(err, errLost) {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("withdraw server %q: %w", h.rec.Name, err)
	}
	if h.lease != 0 {
		// The alive key is already gone; revoking only spares etcd
		// from keeping the lease until it expires.
		if cli, err := h.e.client(); err == nil {
			opCtx, cancel := h.e.opContext(ctx)
			_, _ = cli.Revoke(opCtx, h.lease)
			cancel()
		}
	}
	return nil
}

var errLost = errors.New("registration lost to another")

// write refreshes the lease and rewrites the record and the alive key
// (or, to stop, marks the record Stopped and deletes the alive key), if the
// record is still this registration's. first is Register's write, which
// takes the record whatever it held.
func (h *etcdHeartbeat) write(ctx context.Context, stop, first bool) error {
	e := h.e
	cli, err := e.client()
	if err != nil {
		return err
	}
	opCtx, cancel := e.opContext(ctx)
	defer cancel()
	if !stop {
		if err := h.keepLease(opCtx, cli); err != nil {
			return e.wrapErr(ctx, "renew heartbeat lease", err)
		}
	}
	rec := *h.rec
	rec.LastHeartbeat = e.opts.Now().UTC()
	rec.Stopped = stop
	recJSON, err := json.Marshal(&rec)
	if err != nil {
		return err
	}
	aliveJSON, err := json.Marshal(aliveRecord{LastHeartbeat: rec.LastHeartbeat, Instance: rec.Instance})
	if err != nil {
		return err
	}
	then := []clientv3.Op{clientv3.OpPut(e.serverKey(rec.Name), string(recJSON))}
	if stop {
		then = append(then, clientv3.OpDelete(e.aliveKey(rec.Name)))
	} else {
		then = append(then, clientv3.OpPut(e.aliveKey(rec.Name), string(aliveJSON), clientv3.WithLease(h.lease)))
	}
	for try := 0; ; try++ {
		txn := cli.Txn(opCtx)
		if !first {
			txn = txn.If(clientv3.Compare(clientv3.ModRevision(e.serverKey(rec.Name)), "=", h.modRev))
		}
		resp, err := txn.Then(then...).Else(clientv3.OpGet(e.serverKey(rec.Name))).Commit()
		if err != nil {
			return e.wrapErr(ctx, "write server record", err)
		}
		if resp.Succeeded {
			h.rec, h.modRev = &rec, resp.Header.Revision
			return nil
		}
		// The record changed since our last write. It is still ours if
		// that write landed without our hearing of it (a timeout after
		// the commit); otherwise someone registered the name again, or
		// removed it.
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 || try > 0 {
			return errLost
		}
		var cur serverRecord
		if err := json.Unmarshal(kvs[0].Value, &cur); err != nil || cur.Instance != rec.Instance {
			return errLost
		}
		h.modRev = kvs[0].ModRevision
	}
}

// keepLease renews the lease, or takes a new one when etcd forgot it
// (etcd was down, or we were cut off, for longer than the ttl).
func (h *etcdHeartbeat) keepLease(ctx context.Context, cli *clientv3.Client) error {
	if h.lease != 0 {
		_, err := cli.KeepAliveOnce(ctx, h.lease)
		if err == nil {
			return nil
		}
		if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	resp, err := cli.Grant(ctx, h.leaseTTL())
	if err != nil {
		return err
	}
	h.lease = resp.ID
	return nil
}

// Servers lists the registry (see Registry).
func (e *etcdBackend) Servers(ctx context.Context) ([]ServerInfo, error) {
	cli, err := e.client()
	if err != nil {
		return nil, err
	}
	opCtx, cancel := e.opContext(ctx)
	defer cancel()
	// One Txn, so that records and alive keys are seen at one revision.
	resp, err := cli.Txn(opCtx).Then(
		clientv3.OpGet(e.prefix+"/servers/", clientv3.WithPrefix()),
		clientv3.OpGet(e.prefix+"/alive/", clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, e.wrapErr(ctx, "list servers", err)
	}
	alive := map[string]*mvccpb.KeyValue{}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		alive[string(kv.Key[len(e.prefix+"/alive/"):])] = kv
	}
	var out []ServerInfo
	for _, kv := range resp.Responses[0].GetResponseRange().Kvs {
		var rec serverRecord
		if err := json.Unmarshal(kv.Value, &rec); err != nil {
			return nil, fmt.Errorf("store %s: decode server %s: %w", e, kv.Key, err)
		}
		out = append(out, etcdServerInfo(&rec, alive[foldName(rec.Name)]))
	}
	sortServers(out)
	return out, nil
}

func etcdServerInfo(rec *serverRecord, alive *mvccpb.KeyValue) ServerInfo {
	info := rec.info()
	switch {
	case rec.Stopped:
		info.Status = ServerStopped
	case alive != nil:
		info.Status = ServerUp
		var a aliveRecord
		if json.Unmarshal(alive.Value, &a) == nil && a.LastHeartbeat.After(info.LastHeartbeat) {
			info.LastHeartbeat = a.LastHeartbeat
		}
	default:
		info.Status = ServerDown
	}
	return info
}

// RemoveServer deletes a server's record (see Registry).
func (e *etcdBackend) RemoveServer(ctx context.Context, name string) error {
	cli, err := e.client()
	if err != nil {
		return err
	}
	recKey, aliveKey := e.serverKey(name), e.aliveKey(name)
	for try := 0; try < maxTxnAttempts; try++ {
		opCtx, cancel := e.opContext(ctx)
		resp, err := cli.Txn(opCtx).Then(clientv3.OpGet(recKey), clientv3.OpGet(aliveKey)).Commit()
		cancel()
		if err != nil {
			return e.wrapErr(ctx, "read server record", err)
		}
		recs := resp.Responses[0].GetResponseRange().Kvs
		if len(recs) == 0 {
			return &NotFoundError{Kind: "server", Identity: name}
		}
		var rec serverRecord
		if err := json.Unmarshal(recs[0].Value, &rec); err != nil {
			return fmt.Errorf("store %s: decode server %q: %w", e, name, err)
		}
		var alive *mvccpb.KeyValue
		var aliveMod int64
		if kvs := resp.Responses[1].GetResponseRange().Kvs; len(kvs) > 0 {
			alive, aliveMod = kvs[0], kvs[0].ModRevision
		}
		if etcdServerInfo(&rec, alive).Status == ServerUp {
			return &ServerUpError{Name: rec.Name}
		}
		opCtx, cancel = e.opContext(ctx)
		del, err := cli.Txn(opCtx).If(
			clientv3.Compare(clientv3.ModRevision(recKey), "=", recs[0].ModRevision),
			clientv3.Compare(clientv3.ModRevision(aliveKey), "=", aliveMod),
		).Then(clientv3.OpDelete(recKey), clientv3.OpDelete(aliveKey)).Commit()
		cancel()
		if err != nil {
			return e.wrapErr(ctx, "remove server record", err)
		}
		if del.Succeeded {
			return nil
		}
		// It heartbeat or re-registered in between: look again.
	}
	return fmt.Errorf("store %s is busy: server %q kept changing: %w", e, name, ErrBusy)
}
