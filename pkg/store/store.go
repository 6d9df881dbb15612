// Package store keeps sendconn's configuration: Send connectors, their
// credentials and access lists, and the organization's accepted domains;
// and, beside it, the registry of the organization's servers.
//
// The rest of sendconn sees the small Store and Tx interfaces below. Open
// turns a spec into a Backend, which adds the server Registry, Watch and
// Close to a Store:
//
//   - a file path or bbolt:///path: Bolt, an embedded bbolt file, for a
//     single server (OpenBolt opens one directly);
//   - etcd://host:port[,host:port]/prefix, or etcds:// for TLS: a store
//     shared by several servers on an etcd cluster (v3.4 or later), with
//     TLS and login settings in Options.Etcd, never in the spec.
//
// Both keep the same buckets, keys and bytes (tx.go), written by one piece
// of object logic, so Copy moves a configuration between them exactly.
//
// Every Update is one transaction: a command's reads and writes see one
// consistent state and commit together, and concurrent writers are
// serialised, so no update is lost. An Update function may be run more than
// once by backends that retry on conflict (etcd does), so it must not have
// side effects outside the transaction. An Update that changes nothing
// writes nothing.
//
// Errors match the sentinels below with errors.Is: ErrBusy when a bbolt
// file stays locked past Options.LockTimeout (or etcd writers keep
// colliding), ErrUnavailable when etcd does not answer within it.
package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

// Sentinel errors; match them with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrBusy        = errors.New("store is busy")
	ErrNewerSchema = errors.New("store was written by a newer sendconn")
	ErrReadOnly    = errors.New("store transaction is read-only")
	// ErrUnavailable: a shared store (etcd) did not answer within
	// Options.LockTimeout, or has no leader. The command can be retried.
	ErrUnavailable = errors.New("store is unavailable")
)

// Store is what the CLI and the transport need from configuration storage.
type Store interface {
	// View runs fn in a read-only transaction.
	View(ctx context.Context, fn func(Tx) error) error
	// Update runs fn in a read-write transaction and commits it if fn
	// returns nil. A commit that changed anything bumps the revision.
	Update(ctx context.Context, fn func(Tx) error) error
}

// Tx is one transaction's view of the store.
type Tx interface {
	// Revision counts committed writes; it only grows.
	Revision() uint64

	// Connectors returns every connector ordered by name.
	Connectors() ([]connector.SendConnector, error)
	// Connector resolves an identity: a Guid, a name (case-insensitive), or
	// "Server\Name".
	Connector(identity string) (connector.SendConnector, error)
	// CreateConnector stores a new connector with its access list,
	// assigning its Guid and timestamps (written back into c). A taken name
	// is ErrExists.
	CreateConnector(c *connector.SendConnector, acl permissions.ACL) error
	// UpdateConnector replaces the connector with c's Guid, renaming it if
	// the name changed; WhenChanged is set (written back into c).
	UpdateConnector(c *connector.SendConnector) error
	// DeleteConnector removes a connector and everything stored with it.
	DeleteConnector(guid string) error

	// ACL returns the access list of the connector with this Guid.
	ACL(guid string) (permissions.ACL, error)
	// PutACL replaces the access list of the connector with this Guid.
	PutACL(guid string, acl permissions.ACL) error

	// AcceptedDomains returns every accepted domain ordered by name.
	AcceptedDomains() ([]connector.AcceptedDomain, error)
	// AcceptedDomain resolves an identity: a Guid, a name or a domain name
	// (all case-insensitive).
	AcceptedDomain(identity string) (connector.AcceptedDomain, error)
	// CreateAcceptedDomain stores a new accepted domain, assigning its Guid
	// and timestamps. A taken name or domain name is ErrExists. The first
	// accepted domain becomes the default; a new default takes the flag
	// from the old one.
	CreateAcceptedDomain(d *connector.AcceptedDomain) error
	// DeleteAcceptedDomain removes the accepted domain with this Guid.
	DeleteAcceptedDomain(guid string) error
}

// NotFoundError says which object was not found.
type NotFoundError struct {
	Kind     string // "connector", "accepted domain", …
	Identity string
}

func (e *NotFoundError) Error() string        { return fmt.Sprintf("%s %q not found", e.Kind, e.Identity) }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ExistsError says which object already exists.
type ExistsError struct {
	Kind string
	Name string
}

func (e *ExistsError) Error() string        { return fmt.Sprintf("%s %q already exists", e.Kind, e.Name) }
func (e *ExistsError) Is(target error) bool { return target == ErrExists }
