package permissions

import (
	"strings"
	"testing"
)

func TestParsePrincipal(t *testing.T) {
	long := strings.Repeat("a", maxPrincipalPart)
	tests := []struct {
		in      string
		want    Principal
		wantErr string
	}{
		// Well-known principals come back in their canonical spelling.
		{in: `NT AUTHORITY\ANONYMOUS LOGON`, want: AnonymousLogon},
		{in: `nt authority\anonymous logon`, want: AnonymousLogon},
		{in: `  Nt Authority \ Anonymous Logon  `, want: AnonymousLogon},
		{in: `ms exchange\partner servers`, want: PartnerServers},
		{in: `MS EXCHANGE\LEGACY EXCHANGE SERVERS`, want: LegacyExchangeServers},
		{in: `ms exchange\externally secured servers`, want: ExternallySecuredServers},
		{in: `MS Exchange\hub transport servers`, want: HubTransportServers},
		{in: `MS Exchange\Edge Transport Servers`, want: EdgeTransportServers},

		// Anything else keeps the admin's spelling.
		{in: `CONTOSO\Exchange Servers`, want: `CONTOSO\Exchange Servers`},
		{in: `contoso\relay-svc`, want: `contoso\relay-svc`},
		{in: `NT AUTHORITY\Authenticated Users`, want: `NT AUTHORITY\Authenticated Users`},
		{in: ` relay@contoso.com `, want: `relay@contoso.com`},
		{in: `first.last@mail.contoso.co.uk`, want: `first.last@mail.contoso.co.uk`},
		{in: `D\` + long, want: Principal(`D\` + long)},
		{in: `Zürich\Jörg`, want: `Zürich\Jörg`},

		{in: ``, wantErr: `principal "": expected DOMAIN\name or name@domain`},
		{in: `   `, wantErr: `principal "   ": expected DOMAIN\name or name@domain`},
		{in: `Everyone`, wantErr: `principal "Everyone": expected DOMAIN\name or name@domain`},
		{in: `a\b\c`, wantErr: `principal "a\b\c": more than one backslash`},
		{in: `\name`, wantErr: `empty domain before the backslash`},
		{in: ` \name`, wantErr: `empty domain before the backslash`},
		{in: `DOMAIN\`, wantErr: `empty name after the backslash`},
		{in: `DOMAIN\ `, wantErr: `empty name after the backslash`},
		{in: `D\` + long + `a`, wantErr: `name longer than 256 characters`},
		{in: long + `a\x`, wantErr: `domain longer than 256 characters`},
		{in: "CONTOSO\\a\x00b", wantErr: `principal "CONTOSO\\a\x00b": contains a control character`},
		{in: "CONTOSO\\a\nb", wantErr: `contains a control character`},
		{in: "CONTOSO\\\xff", wantErr: `not valid UTF-8`},
		{in: `a@b@c.com`, wantErr: `more than one @`},
		{in: `@contoso.com`, wantErr: `empty name before @`},
		{in: `relay@`, wantErr: `empty domain after @`},
		{in: `relay@contoso..com`, wantErr: `domain "contoso..com": expected dot-separated labels`},
		{in: `relay@contoso.com.`, wantErr: `expected dot-separated labels`},
		{in: `relay@-contoso.com`, wantErr: `expected dot-separated labels`},
		{in: `relay@con toso.com`, wantErr: `expected dot-separated labels`},
		{in: `relay@` + strings.Repeat("a", 64) + `.com`, wantErr: `expected dot-separated labels`},
	}
	for _, tt := range tests {
		got, err := ParsePrincipal(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParsePrincipal(%q) = %q, %v; want error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParsePrincipal(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestPrincipalEqual(t *testing.T) {
	tests := []struct {
		p, q Principal
		want bool
	}{
		{AnonymousLogon, `nt authority\anonymous logon`, true},
		{`CONTOSO\Exchange Servers`, `contoso\EXCHANGE SERVERS`, true},
		{`relay@contoso.com`, `RELAY@Contoso.COM`, true},
		{AnonymousLogon, PartnerServers, false},
		{`CONTOSO\a`, `CONTOSO\a `, false},
		{``, ``, true},
	}
	for _, tt := range tests {
		if got := tt.p.Equal(tt.q); got != tt.want {
			t.Errorf("%q.Equal(%q) = %v, want %v", tt.p, tt.q, got, tt.want)
		}
	}
}

func TestExchangeServers(t *testing.T) {
	if got, want := ExchangeServers("CONTOSO"), Principal(`CONTOSO\Exchange Servers`); got != want {
		t.Errorf("ExchangeServers = %q, want %q", got, want)
	}
	if got, want := ExchangeServers(" contoso.com "), Principal(`contoso.com\Exchange Servers`); got != want {
		t.Errorf("ExchangeServers = %q, want %q", got, want)
	}
	if got := AnonymousLogon.String(); got != `NT AUTHORITY\ANONYMOUS LOGON` {
		t.Errorf("String() = %q", got)
	}
}
