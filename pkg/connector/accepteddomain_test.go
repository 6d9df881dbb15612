package connector

import (
	"strings"
	"testing"
)

func TestNewAcceptedDomain(t *testing.T) {
	for _, tc := range []struct {
		name, domain, typ string
		want              AcceptedDomain
		problems          string // substrings of the error, "" for none
	}{
		{"Contoso", "contoso.com", "Authoritative", AcceptedDomain{Name: "Contoso", DomainName: "contoso.com"}, ""},
		{"", "Contoso.COM", "", AcceptedDomain{Name: "contoso.com", DomainName: "contoso.com"}, ""},
		{"Subs", "*.Contoso.com", "internalrelay", AcceptedDomain{Name: "Subs", DomainName: "*.contoso.com", DomainType: InternalRelay}, ""},
		{"IDN", "bücher.example", "ExternalRelay", AcceptedDomain{Name: "IDN", DomainName: "xn--bcher-kva.example", DomainType: ExternalRelay}, ""},
		{"Bad", "*contoso.com", "", AcceptedDomain{}, "DomainName \"*contoso.com\""},
		{"Bad", "*", "", AcceptedDomain{}, "DomainName \"*\""},
		{"Bad", "", "", AcceptedDomain{}, "DomainName: required"},
		{"Bad", "contoso.com", "Relay", AcceptedDomain{}, "unknown domain type \"Relay\" (valid: Authoritative, InternalRelay, ExternalRelay)"},
		{" spaced", "x..com", "", AcceptedDomain{}, "Name \" spaced\""},
	} {
		got, err := NewAcceptedDomain(tc.name, tc.domain, tc.typ)
		if tc.problems == "" {
			if err != nil || got != tc.want {
				t.Errorf("NewAcceptedDomain(%q, %q, %q) = %+v, %v; want %+v", tc.name, tc.domain, tc.typ, got, err, tc.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.problems) {
			t.Errorf("NewAcceptedDomain(%q, %q, %q) error = %v; want it to say %q", tc.name, tc.domain, tc.typ, err, tc.problems)
		}
	}
}

func TestAcceptedDomainCovers(t *testing.T) {
	exact := AcceptedDomain{DomainName: "contoso.com"}
	wild := AcceptedDomain{DomainName: "*.contoso.com"}
	for _, tc := range []struct {
		d      AcceptedDomain
		domain string
		want   bool
	}{
		{exact, "contoso.com", true},
		{exact, "sub.contoso.com", false},
		{wild, "contoso.com", true},
		{wild, "a.b.contoso.com", true},
		{wild, "notcontoso.com", false},
	} {
		if got := tc.d.Covers(tc.domain); got != tc.want {
			t.Errorf("%s covers %s = %v, want %v", tc.d.DomainName, tc.domain, got, tc.want)
		}
	}
	if !Authoritative.Local() || !InternalRelay.Local() || ExternalRelay.Local() {
		t.Error("Local(): -- covers Authoritative and InternalRelay only")
	}
}
