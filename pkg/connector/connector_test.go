package connector

import (
	"errors"
	"strings"
	"testing"
)

var testDefaults = Defaults{ServerName: "EX01"}

// patchOf builds a patch from property=value pairs through the registry, the
// way the CLI does, so these tests cover the text syntax too.
func patchOf(t *testing.T, pairs ...string) Patch {
	t.Helper()
	var p Patch
	for i := 0; i < len(pairs); i += 2 {
		name := pairs[i]
		op := ""
		if rest, ok := strings.CutPrefix(name, "+"); ok {
			name, op = rest, "add"
		} else if rest, ok := strings.CutPrefix(name, "-"); ok {
			name, op = rest, "remove"
		}
		pr, ok := LookupProperty(name)
		if !ok {
			t.Fatalf("no property %s", name)
		}
		var err error
		switch op {
		case "add":
			err = pr.Add(&p, pairs[i+1])
		case "remove":
			err = pr.Remove(&p, pairs[i+1])
		default:
			err = pr.Set(&p, pairs[i+1])
		}
		if err != nil {
			t.Fatalf("%s=%s: %v", pairs[i], pairs[i+1], err)
		}
	}
	return p
}

func mustNew(t *testing.T, usage Usage, pairs ...string) SendConnector {
	t.Helper()
	c, _, err := New(testDefaults, usage, patchOf(t, pairs...))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func codes(err error) []string {
	var ve *ValidationError
	if !errors.As(err, &ve) {
		return nil
	}
	var out []string
	for _, p := range ve.Problems {
		out = append(out, p.Code)
	}
	return out
}

func TestNewSeed004SmartHost(t *testing.T) {
	c := mustNew(t, UsageCustom, "Name", "Smart host to Internet", "AddressSpaces", "*",
		"DNSRoutingEnabled", "$false", "SmartHosts", "192.168.3.2", "SmartHostAuthMechanism", "None")
	if c.DNSRoutingEnabled() || SmartHostsString(c.SmartHosts) != "[192.168.3.2]" {
		t.Errorf("routing: dns=%v hosts=%v", c.DNSRoutingEnabled(), c.SmartHosts)
	}
	if c.AddressSpaces[0].String() != "SMTP:*;1" || c.Port != 25 || c.MaxMessageSize.Bytes() != 36700160 ||
		c.ConnectionInactivityTimeOut.String() != "00:10:00" || c.SmtpMaxMessagesPerConnection != 20 || !c.Enabled {
		t.Errorf("defaults wrong: %+v", c)
	}
	if len(c.SourceTransportServers) != 1 || c.SourceTransportServers[0] != "EX01" || c.SourceIPAddress.String() != "0.0.0.0" {
		t.Errorf("source defaults wrong: %v %v", c.SourceTransportServers, c.SourceIPAddress)
	}
}

func TestNewSmartHostsAloneImplyNoDNS(t *testing.T) {
	c := mustNew(t, UsageCustom, "Name", "X", "AddressSpaces", "*", "SmartHosts", "relay.contoso.com")
	if c.DNSRoutingEnabled() {
		t.Error("smart hosts alone should imply DNSRoutingEnabled false")
	}
}

func TestNewSeed003CloudConnector(t *testing.T) {
	c := mustNew(t, UsageCustom, "Name", "My company to Office 365", "AddressSpaces", "*", "CloudServicesMailEnabled", "$true",
		"Fqdn", "mail.contoso.com", "RequireTLS", "$true", "DNSRoutingEnabled", "$false",
		"SmartHosts", "contoso-com.mail.protection.outlook.com", "TlsAuthLevel", "CertificateValidation")
	if !c.CloudServicesMailEnabled || !c.RequireTLS || c.TlsAuthLevel != TLSCertificateValidation || c.Fqdn != "mail.contoso.com" {
		t.Errorf("got %+v", c)
	}
}

func TestUsageTemplates(t *testing.T) {
	if c := mustNew(t, UsageInternal, "Name", "I", "AddressSpaces", "*", "SmartHosts", "10.0.0.1"); !c.MaxMessageSize.IsUnlimited() {
		t.Errorf("Internal: MaxMessageSize = %v, want Unlimited", c.MaxMessageSize)
	}
	if c := mustNew(t, UsageInternal, "Name", "I", "AddressSpaces", "*", "SmartHosts", "10.0.0.1", "MaxMessageSize", "10MB"); c.MaxMessageSize.Bytes() != 10<<20 {
		t.Errorf("Internal with explicit size: %v", c.MaxMessageSize)
	}
	if c := mustNew(t, UsagePartner, "Name", "P", "AddressSpaces", "fabrikam.com"); !c.DomainSecureEnabled || !c.DNSRoutingEnabled() {
		t.Errorf("Partner: %+v", c)
	}
	if c := mustNew(t, UsageInternet, "Name", "I", "AddressSpaces", "*"); c.MaxMessageSize != DefaultMaxMessageSize || !c.DNSRoutingEnabled() {
		t.Errorf("Internet: %+v", c)
	}
	_, _, err := New(testDefaults, UsagePartner, patchOf(t, "Name", "P", "AddressSpaces", "fabrikam.com", "SmartHosts", "relay"))
	if !contains(codes(err), "DNSRoutingEnabledMustNotBeSpecified") {
		t.Errorf("Partner with smart hosts: %v", err)
	}
}

func TestNewRejects(t *testing.T) {
	tests := []struct {
		name  string
		pairs []string
		code  string
	}{
		{"no smart hosts with dns false", []string{"DNSRoutingEnabled", "false"}, "SmartHostNotSet"},
		{"dns true with smart hosts", []string{"DNSRoutingEnabled", "true", "SmartHosts", "relay"}, "DNSRoutingEnabledMustNotBeSpecified"},
		{"require and ignore TLS", []string{"RequireTLS", "true", "IgnoreSTARTTLS", "true"}, "IgnoreRequireTLSConflict"},
		{"tls domain without DomainValidation", []string{"TlsDomain", "contoso.com"}, "TlsDomainWithIncorrectTlsAuthLevel"},
		{"DomainValidation on smart host without TlsDomain", []string{"SmartHosts", "relay", "RequireTLS", "true", "TlsAuthLevel", "DomainValidation"}, "TlsAuthLevelWithNoDomainOnSmartHost"},
		{"TlsAuthLevel without RequireTLS", []string{"TlsAuthLevel", "EncryptionOnly"}, "TlsAuthLevelWithRequireTlsDisabled"},
		{"TlsAuthLevel with DomainSecure", []string{"RequireTLS", "true", "TlsAuthLevel", "EncryptionOnly", "DomainSecureEnabled", "true"}, "TlsAuthLevelWithDomainSecureEnabled"},
		{"BasicAuth without credential", []string{"SmartHosts", "relay", "SmartHostAuthMechanism", "BasicAuth"}, "AuthenticationCredentialNotSet"},
		{"auth on DNS connector", []string{"SmartHostAuthMechanism", "ExternalAuthoritative"}, "DNSRoutingEnabledMustBeSpecifiedForAuthMechanism"},
		{"ExchangeServer auth", []string{"SmartHosts", "relay", "SmartHostAuthMechanism", "ExchangeServer"}, "NotSupported"},
		{"domain secure on smart host", []string{"SmartHosts", "relay", "DomainSecureEnabled", "true"}, "DomainSecureWithoutDNSRoutingEnabled"},
		{"domain secure with ignore starttls", []string{"DomainSecureEnabled", "true", "IgnoreSTARTTLS", "true"}, "DomainSecureWithIgnoreStartTLSEnabled"},
		{"non-SMTP on DNS connector", []string{"AddressSpaces", "X400:c=US;o=Site;"}, "SendConnectorNonSmtpAddressSpaceOnDNSConnector"},
		{"dash-dash not alone", []string{"AddressSpaces", "--,contoso.com"}, "SendConnectorDashdashAddressSpaceNotUnique"},
		{"same address two costs", []string{"AddressSpaces", "contoso.com;1,contoso.com;5"}, "DuplicateAddressSpace"},
		{"no source servers", []string{"SourceTransportServers", ""}, "SendConnectorSourceServersNotSet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pairs := append([]string{"Name", "X", "AddressSpaces", "*"}, tt.pairs...)
			_, _, err := New(testDefaults, UsageCustom, patchOf(t, pairs...))
			if !contains(codes(err), tt.code) {
				t.Errorf("New(%v) = %v, want code %s", tt.pairs, err, tt.code)
			}
		})
	}
}

func TestNewReportsAllProblemsAtOnce(t *testing.T) {
	_, _, err := New(testDefaults, UsageCustom, patchOf(t, "Name", "X", "AddressSpaces", "*",
		"RequireTLS", "true", "IgnoreSTARTTLS", "true", "TlsDomain", "contoso.com"))
	got := codes(err)
	if !contains(got, "IgnoreRequireTLSConflict") || !contains(got, "TlsDomainWithIncorrectTlsAuthLevel") {
		t.Errorf("want both problems, got %v", err)
	}
	if !strings.Contains(err.Error(), `TlsDomain "contoso.com": TlsDomain can only be set`) {
		t.Errorf("message should name property and value: %v", err)
	}
}

func TestNewRequiresNameAndAddressSpaces(t *testing.T) {
	_, _, err := New(testDefaults, UsageCustom, Patch{})
	if got := codes(err); !contains(got, "NameRequired") || !contains(got, "NoAddressSpaces") {
		t.Errorf("got %v", err)
	}
}

func TestApplySwitchToSmartHosts(t *testing.T) {
	c := mustNew(t, UsageInternet, "Name", "X", "AddressSpaces", "*")
	next, _, err := c.Apply(patchOf(t, "SmartHosts", "relay.example.com"))
	if err != nil || next.DNSRoutingEnabled() || SmartHostsString(next.SmartHosts) != "relay.example.com" {
		t.Fatalf("set --smart-hosts on DNS connector: %v %v", next.SmartHosts, err)
	}
	if !c.DNSRoutingEnabled() {
		t.Error("Apply modified its receiver")
	}
}

func TestApplySwitchToDNSRoutingClearsSmartHostSettings(t *testing.T) {
	var p Patch
	p.SmartHosts.Replace = Some([]SmartHost{{Host: "relay"}})
	p.SmartHostAuthMechanism = Some(AuthBasic)
	p.AuthenticationCredential = Some(&Credential{UserName: "u", Password: NewSecret("pw")})
	p.Name, p.AddressSpaces.Replace = Some("X"), Some([]AddressSpace{{Type: "SMTP", Address: "*", Cost: 1}})
	c, _, err := New(testDefaults, UsageCustom, p)
	if err != nil {
		t.Fatal(err)
	}
	next, notices, err := c.Apply(patchOf(t, "DNSRoutingEnabled", "true"))
	if err != nil {
		t.Fatal(err)
	}
	if !next.DNSRoutingEnabled() || next.SmartHostAuthMechanism != AuthNone || next.AuthenticationCredential != nil {
		t.Errorf("got %+v", next)
	}
	joined := strings.Join(notices, "\n")
	for _, want := range []string{"removed SmartHosts relay", "SmartHostAuthMechanism reset from BasicAuth to None", "AuthenticationCredential cleared"} {
		if !strings.Contains(joined, want) {
			t.Errorf("notices %q lack %q", joined, want)
		}
	}
}

func TestApplyListDeltas(t *testing.T) {
	c := mustNew(t, UsageCustom, "Name", "X", "AddressSpaces", "contoso.com,fabrikam.com;5")
	next, notices, err := c.Apply(patchOf(t, "+AddressSpaces", "*.contoso.com;2", "-AddressSpaces", "FABRIKAM.com", "-AddressSpaces", "absent.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(stringsOf(next.AddressSpaces), ","); got != "SMTP:contoso.com;1,SMTP:*.contoso.com;2" {
		t.Errorf("AddressSpaces = %s", got)
	}
	if len(notices) != 1 || !strings.Contains(notices[0], "absent.example") {
		t.Errorf("notices = %v", notices)
	}
	if _, _, err := c.Apply(patchOf(t, "-AddressSpaces", "contoso.com,fabrikam.com")); !contains(codes(err), "NoAddressSpaces") {
		t.Errorf("removing every address space: %v", err)
	}
	if _, _, err := c.Apply(patchOf(t, "AddressSpaces", "*", "+AddressSpaces", "x.com")); !contains(codes(err), "ConflictingListChange") {
		t.Errorf("replace and add together: %v", err)
	}
}

func TestApplyRevalidatesResult(t *testing.T) {
	c := mustNew(t, UsageCustom, "Name", "X", "AddressSpaces", "*", "SmartHosts", "relay", "RequireTLS", "true", "TlsAuthLevel", "CertificateValidation")
	if _, _, err := c.Apply(patchOf(t, "RequireTLS", "false")); !contains(codes(err), "TlsAuthLevelWithRequireTlsDisabled") {
		t.Errorf("want TlsAuthLevelWithRequireTlsDisabled, got %v", err)
	}
	next, _, err := c.Apply(patchOf(t, "RequireTLS", "false", "TlsAuthLevel", ""))
	if err != nil || next.TlsAuthLevel != TLSAuthUnset {
		t.Errorf("unsetting both: %v %v", next.TlsAuthLevel, err)
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"To Internet", "Smart host to Internet", strings.Repeat("n", 64), "Ünïcode name"} {
		if err := ValidateName(ok); err != nil {
			t.Errorf("ValidateName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", " lead", "trail ", strings.Repeat("n", 65), "a\tb", "a\x00b", "-", "6f1c2f1e-8a5b-4c1d-9e2f-0a1b2c3d4e5f"} {
		if err := ValidateName(bad); err == nil {
			t.Errorf("ValidateName(%q) succeeded", bad)
		}
	}
}

func TestPropertiesCoverEveryField(t *testing.T) {
	want := []string{"AddressSpaces", "AuthenticationCredential", "CloudServicesMailEnabled", "Comment", "ConnectionInactivityTimeOut",
		"ConnectorType", "DNSRoutingEnabled", "DomainSecureEnabled", "Enabled", "ErrorPolicies", "ForceHELO", "Fqdn",
		"FrontendProxyEnabled", "Identity", "IgnoreSTARTTLS", "IsScopedConnector", "MaxMessageSize", "Name", "Port",
		"ProtocolLoggingLevel", "RequireOorg", "RequireTLS", "SmartHostAuthMechanism", "SmartHosts",
		"SmtpMaxMessagesPerConnection", "SourceIPAddress", "SourceTransportServers", "TlsAuthLevel", "TlsCertificateName",
		"TlsDomain", "UseExternalDNSServersEnabled", "Guid", "WhenChanged", "WhenCreated"}
	var got []string
	for _, p := range Properties() {
		got = append(got, p.Name)
		if p.Get == nil {
			t.Errorf("%s has no getter", p.Name)
		}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("properties = %v", got)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
