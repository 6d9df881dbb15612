package connector

import (
	"strings"
	"testing"
	"time"
)

func TestParseAddressSpace(t *testing.T) {
	tests := []struct {
		in, want string
		scope    Scope
	}{
		{"*", "SMTP:*;1", ScopeAll},
		{"SMTP:*;1", "SMTP:*;1", ScopeAll},
		{"smtp:*", "SMTP:*;1", ScopeAll},
		{"*;1", "SMTP:*;1", ScopeAll},
		{"contoso.com", "SMTP:contoso.com;1", ScopeDomain},
		{"contoso.com;1", "SMTP:contoso.com;1", ScopeDomain},
		{"SMTP:contoso.com", "SMTP:contoso.com;1", ScopeDomain},
		{"Contoso.COM;5", "SMTP:contoso.com;5", ScopeDomain},
		{"contoso.com;", "SMTP:contoso.com;1", ScopeDomain},
		{"*.contoso.com;100", "SMTP:*.contoso.com;100", ScopeSubdomains},
		{"--", "SMTP:--;1", ScopeAccepted},
		{" SMTP:--;3 ", "SMTP:--;3", ScopeAccepted},
		{"bücher.example", "SMTP:xn--bcher-kva.example;1", ScopeDomain},
		{"localdomain", "SMTP:localdomain;1", ScopeDomain},
		{"X400:c=US;a= ;p=Org;o=Site;", "X400:c=US;a= ;p=Org;o=Site;;1", ScopeNonSMTP},
		{"X400:C=US;a= ;p=Org;o=Site;5", "X400:c=US;a= ;p=Org;o=Site;;5", ScopeNonSMTP},
		{"x400:c=US;o=Site", "X400:c=US;o=Site;;1", ScopeNonSMTP},
		{"FAX:Some(a)Where;7", "FAX:some@where;7", ScopeNonSMTP},
		{"NOTES:a;b;2", "NOTES:a;b;2", ScopeNonSMTP},
	}
	for _, tt := range tests {
		a, err := ParseAddressSpace(tt.in)
		if err != nil {
			t.Errorf("ParseAddressSpace(%q): %v", tt.in, err)
			continue
		}
		if got := a.String(); got != tt.want {
			t.Errorf("ParseAddressSpace(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if a.Scope() != tt.scope {
			t.Errorf("ParseAddressSpace(%q).Scope() = %v, want %v", tt.in, a.Scope(), tt.scope)
		}
	}
}

func TestParseAddressSpaceErrors(t *testing.T) {
	tests := []struct{ in, code, msg string }{
		{"SMTP:*;0", "AddressSpaceCostOutOfRange", "cost must be between 1 and 100"},
		{"*;101", "AddressSpaceCostOutOfRange", "between 1 and 100"},
		{"contoso.com;x", "InvalidAddressSpaceCostFormat", "not a whole number"},
		{"*contoso.com", "InvalidAddressSpace", "wildcards"},
		{"con*.com", "InvalidAddressSpace", "wildcards"},
		{"*.*.contoso.com", "InvalidAddressSpace", "wildcards"},
		{"", "InvalidAddressSpace", "empty"},
		{"SMTP:", "InvalidAddressSpace", "empty"},
		{"Local:contoso.com", "InvalidAddressSpace", "Local:"},
		{"contoso..com", "InvalidAddressSpace", "empty label"},
		{"-contoso.com", "InvalidAddressSpace", "hyphen"},
		{"contoso.com.", "InvalidAddressSpace", "dot"},
		{"192.168.1.1", "InvalidAddressSpace", "IP address"},
		{"con_toso.com", "InvalidAddressSpace", "letters, digits"},
		{"X400:c", "InvalidX400AddressSpace", "key=value"},
		{"FAX:a;b", "InvalidAddressSpaceCostFormat", "not a whole number"},
		{"TOOLONGTYPE:x", "InvalidAddressSpace", "1 to 9"},
		{strings.Repeat("a", 63) + "." + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 63) + ".com", "InvalidAddressSpace", "longer than 255"},
	}
	for _, tt := range tests {
		_, err := ParseAddressSpace(tt.in)
		if err == nil {
			t.Errorf("ParseAddressSpace(%q) succeeded, want error", tt.in)
			continue
		}
		re, ok := err.(*ruleError)
		if !ok || re.code != tt.code || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseAddressSpace(%q) = %v (code %v), want code %s containing %q", tt.in, err, re, tt.code, tt.msg)
		}
	}
}

func TestParseSmartHost(t *testing.T) {
	tests := []struct{ in, want string }{
		{"192.168.3.2", "[192.168.3.2]"},
		{"[192.168.3.2]", "[192.168.3.2]"},
		{" 10.0.0.5 ", "[10.0.0.5]"},
		{"::1", "[::1]"},
		{"[2001:db8::1]", "[2001:db8::1]"},
		{"Relay.Contoso.COM", "relay.contoso.com"},
		{"smarthost", "smarthost"},
		{"contoso-com.mail.protection.outlook.com", "contoso-com.mail.protection.outlook.com"},
	}
	for _, tt := range tests {
		h, err := ParseSmartHost(tt.in)
		if err != nil {
			t.Errorf("ParseSmartHost(%q): %v", tt.in, err)
			continue
		}
		if h.String() != tt.want {
			t.Errorf("ParseSmartHost(%q) = %q, want %q", tt.in, h, tt.want)
		}
	}
	for _, bad := range []string{"0.0.0.0", "[0.0.0.0]", "::", "host:25", "relay.contoso.com:587", "[1.2.3.4]:25", "[relay.contoso.com]", "224.0.0.1", "255.255.255.255", "--", "", "bad_host", "[1.2.3.4"} {
		if h, err := ParseSmartHost(bad); err == nil {
			t.Errorf("ParseSmartHost(%q) = %v, want error", bad, h)
		}
	}
	list, err := ParseSmartHostList("a.example, [10.0.0.1];b.example,,")
	if err != nil || SmartHostsString(list) != "a.example,[10.0.0.1],b.example" {
		t.Errorf("ParseSmartHostList = %v, %v", SmartHostsString(list), err)
	}
	if _, err := ParseSmartHostList("0.0.0.0,host:25"); err == nil || strings.Count(err.Error(), "SmartHosts") != 2 {
		t.Errorf("ParseSmartHostList reports each bad entry, got %v", err)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in    string
		bytes int64
		text  string
	}{
		{"35MB", 36700160, "35 MB (36,700,160 bytes)"},
		{"35 MB", 36700160, "35 MB (36,700,160 bytes)"},
		{"35mb", 36700160, "35 MB (36,700,160 bytes)"},
		{"20MB", 20971520, "20 MB (20,971,520 bytes)"},
		{"36700160", 36700160, "35 MB (36,700,160 bytes)"},
		{"1", 1024, "1 KB (1,024 bytes)"},
		{"1025B", 2048, "2 KB (2,048 bytes)"},
		{"0", 0, "0 B (0 bytes)"},
		{"1.5GB", 1610612736, "1.5 GB (1,610,612,736 bytes)"},
		{"10000KB", 10240000, "9.766 MB (10,240,000 bytes)"},
		{"2147483647KB", 2147483647 * 1024, "2 TB (2,199,023,254,528 bytes)"},
		{"35 MB (36,700,160 bytes)", 36700160, "35 MB (36,700,160 bytes)"},
	}
	for _, tt := range tests {
		s, err := ParseByteSize(tt.in)
		if err != nil {
			t.Errorf("ParseByteSize(%q): %v", tt.in, err)
			continue
		}
		if s.Bytes() != tt.bytes || s.String() != tt.text {
			t.Errorf("ParseByteSize(%q) = %d %q, want %d %q", tt.in, s.Bytes(), s, tt.bytes, tt.text)
		}
	}
	if s, err := ParseByteSize("unlimited"); err != nil || !s.IsUnlimited() || s.String() != "Unlimited" || !s.Allows(1<<50) {
		t.Errorf("Unlimited: %v %v", s, err)
	}
	for _, bad := range []string{"", "MB", "35XB", "-1", "2147483648KB", "3TB", "abc", "1..5MB"} {
		if s, err := ParseByteSize(bad); err == nil {
			t.Errorf("ParseByteSize(%q) = %v, want error", bad, s)
		}
	}
	b, _ := ByteSize(36700160).MarshalJSON()
	u, _ := Unlimited.MarshalJSON()
	if string(b) != "36700160" || string(u) != `"Unlimited"` {
		t.Errorf("MarshalJSON = %s %s", b, u)
	}
}

func TestTimeSpan(t *testing.T) {
	tests := []struct {
		in   string
		d    time.Duration
		text string
	}{
		{"00:10:00", 10 * time.Minute, "00:10:00"},
		{"1.00:00:00", 24 * time.Hour, "1.00:00:00"},
		{"2.03:04:05", 51*time.Hour + 4*time.Minute + 5*time.Second, "2.03:04:05"},
		{"00:00:01", time.Second, "00:00:01"},
		{"01:30", 90 * time.Minute, "01:30:00"},
		{"90s", 90 * time.Second, "00:01:30"},
		{"5m", 5 * time.Minute, "00:05:00"},
		{"2d", 48 * time.Hour, "2.00:00:00"},
		{"1d12h", 36 * time.Hour, "1.12:00:00"},
		{"500ms", 500 * time.Millisecond, "00:00:00.5"},
		{"00:00:00.25", 250 * time.Millisecond, "00:00:00.25"},
	}
	for _, tt := range tests {
		ts, err := ParseTimeSpan(tt.in)
		if err != nil {
			t.Errorf("ParseTimeSpan(%q): %v", tt.in, err)
			continue
		}
		if ts.Duration() != tt.d || ts.String() != tt.text {
			t.Errorf("ParseTimeSpan(%q) = %v %q, want %v %q", tt.in, ts.Duration(), ts, tt.d, tt.text)
		}
	}
	for _, bad := range []string{"", "-5m", "24:00:00", "00:60:00", "1:2:3:4", "x", "1.2", "10", "00:00:00.", "1dx", "d5"} {
		if ts, err := ParseTimeSpan(bad); err == nil {
			t.Errorf("ParseTimeSpan(%q) = %v, want error", bad, ts)
		}
	}
}

func TestCertificateName(t *testing.T) {
	c, err := ParseCertificateName("<I>CN=Contoso CA, O=Contoso, C=US<S>CN=mail.contoso.com, O=Contoso, C=US")
	if err != nil {
		t.Fatal(err)
	}
	if c.Issuer != "CN=Contoso CA, O=Contoso, C=US" || c.SubjectCN() != "mail.contoso.com" {
		t.Errorf("got %+v cn %q", c, c.SubjectCN())
	}
	if c.String() != "<I>CN=Contoso CA, O=Contoso, C=US<S>CN=mail.contoso.com, O=Contoso, C=US" {
		t.Errorf("String = %q", c)
	}
	if c, err := ParseCertificateName("<s>cn=*.contoso.com"); err != nil || c.SubjectCN() != "*.contoso.com" || c.String() != "<S>cn=*.contoso.com" {
		t.Errorf("wildcard subject: %v %v", c, err)
	}
	if c, err := ParseCertificateName(`<S>O="Contoso, Ltd", CN=mail.contoso.com`); err != nil || c.SubjectCN() != "mail.contoso.com" {
		t.Errorf("quoted comma: %v %v", c, err)
	}
	for _, bad := range []string{"CN=mail.contoso.com", "<I>CN=CA", "<S>O=Contoso", "<S>CN=not a domain", "<S>CN=mail.contoso.com<I>CN=CA", "<I><S>CN=x.com", "x<I>CN=a<S>CN=b.com"} {
		if c, err := ParseCertificateName(bad); err == nil {
			t.Errorf("ParseCertificateName(%q) = %v, want error", bad, c)
		}
	}
}

func TestEnums(t *testing.T) {
	if m, err := ParseAuthMechanism("basicauthrequiretls"); err != nil || m != AuthBasicRequireTLS || m.String() != "BasicAuthRequireTLS" {
		t.Errorf("ParseAuthMechanism: %v %v", m, err)
	}
	_, err := ParseAuthMechanism("Kerberos")
	if err == nil || !strings.Contains(err.Error(), "None, BasicAuth, BasicAuthRequireTLS, ExchangeServer, ExternalAuthoritative") {
		t.Errorf("unknown mechanism error should list valid values: %v", err)
	}
	if l, err := ParseTlsAuthLevel(""); err != nil || l != TLSAuthUnset {
		t.Errorf("empty TlsAuthLevel: %v %v", l, err)
	}
	p, err := ParseErrorPolicies("downgradednsfailures, UpgradeCustomFailures")
	if err != nil || p.String() != "DowngradeDnsFailures, UpgradeCustomFailures" {
		t.Errorf("ParseErrorPolicies: %v %v", p, err)
	}
	if p, err := ParseErrorPolicies("Default"); err != nil || p != 0 || p.String() != "Default" {
		t.Errorf("Default: %v %v", p, err)
	}
	for _, bad := range []string{"Default,DowngradeDnsFailures", "Nope", ""} {
		if _, err := ParseErrorPolicies(bad); err == nil {
			t.Errorf("ParseErrorPolicies(%q) succeeded", bad)
		}
	}
}

func TestSecretNeverPrints(t *testing.T) {
	c := &Credential{UserName: "svc", Password: NewSecret("hunter2")}
	for _, s := range []string{
		c.String(), c.Password.String(), c.Password.GoString(),
		sprintf("%v %+v %#v %s %q %x", c.Password, c.Password, c.Password, c.Password, c.Password, c.Password),
		sprintf("%v %+v", *c, c),
	} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "68756e74657232") {
			t.Errorf("password leaked: %q", s)
		}
	}
	b, _ := marshalJSON(c)
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("password leaked in JSON: %s", b)
	}
}
