package connector

import (
	"strings"
	"unicode/utf8"
)

// CertificateName is TlsCertificateName: the client certificate a connector
// presents, named by issuer and subject as "<I>issuer<S>subject" (the <I> part
// is optional). Renewed certificates keep the name, which is why Exchange
// names certificates this way rather than by thumbprint.
type CertificateName struct {
	Issuer  string
	Subject string
}

// IsZero reports whether no certificate is named.
func (c CertificateName) IsZero() bool { return c.Subject == "" && c.Issuer == "" }

func (c CertificateName) String() string {
	if c.IsZero() {
		return ""
	}
	if c.Issuer == "" {
		return "<S>" + c.Subject
	}
	return "<I>" + c.Issuer + "<S>" + c.Subject
}

func (c CertificateName) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

func (c *CertificateName) UnmarshalText(b []byte) error {
	v, err := ParseCertificateName(string(b))
	*c = v
	return err
}

// SubjectCN is the subject's common name, the domain the certificate is for.
func (c CertificateName) SubjectCN() string {
	for _, rdn := range splitDN(c.Subject) {
		for _, atv := range splitUnescaped(rdn, '+') {
			k, v, ok := strings.Cut(atv, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "CN") {
				return unquoteDNValue(strings.TrimSpace(v))
			}
		}
	}
	return ""
}

// ParseCertificateName parses "<I>issuer<S>subject" or "<S>subject"; the tags
// are case-insensitive. The subject must hold a CN that is a domain (a
// leading "*." wildcard is allowed). The empty string means "none".
func ParseCertificateName(s string) (CertificateName, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return CertificateName{}, nil
	}
	if !utf8.ValidString(t) || hasControl(t) {
		return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "certificate name must be printable UTF-8 text")
	}
	si := indexTag(t, "<S>")
	if si < 0 {
		return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "must be <I>issuer<S>subject (the <S> part is required)")
	}
	var c CertificateName
	switch ii := indexTag(t, "<I>"); {
	case ii == 0 && si > 0:
		c.Issuer = strings.TrimSpace(t[3:si])
		if c.Issuer == "" || !strings.Contains(c.Issuer, "=") {
			return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "issuer must be a distinguished name such as CN=Contoso CA, O=Contoso")
		}
	case ii < 0 && si == 0:
	default:
		return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "must be <I>issuer<S>subject with <I> first and optional")
	}
	c.Subject = strings.TrimSpace(t[si+3:])
	if indexTag(c.Subject, "<I>") >= 0 {
		return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "<I> must come before <S>")
	}
	cn := c.SubjectCN()
	if cn == "" {
		return CertificateName{}, ruleErr("InvalidSmtpX509Identifier", "subject must contain a CN, e.g. <S>CN=mail.contoso.com")
	}
	if _, err := NormalizeWildcardDomain(cn); err != nil {
		return CertificateName{}, ruleErr("InvalidDomainInSmtpX509Identifier", "subject CN %q is not a domain", cn)
	}
	return c, nil
}

// indexTag finds an ASCII tag such as "<S>" case-insensitively, returning a
// byte offset into s (strings.ToUpper could change byte lengths).
func indexTag(s, tag string) int {
	for i := 0; i+len(tag) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(tag)], tag) {
			return i
		}
	}
	return -1
}

// splitDN splits a distinguished name into RDNs at unescaped, unquoted commas.
func splitDN(dn string) []string { return splitUnescaped(dn, ',') }

func splitUnescaped(s string, sep byte) []string {
	var parts []string
	start, inQuote := 0, false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			i++
		case c == '"':
			inQuote = !inQuote
		case c == sep && !inQuote:
			parts = append(parts, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	return append(parts, strings.TrimSpace(s[start:]))
}

func unquoteDNValue(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
