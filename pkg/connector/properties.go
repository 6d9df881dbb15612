package connector

import (
	"encoding/json"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Property describes one property of a Send connector: its Exchange name,
// its flag, how to read it from text into a Patch and how to read it back
// from a connector. The CLI builds its flags, help, printers and
// Exchange-style parameter names from this one list, so a new property is
// one entry here.
type Property struct {
	Name    string // Exchange name: JSON key, column header, PowerShell parameter
	Flag    string // kebab-case flag; empty when the property cannot be set
	Syntax  string // value syntax shown in help
	Help    string
	Bool    bool // a flag without a value means true
	List    bool // Set also offers --add-<flag> and --remove-<flag>
	NewOnly bool // only New can set it

	set         func(p *Patch, text string) error
	add, remove func(p *Patch, text string) error

	// Get returns the value to show: nil, string, bool, int, []string, or a
	// value with a String method for text and a MarshalJSON method for
	// json/yaml (ByteSize, TimeSpan, *Credential).
	Get func(c *SendConnector) any
}

// Settable reports whether a flag sets the property.
func (pr Property) Settable() bool { return pr.set != nil }

// Set parses text into the patch. Errors name the property.
func (pr Property) Set(p *Patch, text string) error {
	return pr.wrap(text, pr.set(p, text))
}

// Add parses text as entries to add to a list property.
func (pr Property) Add(p *Patch, text string) error { return pr.wrap(text, pr.add(p, text)) }

// Remove parses text as entries to remove from a list property.
func (pr Property) Remove(p *Patch, text string) error { return pr.wrap(text, pr.remove(p, text)) }

func (pr Property) wrap(text string, err error) error {
	if err == nil {
		return nil
	}
	var ps problems
	ps.addErr(pr.Name, strings.TrimSpace(text), err)
	return ps.err()
}

// DefaultView is the property list of Get-SendConnector's default table.
var DefaultView = []string{"Identity", "AddressSpaces", "Enabled"}

// Properties returns every property in display order (Format-List's
// alphabetical order, bookkeeping last).
func Properties() []Property { return properties }

// LookupProperty finds a property by Exchange name, case-insensitively.
func LookupProperty(name string) (Property, bool) {
	for _, p := range properties {
		if strings.EqualFold(p.Name, name) {
			return p, true
		}
	}
	return Property{}, false
}

// ParseBool reads the spellings admins use: true/false, $true/$false, 1/0.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true", "$true", "1":
		return true, nil
	case "false", "$false", "0":
		return false, nil
	}
	return false, ruleErr("InvalidBool", "%q is not a boolean (true, false, $true, $false)", strings.TrimSpace(s))
}

func boolProp(name, flag, help string, opt func(*Patch) *Opt[bool], get func(*SendConnector) bool) Property {
	return Property{
		Name: name, Flag: flag, Syntax: "bool", Help: help, Bool: true,
		set: func(p *Patch, s string) error {
			v, err := ParseBool(s)
			if err == nil {
				*opt(p) = Some(v)
			}
			return err
		},
		Get: func(c *SendConnector) any { return get(c) },
	}
}

func parsedProp[T any](name, flag, syntax, help string, parse func(string) (T, error), opt func(*Patch) *Opt[T], get func(*SendConnector) any) Property {
	return Property{
		Name: name, Flag: flag, Syntax: syntax, Help: help,
		set: func(p *Patch, s string) error {
			v, err := parse(s)
			if err == nil {
				*opt(p) = Some(v)
			}
			return err
		},
		Get: get,
	}
}

func listProp[T any](name, flag, syntax, help string, parse func(string) ([]T, error), lp func(*Patch) *ListPatch[T], get func(*SendConnector) any) Property {
	return Property{
		Name: name, Flag: flag, Syntax: syntax, Help: help, List: true,
		set: func(p *Patch, s string) error {
			v, err := parse(s)
			if err == nil {
				l := lp(p)
				l.Replace = Some(append(l.Replace.V, v...))
			}
			return err
		},
		add: func(p *Patch, s string) error {
			v, err := parse(s)
			if err == nil {
				lp(p).Add = append(lp(p).Add, v...)
			}
			return err
		},
		remove: func(p *Patch, s string) error {
			v, err := parse(s)
			if err == nil {
				lp(p).Remove = append(lp(p).Remove, v...)
			}
			return err
		},
		Get: get,
	}
}

func stringsOf[T interface{ String() string }](xs []T) []string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = x.String()
	}
	return out
}

// credentialView is how a credential is shown: the user name and whether a
// password is set. The password itself has no way out.
type credentialView struct{ c *Credential }

func (v credentialView) String() string { return v.c.String() }

func (v credentialView) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		UserName    string
		PasswordSet bool
	}{v.c.UserName, v.c.Password.IsSet()})
}

func orNil(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func parseInt(min, max int) func(string) (int, error) {
	return func(s string) (int, error) {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return 0, ruleErr("InvalidValue", "%q is not a whole number", strings.TrimSpace(s))
		}
		if n < min || n > max {
			return 0, ruleErr("InvalidValue", "must be between %d and %d", min, max)
		}
		return n, nil
	}
}

func parseServerList(s string) ([]string, error) {
	var out []string
	var ps problems
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if err := ValidateServerName(part); err != nil {
			ps.addErr("SourceTransportServers", part, err)
			continue
		}
		out = append(out, part)
	}
	return out, ps.err()
}

func parseOptionalHost(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	return NormalizeHostName(strings.TrimSpace(s))
}

func parseOptionalTlsDomain(s string) (string, error) {
	if strings.TrimSpace(s) == "" {
		return "", nil
	}
	return NormalizeWildcardDomain(strings.TrimSpace(s))
}

func parseSourceIP(s string) (netip.Addr, error) {
	ip, err := netip.ParseAddr(strings.Trim(strings.TrimSpace(s), "[]"))
	if err != nil {
		return netip.Addr{}, ruleErr("InvalidSourceAddressSetting", "%q is not an IP address", strings.TrimSpace(s))
	}
	return ip, ValidateSourceIP(ip)
}

func parseComment(s string) (string, error) { return s, nil }

func parseName(s string) (string, error) {
	return s, ValidateName(s)
}

// FormatTime prints a store timestamp the way every printer shows it:
// RFC 3339 in UTC, or nothing when unset.
func FormatTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

var properties = []Property{
	listProp("AddressSpaces", "address-spaces", "list",
		"address spaces the connector serves: [Type:]Address[;Cost], e.g. '*', 'contoso.com;5', '*.contoso.com', '--' (all accepted domains); cost 1-100, default 1",
		ParseAddressSpaceList, func(p *Patch) *ListPatch[AddressSpace] { return &p.AddressSpaces },
		func(c *SendConnector) any { return stringsOf(c.AddressSpaces) }),
	{Name: "AuthenticationCredential", Get: func(c *SendConnector) any {
		if c.AuthenticationCredential == nil {
			return nil
		}
		return credentialView{c.AuthenticationCredential}
	}},
	boolProp("CloudServicesMailEnabled", "cloud-services-mail-enabled",
		"hybrid: keep X-MS-Exchange-Organization-* information as X-MS-Exchange-CrossPremises-* headers (otherwise CrossPremises headers are removed)",
		func(p *Patch) *Opt[bool] { return &p.CloudServicesMailEnabled }, func(c *SendConnector) bool { return c.CloudServicesMailEnabled }),
	parsedProp("Comment", "comment", "text", "free text, up to 1024 characters", parseComment,
		func(p *Patch) *Opt[string] { return &p.Comment }, func(c *SendConnector) any { return orNil(c.Comment) }),
	parsedProp("ConnectionInactivityTimeOut", "connection-inactivity-timeout", "timespan",
		"close an idle outbound connection after this long: [d.]hh:mm:ss, 00:00:01 to 1.00:00:00 (default 00:10:00)",
		ParseTimeSpan, func(p *Patch) *Opt[TimeSpan] { return &p.ConnectionInactivityTimeOut },
		func(c *SendConnector) any { return c.ConnectionInactivityTimeOut }),
	parsedProp("ConnectorType", "connector-type", "Default|XPremises", "XPremises marks a hybrid connector to Microsoft 365 (stored and shown)",
		ParseConnectorType, func(p *Patch) *Opt[ConnectorType] { return &p.ConnectorType },
		func(c *SendConnector) any { return c.ConnectorType.String() }),
	boolProp("DNSRoutingEnabled", "dns-routing-enabled",
		"route by the recipient domain's MX records; false needs --smart-hosts (which alone implies false); true on a smart-host connector removes its smart hosts and credential",
		func(p *Patch) *Opt[bool] { return &p.DNSRoutingEnabled }, func(c *SendConnector) bool { return c.DNSRoutingEnabled() }),
	boolProp("DomainSecureEnabled", "domain-secure-enabled", "mutual-TLS domain security with partner domains (needs DNS routing and STARTTLS)",
		func(p *Patch) *Opt[bool] { return &p.DomainSecureEnabled }, func(c *SendConnector) bool { return c.DomainSecureEnabled }),
	boolProp("Enabled", "enabled", "disabled connectors are never chosen by routing (default true)",
		func(p *Patch) *Opt[bool] { return &p.Enabled }, func(c *SendConnector) bool { return c.Enabled }),
	parsedProp("ErrorPolicies", "error-policies", "list",
		"Default, or a comma list of DowngradeDnsFailures, DowngradeCustomFailures, UpgradeCustomFailures",
		ParseErrorPolicies, func(p *Patch) *Opt[ErrorPolicies] { return &p.ErrorPolicies },
		func(c *SendConnector) any { return c.ErrorPolicies.String() }),
	boolProp("ForceHELO", "force-helo", "send HELO instead of EHLO (loses STARTTLS, AUTH, SIZE)",
		func(p *Patch) *Opt[bool] { return &p.ForceHELO }, func(c *SendConnector) bool { return c.ForceHELO }),
	parsedProp("Fqdn", "fqdn", "host", "name sent in EHLO/HELO and used to pick a client certificate; empty means the server's FQDN",
		parseOptionalHost, func(p *Patch) *Opt[string] { return &p.Fqdn }, func(c *SendConnector) any { return orNil(c.Fqdn) }),
	boolProp("FrontendProxyEnabled", "frontend-proxy-enabled", "send through a frontend server of the source server's site (takes effect with several servers)",
		func(p *Patch) *Opt[bool] { return &p.FrontendProxyEnabled }, func(c *SendConnector) bool { return c.FrontendProxyEnabled }),
	{Name: "Identity", Get: func(c *SendConnector) any { return c.Identity() }},
	boolProp("IgnoreSTARTTLS", "ignore-starttls", "never negotiate TLS, even when offered (conflicts with RequireTLS, TlsAuthLevel, DomainSecureEnabled)",
		func(p *Patch) *Opt[bool] { return &p.IgnoreSTARTTLS }, func(c *SendConnector) bool { return c.IgnoreSTARTTLS }),
	boolProp("IsScopedConnector", "is-scoped-connector", "only servers in the source servers' site may use the connector",
		func(p *Patch) *Opt[bool] { return &p.IsScopedConnector }, func(c *SendConnector) bool { return c.IsScopedConnector }),
	parsedProp("MaxMessageSize", "max-message-size", "size",
		"largest message the connector takes: a number with B, KB, MB, GB or TB (1 KB = 1024 B), or Unlimited (default 35MB; Unlimited for --internal)",
		ParseByteSize, func(p *Patch) *Opt[ByteSize] { return &p.MaxMessageSize }, func(c *SendConnector) any { return c.MaxMessageSize }),
	parsedProp("Name", "name", "text", "unique name, 1-64 characters (case-insensitive); on set, renames the connector",
		parseName, func(p *Patch) *Opt[string] { return &p.Name }, func(c *SendConnector) any { return c.Name }),
	parsedProp("Port", "port", "int", "TCP port for every smart host and MX (default 25)",
		parseInt(1, 65535), func(p *Patch) *Opt[int] { return &p.Port }, func(c *SendConnector) any { return c.Port }),
	parsedProp("ProtocolLoggingLevel", "protocol-logging-level", "None|Verbose", "Verbose writes the SMTP conversation to the send protocol log",
		ParseProtocolLoggingLevel, func(p *Patch) *Opt[ProtocolLoggingLevel] { return &p.ProtocolLoggingLevel },
		func(c *SendConnector) any { return c.ProtocolLoggingLevel.String() }),
	boolProp("RequireOorg", "require-oorg", "reserved (XOORG); stored and shown only",
		func(p *Patch) *Opt[bool] { return &p.RequireOorg }, func(c *SendConnector) bool { return c.RequireOorg }),
	boolProp("RequireTLS", "require-tls", "every message must go over TLS; without STARTTLS the attempt fails and is retried",
		func(p *Patch) *Opt[bool] { return &p.RequireTLS }, func(c *SendConnector) bool { return c.RequireTLS }),
	parsedProp("SmartHostAuthMechanism", "smart-host-auth-mechanism", strings.Join(authMechanismNames, "|"),
		"authentication to the smart hosts; BasicAuth and BasicAuthRequireTLS need --auth-username and a password",
		ParseAuthMechanism, func(p *Patch) *Opt[AuthMechanism] { return &p.SmartHostAuthMechanism },
		func(c *SendConnector) any { return c.SmartHostAuthMechanism.String() }),
	listProp("SmartHosts", "smart-hosts", "list",
		"relay hosts: IP addresses (with or without [ ]) or host names, separated by ',' or ';' (no host:port: use --port); implies --dns-routing-enabled=false",
		ParseSmartHostList, func(p *Patch) *ListPatch[SmartHost] { return &p.SmartHosts },
		func(c *SendConnector) any { return stringsOf(c.SmartHosts) }),
	parsedProp("SmtpMaxMessagesPerConnection", "smtp-max-messages-per-connection", "int", "messages sent over one connection before it is closed (default 20)",
		parseInt(1, 2147483647), func(p *Patch) *Opt[int] { return &p.SmtpMaxMessagesPerConnection },
		func(c *SendConnector) any { return c.SmtpMaxMessagesPerConnection }),
	parsedProp("SourceIPAddress", "source-ip-address", "ip", "local address outbound connections are made from (default 0.0.0.0: any)",
		parseSourceIP, func(p *Patch) *Opt[netip.Addr] { return &p.SourceIPAddress }, func(c *SendConnector) any { return c.SourceIPAddress.String() }),
	listProp("SourceTransportServers", "source-transport-servers", "list", "servers allowed to use the connector (default: this server)",
		parseServerList, func(p *Patch) *ListPatch[string] { return &p.SourceTransportServers },
		func(c *SendConnector) any { return append([]string{}, c.SourceTransportServers...) }),
	parsedProp("TlsAuthLevel", "tls-auth-level", "EncryptionOnly|CertificateValidation|DomainValidation",
		"how the remote certificate is checked (needs --require-tls); empty to unset",
		ParseTlsAuthLevel, func(p *Patch) *Opt[TlsAuthLevel] { return &p.TlsAuthLevel },
		func(c *SendConnector) any { return orNil(c.TlsAuthLevel.String()) }),
	parsedProp("TlsCertificateName", "tls-certificate-name", "<I>issuer<S>subject", "client certificate to present, by issuer and subject (the <I> part is optional); empty to unset",
		ParseCertificateName, func(p *Patch) *Opt[CertificateName] { return &p.TlsCertificateName },
		func(c *SendConnector) any { return orNil(c.TlsCertificateName.String()) }),
	parsedProp("TlsDomain", "tls-domain", "domain", "name the remote certificate must match under DomainValidation: domain or *.domain; empty to unset",
		parseOptionalTlsDomain, func(p *Patch) *Opt[string] { return &p.TlsDomain }, func(c *SendConnector) any { return orNil(c.TlsDomain) }),
	boolProp("UseExternalDNSServersEnabled", "use-external-dns-servers-enabled", "resolve with dns.external-servers instead of dns.internal-servers",
		func(p *Patch) *Opt[bool] { return &p.UseExternalDNSServersEnabled }, func(c *SendConnector) bool { return c.UseExternalDNSServersEnabled }),
	{Name: "Guid", Get: func(c *SendConnector) any { return orNil(c.Guid) }},
	{Name: "WhenChanged", Get: func(c *SendConnector) any { return FormatTime(c.WhenChanged) }},
	{Name: "WhenCreated", Get: func(c *SendConnector) any { return FormatTime(c.WhenCreated) }},
}
