package store

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/permissions"
)

// The configuration's buckets (schema version 2), the same in every
// backend: bbolt keeps each as a bucket of the file, etcd as the keys
// "<prefix>/config/<bucket>/<key>".
//
//	meta/
//	    schema          uint32, big-endian: the schema version written
//	    revision        uint64, big-endian: bumped by every committing write
//	connectors/
//	    <guid>          JSON of connector.SendConnector, password excluded
//	connector-names/
//	    <folded name>   <guid>: the case-insensitive name index
//	secrets/
//	    <guid>          the AuthenticationCredential password, raw bytes
//	acls/
//	    <guid>          JSON of the connector's permissions.ACL (since 2)
//	accepted-domains/
//	    <guid>          JSON of connector.AcceptedDomain (since 2)
//
// Passwords live apart from the records so that nothing that encodes a
// connector can carry one by accident. An access list shares its
// connector's key, so a rename leaves it where it is and a delete takes it
// in the same transaction.
var (
	bucketMeta            = []byte("meta")
	bucketConnectors      = []byte("connectors")
	bucketConnectorNames  = []byte("connector-names")
	bucketSecrets         = []byte("secrets")
	bucketACLs            = []byte("acls")
	bucketAcceptedDomains = []byte("accepted-domains")

	keySchema   = []byte("schema")
	keyRevision = []byte("revision")
)

func bumpRevision(kv kvTx) error {
	return kv.put(bucketMeta, keyRevision, binary.BigEndian.AppendUint64(nil, readRevision(kv)+1))
}

func readRevision(kv kvTx) uint64 {
	if v := kv.get(bucketMeta, keyRevision); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// updateTx runs fn as the body of a read-write transaction on kv: it
// creates or migrates the schema first and bumps the revision after a
// write. It reports whether anything needs committing, so that a backend
// can leave the store untouched when nothing changed.
func updateTx(kv kvTx, opts Options, fn func(Tx) error) (bool, error) {
	migrated, err := prepare(kv, opts)
	if err != nil {
		return false, err
	}
	t := &objTx{kv: kv, writable: true, now: opts.Now}
	if err := fn(t); err != nil {
		return false, err
	}
	if t.dirty {
		if err := bumpRevision(kv); err != nil {
			return false, err
		}
	}
	return t.dirty || migrated, nil
}

// objTx implements Tx over any backend's key/value layer.
type objTx struct {
	kv       kvTx
	writable bool
	dirty    bool
	now      func() time.Time
}

func (t *objTx) Revision() uint64 { return readRevision(t.kv) }

func (t *objTx) Connectors() ([]connector.SendConnector, error) {
	var out []connector.SendConnector
	err := t.kv.forEach(bucketConnectors, func(k, v []byte) error {
		c, err := t.decodeConnector(k, v)
		if err != nil {
			return err
		}
		out = append(out, c)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return foldName(out[i].Name) < foldName(out[j].Name) })
	return out, err
}

func (t *objTx) Connector(identity string) (connector.SendConnector, error) {
	guid := strings.ToLower(strings.Trim(identity, "{}"))
	if connector.LooksLikeGuid(guid) {
		if v := t.kv.get(bucketConnectors, []byte(guid)); v != nil {
			return t.decodeConnector([]byte(guid), v)
		}
	}
	if g := t.kv.get(bucketConnectorNames, []byte(foldName(identity))); g != nil {
		return t.decodeConnector(g, t.kv.get(bucketConnectors, g))
	}
	// "Server\Name": connectors are organization-wide, the server part only
	// disambiguates in Exchange, so the name decides.
	if i := strings.LastIndexByte(identity, '\\'); i >= 0 {
		if g := t.kv.get(bucketConnectorNames, []byte(foldName(identity[i+1:]))); g != nil {
			return t.decodeConnector(g, t.kv.get(bucketConnectors, g))
		}
	}
	return connector.SendConnector{}, &NotFoundError{Kind: "connector", Identity: identity}
}

func (t *objTx) decodeConnector(key, v []byte) (connector.SendConnector, error) {
	var c connector.SendConnector
	if v == nil {
		return c, fmt.Errorf("store is inconsistent: name index points at missing connector %s", key)
	}
	if err := json.Unmarshal(v, &c); err != nil {
		return c, fmt.Errorf("decode connector %s: %w", key, err)
	}
	if c.AuthenticationCredential != nil {
		if s := t.kv.get(bucketSecrets, key); s != nil {
			c.AuthenticationCredential.Password = connector.NewSecret(string(s))
		}
	}
	return c, nil
}

func (t *objTx) CreateConnector(c *connector.SendConnector, acl permissions.ACL) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	if t.kv.get(bucketConnectorNames, []byte(foldName(c.Name))) != nil {
		return &ExistsError{Kind: "connector", Name: c.Name}
	}
	guid, err := newGuid()
	if err != nil {
		return err
	}
	now := t.now().UTC().Truncate(time.Second)
	c.Guid, c.WhenCreated, c.WhenChanged = guid, now, now
	if err := t.putConnector(c); err != nil {
		return err
	}
	return t.putACL(guid, acl)
}

func (t *objTx) UpdateConnector(c *connector.SendConnector) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	old := t.kv.get(bucketConnectors, []byte(c.Guid))
	if old == nil {
		return &NotFoundError{Kind: "connector", Identity: c.Guid}
	}
	var prev connector.SendConnector
	if err := json.Unmarshal(old, &prev); err != nil {
		return fmt.Errorf("decode connector %s: %w", c.Guid, err)
	}
	if foldName(prev.Name) != foldName(c.Name) {
		if t.kv.get(bucketConnectorNames, []byte(foldName(c.Name))) != nil {
			return &ExistsError{Kind: "connector", Name: c.Name}
		}
		if err := t.kv.del(bucketConnectorNames, []byte(foldName(prev.Name))); err != nil {
			return err
		}
	}
	c.WhenCreated = prev.WhenCreated
	c.WhenChanged = t.now().UTC().Truncate(time.Second)
	return t.putConnector(c)
}

func (t *objTx) putConnector(c *connector.SendConnector) error {
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("encode connector %q: %w", c.Name, err)
	}
	key := []byte(c.Guid)
	if err := t.kv.put(bucketConnectors, key, v); err != nil {
		return err
	}
	if err := t.kv.put(bucketConnectorNames, []byte(foldName(c.Name)), key); err != nil {
		return err
	}
	if cred := c.AuthenticationCredential; cred != nil && cred.Password.IsSet() {
		err = t.kv.put(bucketSecrets, key, []byte(cred.Password.Reveal()))
	} else {
		err = t.kv.del(bucketSecrets, key)
	}
	t.dirty = true
	return err
}

func (t *objTx) DeleteConnector(guid string) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	key := []byte(guid)
	v := t.kv.get(bucketConnectors, key)
	if v == nil {
		return &NotFoundError{Kind: "connector", Identity: guid}
	}
	var c connector.SendConnector
	if err := json.Unmarshal(v, &c); err != nil {
		return fmt.Errorf("decode connector %s: %w", guid, err)
	}
	for _, del := range []struct {
		bucket, key []byte
	}{
		{bucketConnectors, key},
		{bucketConnectorNames, []byte(foldName(c.Name))},
		{bucketSecrets, key},
		{bucketACLs, key},
	} {
		if err := t.kv.del(del.bucket, del.key); err != nil {
			return err
		}
	}
	t.dirty = true
	return nil
}

func (t *objTx) checkWritable() error {
	if !t.writable {
		return ErrReadOnly
	}
	return nil
}

// foldName is the key of the case-insensitive name index.
func foldName(name string) string { return strings.ToLower(name) }

// newGuid returns a random (version 4) UUID in Exchange's lower-case form.
func newGuid() (string, error) {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		return "", fmt.Errorf("generate guid: %w", err)
	}
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16]), nil
}

func (t *objTx) ACL(guid string) (permissions.ACL, error) {
	if t.kv.get(bucketConnectors, []byte(guid)) == nil {
		return nil, &NotFoundError{Kind: "connector", Identity: guid}
	}
	v := t.kv.get(bucketACLs, []byte(guid))
	if v == nil {
		return nil, fmt.Errorf("store is inconsistent: connector %s has no access list", guid)
	}
	var acl permissions.ACL
	if err := json.Unmarshal(v, &acl); err != nil {
		return nil, fmt.Errorf("decode access list of connector %s: %w", guid, err)
	}
	return acl, nil
}

func (t *objTx) PutACL(guid string, acl permissions.ACL) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	if t.kv.get(bucketConnectors, []byte(guid)) == nil {
		return &NotFoundError{Kind: "connector", Identity: guid}
	}
	return t.putACL(guid, acl)
}

func (t *objTx) putACL(guid string, acl permissions.ACL) error {
	if acl == nil {
		acl = permissions.ACL{} // an emptied list stays a list, not a missing one
	}
	v, err := json.Marshal(acl)
	if err != nil {
		return fmt.Errorf("encode access list of connector %s: %w", guid, err)
	}
	t.dirty = true
	return t.kv.put(bucketACLs, []byte(guid), v)
}

func (t *objTx) AcceptedDomains() ([]connector.AcceptedDomain, error) {
	var out []connector.AcceptedDomain
	err := t.kv.forEach(bucketAcceptedDomains, func(k, v []byte) error {
		var d connector.AcceptedDomain
		if err := json.Unmarshal(v, &d); err != nil {
			return fmt.Errorf("decode accepted domain %s: %w", k, err)
		}
		out = append(out, d)
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return foldName(out[i].Name) < foldName(out[j].Name) })
	return out, err
}

// AcceptedDomain scans: an organization has a handful of accepted domains,
// and an index would be one more thing to keep consistent.
func (t *objTx) AcceptedDomain(identity string) (connector.AcceptedDomain, error) {
	all, err := t.AcceptedDomains()
	if err != nil {
		return connector.AcceptedDomain{}, err
	}
	guid := strings.ToLower(strings.Trim(identity, "{}"))
	for _, match := range []func(d connector.AcceptedDomain) bool{
		func(d connector.AcceptedDomain) bool { return d.Guid == guid },
		func(d connector.AcceptedDomain) bool { return strings.EqualFold(d.Name, identity) },
		func(d connector.AcceptedDomain) bool { return strings.EqualFold(d.DomainName, identity) },
	} {
		for _, d := range all {
			if match(d) {
				return d, nil
			}
		}
	}
	return connector.AcceptedDomain{}, &NotFoundError{Kind: "accepted domain", Identity: identity}
}

func (t *objTx) CreateAcceptedDomain(d *connector.AcceptedDomain) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	all, err := t.AcceptedDomains()
	if err != nil {
		return err
	}
	for _, other := range all {
		switch {
		case strings.EqualFold(other.Name, d.Name):
			return &ExistsError{Kind: "accepted domain", Name: d.Name}
		case other.DomainName == d.DomainName:
			return &ExistsError{Kind: "accepted domain", Name: d.DomainName}
		}
	}
	guid, err := newGuid()
	if err != nil {
		return err
	}
	now := t.now().UTC().Truncate(time.Second)
	d.Guid, d.WhenCreated, d.WhenChanged = guid, now, now
	if len(all) == 0 {
		d.Default = true
	}
	if d.Default {
		for _, other := range all {
			if other.Default {
				other.Default, other.WhenChanged = false, now
				if err := t.putAcceptedDomain(&other); err != nil {
					return err
				}
			}
		}
	}
	return t.putAcceptedDomain(d)
}

func (t *objTx) putAcceptedDomain(d *connector.AcceptedDomain) error {
	v, err := json.Marshal(d)
	if err != nil {
		return fmt.Errorf("encode accepted domain %q: %w", d.Name, err)
	}
	t.dirty = true
	return t.kv.put(bucketAcceptedDomains, []byte(d.Guid), v)
}

func (t *objTx) DeleteAcceptedDomain(guid string) error {
	if err := t.checkWritable(); err != nil {
		return err
	}
	if t.kv.get(bucketAcceptedDomains, []byte(guid)) == nil {
		return &NotFoundError{Kind: "accepted domain", Identity: guid}
	}
	t.dirty = true
	return t.kv.del(bucketAcceptedDomains, []byte(guid))
}
