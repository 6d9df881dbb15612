package connector

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"
)

// SendConnector is Exchange's Send connector: a named rule saying how mail
// for some address spaces leaves the organization. Field names are
// Exchange's property names; the JSON encoding of this type is the store's
// record format, so renaming a field is a schema change.
type SendConnector struct {
	Guid                         string               `json:"Guid"`
	Name                         string               `json:"Name"`
	AddressSpaces                []AddressSpace       `json:"AddressSpaces"`
	SmartHosts                   []SmartHost          `json:"SmartHosts,omitempty"`
	SmartHostAuthMechanism       AuthMechanism        `json:"SmartHostAuthMechanism"`
	AuthenticationCredential     *Credential          `json:"AuthenticationCredential,omitempty"`
	MaxMessageSize               ByteSize             `json:"MaxMessageSize"`
	Port                         int                  `json:"Port"`
	Fqdn                         string               `json:"Fqdn,omitempty"`
	ForceHELO                    bool                 `json:"ForceHELO"`
	RequireTLS                   bool                 `json:"RequireTLS"`
	IgnoreSTARTTLS               bool                 `json:"IgnoreSTARTTLS"`
	TlsAuthLevel                 TlsAuthLevel         `json:"TlsAuthLevel,omitempty"`
	TlsDomain                    string               `json:"TlsDomain,omitempty"`
	TlsCertificateName           CertificateName      `json:"TlsCertificateName,omitzero"`
	DomainSecureEnabled          bool                 `json:"DomainSecureEnabled"`
	IsScopedConnector            bool                 `json:"IsScopedConnector"`
	SourceTransportServers       []string             `json:"SourceTransportServers"`
	SourceIPAddress              netip.Addr           `json:"SourceIPAddress"`
	ConnectionInactivityTimeOut  TimeSpan             `json:"ConnectionInactivityTimeOut"`
	SmtpMaxMessagesPerConnection int                  `json:"SmtpMaxMessagesPerConnection"`
	ErrorPolicies                ErrorPolicies        `json:"ErrorPolicies"`
	UseExternalDNSServersEnabled bool                 `json:"UseExternalDNSServersEnabled"`
	FrontendProxyEnabled         bool                 `json:"FrontendProxyEnabled"`
	CloudServicesMailEnabled     bool                 `json:"CloudServicesMailEnabled"`
	ProtocolLoggingLevel         ProtocolLoggingLevel `json:"ProtocolLoggingLevel"`
	Comment                      string               `json:"Comment,omitempty"`
	Enabled                      bool                 `json:"Enabled"`
	ConnectorType                ConnectorType        `json:"ConnectorType"`
	RequireOorg                  bool                 `json:"RequireOorg"`
	WhenCreated                  time.Time            `json:"WhenCreated"`
	WhenChanged                  time.Time            `json:"WhenChanged"`
}

// Defaults that depend on where a connector is created.
type Defaults struct {
	// ServerName is this server's name, the default SourceTransportServers.
	ServerName string
}

// Default values of a new connector (reference: Appendix A.2).
const (
	DefaultPort                         = 25
	DefaultMaxMessageSize               = ByteSize(35 * 1024 * 1024)
	DefaultConnectionInactivityTimeOut  = TimeSpan(10 * time.Minute)
	DefaultSmtpMaxMessagesPerConnection = 20
)

// newDefault returns a connector with every default of a Custom connector.
func newDefault(d Defaults) SendConnector {
	c := SendConnector{
		SmartHostAuthMechanism:       AuthNone,
		MaxMessageSize:               DefaultMaxMessageSize,
		Port:                         DefaultPort,
		SourceIPAddress:              netip.IPv4Unspecified(),
		ConnectionInactivityTimeOut:  DefaultConnectionInactivityTimeOut,
		SmtpMaxMessagesPerConnection: DefaultSmtpMaxMessagesPerConnection,
		Enabled:                      true,
	}
	if d.ServerName != "" {
		c.SourceTransportServers = []string{d.ServerName}
	}
	return c
}

// Identity is how Exchange names the object in output: its name.
func (c *SendConnector) Identity() string { return c.Name }

// DNSRoutingEnabled is derived, never stored: a connector without smart
// hosts routes by MX records.
func (c *SendConnector) DNSRoutingEnabled() bool { return len(c.SmartHosts) == 0 }

// Clone returns a deep copy, so a patch can be applied without touching the
// original.
func (c SendConnector) Clone() SendConnector {
	c.AddressSpaces = slices.Clone(c.AddressSpaces)
	c.SmartHosts = slices.Clone(c.SmartHosts)
	c.SourceTransportServers = slices.Clone(c.SourceTransportServers)
	if c.AuthenticationCredential != nil {
		cred := *c.AuthenticationCredential
		c.AuthenticationCredential = &cred
	}
	return c
}

// Credential is AuthenticationCredential: the user name and password used
// for BasicAuth. The password is a Secret, which no formatter can print.
type Credential struct {
	UserName string `json:"UserName"`
	Password Secret `json:"-"`
}

// String shows what an admin may see: the user name and whether a password
// is set.
func (c *Credential) String() string {
	if c == nil {
		return ""
	}
	if c.Password.IsSet() {
		return c.UserName + " (password set)"
	}
	return c.UserName + " (no password)"
}

// Secret holds a password. Every way of printing it (fmt verbs, slog, JSON,
// text marshalling) yields a placeholder; only Reveal returns the value, and
// only the code that hands it to the remote server or the store calls it.
type Secret struct {
	value string
}

// NewSecret wraps a password.
func NewSecret(s string) Secret { return Secret{value: s} }

// Reveal returns the password.
func (s Secret) Reveal() string { return s.value }

// IsSet reports whether a password is present.
func (s Secret) IsSet() bool { return s.value != "" }

// Len is the password's length in bytes, for validation messages.
func (s Secret) Len() int { return len(s.value) }

const redacted = "(password set)"

func (s Secret) String() string               { return redacted }
func (s Secret) GoString() string             { return redacted }
func (s Secret) Format(f fmt.State, _ rune)   { _, _ = f.Write([]byte(redacted)) }
func (s Secret) LogValue() slog.Value         { return slog.StringValue(redacted) }
func (s Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }
func (s Secret) Equal(o Secret) bool          { return s.value == o.value }
func (s *Secret) UnmarshalText(_ []byte) error {
	return fmt.Errorf("a password cannot be read from text")
}
func (s *Secret) UnmarshalJSON(_ []byte) error {
	return fmt.Errorf("a password cannot be read from JSON")
}
