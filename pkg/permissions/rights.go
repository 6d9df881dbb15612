package permissions

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Right is one of the five extended rights that matter on a Send connector.
// The values are bits so that a set of them (Rights) is a plain bit set.
type Right uint8

const (
	SendHeadersRouting      Right = 1 << iota // ms-Exch-Send-Headers-Routing: keeps Received: and Resent-* headers
	SendHeadersForest                         // ms-Exch-Send-Headers-Forest: keeps X-MS-Exchange-Forest-* headers
	SendHeadersOrganization                   // ms-Exch-Send-Headers-Organization: keeps X-MS-Exchange-Organization-* headers
	SMTPSendExch50                            // ms-Exch-SMTP-Send-Exch50: may send the legacy XEXCH50 blob
	SMTPSendXShadow                           // ms-Exch-SMTP-Send-XShadow: shadow redundancy
)

// allRightsInOrder is the canonical order: the order Exchange documents them
// in, which is also the order every list and log line prints them in.
var allRightsInOrder = [...]Right{
	SendHeadersRouting,
	SendHeadersForest,
	SendHeadersOrganization,
	SMTPSendExch50,
	SMTPSendXShadow,
}

var rightNames = map[Right]string{
	SendHeadersRouting:      "ms-Exch-Send-Headers-Routing",
	SendHeadersForest:       "ms-Exch-Send-Headers-Forest",
	SendHeadersOrganization: "ms-Exch-Send-Headers-Organization",
	SMTPSendExch50:          "ms-Exch-SMTP-Send-Exch50",
	SMTPSendXShadow:         "ms-Exch-SMTP-Send-XShadow",
}

// sessionPermissionNames are the names Exchange transport gives the same
// rights inside a session; its protocol log prints these, not the AD names.
var sessionPermissionNames = map[Right]string{
	SendHeadersRouting:      "SendRoutingHeaders",
	SendHeadersForest:       "SendForestHeaders",
	SendHeadersOrganization: "SendOrganizationHeaders",
	SMTPSendExch50:          "SMTPSendEXCH50",
	SMTPSendXShadow:         "SMTPSendXShadow",
}

// String returns the canonical AD name of the right.
func (r Right) String() string {
	if name, ok := rightNames[r]; ok {
		return name
	}
	return fmt.Sprintf("Right(%#x)", uint8(r))
}

// AllRightNames returns the canonical names in canonical order, for help
// text, completion and error messages.
func AllRightNames() []string {
	return AllRights.Names()
}

// ParseRight accepts a right's name in any case, with surrounding space.
func ParseRight(s string) (Right, error) {
	name := strings.TrimSpace(s)
	for _, r := range allRightsInOrder {
		if strings.EqualFold(name, rightNames[r]) {
			return r, nil
		}
	}
	return 0, unknownNamesError("extended right", []string{name}, AllRightNames())
}

// ParseRights parses rights as an admin gives them on a command line: every
// element may itself be a comma-separated list, empty elements are ignored
// and duplicates are harmless. All unknown names are reported in one error so
// a typo in the third name is not found only on the next run.
func ParseRights(names []string) (Rights, error) {
	var rs Rights
	var unknown []string
	for _, name := range splitNameList(names) {
		r, err := ParseRight(name)
		if err != nil {
			unknown = append(unknown, name)
			continue
		}
		rs |= Rights(r)
	}
	if len(unknown) > 0 {
		return 0, unknownNamesError("extended right", unknown, AllRightNames())
	}
	return rs, nil
}

// Rights is a set of extended rights. Bits outside AllRights mean nothing and
// are ignored by every method.
type Rights uint8

// AllRights is every right a Send connector knows.
const AllRights = Rights(SendHeadersRouting | SendHeadersForest | SendHeadersOrganization | SMTPSendExch50 | SMTPSendXShadow)

// RightsOf builds a set from individual rights.
func RightsOf(rights ...Right) Rights {
	var rs Rights
	for _, r := range rights {
		rs |= Rights(r)
	}
	return rs
}

// Has reports whether r is in the set.
func (rs Rights) Has(r Right) bool {
	return r != 0 && rs&Rights(r) == Rights(r)
}

// List returns the rights in the set in canonical order.
func (rs Rights) List() []Right {
	list := make([]Right, 0, len(allRightsInOrder))
	for _, r := range allRightsInOrder {
		if rs.Has(r) {
			list = append(list, r)
		}
	}
	return list
}

// Names returns the canonical names of the rights in canonical order; never
// nil, so that JSON shows an empty array rather than null.
func (rs Rights) Names() []string {
	names := make([]string, 0, len(allRightsInOrder))
	for _, r := range rs.List() {
		names = append(names, r.String())
	}
	return names
}

// String joins the names with ", "; the empty set prints as "".
func (rs Rights) String() string {
	return strings.Join(rs.Names(), ", ")
}

// SessionPermissions returns the transport's internal names of the rights,
// space separated, as the "Set Session Permissions" protocol log line shows
// them.
func (rs Rights) SessionPermissions() string {
	names := make([]string, 0, len(allRightsInOrder))
	for _, r := range rs.List() {
		names = append(names, sessionPermissionNames[r])
	}
	return strings.Join(names, " ")
}

// MarshalJSON writes the set as an array of canonical names.
func (rs Rights) MarshalJSON() ([]byte, error) {
	return json.Marshal(rs.Names())
}

// UnmarshalJSON reads an array of names in any case; null is the empty set.
func (rs *Rights) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("extended rights: %w", err)
	}
	parsed, err := ParseRights(names)
	if err != nil {
		return err
	}
	*rs = parsed
	return nil
}

// splitNameList flattens elements that are themselves comma-separated lists
// and drops empty names, which an admin's trailing comma produces.
func splitNameList(elements []string) []string {
	var names []string
	for _, element := range elements {
		for _, name := range strings.Split(element, ",") {
			if name = strings.TrimSpace(name); name != "" {
				names = append(names, name)
			}
		}
	}
	return names
}

// unknownNamesError names every unknown value and lists the valid ones, so
// one error message is enough to fix the command line.
func unknownNamesError(what string, unknown, valid []string) error {
	quoted := make([]string, len(unknown))
	for i, name := range unknown {
		quoted[i] = fmt.Sprintf("%q", name)
	}
	if len(unknown) > 1 {
		what += "s"
	}
	return fmt.Errorf("unknown %s %s (valid: %s)", what, strings.Join(quoted, ", "), strings.Join(valid, ", "))
}

// AccessRights is Exchange's -AccessRights: an ActiveDirectoryRights flags
// value, with the same numeric values as in Active Directory so that stored
// values mean what they mean there. The Generic* values are combinations of
// the others, exactly as in AD.
//
// Only ExtendedRight (and GenericAll, which contains it) changes what the
// header firewall does; every other flag is stored and shown so that the
// entries an admin writes read back as written.
type AccessRights uint32

const (
	CreateChild          AccessRights = 0x1
	DeleteChild          AccessRights = 0x2
	ListChildren         AccessRights = 0x4
	Self                 AccessRights = 0x8
	ReadProperty         AccessRights = 0x10
	WriteProperty        AccessRights = 0x20
	DeleteTree           AccessRights = 0x40
	ListObject           AccessRights = 0x80
	ExtendedRight        AccessRights = 0x100
	Delete               AccessRights = 0x10000
	ReadControl          AccessRights = 0x20000
	GenericExecute       AccessRights = ReadControl | ListChildren
	GenericWrite         AccessRights = ReadControl | Self | WriteProperty
	GenericRead          AccessRights = ReadControl | ListChildren | ReadProperty | ListObject
	WriteDacl            AccessRights = 0x40000
	WriteOwner           AccessRights = 0x80000
	GenericAll           AccessRights = 0xF01FF
	Synchronize          AccessRights = 0x100000
	AccessSystemSecurity AccessRights = 0x1000000
)

type accessRightName struct {
	value AccessRights
	name  string
}

// accessRightNames is in the order Exchange documents the values, which is
// the order the error message lists them in.
var accessRightNames = []accessRightName{
	{AccessSystemSecurity, "AccessSystemSecurity"},
	{CreateChild, "CreateChild"},
	{DeleteChild, "DeleteChild"},
	{ListChildren, "ListChildren"},
	{Self, "Self"},
	{ReadProperty, "ReadProperty"},
	{WriteProperty, "WriteProperty"},
	{DeleteTree, "DeleteTree"},
	{ListObject, "ListObject"},
	{ExtendedRight, "ExtendedRight"},
	{Delete, "Delete"},
	{ReadControl, "ReadControl"},
	{GenericExecute, "GenericExecute"},
	{GenericWrite, "GenericWrite"},
	{GenericRead, "GenericRead"},
	{WriteDacl, "WriteDacl"},
	{WriteOwner, "WriteOwner"},
	{GenericAll, "GenericAll"},
	{Synchronize, "Synchronize"},
}

// accessRightsByValueDesc drives formatting: like .NET's flags formatting,
// the largest named value that fits is taken first, so 0xF01FF prints as
// GenericAll rather than as the fifteen flags it is made of.
var accessRightsByValueDesc = []accessRightName{
	{AccessSystemSecurity, "AccessSystemSecurity"},
	{Synchronize, "Synchronize"},
	{GenericAll, "GenericAll"},
	{WriteOwner, "WriteOwner"},
	{WriteDacl, "WriteDacl"},
	{GenericRead, "GenericRead"},
	{GenericWrite, "GenericWrite"},
	{GenericExecute, "GenericExecute"},
	{ReadControl, "ReadControl"},
	{Delete, "Delete"},
	{ExtendedRight, "ExtendedRight"},
	{ListObject, "ListObject"},
	{DeleteTree, "DeleteTree"},
	{WriteProperty, "WriteProperty"},
	{ReadProperty, "ReadProperty"},
	{Self, "Self"},
	{ListChildren, "ListChildren"},
	{DeleteChild, "DeleteChild"},
	{CreateChild, "CreateChild"},
}

// AccessRightNames lists the valid names, for help text and completion.
func AccessRightNames() []string {
	names := make([]string, len(accessRightNames))
	for i, n := range accessRightNames {
		names[i] = n.name
	}
	return names
}

// ParseAccessRights parses names in any case; elements may be comma lists.
// All unknown names are reported in one error.
func ParseAccessRights(names []string) (AccessRights, error) {
	var a AccessRights
	var unknown []string
	for _, name := range splitNameList(names) {
		v, ok := lookupAccessRight(name)
		if !ok {
			unknown = append(unknown, name)
			continue
		}
		a |= v
	}
	if len(unknown) > 0 {
		return 0, unknownNamesError("access right", unknown, AccessRightNames())
	}
	return a, nil
}

func lookupAccessRight(name string) (AccessRights, bool) {
	for _, n := range accessRightNames {
		if strings.EqualFold(name, n.name) {
			return n.value, true
		}
	}
	return 0, false
}

// Names decomposes the value the way .NET prints a flags enum: largest
// named values first, printed in ascending order of value. Bits no name
// covers (only a conversion from a raw number can set them) print as a hex
// number, which ParseAccessRights rejects.
func (a AccessRights) Names() []string {
	var picked []string
	rest := a
	for _, n := range accessRightsByValueDesc {
		if rest&n.value == n.value {
			picked = append(picked, n.name)
			rest &^= n.value
		}
	}
	names := make([]string, 0, len(picked)+1)
	if rest != 0 {
		names = append(names, fmt.Sprintf("%#x", uint32(rest)))
	}
	for i := len(picked) - 1; i >= 0; i-- {
		names = append(names, picked[i])
	}
	return names
}

// String joins the names with ", "; zero prints as "".
func (a AccessRights) String() string {
	return strings.Join(a.Names(), ", ")
}

// GrantsAllExtendedRights reports whether the value carries the
// ExtendedRight permission (GenericAll includes it). Whether that means
// every extended right depends on the entry: with no specific extended
// rights named it does, as in AD an ExtendedRight ACE without an object type
// covers every extended right (see ACE.Rights).
func (a AccessRights) GrantsAllExtendedRights() bool {
	return a&ExtendedRight != 0
}

// MarshalJSON writes the value as an array of names.
func (a AccessRights) MarshalJSON() ([]byte, error) {
	return json.Marshal(a.Names())
}

// UnmarshalJSON reads an array of names in any case; null is zero.
func (a *AccessRights) UnmarshalJSON(b []byte) error {
	var names []string
	if err := json.Unmarshal(b, &names); err != nil {
		return fmt.Errorf("access rights: %w", err)
	}
	parsed, err := ParseAccessRights(names)
	if err != nil {
		return err
	}
	*a = parsed
	return nil
}
