package permissions

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

const validRightsList = "ms-Exch-Send-Headers-Routing, ms-Exch-Send-Headers-Forest, ms-Exch-Send-Headers-Organization, ms-Exch-SMTP-Send-Exch50, ms-Exch-SMTP-Send-XShadow"

func TestRightString(t *testing.T) {
	tests := []struct {
		right Right
		want  string
	}{
		{SendHeadersRouting, "ms-Exch-Send-Headers-Routing"},
		{SendHeadersForest, "ms-Exch-Send-Headers-Forest"},
		{SendHeadersOrganization, "ms-Exch-Send-Headers-Organization"},
		{SMTPSendExch50, "ms-Exch-SMTP-Send-Exch50"},
		{SMTPSendXShadow, "ms-Exch-SMTP-Send-XShadow"},
		{0, "Right(0x0)"},
		{SendHeadersRouting | SendHeadersForest, "Right(0x3)"},
	}
	for _, tt := range tests {
		if got := tt.right.String(); got != tt.want {
			t.Errorf("Right(%#x).String() = %q, want %q", uint8(tt.right), got, tt.want)
		}
	}
}

func TestAllRightNames(t *testing.T) {
	got := strings.Join(AllRightNames(), ", ")
	if got != validRightsList {
		t.Errorf("AllRightNames() = %q, want %q", got, validRightsList)
	}
}

func TestParseRight(t *testing.T) {
	tests := []struct {
		in      string
		want    Right
		wantErr string
	}{
		{in: "ms-Exch-Send-Headers-Routing", want: SendHeadersRouting},
		{in: "MS-EXCH-SEND-HEADERS-FOREST", want: SendHeadersForest},
		{in: "  ms-exch-send-headers-organization\t", want: SendHeadersOrganization},
		{in: "ms-Exch-SMTP-Send-Exch50", want: SMTPSendExch50},
		{in: "ms-exch-smtp-send-xshadow", want: SMTPSendXShadow},
		{in: "ms-Exch-Foo", wantErr: `unknown extended right "ms-Exch-Foo" (valid: ` + validRightsList + `)`},
		{in: "", wantErr: `unknown extended right ""`},
		{in: "ms-Exch-Send-Headers-Routing,", wantErr: "unknown extended right"},
		{in: "SendRoutingHeaders", wantErr: "unknown extended right"},
	}
	for _, tt := range tests {
		got, err := ParseRight(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ParseRight(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRight(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRights(t *testing.T) {
	tests := []struct {
		name    string
		in      []string
		want    Rights
		wantErr string
	}{
		{name: "nil", in: nil, want: 0},
		{name: "empty elements", in: []string{"", " , ,"}, want: 0},
		{name: "one", in: []string{"ms-Exch-Send-Headers-Routing"}, want: RightsOf(SendHeadersRouting)},
		{
			name: "comma list inside an element",
			in:   []string{"ms-Exch-Send-Headers-Routing, ms-exch-smtp-send-exch50"},
			want: RightsOf(SendHeadersRouting, SMTPSendExch50),
		},
		{
			name: "elements and lists mixed, duplicates",
			in:   []string{"ms-Exch-Send-Headers-Forest,", "MS-EXCH-SEND-HEADERS-FOREST", " ms-Exch-SMTP-Send-XShadow "},
			want: RightsOf(SendHeadersForest, SMTPSendXShadow),
		},
		{name: "all", in: AllRightNames(), want: AllRights},
		{
			name:    "one unknown",
			in:      []string{"ms-Exch-Send-Headers-Routing", "ms-Exch-Foo"},
			wantErr: `unknown extended right "ms-Exch-Foo" (valid: ` + validRightsList + `)`,
		},
		{
			name:    "every unknown reported",
			in:      []string{"ms-Exch-Foo, ms-Exch-Send-Headers-Routing", "Send As", "ms-Exch-Bar"},
			wantErr: `unknown extended rights "ms-Exch-Foo", "Send As", "ms-Exch-Bar" (valid: ` + validRightsList + `)`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRights(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseRights(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestRightsMethods(t *testing.T) {
	tests := []struct {
		name     string
		rights   Rights
		list     []Right
		str      string
		sessions string
	}{
		{name: "none", rights: 0, list: []Right{}, str: "", sessions: ""},
		{
			name: "routing", rights: RightsOf(SendHeadersRouting),
			list: []Right{SendHeadersRouting}, str: "ms-Exch-Send-Headers-Routing", sessions: "SendRoutingHeaders",
		},
		{
			name: "canonical order whatever the construction order", rights: RightsOf(SMTPSendExch50, SendHeadersRouting),
			list: []Right{SendHeadersRouting, SMTPSendExch50},
			str:  "ms-Exch-Send-Headers-Routing, ms-Exch-SMTP-Send-Exch50", sessions: "SendRoutingHeaders SMTPSendEXCH50",
		},
		{
			name: "all", rights: AllRights,
			list:     []Right{SendHeadersRouting, SendHeadersForest, SendHeadersOrganization, SMTPSendExch50, SMTPSendXShadow},
			str:      validRightsList,
			sessions: "SendRoutingHeaders SendForestHeaders SendOrganizationHeaders SMTPSendEXCH50 SMTPSendXShadow",
		},
		{name: "bits outside the five are ignored", rights: 0xE0 | RightsOf(SendHeadersForest),
			list: []Right{SendHeadersForest}, str: "ms-Exch-Send-Headers-Forest", sessions: "SendForestHeaders"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.rights.List(); !slices.Equal(got, tt.list) {
				t.Errorf("List() = %v, want %v", got, tt.list)
			}
			if got := tt.rights.String(); got != tt.str {
				t.Errorf("String() = %q, want %q", got, tt.str)
			}
			if got := tt.rights.SessionPermissions(); got != tt.sessions {
				t.Errorf("SessionPermissions() = %q, want %q", got, tt.sessions)
			}
			for _, r := range allRightsInOrder {
				if got, want := tt.rights.Has(r), slices.Contains(tt.list, r); got != want {
					t.Errorf("Has(%v) = %v, want %v", r, got, want)
				}
			}
		})
	}
	if AllRights.Has(0) {
		t.Error("Has(0) = true: the empty right is in no set")
	}
}

func TestRightsJSON(t *testing.T) {
	tests := []struct {
		rights Rights
		json   string
	}{
		{0, `[]`},
		{RightsOf(SendHeadersRouting), `["ms-Exch-Send-Headers-Routing"]`},
		{RightsOf(SMTPSendXShadow, SendHeadersOrganization), `["ms-Exch-Send-Headers-Organization","ms-Exch-SMTP-Send-XShadow"]`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.rights)
		if err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tt.rights, b, err, tt.json)
		}
		var back Rights
		if err := json.Unmarshal(b, &back); err != nil || back != tt.rights {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, back, err, tt.rights)
		}
	}

	lenient := map[string]Rights{
		`null`: 0,
		`["MS-EXCH-SEND-HEADERS-ROUTING", "ms-exch-send-headers-forest"]`: RightsOf(SendHeadersRouting, SendHeadersForest),
		`["ms-Exch-Send-Headers-Routing, ms-Exch-SMTP-Send-Exch50"]`:      RightsOf(SendHeadersRouting, SMTPSendExch50),
	}
	for in, want := range lenient {
		var got Rights
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", in, got, err, want)
		}
	}

	for _, bad := range []string{`["ms-Exch-Foo"]`, `"ms-Exch-Send-Headers-Routing"`, `3`} {
		var got Rights
		if err := json.Unmarshal([]byte(bad), &got); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, got)
		}
	}
}

func TestParseAccessRights(t *testing.T) {
	tests := []struct {
		in      []string
		want    AccessRights
		names   string
		wantErr string
	}{
		{in: nil, want: 0, names: ""},
		{in: []string{"ExtendedRight"}, want: 0x100, names: "ExtendedRight"},
		{in: []string{"extendedright", " GENERICALL "}, want: GenericAll, names: "GenericAll"},
		{in: []string{"ReadProperty, WriteProperty"}, want: 0x30, names: "ReadProperty, WriteProperty"},
		{in: []string{"ReadControl,ListChildren"}, want: GenericExecute, names: "GenericExecute"},
		{in: []string{"GenericRead", "GenericWrite"}, want: GenericRead | GenericWrite, names: "Self, WriteProperty, GenericRead"},
		{in: []string{"AccessSystemSecurity", "Synchronize", "Delete"}, want: 0x1110000, names: "Delete, Synchronize, AccessSystemSecurity"},
		{in: []string{"ExtendedRight", "ReadProperty"}, want: 0x110, names: "ReadProperty, ExtendedRight"},
		{in: []string{"FullControl"}, wantErr: `unknown access right "FullControl" (valid: AccessSystemSecurity, CreateChild, DeleteChild, ListChildren, Self, ReadProperty, WriteProperty, DeleteTree, ListObject, ExtendedRight, Delete, ReadControl, GenericExecute, GenericWrite, GenericRead, WriteDacl, WriteOwner, GenericAll, Synchronize)`},
		{in: []string{"Foo, ExtendedRight", "Bar"}, wantErr: `unknown access rights "Foo", "Bar" (valid: `},
	}
	for _, tt := range tests {
		got, err := ParseAccessRights(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
				t.Errorf("ParseAccessRights(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseAccessRights(%q) = %#x, %v; want %#x", tt.in, uint32(got), err, uint32(tt.want))
			continue
		}
		if s := got.String(); s != tt.names {
			t.Errorf("AccessRights(%#x).String() = %q, want %q", uint32(got), s, tt.names)
		}
		back, err := ParseAccessRights(got.Names())
		if err != nil || back != got {
			t.Errorf("ParseAccessRights(Names()) = %#x, %v; want %#x", uint32(back), err, uint32(got))
		}
	}
}

// Every combination of named values must survive printing and parsing,
// however the greedy decomposition groups the bits.
func TestAccessRightsRoundTripEveryFlagPair(t *testing.T) {
	for _, x := range accessRightNames {
		for _, y := range accessRightNames {
			a := x.value | y.value
			back, err := ParseAccessRights(a.Names())
			if err != nil || back != a {
				t.Errorf("%s|%s: Names() = %v parsed to %#x, %v", x.name, y.name, a.Names(), uint32(back), err)
			}
		}
	}
}

func TestAccessRightsUnnamedBits(t *testing.T) {
	a := ExtendedRight | 0x200
	if got, want := a.String(), "0x200, ExtendedRight"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if _, err := ParseAccessRights(a.Names()); err == nil {
		t.Error("ParseAccessRights accepted a raw number")
	}
}

func TestGrantsAllExtendedRights(t *testing.T) {
	tests := []struct {
		a    AccessRights
		want bool
	}{
		{0, false},
		{ExtendedRight, true},
		{GenericAll, true},
		{ExtendedRight | ReadProperty, true},
		{GenericRead | GenericWrite | GenericExecute, false},
		{WriteDacl, false},
	}
	for _, tt := range tests {
		if got := tt.a.GrantsAllExtendedRights(); got != tt.want {
			t.Errorf("(%v).GrantsAllExtendedRights() = %v, want %v", tt.a, got, tt.want)
		}
	}
}

func TestAccessRightsJSON(t *testing.T) {
	tests := []struct {
		a    AccessRights
		json string
	}{
		{0, `[]`},
		{ExtendedRight, `["ExtendedRight"]`},
		{ReadProperty | ExtendedRight, `["ReadProperty","ExtendedRight"]`},
		{GenericAll, `["GenericAll"]`},
	}
	for _, tt := range tests {
		b, err := json.Marshal(tt.a)
		if err != nil || string(b) != tt.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tt.a, b, err, tt.json)
		}
		var back AccessRights
		if err := json.Unmarshal(b, &back); err != nil || back != tt.a {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, back, err, tt.a)
		}
	}
	var a AccessRights
	if err := json.Unmarshal([]byte(`["extendedright"]`), &a); err != nil || a != ExtendedRight {
		t.Errorf("Unmarshal lower case = %v, %v", a, err)
	}
	if err := json.Unmarshal([]byte(`["Everything"]`), &a); err == nil {
		t.Error("Unmarshal accepted an unknown name")
	}
}
