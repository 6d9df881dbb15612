package store

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"
)

// Registry lists the organization's sendconn servers, so that they can
// find each other (intra-organization SMTP) and an admin can see which are
// running. It lives beside the configuration but is not part of it:
// registering and heartbeats never bump the configuration's Revision nor
// fire Watch, and Copy does not copy it.
type Registry interface {
	// Register writes the server's record and keeps it alive with a
	// heartbeat every ttl/3 until Withdraw, or until ctx ends. ctx is the
	// registration's lifetime, not just this call's: the first write is
	// bounded by Options.LockTimeout on its own. When ctx ends without
	// Withdraw, or the process dies, the record stays and reads as Down
	// once ttl has passed.
	//
	// Registering a name that is Up is allowed, since that is what a
	// server restarted before its old heartbeat lapsed does: the newest
	// registration owns the record, and an older one that is still
	// running notices at its next heartbeat and stops (Lost is closed).
	Register(ctx context.Context, info ServerInfo, ttl time.Duration) (Registration, error)
	// Servers returns every registered server ordered by name, with
	// Status computed as of now.
	Servers(ctx context.Context) ([]ServerInfo, error)
	// RemoveServer deletes a retired server's record. A server that is Up
	// is refused (ServerUpError): its heartbeat would find the record gone
	// and stop, leaving a running server unlisted.
	RemoveServer(ctx context.Context, name string) error
}

// Registration is one Register's heartbeat. It is safe for concurrent use.
type Registration interface {
	// Withdraw stops the heartbeat and marks the server Stopped. It can be
	// called more than once; after one success it does nothing.
	Withdraw(ctx context.Context) error
	// Lost is closed when another registration took over the name, after
	// which this one neither heartbeats nor withdraws the record.
	Lost() <-chan struct{}
}

// ServerInfo is a registered server.
type ServerInfo struct {
	Name  string
	Fqdn  string
	Site  string
	Roles []string // "hub", "frontend"
	// Address is host:port that other servers reach it at for
	// intra-organization SMTP.
	Address string
	Version string
	// Started is when it registered (Register fills it in when zero).
	Started time.Time
	// LastHeartbeat is the last time it said it was alive.
	LastHeartbeat time.Time
	// Status is computed when read; Register ignores it.
	Status ServerStatus
}

// ServerStatus says whether a registered server is running.
type ServerStatus int

const (
	ServerUnknown ServerStatus = iota
	// ServerUp: its heartbeat is current.
	ServerUp
	// ServerDown: its heartbeat lapsed without a Withdraw (crashed,
	// killed, or cut off from the store).
	ServerDown
	// ServerStopped: it withdrew, as a clean shutdown does.
	ServerStopped
)

func (s ServerStatus) String() string {
	switch s {
	case ServerUp:
		return "Up"
	case ServerDown:
		return "Down"
	case ServerStopped:
		return "Stopped"
	}
	return "Unknown"
}

// serverRecord is a server's persistent record, as JSON, in both backends.
type serverRecord struct {
	Name          string    `json:"Name"`
	Fqdn          string    `json:"Fqdn,omitempty"`
	Site          string    `json:"Site,omitempty"`
	Roles         []string  `json:"Roles,omitempty"`
	Address       string    `json:"Address,omitempty"`
	Version       string    `json:"Version,omitempty"`
	Started       time.Time `json:"Started"`
	LastHeartbeat time.Time `json:"LastHeartbeat"`
	// TTLMillis is the heartbeat's time to live: bbolt needs it to tell
	// Down from Up.
	TTLMillis int64 `json:"TTLMilliseconds"`
	Stopped   bool  `json:"Stopped,omitempty"`
	// Instance identifies the Register call that owns the record, so that
	// an older registration of the same name can tell it was replaced.
	Instance string `json:"Instance"`
}

func (r *serverRecord) info() ServerInfo {
	return ServerInfo{
		Name: r.Name, Fqdn: r.Fqdn, Site: r.Site, Roles: append([]string(nil), r.Roles...),
		Address: r.Address, Version: r.Version, Started: r.Started, LastHeartbeat: r.LastHeartbeat,
	}
}

// newServerRecord checks a registration's arguments and makes its record.
func newServerRecord(info ServerInfo, ttl time.Duration, now time.Time) (*serverRecord, error) {
	if err := checkServerName(info.Name); err != nil {
		return nil, err
	}
	if ttl < time.Second {
		return nil, fmt.Errorf("register server %q: heartbeat ttl %v is under a second", info.Name, ttl)
	}
	var id [8]byte
	if _, err := rand.Read(id[:]); err != nil {
		return nil, fmt.Errorf("register server %q: %w", info.Name, err)
	}
	now = now.UTC()
	started := info.Started.UTC()
	if info.Started.IsZero() {
		started = now
	}
	return &serverRecord{
		Name: info.Name, Fqdn: info.Fqdn, Site: info.Site, Roles: append([]string(nil), info.Roles...),
		Address: info.Address, Version: info.Version, Started: started, LastHeartbeat: now,
		TTLMillis: ttl.Milliseconds(), Instance: hex.EncodeToString(id[:]),
	}, nil
}

// checkServerName keeps a name usable as one key segment.
func checkServerName(name string) error {
	if strings.TrimSpace(name) == "" {
		return errors.New("server name is empty")
	}
	if strings.ContainsAny(name, "/\\") {
		return fmt.Errorf("server name %q has a slash", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("server name %q has a control character", name)
		}
	}
	return nil
}

func sortServers(servers []ServerInfo) {
	sort.Slice(servers, func(i, j int) bool { return foldName(servers[i].Name) < foldName(servers[j].Name) })
}

// heartbeat is what a backend does for a registration.
type heartbeat interface {
	// beat refreshes the record; lost reports that another registration
	// owns the name now.
	beat(ctx context.Context) (lost bool, err error)
	// withdraw marks the record Stopped, if it is still ours.
	withdraw(ctx context.Context) error
}

// registration runs a heartbeat's goroutine; the backends only say how to
// beat and withdraw.
type registration struct {
	hb       heartbeat
	cancel   context.CancelFunc
	done     chan struct{} // the goroutine has returned
	lost     chan struct{}
	lostOnce sync.Once

	mu        sync.Mutex // serialises Withdraw
	withdrawn bool
}

func startRegistration(ctx context.Context, hb heartbeat, interval time.Duration) *registration {
	ctx, cancel := context.WithCancel(ctx)
	r := &registration{hb: hb, cancel: cancel, done: make(chan struct{}), lost: make(chan struct{})}
	go r.run(ctx, interval)
	return r
}

func (r *registration) run(ctx context.Context, interval time.Duration) {
	defer close(r.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		// A failed beat (the store briefly unreachable) is retried at
		// the next tick; the record reads Down only if they keep failing
		// for the whole ttl, which is the truth.
		if lost, _ := r.hb.beat(ctx); lost {
			r.lostOnce.Do(func() { close(r.lost) })
			return
		}
	}
}

func (r *registration) Lost() <-chan struct{} { return r.lost }

func (r *registration) Withdraw(ctx context.Context) error {
	r.cancel()
	<-r.done // no beat may land after the Stopped mark
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.withdrawn {
		return nil
	}
	select {
	case <-r.lost:
		r.withdrawn = true
		return nil // the record is someone else's now
	default:
	}
	if err := r.hb.withdraw(ctx); err != nil {
		return err
	}
	r.withdrawn = true
	return nil
}

// ServerUpError refuses to remove a running server.
type ServerUpError struct{ Name string }

func (e *ServerUpError) Error() string {
	return fmt.Sprintf("server %q is up; stop it before removing it", e.Name)
}
