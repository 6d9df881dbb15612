package connector

import (
	"fmt"
	"strings"
)

// The enumerations below print and parse with Exchange's spellings; parsing is
// case-insensitive and an unknown value is an error that lists the valid ones.

func parseEnum(what, s string, names []string) (int, error) {
	t := strings.TrimSpace(s)
	for i, n := range names {
		if n != "" && strings.EqualFold(n, t) {
			return i, nil
		}
	}
	return 0, ruleErr("InvalidValue", "unknown %s %q (valid: %s)", what, t, strings.Join(nonEmpty(names), ", "))
}

func nonEmpty(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

func enumName(names []string, i int) string {
	if i < 0 || i >= len(names) {
		return fmt.Sprintf("invalid(%d)", i)
	}
	return names[i]
}

// AuthMechanism is SmartHostAuthMechanism: how the transport authenticates to
// a smart host.
type AuthMechanism uint8

const (
	AuthNone AuthMechanism = iota
	AuthBasic
	AuthBasicRequireTLS
	AuthExchangeServer
	AuthExternalAuthoritative
)

var authMechanismNames = []string{"None", "BasicAuth", "BasicAuthRequireTLS", "ExchangeServer", "ExternalAuthoritative"}

// AuthMechanismNames lists the valid spellings, for help text and completion.
func AuthMechanismNames() []string { return authMechanismNames }

func (m AuthMechanism) String() string { return enumName(authMechanismNames, int(m)) }

// IsBasic reports whether the mechanism sends a user name and password.
func (m AuthMechanism) IsBasic() bool { return m == AuthBasic || m == AuthBasicRequireTLS }

func ParseAuthMechanism(s string) (AuthMechanism, error) {
	i, err := parseEnum("SmartHostAuthMechanism", s, authMechanismNames)
	return AuthMechanism(i), err
}

func (m AuthMechanism) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
func (m *AuthMechanism) UnmarshalText(b []byte) (err error) {
	*m, err = ParseAuthMechanism(string(b))
	return err
}

// TlsAuthLevel is how strictly the remote certificate is checked; the zero
// value means unset ($null in Exchange).
type TlsAuthLevel uint8

const (
	TLSAuthUnset TlsAuthLevel = iota
	TLSEncryptionOnly
	TLSCertificateValidation
	TLSDomainValidation
)

var tlsAuthLevelNames = []string{"", "EncryptionOnly", "CertificateValidation", "DomainValidation"}

func TlsAuthLevelNames() []string { return nonEmpty(tlsAuthLevelNames) }

func (l TlsAuthLevel) String() string { return enumName(tlsAuthLevelNames, int(l)) }

// ParseTlsAuthLevel accepts the empty string as "unset".
func ParseTlsAuthLevel(s string) (TlsAuthLevel, error) {
	if strings.TrimSpace(s) == "" {
		return TLSAuthUnset, nil
	}
	i, err := parseEnum("TlsAuthLevel", s, tlsAuthLevelNames)
	return TlsAuthLevel(i), err
}

func (l TlsAuthLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }
func (l *TlsAuthLevel) UnmarshalText(b []byte) (err error) {
	*l, err = ParseTlsAuthLevel(string(b))
	return err
}

// ProtocolLoggingLevel turns the SMTP send protocol log on (Verbose) or off.
type ProtocolLoggingLevel uint8

const (
	LoggingNone ProtocolLoggingLevel = iota
	LoggingVerbose
)

var protocolLoggingLevelNames = []string{"None", "Verbose"}

func ProtocolLoggingLevelNames() []string { return protocolLoggingLevelNames }

func (l ProtocolLoggingLevel) String() string { return enumName(protocolLoggingLevelNames, int(l)) }

func ParseProtocolLoggingLevel(s string) (ProtocolLoggingLevel, error) {
	i, err := parseEnum("ProtocolLoggingLevel", s, protocolLoggingLevelNames)
	return ProtocolLoggingLevel(i), err
}

func (l ProtocolLoggingLevel) MarshalText() ([]byte, error) { return []byte(l.String()), nil }
func (l *ProtocolLoggingLevel) UnmarshalText(b []byte) (err error) {
	*l, err = ParseProtocolLoggingLevel(string(b))
	return err
}

// ConnectorType marks hybrid connectors (XPremises); stored and shown.
type ConnectorType uint8

const (
	ConnectorDefault ConnectorType = iota
	ConnectorXPremises
)

var connectorTypeNames = []string{"Default", "XPremises"}

func ConnectorTypeNames() []string { return connectorTypeNames }

func (t ConnectorType) String() string { return enumName(connectorTypeNames, int(t)) }

func ParseConnectorType(s string) (ConnectorType, error) {
	i, err := parseEnum("ConnectorType", s, connectorTypeNames)
	return ConnectorType(i), err
}

func (t ConnectorType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *ConnectorType) UnmarshalText(b []byte) (err error) {
	*t, err = ParseConnectorType(string(b))
	return err
}

// Usage is the template New-SendConnector applies at creation. It is not
// stored: Get-SendConnector cannot tell it either.
type Usage uint8

const (
	UsageCustom Usage = iota
	UsageInternal
	UsageInternet
	UsagePartner
)

var usageNames = []string{"Custom", "Internal", "Internet", "Partner"}

func UsageNames() []string { return usageNames }

func (u Usage) String() string { return enumName(usageNames, int(u)) }

func ParseUsage(s string) (Usage, error) {
	i, err := parseEnum("Usage", s, usageNames)
	return Usage(i), err
}

// ErrorPolicies is a set of flags that reclassify delivery failures.
type ErrorPolicies uint8

const (
	DowngradeDnsFailures ErrorPolicies = 1 << iota
	DowngradeCustomFailures
	UpgradeCustomFailures
)

// ErrorPoliciesDefault is the empty set, printed "Default".
const ErrorPoliciesDefault ErrorPolicies = 0

var errorPolicyNames = []struct {
	flag ErrorPolicies
	name string
}{
	{DowngradeDnsFailures, "DowngradeDnsFailures"},
	{DowngradeCustomFailures, "DowngradeCustomFailures"},
	{UpgradeCustomFailures, "UpgradeCustomFailures"},
}

func ErrorPolicyNames() []string {
	names := []string{"Default"}
	for _, p := range errorPolicyNames {
		names = append(names, p.name)
	}
	return names
}

func (p ErrorPolicies) Has(f ErrorPolicies) bool { return p&f != 0 }

func (p ErrorPolicies) String() string {
	if p == 0 {
		return "Default"
	}
	var names []string
	for _, e := range errorPolicyNames {
		if p&e.flag != 0 {
			names = append(names, e.name)
		}
	}
	return strings.Join(names, ", ")
}

// ParseErrorPolicies reads a comma-separated list. Default stands alone: it
// means "no policy", so combining it with another is a contradiction.
func ParseErrorPolicies(s string) (ErrorPolicies, error) {
	var p ErrorPolicies
	sawDefault, n := false, 0
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n++
		if strings.EqualFold(part, "Default") {
			sawDefault = true
			continue
		}
		found := false
		for _, e := range errorPolicyNames {
			if strings.EqualFold(e.name, part) {
				p |= e.flag
				found = true
			}
		}
		if !found {
			return 0, ruleErr("InvalidValue", "unknown error policy %q (valid: %s)", part, strings.Join(ErrorPolicyNames(), ", "))
		}
	}
	if n == 0 {
		return 0, ruleErr("InvalidValue", "empty error policy list (valid: %s)", strings.Join(ErrorPolicyNames(), ", "))
	}
	if sawDefault && p != 0 {
		return 0, ruleErr("InvalidValue", "Default stands alone and cannot be combined with other error policies")
	}
	return p, nil
}

func (p ErrorPolicies) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
func (p *ErrorPolicies) UnmarshalText(b []byte) (err error) {
	*p, err = ParseErrorPolicies(string(b))
	return err
}
