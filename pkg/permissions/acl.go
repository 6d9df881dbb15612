package permissions

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// InheritanceType is how an entry propagates to child objects, in Exchange's
// spelling (ActiveDirectorySecurityInheritance, "Descendents" included).
// A Send connector has no children, so only one thing about it matters
// here: Descendents and Children entries are inherit-only and do not apply
// to the connector itself.
type InheritanceType uint8

const (
	InheritanceNone InheritanceType = iota
	InheritanceAll
	InheritanceDescendents
	InheritanceSelfAndChildren
	InheritanceChildren
)

// DefaultInheritance is what Add-ADPermission writes when the admin gives no
// -InheritanceType; the entries a new connector starts with carry None.
const DefaultInheritance = InheritanceAll

var inheritanceTypeNames = []string{"None", "All", "Descendents", "SelfAndChildren", "Children"}

// InheritanceTypeNames lists the valid spellings, for help text and completion.
func InheritanceTypeNames() []string { return slices.Clone(inheritanceTypeNames) }

func (t InheritanceType) String() string {
	if int(t) < len(inheritanceTypeNames) {
		return inheritanceTypeNames[t]
	}
	return fmt.Sprintf("InheritanceType(%d)", uint8(t))
}

// ParseInheritanceType accepts the names in any case, with surrounding space.
func ParseInheritanceType(s string) (InheritanceType, error) {
	name := strings.TrimSpace(s)
	for i, n := range inheritanceTypeNames {
		if strings.EqualFold(name, n) {
			return InheritanceType(i), nil
		}
	}
	return 0, unknownNamesError("inheritance type", []string{name}, inheritanceTypeNames)
}

// MarshalJSON writes the name.
func (t InheritanceType) MarshalJSON() ([]byte, error) {
	if int(t) >= len(inheritanceTypeNames) {
		return nil, fmt.Errorf("invalid inheritance type %d", uint8(t))
	}
	return json.Marshal(t.String())
}

// UnmarshalJSON reads the name in any case.
func (t *InheritanceType) UnmarshalJSON(b []byte) error {
	var name string
	if err := json.Unmarshal(b, &name); err != nil {
		return fmt.Errorf("inheritance type: %w", err)
	}
	parsed, err := ParseInheritanceType(name)
	if err != nil {
		return err
	}
	*t = parsed
	return nil
}

// ACE is one access control entry on a connector, with the properties of
// Exchange's ADAcePresentationObject that matter here. The JSON names are
// Exchange's property names so that output reads like Get-ADPermission.
type ACE struct {
	User            Principal       `json:"User"`
	AccessRights    AccessRights    `json:"AccessRights"` // ExtendedRight for every entry created from extended rights
	ExtendedRights  Rights          `json:"ExtendedRights"`
	Deny            bool            `json:"Deny"`
	IsInherited     bool            `json:"IsInherited"`
	InheritanceType InheritanceType `json:"InheritanceType"`
}

// Rights returns the extended rights this entry grants or denies: the ones
// it names, or, when it names none, every right if its access rights carry
// ExtendedRight. That is AD's rule: an ExtendedRight entry without an object
// type covers every extended right, and GenericAll covers everything.
func (e ACE) Rights() Rights {
	if e.ExtendedRights != 0 {
		return e.ExtendedRights & AllRights
	}
	if e.AccessRights.GrantsAllExtendedRights() {
		return AllRights
	}
	return 0
}

// appliesToConnector reports whether the entry counts for the object it sits
// on. Descendents and Children entries are inherit-only in AD: they exist
// to be passed on and grant nothing where they are.
func (e ACE) appliesToConnector() bool {
	return e.InheritanceType != InheritanceDescendents && e.InheritanceType != InheritanceChildren
}

// ACL is a connector's access list.
type ACL []ACE

// DefaultACL returns the entries every new connector starts with, whatever
// its usage type; orgDomain names the organization's Exchange Servers group.
func DefaultACL(orgDomain string) ACL {
	routing := RightsOf(SendHeadersRouting)
	routingExch50 := RightsOf(SendHeadersRouting, SMTPSendExch50)
	entry := func(p Principal, rs Rights) ACE {
		return ACE{User: p, AccessRights: ExtendedRight, ExtendedRights: rs, InheritanceType: InheritanceNone}
	}
	return ACL{
		entry(AnonymousLogon, routing),
		entry(PartnerServers, routing),
		entry(LegacyExchangeServers, routingExch50),
		entry(ExternallySecuredServers, routingExch50),
		entry(HubTransportServers, AllRights),
		entry(EdgeTransportServers, AllRights),
		entry(ExchangeServers(orgDomain), AllRights),
	}
}

// Effective returns the rights p holds on the connector: everything the
// allow entries for p grant, minus everything the deny entries for p deny.
// Deny beats allow whatever the order and whether the entries are explicit
// or inherited, because the header firewall must never let through what an
// admin denied.
func (a ACL) Effective(p Principal) Rights {
	var allowed, denied Rights
	for _, e := range a {
		if !e.User.Equal(p) || !e.appliesToConnector() {
			continue
		}
		if e.Deny {
			denied |= e.Rights()
		} else {
			allowed |= e.Rights()
		}
	}
	return allowed &^ denied
}

// Canonical returns the entries in Windows' canonical order: explicit deny,
// explicit allow, inherited deny, inherited allow; the order within each
// group is kept.
func (a ACL) Canonical() ACL {
	out := slices.Clone(a)
	slices.SortStableFunc(out, func(x, y ACE) int { return canonicalRank(x) - canonicalRank(y) })
	return out
}

func canonicalRank(e ACE) int {
	rank := 0
	if e.IsInherited {
		rank += 2
	}
	if !e.Deny {
		rank++
	}
	return rank
}

// ForUser returns the entries for p; the empty principal selects them all.
func (a ACL) ForUser(p Principal) ACL {
	if p == "" {
		return slices.Clone(a)
	}
	var out ACL
	for _, e := range a {
		if e.User.Equal(p) {
			out = append(out, e)
		}
	}
	return out
}

// ErrInheritedEntry is returned by Remove when the only entries it could
// remove are inherited ones.
var ErrInheritedEntry = errors.New("inherited entries cannot be removed")

// Add merges e into the list. An explicit entry with the same user, Deny,
// AccessRights and InheritanceType gains e's extended rights; otherwise e is
// appended. added is what the list did not already have in that entry, so
// zero means nothing changed and the caller can say "already present" and
// write nothing (an entry carrying only access rights other than
// ExtendedRight adds no extended right either way). Extended rights imply
// AccessRights ExtendedRight, as in Add-ADPermission. The result is in
// canonical order.
func (a ACL) Add(e ACE) (result ACL, added Rights, err error) {
	if err := checkRequest(e); err != nil {
		return nil, 0, err
	}
	if e.ExtendedRights != 0 {
		e.AccessRights |= ExtendedRight
	}
	out := slices.Clone(a)
	for i := range out {
		if out[i].mergesWith(e) {
			added = out[i].grant(e)
			return out.Canonical(), added, nil
		}
	}
	return append(out, e).Canonical(), e.Rights(), nil
}

// Remove takes rights away from the explicit entries for e.User with the
// same Deny (and the same AccessRights when e names any). e.InheritanceType
// is not compared: an admin removing a right means it wherever it was
// granted, so the recipes work whatever inheritance the command fills in.
// With extended
// rights named, only those leave the entries; without, the matching entries
// go as a whole. An entry left with nothing disappears; one that also
// carries other access rights stays with those. removed is zero when nothing
// matched, which is not an error: removing what is not there changes
// nothing (removing entries that carry only access rights other than
// ExtendedRight removes no extended right either). Inherited entries are
// never touched, and when they are all that matched the error wraps
// ErrInheritedEntry.
func (a ACL) Remove(e ACE) (result ACL, removed Rights, err error) {
	if err := checkRequest(e); err != nil {
		return nil, 0, err
	}
	if e.AccessRights != 0 && e.ExtendedRights != 0 {
		// Named together they select what Add wrote for the same words.
		e.AccessRights |= ExtendedRight
	}
	out := make(ACL, 0, len(a))
	changed, inheritedMatched := false, false
	for _, entry := range a {
		if !entry.selectedBy(e) {
			out = append(out, entry)
			continue
		}
		if entry.IsInherited {
			if e.ExtendedRights == 0 || entry.Rights()&e.ExtendedRights != 0 {
				inheritedMatched = true
			}
			out = append(out, entry)
			continue
		}
		kept, keep := entry.without(e.ExtendedRights)
		if !keep {
			removed |= entry.Rights()
			changed = true
			continue
		}
		if kept != entry {
			removed |= entry.Rights() &^ kept.Rights()
			changed = true
		}
		out = append(out, kept)
	}
	if !changed && inheritedMatched {
		return nil, 0, fmt.Errorf("%w: the entry for %s comes from the organization; change it there", ErrInheritedEntry, quoteName(string(e.User)))
	}
	return out.Canonical(), removed, nil
}

// checkRequest checks an entry given to Add or Remove.
func checkRequest(e ACE) error {
	switch {
	case e.IsInherited:
		return errors.New("inherited entries come from the organization, not from a connector")
	case strings.TrimSpace(string(e.User)) == "":
		return errors.New("no user given")
	case e.ExtendedRights == 0 && e.AccessRights == 0:
		return errors.New("must specify either access or extended rights")
	case e.ExtendedRights&^AllRights != 0:
		return fmt.Errorf("unknown extended rights %#x", uint8(e.ExtendedRights&^AllRights))
	case int(e.InheritanceType) >= len(inheritanceTypeNames):
		return fmt.Errorf("unknown inheritance type %d", uint8(e.InheritanceType))
	}
	return nil
}

// mergesWith reports whether Add should fold e into this entry rather than
// append it.
func (e ACE) mergesWith(req ACE) bool {
	return !e.IsInherited &&
		e.User.Equal(req.User) &&
		e.Deny == req.Deny &&
		e.AccessRights == req.AccessRights &&
		e.InheritanceType == req.InheritanceType
}

// grant widens the entry by the rights of req and returns what it gained.
func (e *ACE) grant(req ACE) Rights {
	before := e.Rights()
	if req.Rights()&^before == 0 {
		return 0
	}
	if req.ExtendedRights == 0 {
		// req names no right, so it stands for every right its access
		// rights grant: the merged entry must too.
		e.ExtendedRights = 0
	} else {
		e.ExtendedRights |= req.ExtendedRights
	}
	return e.Rights() &^ before
}

// selectedBy reports whether Remove's request req is about this entry.
func (e ACE) selectedBy(req ACE) bool {
	return e.User.Equal(req.User) &&
		e.Deny == req.Deny &&
		(req.AccessRights == 0 || e.AccessRights == req.AccessRights)
}

// without returns the entry with rs taken away, and whether anything is left
// of it. rs empty takes the whole entry.
func (e ACE) without(rs Rights) (ACE, bool) {
	if rs == 0 {
		return ACE{}, false
	}
	if e.Rights()&rs == 0 {
		return e, true
	}
	// An entry naming no right covers all of them; taking some away leaves
	// it naming the others, which within a Send connector means the same.
	e.ExtendedRights = e.Rights() &^ rs
	if e.ExtendedRights == 0 {
		// Left as it is, an ExtendedRight entry naming no right would
		// cover every right: drop the permission, and the entry with it
		// if that was all it carried.
		e.AccessRights &^= ExtendedRight
		if e.AccessRights == 0 {
			return ACE{}, false
		}
	}
	return e, true
}
