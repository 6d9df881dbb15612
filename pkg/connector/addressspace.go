package connector

import (
	"strconv"
	"strings"
)

// AddressSpace is one entry of a connector's AddressSpaces:
// [Type:]Address[;Cost]. Type is upper case ("SMTP", "X400", …); for SMTP the
// Address is "*", "--", "domain" or "*.domain" in canonical lower case.
type AddressSpace struct {
	Type    string
	Address string
	Cost    int
}

// The special SMTP addresses.
const (
	AllDomains      = "*"  // every domain
	AcceptedDomains = "--" // every authoritative or internal-relay accepted domain
)

const (
	minCost     = 1
	maxCost     = 100
	defaultCost = 1
	typeSMTP    = "SMTP"
	typeX400    = "X400"
)

// Scope says what an SMTP address space covers.
type Scope uint8

const (
	ScopeNonSMTP    Scope = iota // another address type: never matches an SMTP recipient
	ScopeAll                     // "*"
	ScopeAccepted                // "--"
	ScopeDomain                  // "contoso.com": that domain only
	ScopeSubdomains              // "*.contoso.com": the domain and all its subdomains
)

// Scope classifies the address space.
func (a AddressSpace) Scope() Scope {
	if a.Type != typeSMTP {
		return ScopeNonSMTP
	}
	switch {
	case a.Address == AllDomains:
		return ScopeAll
	case a.Address == AcceptedDomains:
		return ScopeAccepted
	case strings.HasPrefix(a.Address, "*."):
		return ScopeSubdomains
	default:
		return ScopeDomain
	}
}

// Domain is the domain an SMTP domain or subdomain address space names
// ("contoso.com" for both "contoso.com" and "*.contoso.com").
func (a AddressSpace) Domain() string {
	return strings.TrimPrefix(a.Address, "*.")
}

// IsSMTP reports whether the address space is of type SMTP.
func (a AddressSpace) IsSMTP() bool { return a.Type == typeSMTP }

// String prints the canonical form, e.g. "SMTP:*.contoso.com;5".
func (a AddressSpace) String() string {
	return a.Type + ":" + a.Address + ";" + strconv.Itoa(a.Cost)
}

// SameAddress reports whether two entries name the same addresses, whatever
// their cost.
func (a AddressSpace) SameAddress(b AddressSpace) bool {
	return a.Type == b.Type && a.Address == b.Address
}

func (a AddressSpace) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

func (a *AddressSpace) UnmarshalText(b []byte) error {
	v, err := ParseAddressSpace(string(b))
	if err != nil {
		return err
	}
	*a = v
	return nil
}

// ParseAddressSpace parses [Type:]Address[;Cost]. "*", "SMTP:*", "*;1" and
// "SMTP:*;1" are the same value.
func ParseAddressSpace(s string) (AddressSpace, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return AddressSpace{}, ruleErr("InvalidAddressSpace", "address space is empty")
	}
	typ, rest := typeSMTP, s
	if i := strings.IndexByte(s, ':'); i > 0 {
		typ, rest = strings.ToUpper(strings.TrimSpace(s[:i])), s[i+1:]
	}
	if typ == "LOCAL" {
		return AddressSpace{}, ruleErr("InvalidAddressSpace", "the Local: scope prefix is not accepted; use --is-scoped-connector")
	}
	if !validTypeName(typ) {
		return AddressSpace{}, ruleErr("InvalidAddressSpace", "address type %q must be 1 to 9 letters or digits", typ)
	}
	address, cost, err := splitCost(typ, rest)
	if err != nil {
		return AddressSpace{}, err
	}
	switch typ {
	case typeSMTP:
		address, err = normalizeSMTPAddress(address)
	case typeX400:
		address, err = normalizeX400(address)
	default:
		address, err = normalizeOtherAddress(address)
	}
	if err != nil {
		return AddressSpace{}, err
	}
	return AddressSpace{Type: typ, Address: address, Cost: cost}, nil
}

func validTypeName(t string) bool {
	if t == "" || len(t) > 9 {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// splitCost takes the cost after the last ';'. For X400 a last segment that
// is an RFC 1685 element ("o=Site") or empty (a closing ';') is part of the
// address, not a cost.
func splitCost(typ, s string) (address string, cost int, err error) {
	i := strings.LastIndexByte(s, ';')
	if i < 0 {
		return s, defaultCost, nil
	}
	tail := strings.TrimSpace(s[i+1:])
	if typ == typeX400 && (tail == "" || strings.Contains(tail, "=")) {
		return s, defaultCost, nil
	}
	if tail == "" {
		return s[:i], defaultCost, nil
	}
	n, convErr := strconv.Atoi(tail)
	if convErr != nil {
		return "", 0, ruleErr("InvalidAddressSpaceCostFormat", "cost %q is not a whole number (syntax: [Type:]Address[;Cost])", tail)
	}
	if n < minCost || n > maxCost {
		return "", 0, ruleErr("AddressSpaceCostOutOfRange", "cost must be between %d and %d", minCost, maxCost)
	}
	return s[:i], n, nil
}

func normalizeSMTPAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	switch s {
	case AllDomains, AcceptedDomains:
		return s, nil
	case "":
		return "", ruleErr("InvalidAddressSpace", "SMTP address is empty")
	}
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		d, err := NormalizeDomain(rest)
		if err != nil {
			return "", smtpAddressErr(err)
		}
		return "*." + d, nil
	}
	if strings.Contains(s, "*") {
		return "", ruleErr("InvalidAddressSpace", "wildcards are allowed only as \"*\" or a leading \"*.\" (e.g. *.contoso.com)")
	}
	d, err := NormalizeDomain(s)
	if err != nil {
		return "", smtpAddressErr(err)
	}
	return d, nil
}

func smtpAddressErr(err error) error {
	return ruleErr("InvalidAddressSpace", "invalid SMTP domain: %s", err.Error())
}

// normalizeX400 checks the RFC 1685 form "key=value;key=value;" and returns it
// with a closing ';'. Keys are case-insensitive and printed lower case;
// values are kept as written (a single space is a legal value, as in "a= ").
func normalizeX400(s string) (string, error) {
	var b strings.Builder
	n := 0
	for _, elem := range strings.Split(s, ";") {
		if strings.TrimSpace(elem) == "" {
			continue
		}
		key, value, ok := strings.Cut(elem, "=")
		key = strings.ToLower(strings.TrimSpace(key))
		if !ok || key == "" || !isAlnumKey(key) {
			return "", ruleErr("InvalidX400AddressSpace", "X400 address element %q must be key=value (RFC 1685, e.g. c=US;a= ;p=Org;o=Site;)", elem)
		}
		if value == "" {
			return "", ruleErr("InvalidX400AddressSpace", "X400 address element %q has no value", elem)
		}
		b.WriteString(key)
		b.WriteByte('=')
		b.WriteString(value)
		b.WriteByte(';')
		n++
	}
	if n == 0 {
		return "", ruleErr("InvalidX400AddressSpace", "X400 address is empty")
	}
	return b.String(), nil
}

func isAlnumKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// normalizeOtherAddress handles address types sendconn only stores: any
// non-empty text, lower-cased, "(a)" read as "@" as Exchange does.
func normalizeOtherAddress(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", ruleErr("InvalidAddressSpace", "address is empty")
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return "", ruleErr("InvalidAddressSpace", "address contains a control character")
		}
	}
	return strings.ReplaceAll(strings.ToLower(s), "(a)", "@"), nil
}

// ParseAddressSpaceList parses a comma-separated list (';' separates the cost,
// so it cannot separate entries). Empty entries are skipped; every bad entry
// is reported.
func ParseAddressSpaceList(s string) ([]AddressSpace, error) {
	var out []AddressSpace
	var ps problems
	for _, part := range strings.Split(s, ",") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		a, err := ParseAddressSpace(part)
		if err != nil {
			ps.addErr("AddressSpaces", strings.TrimSpace(part), err)
			continue
		}
		out = append(out, a)
	}
	return out, ps.err()
}

// dedupAddressSpaces drops exact duplicates, keeping the first occurrence.
func dedupAddressSpaces(in []AddressSpace) []AddressSpace {
	out := make([]AddressSpace, 0, len(in))
	for _, a := range in {
		dup := false
		for _, b := range out {
			if a == b {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, a)
		}
	}
	return out
}
