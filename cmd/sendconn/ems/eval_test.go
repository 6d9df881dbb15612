package ems

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func decode(t testing.TB, s string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// evalScriptBlock parses `Get-X | where { expr }` and evaluates the
// script block, the way the executor will.
func evalScriptBlock(t *testing.T, expr string, obj any) (any, error) {
	t.Helper()
	s, err := Parse("Get-X | where { " + expr + " }")
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	sb := s.Statements[0].Pipeline.Commands[1].Args[0].Value.(*ScriptBlock)
	return Eval(sb.Expr, obj)
}

func TestEvalPermissionFilter(t *testing.T) {
	const filter = `($_.Deny -eq $false) -and ($_.IsInherited -eq $false)`
	entries := []struct {
		json string
		keep bool
	}{
		{`{"User":"NT AUTHORITY\\ANONYMOUS LOGON","Deny":false,"IsInherited":false,"ExtendedRights":["ms-Exch-SMTP-Submit"]}`, true},
		{`{"User":"NT AUTHORITY\\ANONYMOUS LOGON","Deny":true,"IsInherited":false,"ExtendedRights":["ms-Exch-Send-Headers-Routing"]}`, false},
		{`{"User":"CONTOSO\\Exchange Servers","Deny":false,"IsInherited":true,"ExtendedRights":["ms-Exch-SMTP-Submit"]}`, false},
		{`{"user":"CONTOSO\\Bob","deny":false,"isinherited":false}`, true}, // property names in any case
		{`{"User":"CONTOSO\\Bob"}`, false}, // missing properties are $null, not $false
	}
	for _, e := range entries {
		v, err := evalScriptBlock(t, filter, decode(t, e.json))
		if err != nil || v != e.keep {
			t.Errorf("%s on %s = %v, %v; want %v", filter, e.json, v, err, e.keep)
		}
	}
}

const connectorJSON = `{
	"Name": "To Fabrikam",
	"Enabled": false,
	"Port": 25,
	"Size": 36700160,
	"AddressSpaces": ["SMTP:*.fabrikam.com;1", "SMTP:fabrikam.net;2"],
	"SmartHosts": [],
	"Fqdn": null,
	"Cost": "1.5",
	"MaxMessageSize": "35 MB (36,700,160 bytes)",
	"Nested": {"Host": {"Name": "mx1"}},
	"Hosts": [{"Name": "a", "Port": 25}, {"Name": "b", "Port": 587}]
}`

func TestEval(t *testing.T) {
	conn := decode(t, connectorJSON)
	enabled := decode(t, `{"Name":"To Internet","Enabled":true}`)
	perm := decode(t, `{"User":"NT AUTHORITY\\ANONYMOUS LOGON","Deny":false,"IsInherited":false,"ExtendedRights":["ms-Exch-SMTP-Submit"]}`)
	native := map[string]any{"Port": 25, "Rights": []string{"a", "b"}, "Tags": map[string]string{"k": "v"}, "Big": uint64(1 << 63)}

	tests := []struct {
		expr  string
		obj   any
		want  any // the value Eval returns
		truth bool
	}{
		// -and and -or have equal precedence, left to right
		{`$true -or $true -and $false`, nil, false, false},
		{`$true -or $false -and $false`, nil, false, false},
		{`$false -and $true -or $true`, nil, true, true},
		{`$true -or ($true -and $false)`, nil, true, true},
		{`$true -xor $true`, nil, false, false},
		{`$true -xor $false -or $false`, nil, true, true},
		{`-not $true -or $true`, nil, true, true},
		{`!$_.Enabled -and $_.Name -like "To *"`, conn, true, true},

		// the seed filter from Get-SendConnector | ? { ... }
		{`$_.Name -like "To *" -and -not $_.Enabled`, conn, true, true},
		{`$_.Name -like "To *" -and -not $_.Enabled`, enabled, false, false},

		// strings: case-insensitive unless c-prefixed
		{`$_.name -eq 'to fabrikam'`, conn, true, true},
		{`$_.Name -ieq 'TO FABRIKAM'`, conn, true, true},
		{`$_.Name -ceq 'to fabrikam'`, conn, false, false},
		{`$_.Name -ceq 'To Fabrikam'`, conn, true, true},
		{`$_.Name -cne 'to fabrikam'`, conn, true, true},
		{`$_.Name -gt 'a'`, conn, true, true},
		{`$_.Name -lt 'TO G'`, conn, true, true},
		{`$_.Name -le 'to fabrikam'`, conn, true, true},

		// -like: * ? [set] [range], anchored
		{`$_.Name -like 'To F?brikam'`, conn, true, true},
		{`$_.Name -like '*fab*'`, conn, true, true},
		{`$_.Name -like 'Fab*'`, conn, false, false},
		{`$_.Name -like 'To'`, conn, false, false},
		{`$_.Name -like 'To [e-g]abrikam'`, conn, true, true},
		{`$_.Name -clike 'To [e-g]abrikam'`, conn, false, false},
		{`$_.Name -like 'To [FG]abrikam'`, conn, true, true},
		{`$_.Name -notlike 'To *'`, conn, false, false},
		{`$_.Name -clike 'to *'`, conn, false, false},
		{"'a*b' -like 'a`*b'", nil, true, true},
		{"'axb' -like 'a`*b'", nil, false, false},
		{`'a.b' -like 'a.b'`, nil, true, true},
		{`'axb' -like 'a.b'`, nil, false, false},
		{"'line1`nline2' -like 'line1*'", nil, true, true},
		{`$null -like '*'`, nil, true, true},

		// -match: unanchored regular expressions
		{`$_.Name -match 'fab'`, conn, true, true},
		{`$_.Name -cmatch 'fab'`, conn, false, false},
		{`$_.Name -match '^to\s+f'`, conn, true, true},
		{`$_.Name -notmatch '^x'`, conn, true, true},

		// the right operand is converted to the left one's type
		{`$_.Port -eq "25"`, conn, true, true},
		{`$_.Port -eq " 025 "`, conn, true, true},
		{`$_.Port -eq 25.0`, conn, true, true},
		{`$_.Port -eq "abc"`, conn, false, false},
		{`$_.Port -eq ""`, conn, false, false},
		{`$_.Port -lt 100`, conn, true, true},
		{`$_.Port -gt "100"`, conn, false, false},
		{`$_.Port -ge "0x19"`, conn, true, true},
		{`$_.Port -eq $true`, conn, false, false},
		{`"25" -eq $_.Port`, conn, true, true},
		{`"025" -eq $_.Port`, conn, false, false},
		{`$_.Name -eq 25`, conn, false, false},
		{`$_.Cost -eq 1.5`, conn, true, true},
		{`"25" -eq 25.0`, nil, true, true},
		{`"1E+20" -eq 1e20`, nil, true, true},
		{`"1E-07" -eq 0.0000001`, nil, true, true},
		{`'True' -eq $true`, nil, true, true},
		{`$_.Size -eq 35MB`, conn, true, true},
		{`$_.Size -gt 10mb`, conn, true, true},
		{`$_.Size -lt 1GB`, conn, true, true},
		{`1kb -eq 1024`, nil, true, true},

		// a string becomes a boolean by being non-empty
		{`$_.Enabled -eq "false"`, conn, false, false},
		{`$_.Enabled -eq "false"`, enabled, true, true},
		{`$_.Enabled -eq ""`, conn, true, true},
		{`$_.Enabled -eq 0`, conn, true, true},
		{`$true -gt $false`, nil, true, true},

		// $null
		{`$_.Fqdn -eq $null`, conn, true, true},
		{`$null -eq $_.Fqdn`, conn, true, true},
		{`$_.NoSuchProperty -eq $null`, conn, true, true},
		{`$_.NoSuchProperty.Deeper`, conn, nil, false},
		{`$_.Name -eq $null`, conn, false, false},
		{`"" -eq $null`, nil, false, false},
		{`0 -eq $null`, nil, false, false},
		{`$_ -eq $null`, nil, true, true},
		{`$null -lt 0`, nil, true, true},
		{`$null -lt -1`, nil, false, false},
		{`$null -gt -1`, nil, true, true},
		{`$null -lt 'a'`, nil, true, true},
		{`'a' -gt $null`, nil, true, true},
		{`$null -ge $null`, nil, true, true},

		// arrays on the left filter
		{`$_.AddressSpaces -like '*fabrikam.com*'`, conn, []any{"SMTP:*.fabrikam.com;1"}, true},
		{`$_.AddressSpaces -like 'x*'`, conn, []any{}, false},
		{`$_.AddressSpaces -match ';2$'`, conn, []any{"SMTP:fabrikam.net;2"}, true},
		{`$_.AddressSpaces -ne 'x'`, conn, []any{"SMTP:*.fabrikam.com;1", "SMTP:fabrikam.net;2"}, true},
		{`$_.Hosts.Port -gt 100`, conn, []any{float64(587)}, true},
		{`@(0) -eq 0`, nil, []any{int64(0)}, false}, // PowerShell's famous one: @(0) is false
		{`@(0, 0) -eq 0`, nil, []any{int64(0), int64(0)}, true},
		{`@('', 'a') -eq ''`, nil, []any{""}, false},

		// -contains, -in
		{`$_.ExtendedRights -contains 'MS-EXCH-SMTP-SUBMIT'`, perm, true, true},
		{`$_.ExtendedRights -ccontains 'MS-EXCH-SMTP-SUBMIT'`, perm, false, false},
		{`$_.ExtendedRights -notcontains 'ms-Exch-Send-Headers-Routing'`, perm, true, true},
		{`'ms-exch-smtp-submit' -in $_.ExtendedRights`, perm, true, true},
		{`'ms-exch-smtp-submit' -cin $_.ExtendedRights`, perm, false, false},
		{`'x' -notin $_.ExtendedRights`, perm, true, true},
		{`$_.Port -in 25, 587`, conn, true, true},
		{`$_.Port -in "25", "587"`, conn, true, true},
		{`$_.Port -in @()`, conn, false, false},
		{`$_.Name -contains 'to fabrikam'`, conn, true, true}, // a scalar is a one-element collection
		{`$null -contains $null`, nil, true, true},
		{`$_.Hosts.Name -contains 'b'`, conn, true, true},

		// truthiness, Count, Length, member enumeration
		{`$_.SmartHosts`, conn, []any{}, false},
		{`-not $_.SmartHosts`, conn, true, true},
		{`$_.AddressSpaces`, conn, []any{"SMTP:*.fabrikam.com;1", "SMTP:fabrikam.net;2"}, true},
		{`$_.SmartHosts.Count -eq 0`, conn, true, true},
		{`$_.AddressSpaces.Count`, conn, int64(2), true},
		{`$_.Name.Length`, conn, int64(11), true},
		{`$_.NoSuchProperty.Count`, conn, int64(0), false},
		{`$_.Count`, conn, int64(1), true},
		{`$_.Nested.Host.Name -eq 'MX1'`, conn, true, true},
		{`$_.Hosts.Name`, conn, []any{"a", "b"}, true},
		{`$_.Enabled`, conn, false, false},
		{`$_.MaxMessageSize -like '35 MB*'`, conn, true, true},
		{`$_.Name, $_.Port`, conn, []any{"To Fabrikam", float64(25)}, true},

		// Go values as the executor may pass them
		{`$_.Port -eq 25`, native, true, true},
		{`$_.Port -eq '25'`, native, true, true},
		{`$_.Rights -contains 'B'`, native, true, true},
		{`$_.Tags.K -eq 'v'`, native, true, true},
		{`$_.Big -gt 0`, native, true, true},
	}
	for _, tc := range tests {
		got, err := evalScriptBlock(t, tc.expr, tc.obj)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s = %#v; want %#v", tc.expr, got, tc.want)
		}
		if Truthy(got) != tc.truth {
			t.Errorf("Truthy(%s) = %v; want %v", tc.expr, !tc.truth, tc.truth)
		}
	}
}

func TestEvalErrors(t *testing.T) {
	conn := decode(t, connectorJSON)
	tests := []struct{ expr, want string }{
		{`$_.Name -match '('`, `line 1, column 25: invalid regular expression "(": missing closing )`},
		{`$_.Port -lt 'abc'`, `line 1, column 25: cannot compare 25 with "abc": it is not a number`},
		{`$_.Name -like 'To [F'`, `line 1, column 25: invalid wildcard pattern "To [F": "[" is not closed by "]"`},
		{`$_.Name -like 'To []'`, `line 1, column 25: invalid wildcard pattern "To []": empty set "[]"`},
		{`$_.Name -like '[z-a]*'`, `line 1, column 25: invalid wildcard pattern "[z-a]*": range z-a is backwards`},
		{`$_.Nested -gt 1`, `line 1, column 27: cannot compare an object with int64`},
		{`$_.Hosts -lt 5`, `line 1, column 26: cannot compare an object with int64`},
		{`$true -and ($_.Name -match '(')`, `line 1, column 37: invalid regular expression "(": missing closing )`},
	}
	for _, tc := range tests {
		_, err := evalScriptBlock(t, tc.expr, conn)
		var ee *EvalError
		if !errors.As(err, &ee) || err.Error() != tc.want {
			t.Errorf("%s: error %v\nwant %s", tc.expr, err, tc.want)
		}
	}
	// -and and -or stop early, so the bad right side is never evaluated.
	for _, expr := range []string{`$false -and ($_.Name -match '(')`, `$true -or ($_.Name -match '(')`} {
		if _, err := evalScriptBlock(t, expr, conn); err != nil {
			t.Errorf("%s: %v", expr, err)
		}
	}
	if _, err := Eval(nil, conn); err == nil {
		t.Error("Eval(nil) succeeded")
	}
}

func TestTruthy(t *testing.T) {
	tests := []struct {
		v    any
		want bool
	}{
		{nil, false}, {false, false}, {true, true},
		{"", false}, {"False", true}, {"0", true}, {" ", true},
		{float64(0), false}, {0.5, true}, {int64(0), false}, {int64(-1), true}, {0, false}, {3, true},
		{[]any{}, false}, {[]any(nil), false}, {[]string{}, false},
		{[]any{0.0}, false}, {[]any{""}, false}, {[]any{"x"}, true}, {[]any{nil}, false},
		{[]any{0.0, 0.0}, true}, {[]any{[]any{}}, false}, {[]any{[]any{false}}, true},
		{map[string]any{}, true}, {map[string]any(nil), false},
	}
	for _, tc := range tests {
		if got := Truthy(tc.v); got != tc.want {
			t.Errorf("Truthy(%#v) = %v; want %v", tc.v, got, tc.want)
		}
	}
}

func TestToString(t *testing.T) {
	tests := []struct {
		v    any
		want string
	}{
		{nil, ""}, {true, "True"}, {false, "False"}, {int64(-5), "-5"},
		{25.0, "25"}, {1.5, "1.5"}, {1e20, "1E+20"}, {1e15, "1E+15"}, {123456789.25, "123456789.25"},
		{0.0001, "0.0001"}, {0.0000015, "1.5E-06"},
		{[]any{"a", 1.0, true}, "a 1 True"},
		{map[string]any{"b": 1.0, "a": "x"}, "@{a=x; b=1}"},
	}
	for _, tc := range tests {
		if got := toString(tc.v); got != tc.want {
			t.Errorf("toString(%#v) = %q; want %q", tc.v, got, tc.want)
		}
	}
}

// Benchmark-ish guard: a filter over many objects stays cheap.
func TestEvalManyObjects(t *testing.T) {
	e, err := ParseExpr(`($_.Deny -eq $false) -and ($_.IsInherited -eq $false) -and $_.User -like 'NT AUTHORITY\*'`)
	if err != nil {
		t.Fatal(err)
	}
	obj := decode(t, `{"User":"NT AUTHORITY\\ANONYMOUS LOGON","Deny":false,"IsInherited":false}`)
	for range 2000 {
		if v, err := Eval(e, obj); err != nil || v != true {
			t.Fatalf("Eval = %v, %v", v, err)
		}
	}
	if !strings.Contains(e.String(), "-like") {
		t.Errorf("String() = %s", e)
	}
}
