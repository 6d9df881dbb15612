// Package permissions models the permissions on a Send connector and the
// header firewall they drive, the way Exchange does. It does no I/O: every
// function takes values and returns new ones.
//
// # Rights
//
// Five extended rights matter on a Send connector (Right; a set of them is
// Rights). Three of them decide which header fields a receiver may see:
//
//	ms-Exch-Send-Headers-Routing       keeps Received and Resent-* fields
//	ms-Exch-Send-Headers-Forest        keeps X-MS-Exchange-Forest-* fields
//	ms-Exch-Send-Headers-Organization  keeps X-MS-Exchange-Organization-* fields
//
// The other two, ms-Exch-SMTP-Send-Exch50 and ms-Exch-SMTP-Send-XShadow, are
// stored and shown; nothing here acts on them. Names parse in any case and
// print in the canonical spelling above; the transport's own names for the
// same rights (SendRoutingHeaders, ...) come from Rights.SessionPermissions.
//
// # Principals and entries
//
// A Principal is a security principal named DOMAIN\name or name@domain,
// compared without regard to case. The well-known principals the defaults
// use (NT AUTHORITY\ANONYMOUS LOGON, MS Exchange\Partner Servers, ...) are
// constants; the outbound session decides which one the remote end is.
//
// An ACE grants (or, with Deny, denies) extended rights to one principal.
// AccessRights is Active Directory's -AccessRights with AD's numeric values.
// Only ExtendedRight, and GenericAll which contains it, affect the
// firewall: an entry with ExtendedRight that names no specific extended
// right covers all of them, as in AD. Every other access right is stored
// and shown only, so that entries read back as the admin wrote them.
//
// An ACL is a connector's list of entries. DefaultACL is what a new
// connector starts with. Effective computes what a principal holds: the
// union of its allow entries minus the union of its deny entries, so deny
// beats allow whether the entries are explicit or inherited. Entries with
// InheritanceType Descendents or Children are inherit-only in AD and grant
// nothing on the connector itself. Add and Remove edit explicit entries
// only and keep Windows' canonical order (explicit deny, explicit allow,
// inherited deny, inherited allow).
//
// # Header firewall
//
// Classify puts a header field into a HeaderClass by its name. SendPolicy
// turns a session's effective rights and the connector's
// CloudServicesMailEnabled setting into a Policy: the classes the rights do
// not cover are removed, and X-MS-Exchange-CrossPremises-* fields are
// removed too unless cloud mail is enabled, in which case Organization
// fields are first copied to CrossPremises ones. ReceivePolicy is the
// spoofing protection applied to mail from untrusted clients.
//
// Filter applies a Policy to the top-level header block only; fields of
// messages attached inside the body are never seen, and FilterMessage hands
// the body back as a sub-slice of the message without copying it. Filter is
// byte-preserving: what it keeps stays exactly as it was, in order, case,
// folding, whitespace and line endings, and when it has nothing to remove it
// returns its input without allocating. Filtering twice gives the same
// result as filtering once.
package permissions
