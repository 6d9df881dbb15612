package connector

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on free-text properties.
const (
	MaxNameLength       = 64
	MaxCommentLength    = 1024
	MaxCredentialLength = 256
)

// Validate checks every rule of a connector and reports all broken ones at
// once. New and Set both call it on the result, so a rule lives here and
// nowhere else. The order follows Exchange's ValidateWrite checks.
func (c *SendConnector) Validate() error {
	var ps problems
	if err := ValidateName(c.Name); err != nil {
		ps.addErr("Name", c.Name, err)
	}
	c.validateAddressSpaces(&ps)
	c.validateSmartHosts(&ps)
	c.validateTLS(&ps)
	c.validateSource(&ps)
	c.validateLimits(&ps)
	return ps.err()
}

// ValidateName applies the naming rules: 1–64 characters, no control
// characters, no leading or trailing space. "-" (standard input) and names
// that look like a Guid are refused because they could not be told apart
// from an identity of another kind.
func ValidateName(name string) error {
	switch {
	case name == "":
		return ruleErr("InvalidName", "name is empty")
	case !utf8.ValidString(name):
		return ruleErr("InvalidName", "name is not valid UTF-8")
	case utf8.RuneCountInString(name) > MaxNameLength:
		return ruleErr("InvalidName", "name is longer than %d characters", MaxNameLength)
	case strings.TrimSpace(name) != name:
		return ruleErr("InvalidName", "name must not start or end with a space")
	case name == "-":
		return ruleErr("InvalidName", "\"-\" means standard input and cannot be a name")
	case LooksLikeGuid(name):
		return ruleErr("InvalidName", "a name cannot look like a Guid")
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return ruleErr("InvalidName", "name contains a control character")
		}
	}
	return nil
}

func (c *SendConnector) validateAddressSpaces(ps *problems) {
	if len(c.AddressSpaces) == 0 {
		ps.add("AddressSpaces", "", "NoAddressSpaces", "a send connector must have at least one address space")
		return
	}
	for i, a := range c.AddressSpaces {
		if back, err := ParseAddressSpace(a.String()); err != nil || back != a {
			if err == nil {
				err = ruleErr("InvalidAddressSpace", "address space is not in canonical form")
			}
			ps.addErr("AddressSpaces", a.String(), err)
			continue
		}
		if a.Scope() == ScopeAccepted && len(c.AddressSpaces) > 1 {
			ps.add("AddressSpaces", a.String(), "SendConnectorDashdashAddressSpaceNotUnique",
				"\"--\" (all accepted domains) must be the connector's only address space")
		}
		if !a.IsSMTP() && c.DNSRoutingEnabled() {
			ps.add("AddressSpaces", a.String(), "SendConnectorNonSmtpAddressSpaceOnDNSConnector",
				"a non-SMTP address space needs smart-host routing (--smart-hosts)")
		}
		for _, b := range c.AddressSpaces[:i] {
			if a.SameAddress(b) && a.Cost != b.Cost {
				ps.add("AddressSpaces", a.String(), "DuplicateAddressSpace",
					"the same address is already listed as %s with another cost; remove one", b)
			}
		}
	}
}

func (c *SendConnector) validateSmartHosts(ps *problems) {
	for _, h := range c.SmartHosts {
		if back, err := ParseSmartHost(h.String()); err != nil || back != h {
			if err == nil {
				err = ruleErr("InvalidSmartHost", "smart host is not in canonical form")
			}
			ps.addErr("SmartHosts", h.String(), err)
		}
	}
	m := c.SmartHostAuthMechanism
	switch {
	case m > AuthExternalAuthoritative:
		ps.add("SmartHostAuthMechanism", m.String(), "InvalidValue", "unknown mechanism")
	case m == AuthExchangeServer:
		ps.add("SmartHostAuthMechanism", m.String(), "NotSupported",
			"ExchangeServer (Kerberos/GSSAPI) authentication is not supported yet; use BasicAuthRequireTLS or ExternalAuthoritative")
	case m != AuthNone && c.DNSRoutingEnabled():
		ps.add("SmartHostAuthMechanism", m.String(), "DNSRoutingEnabledMustBeSpecifiedForAuthMechanism",
			"an authentication mechanism needs smart-host routing (--smart-hosts)")
	}
	if m.IsBasic() && (c.AuthenticationCredential == nil || !c.AuthenticationCredential.Password.IsSet()) {
		ps.add("AuthenticationCredential", "", "AuthenticationCredentialNotSet",
			"%s needs a credential: --auth-username with --auth-password-file, --auth-password-stdin or SENDCONN_AUTH_PASSWORD", m)
	}
	if cred := c.AuthenticationCredential; cred != nil {
		switch {
		case cred.UserName == "":
			ps.add("AuthenticationCredential", "", "InvalidCredential", "the user name is empty")
		case utf8.RuneCountInString(cred.UserName) > MaxCredentialLength:
			ps.add("AuthenticationCredential", "", "InvalidCredential", "the user name is longer than %d characters", MaxCredentialLength)
		case hasControl(cred.UserName):
			ps.add("AuthenticationCredential", "", "InvalidCredential", "the user name contains a control character")
		}
		if utf8.RuneCountInString(cred.Password.Reveal()) > MaxCredentialLength {
			ps.add("AuthenticationCredential", "", "InvalidCredential", "the password is longer than %d characters", MaxCredentialLength)
		}
	}
}

func (c *SendConnector) validateTLS(ps *problems) {
	if c.RequireTLS && c.IgnoreSTARTTLS {
		ps.add("IgnoreSTARTTLS", "True", "IgnoreRequireTLSConflict", "RequireTLS and IgnoreSTARTTLS cannot both be True")
	}
	if c.DomainSecureEnabled && !c.DNSRoutingEnabled() {
		ps.add("DomainSecureEnabled", "True", "DomainSecureWithoutDNSRoutingEnabled", "domain security needs DNS routing (no smart hosts)")
	}
	if c.DomainSecureEnabled && c.IgnoreSTARTTLS {
		ps.add("DomainSecureEnabled", "True", "DomainSecureWithIgnoreStartTLSEnabled", "domain security needs STARTTLS; IgnoreSTARTTLS is True")
	}
	if c.TlsAuthLevel > TLSDomainValidation {
		ps.add("TlsAuthLevel", c.TlsAuthLevel.String(), "InvalidValue", "unknown level")
	}
	if c.TlsAuthLevel != TLSAuthUnset {
		if !c.RequireTLS {
			ps.add("TlsAuthLevel", c.TlsAuthLevel.String(), "TlsAuthLevelWithRequireTlsDisabled", "TlsAuthLevel can only be set when RequireTLS is True")
		}
		if c.DomainSecureEnabled {
			ps.add("TlsAuthLevel", c.TlsAuthLevel.String(), "TlsAuthLevelWithDomainSecureEnabled", "TlsAuthLevel cannot be set when DomainSecureEnabled is True")
		}
	}
	if c.TlsDomain != "" {
		if c.TlsAuthLevel != TLSDomainValidation {
			ps.add("TlsDomain", c.TlsDomain, "TlsDomainWithIncorrectTlsAuthLevel", "TlsDomain can only be set when TlsAuthLevel is DomainValidation")
		}
		if d, err := NormalizeWildcardDomain(c.TlsDomain); err != nil {
			ps.addErr("TlsDomain", c.TlsDomain, err)
		} else if d != c.TlsDomain {
			ps.add("TlsDomain", c.TlsDomain, "InvalidDomain", "domain is not in canonical form (%s)", d)
		}
	}
	if c.TlsAuthLevel == TLSDomainValidation && c.TlsDomain == "" && !c.DNSRoutingEnabled() {
		ps.add("TlsDomain", "", "TlsAuthLevelWithNoDomainOnSmartHost",
			"DomainValidation on a smart-host connector needs --tls-domain (the name the smart host's certificate must match)")
	}
	if !c.TlsCertificateName.IsZero() {
		if back, err := ParseCertificateName(c.TlsCertificateName.String()); err != nil || back != c.TlsCertificateName {
			if err == nil {
				err = ruleErr("InvalidSmtpX509Identifier", "certificate name is not in canonical form")
			}
			ps.addErr("TlsCertificateName", c.TlsCertificateName.String(), err)
		}
	}
	if c.Fqdn != "" {
		if h, err := NormalizeHostName(c.Fqdn); err != nil {
			ps.addErr("Fqdn", c.Fqdn, err)
		} else if h != c.Fqdn {
			ps.add("Fqdn", c.Fqdn, "InvalidHostName", "host name is not in canonical form (%s)", h)
		}
	}
}

func (c *SendConnector) validateSource(ps *problems) {
	if len(c.SourceTransportServers) == 0 {
		ps.add("SourceTransportServers", "", "SendConnectorSourceServersNotSet", "at least one source transport server is required")
	}
	for _, s := range c.SourceTransportServers {
		if err := ValidateServerName(s); err != nil {
			ps.addErr("SourceTransportServers", s, err)
		}
	}
	if err := ValidateSourceIP(c.SourceIPAddress); err != nil {
		ps.addErr("SourceIPAddress", c.SourceIPAddress.String(), err)
	}
}

func (c *SendConnector) validateLimits(ps *problems) {
	if !c.MaxMessageSize.IsUnlimited() && (c.MaxMessageSize > MaxByteSize || c.MaxMessageSize%kb != 0) {
		ps.add("MaxMessageSize", c.MaxMessageSize.String(), "InvalidMaxMessageSize", "size must be a whole number of KB up to 2147483647 KB, or Unlimited")
	}
	if c.MaxMessageSize < Unlimited {
		ps.add("MaxMessageSize", "", "InvalidMaxMessageSize", "size is negative")
	}
	if c.Port < 1 || c.Port > 65535 {
		ps.add("Port", itoa(c.Port), "InvalidPort", "port must be between 1 and 65535")
	}
	t := c.ConnectionInactivityTimeOut.Duration()
	if t < time.Second || t > 24*time.Hour || t%time.Second != 0 {
		ps.add("ConnectionInactivityTimeOut", c.ConnectionInactivityTimeOut.String(), "InvalidTimeSpan",
			"must be whole seconds between 00:00:01 and 1.00:00:00")
	}
	if c.SmtpMaxMessagesPerConnection < 1 || c.SmtpMaxMessagesPerConnection > 2147483647 {
		ps.add("SmtpMaxMessagesPerConnection", itoa(c.SmtpMaxMessagesPerConnection), "InvalidValue", "must be between 1 and 2147483647")
	}
	if c.ErrorPolicies&^(DowngradeDnsFailures|DowngradeCustomFailures|UpgradeCustomFailures) != 0 {
		ps.add("ErrorPolicies", "", "InvalidValue", "unknown error policy flags")
	}
	if c.ProtocolLoggingLevel > LoggingVerbose {
		ps.add("ProtocolLoggingLevel", "", "InvalidValue", "unknown level")
	}
	if c.ConnectorType > ConnectorXPremises {
		ps.add("ConnectorType", "", "InvalidValue", "unknown connector type")
	}
	if utf8.RuneCountInString(c.Comment) > MaxCommentLength {
		ps.add("Comment", "", "InvalidComment", "comment is longer than %d characters", MaxCommentLength)
	}
}

// ValidateServerName accepts a NetBIOS-style name or an FQDN (letters,
// digits, hyphens, dots); case is kept as written.
func ValidateServerName(s string) error {
	if s == "" {
		return ruleErr("InvalidServerName", "server name is empty")
	}
	if _, err := NormalizeDomain(strings.ToLower(s)); err != nil {
		return ruleErr("InvalidServerName", "not a valid server name: %s", err.Error())
	}
	return nil
}

// ValidateSourceIP accepts any unicast address, including 0.0.0.0 and ::
// ("any local address"); multicast and broadcast are refused.
func ValidateSourceIP(ip netip.Addr) error {
	switch {
	case !ip.IsValid():
		return ruleErr("InvalidSourceAddressSetting", "not an IP address")
	case ip.Zone() != "":
		return ruleErr("InvalidSourceAddressSetting", "an IPv6 zone is not allowed")
	case ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return ruleErr("InvalidSourceAddressSetting", "a multicast or broadcast address cannot be a source address")
	}
	return nil
}

func hasControl(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) {
			return true
		}
	}
	return false
}

// LooksLikeGuid reports whether s has the 8-4-4-4-12 hex form of a Guid.
func LooksLikeGuid(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func itoa(n int) string { return strconv.Itoa(n) }
