package connector

import (
	"net/netip"
	"strings"

	"golang.org/x/net/idna"
)

// maxDomainLength is the longest domain an address space or TLS domain may
// hold (255 characters, the limit Exchange applies before the "*." prefix).
const maxDomainLength = 255

// idnaProfile maps a Unicode domain to its A-label form the way a resolver
// would: lower-cased, NFC, IDNA2008 without transitional mapping.
var idnaProfile = idna.New(idna.MapForLookup(), idna.Transitional(false), idna.BidiRule())

// NormalizeDomain returns the canonical form of a domain name: A-labels,
// lower case, no trailing dot. Single-label names are accepted (internal
// relays often use them); IP addresses are not domains.
func NormalizeDomain(s string) (string, error) {
	if s == "" {
		return "", ruleErr("InvalidDomain", "domain is empty")
	}
	if strings.HasSuffix(s, ".") {
		return "", ruleErr("InvalidDomain", "domain must not end with a dot")
	}
	if _, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return "", ruleErr("InvalidDomain", "an IP address is not a domain")
	}
	ascii := strings.ToLower(s)
	if !isASCII(ascii) {
		var err error
		ascii, err = idnaProfile.ToASCII(s)
		if err != nil {
			return "", ruleErr("InvalidDomain", "not a valid internationalized domain name")
		}
	}
	if len(ascii) > maxDomainLength {
		return "", ruleErr("InvalidDomain", "domain is longer than %d characters", maxDomainLength)
	}
	for _, label := range strings.Split(ascii, ".") {
		if msg := checkLabel(label); msg != "" {
			return "", ruleErr("InvalidDomain", "%s", msg)
		}
	}
	return ascii, nil
}

// checkLabel applies the letters-digits-hyphen rule of RFC 1035 / RFC 5321.
func checkLabel(label string) string {
	switch {
	case label == "":
		return "domain has an empty label"
	case len(label) > 63:
		return "domain label longer than 63 characters"
	case label[0] == '-' || label[len(label)-1] == '-':
		return "domain label starts or ends with a hyphen"
	}
	for i := 0; i < len(label); i++ {
		c := label[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			if c == '*' {
				return "wildcards are only allowed as a leading \"*.\""
			}
			return "domain may only contain letters, digits, hyphens and dots"
		}
	}
	return ""
}

// NormalizeWildcardDomain accepts "domain" or "*.domain" (not a bare "*").
func NormalizeWildcardDomain(s string) (string, error) {
	if rest, ok := strings.CutPrefix(s, "*."); ok {
		d, err := NormalizeDomain(rest)
		if err != nil {
			return "", err
		}
		return "*." + d, nil
	}
	if s == "*" {
		return "", ruleErr("InvalidDomain", "a bare \"*\" is not allowed here; use \"*.domain\"")
	}
	return NormalizeDomain(s)
}

// NormalizeHostName validates a host name used as a smart host, an EHLO name
// or a server name; the rules are those of a domain.
func NormalizeHostName(s string) (string, error) {
	h, err := NormalizeDomain(s)
	if err != nil {
		return "", ruleErr("InvalidHostName", "not a valid host name: %s", err.Error())
	}
	return h, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}
