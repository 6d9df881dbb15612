package permissions

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Principal is a security principal as the admin named it: DOMAIN\name or
// name@domain, trimmed, with the well-known principals in their canonical
// spelling. Principals compare case-insensitively (Equal), as Windows
// compares account names.
type Principal string

// The well-known principals the default entries name. The "MS Exchange"
// ones are Exchange pseudo-accounts that exist only inside transport's
// permission evaluation.
const (
	AnonymousLogon           Principal = `NT AUTHORITY\ANONYMOUS LOGON`
	PartnerServers           Principal = `MS Exchange\Partner Servers`
	LegacyExchangeServers    Principal = `MS Exchange\Legacy Exchange Servers`
	ExternallySecuredServers Principal = `MS Exchange\Externally Secured Servers`
	HubTransportServers      Principal = `MS Exchange\Hub Transport Servers`
	EdgeTransportServers     Principal = `MS Exchange\Edge Transport Servers`
)

var wellKnownPrincipals = []Principal{
	AnonymousLogon,
	PartnerServers,
	LegacyExchangeServers,
	ExternallySecuredServers,
	HubTransportServers,
	EdgeTransportServers,
}

// maxPrincipalPart bounds each side of a principal name: far above any real
// AD name, low enough that a pasted file is refused rather than stored.
const maxPrincipalPart = 256

// ExchangeServers returns the organization's Exchange Servers group, the
// principal every server of the organization acts as.
func ExchangeServers(orgDomain string) Principal {
	return Principal(strings.TrimSpace(orgDomain) + `\Exchange Servers`)
}

// ParsePrincipal accepts DOMAIN\name or name@domain. Space around the whole
// name and around each part is dropped, and a well-known principal written
// in any case comes back in its canonical spelling, so that the stored
// entries read the way Exchange prints them.
func ParsePrincipal(s string) (Principal, error) {
	name := strings.TrimSpace(s)
	problem := principalProblem(name)
	if problem != "" {
		return "", fmt.Errorf("principal %s: %s", quoteName(s), problem)
	}
	p := Principal(canonicalParts(name))
	for _, known := range wellKnownPrincipals {
		if p.Equal(known) {
			return known, nil
		}
	}
	return p, nil
}

// principalProblem returns what is wrong with name, or "" if nothing is.
func principalProblem(name string) string {
	if !utf8.ValidString(name) {
		return "not valid UTF-8"
	}
	if strings.ContainsFunc(name, unicode.IsControl) {
		return "contains a control character"
	}
	switch {
	case strings.Contains(name, `\`):
		return domainNameProblem(name)
	case strings.Contains(name, "@"):
		return userPrincipalNameProblem(name)
	default:
		return `expected DOMAIN\name or name@domain`
	}
}

func domainNameProblem(name string) string {
	if strings.Count(name, `\`) > 1 {
		return `more than one backslash: expected DOMAIN\name`
	}
	domain, user, _ := strings.Cut(name, `\`)
	domain, user = strings.TrimSpace(domain), strings.TrimSpace(user)
	switch {
	case domain == "":
		return `empty domain before the backslash: expected DOMAIN\name`
	case user == "":
		return `empty name after the backslash: expected DOMAIN\name`
	case utf8.RuneCountInString(domain) > maxPrincipalPart:
		return fmt.Sprintf("domain longer than %d characters", maxPrincipalPart)
	case utf8.RuneCountInString(user) > maxPrincipalPart:
		return fmt.Sprintf("name longer than %d characters", maxPrincipalPart)
	}
	return ""
}

func userPrincipalNameProblem(name string) string {
	if strings.Count(name, "@") > 1 {
		return "more than one @: expected name@domain"
	}
	user, domain, _ := strings.Cut(name, "@")
	user, domain = strings.TrimSpace(user), strings.TrimSpace(domain)
	switch {
	case user == "":
		return "empty name before @: expected name@domain"
	case domain == "":
		return "empty domain after @: expected name@domain"
	case utf8.RuneCountInString(user) > maxPrincipalPart:
		return fmt.Sprintf("name longer than %d characters", maxPrincipalPart)
	case len(domain) > 255:
		return "domain longer than 255 characters"
	}
	for _, label := range strings.Split(domain, ".") {
		if !isDNSLabel(label) {
			return fmt.Sprintf("domain %q: expected dot-separated labels of letters, digits and hyphens", domain)
		}
	}
	return ""
}

// isDNSLabel is deliberately the host-name rule: UPN suffixes are DNS names,
// and refusing anything else catches a mistyped separator early.
func isDNSLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// canonicalParts drops the space around each part of an already valid name.
func canonicalParts(name string) string {
	for _, sep := range []string{`\`, "@"} {
		if left, right, ok := strings.Cut(name, sep); ok {
			return strings.TrimSpace(left) + sep + strings.TrimSpace(right)
		}
	}
	return name
}

// Equal compares principal names the way Windows compares account names:
// without regard to case.
func (p Principal) Equal(q Principal) bool {
	return strings.EqualFold(string(p), string(q))
}

func (p Principal) String() string { return string(p) }

// quoteName quotes a name for an error message without doubling its
// backslashes, which %q would do to every DOMAIN\name; only names that
// could garble a terminal are escaped.
func quoteName(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, unicode.IsControl) {
		return `"` + s + `"`
	}
	return strconv.Quote(s)
}
