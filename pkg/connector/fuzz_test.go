package connector

import (
	"testing"
)

// Each parser has a canonical printed form; the fuzz targets hold it to
// parse(format(x)) == x for every x it accepts, and to never panicking.

func FuzzParseAddressSpace(f *testing.F) {
	for _, s := range []string{"*", "SMTP:*;1", "contoso.com;5", "*.contoso.com", "--", "X400:c=US;a= ;p=Org;o=Site;", "FAX:a;b;3", "*;0", "bücher.example"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddressSpace(s)
		if err != nil {
			return
		}
		b, err := ParseAddressSpace(a.String())
		if err != nil || b != a {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, a, b, err)
		}
	})
}

func FuzzParseSmartHost(f *testing.F) {
	for _, s := range []string{"192.168.3.2", "[10.0.0.1]", "::1", "[2001:db8::1]", "relay.contoso.com", "host:25", "0.0.0.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseSmartHost(s)
		if err != nil {
			return
		}
		back, err := ParseSmartHost(h.String())
		if err != nil || back != h {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, h, back, err)
		}
	})
}

func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"35MB", "Unlimited", "1.5 GB", "36700160", "0", "2147483647KB", "35 MB (36,700,160 bytes)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if !v.IsUnlimited() && (v%kb != 0 || v > MaxByteSize) {
			t.Fatalf("%q parsed to %d, not a whole KB within range", s, v)
		}
		back, err := ParseByteSize(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, v, back, err)
		}
	})
}

func FuzzParseTimeSpan(f *testing.F) {
	for _, s := range []string{"00:10:00", "1.00:00:00", "90s", "2d", "1d12h", "00:00:00.25", "500ms"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseTimeSpan(s)
		if err != nil {
			return
		}
		back, err := ParseTimeSpan(v.String())
		if err != nil || back != v {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, v, back, err)
		}
	})
}

func FuzzParseCertificateName(f *testing.F) {
	for _, s := range []string{"<I>CN=CA, O=Contoso<S>CN=mail.contoso.com", "<S>CN=*.contoso.com", `<S>O="a, b", CN=x.com`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCertificateName(s)
		if err != nil {
			return
		}
		back, err := ParseCertificateName(c.String())
		if err != nil || back != c {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, c, back, err)
		}
	})
}

func FuzzParseErrorPolicies(f *testing.F) {
	for _, s := range []string{"Default", "DowngradeDnsFailures", "downgradednsfailures, UpgradeCustomFailures"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseErrorPolicies(s)
		if err != nil {
			return
		}
		back, err := ParseErrorPolicies(p.String())
		if err != nil || back != p {
			t.Fatalf("round trip %q -> %q -> %v, %v", s, p, back, err)
		}
	})
}

// FuzzValidatedConnector checks that a connector New accepts keeps passing
// validation after a JSON round trip through the store format.
func FuzzNewConnector(f *testing.F) {
	f.Add("X", "*", "relay", "35MB", "00:10:00", true)
	f.Add("Partner", "fabrikam.com;5", "", "Unlimited", "1.00:00:00", false)
	f.Fuzz(func(t *testing.T, name, spaces, hosts, size, timeout string, requireTLS bool) {
		var p Patch
		for _, kv := range [][2]string{{"Name", name}, {"AddressSpaces", spaces}, {"SmartHosts", hosts}, {"MaxMessageSize", size}, {"ConnectionInactivityTimeOut", timeout}} {
			pr, _ := LookupProperty(kv[0])
			if pr.Set(&p, kv[1]) != nil {
				return
			}
		}
		p.RequireTLS = Some(requireTLS)
		c, _, err := New(testDefaults, UsageCustom, p)
		if err != nil {
			return
		}
		b, err := marshalJSON(c)
		if err != nil {
			t.Fatal(err)
		}
		var back SendConnector
		if err := unmarshalJSON(b, &back); err != nil {
			t.Fatalf("unmarshal %s: %v", b, err)
		}
		if err := back.Validate(); err != nil {
			t.Fatalf("round-tripped connector invalid: %v\n%s", err, b)
		}
	})
}
