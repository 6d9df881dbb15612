package ems

import (
	"errors"
	"strings"
	"testing"
)

// seeds are the Exchange documentation lines sendconn must run, with the
// placeholders filled in, and how each must parse (see dump for the
// notation).
var seeds = []struct{ src, want string }{
	{
		`New-SendConnector -Name "Smart host to Internet" -AddressSpaces * -Custom -DNSRoutingEnabled $false -SmartHosts 192.168.3.2 -SmartHostAuthMechanism None`,
		`New-SendConnector -Name "Smart host to Internet" -AddressSpaces * -Custom -DNSRoutingEnabled $false -SmartHosts 192.168.3.2 -SmartHostAuthMechanism None`,
	},
	{
		`New-SendConnector -Name "My company to Office 365" -AddressSpaces * -CloudServicesMailEnabled $true -Fqdn mail.contoso.com -RequireTLS $true -DNSRoutingEnabled $false -SmartHosts contoso-com.mail.protection.outlook.com -TlsAuthLevel CertificateValidation`,
		`New-SendConnector -Name "My company to Office 365" -AddressSpaces * -CloudServicesMailEnabled $true -Fqdn mail.contoso.com -RequireTLS $true -DNSRoutingEnabled $false -SmartHosts contoso-com.mail.protection.outlook.com -TlsAuthLevel CertificateValidation`,
	},
	{
		`New-SendConnector -Name "My company to Office 365" -AddressSpaces * -CloudServicesMailEnabled $true -Fqdn "cert domain name, such as mail.contoso.com" -RequireTLS $true -SmartHosts yourdomain-com.mail.protection.outlook.com -TlsAuthLevel CertificateValidation`,
		`New-SendConnector -Name "My company to Office 365" -AddressSpaces * -CloudServicesMailEnabled $true -Fqdn "cert domain name, such as mail.contoso.com" -RequireTLS $true -SmartHosts yourdomain-com.mail.protection.outlook.com -TlsAuthLevel CertificateValidation`,
	},
	{
		`Set-SendConnector "Contoso.com Send Connector" -FrontendProxyEnabled $true`,
		`Set-SendConnector "Contoso.com Send Connector" -FrontendProxyEnabled $true`,
	},
	{
		`Get-ADPermission -Identity "To Fabrikam.com" | where {($_.Deny -eq $false) -and ($_.IsInherited -eq $false)} | Format-Table User,ExtendedRights`,
		`Get-ADPermission -Identity "To Fabrikam.com" | where {(($_.Deny -eq $false) -and ($_.IsInherited -eq $false))} | Format-Table [User, ExtendedRights]`,
	},
	{
		`Get-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\ANONYMOUS LOGON" | where {($_.Deny -eq $false) -and ($_.IsInherited -eq $false)} | Format-Table User,ExtendedRights`,
		`Get-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\\ANONYMOUS LOGON" | where {(($_.Deny -eq $false) -and ($_.IsInherited -eq $false))} | Format-Table [User, ExtendedRights]`,
	},
	{
		`Add-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\ANONYMOUS LOGON" -ExtendedRights "ms-Exch-Send-Headers-Organization","ms-Exch-Send-Headers-Forest"`,
		`Add-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ["ms-Exch-Send-Headers-Organization", "ms-Exch-Send-Headers-Forest"]`,
	},
	{
		`Remove-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\ANONYMOUS LOGON" -ExtendedRights ms-Exch-Send-Headers-Routing -Confirm:$false`,
		`Remove-ADPermission -Identity "To Fabrikam.com" -User "NT AUTHORITY\\ANONYMOUS LOGON" -ExtendedRights ms-Exch-Send-Headers-Routing -Confirm:$false`,
	},
	{
		`Get-SendConnector "X" | Add-ADPermission -User "CONTOSO\Bob" -ExtendedRights ms-Exch-SMTP-Send-Exch50`,
		`Get-SendConnector "X" | Add-ADPermission -User "CONTOSO\\Bob" -ExtendedRights ms-Exch-SMTP-Send-Exch50`,
	},
	{
		`Get-SendConnector | Set-SendConnector -Enabled $false`,
		`Get-SendConnector | Set-SendConnector -Enabled $false`,
	},
	{
		`Set-SendConnector "X" -AddressSpaces @{Add="smtp:*.fabrikam.com;2"; Remove="contoso.com"}`,
		`Set-SendConnector "X" -AddressSpaces @{Add="smtp:*.fabrikam.com;2"; Remove="contoso.com"}`,
	},
	{
		`Set-SendConnector "X" -MaxMessageSize 35MB -WhatIf`,
		`Set-SendConnector "X" -MaxMessageSize 35MB=36700160 -WhatIf`,
	},
	{
		`Set-SendConnector "X" -AuthenticationCredential (Get-Credential)`,
		`Set-SendConnector "X" -AuthenticationCredential (Get-Credential)`,
	},
	{
		`$c = Get-SendConnector "X"; Set-SendConnector $c -Port 587`,
		"$c = Get-SendConnector \"X\"\nSet-SendConnector $c -Port 587=587",
	},
	{
		`Get-SendConnector | ? { $_.Name -like "To *" -and -not $_.Enabled } | fl Name,AddressSpaces`,
		`Get-SendConnector | ? {(($_.Name -like 'To *') -and (-not $_.Enabled))} | fl [Name, AddressSpaces]`,
	},
	{
		`Get-SendConnector | Select-Object Name,Enabled | ConvertTo-Json`,
		`Get-SendConnector | Select-Object [Name, Enabled] | ConvertTo-Json`,
	},
	{
		`Get-SendConnector | Export-Csv -Path connectors.csv -NoTypeInformation`,
		`Get-SendConnector | Export-Csv -Path connectors.csv -NoTypeInformation`,
	},
	{
		"New-SendConnector -Name \"Two\" `\n    -AddressSpaces \"contoso.com\",\"fabrikam.com\" `\n    -SmartHosts mail1.contoso.com, mail2.contoso.com",
		`New-SendConnector -Name "Two" -AddressSpaces ["contoso.com", "fabrikam.com"] -SmartHosts [mail1.contoso.com, mail2.contoso.com]`,
	},
}

func TestParseSeeds(t *testing.T) {
	for _, tc := range seeds {
		s, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		if got := dump(s); got != tc.want {
			t.Errorf("Parse(%q)\n got: %s\nwant: %s", tc.src, got, tc.want)
		}
	}
}

// TestParseSeedDetails checks what dump does not show.
func TestParseSeedDetails(t *testing.T) {
	parse := func(src string) *Script {
		t.Helper()
		s, err := Parse(src)
		if err != nil {
			t.Fatalf("Parse(%q): %v", src, err)
		}
		return s
	}

	// -Confirm:$false is glued; -ExtendedRights x takes the next token.
	s := parse(`Remove-ADPermission -Identity "To Fabrikam.com" -ExtendedRights ms-Exch-Send-Headers-Routing -Confirm:$false`)
	args := s.Statements[0].Pipeline.Commands[0].Args
	if a := args[2]; a.Param != "Confirm" || !a.Colon || a.Pos != (Pos{1, 94}) {
		t.Errorf("-Confirm:$false = %+v", a)
	}
	if b, ok := args[2].Value.(*Bool); !ok || b.Value || b.At != (Pos{1, 103}) {
		t.Errorf("-Confirm value = %#v", args[2].Value)
	}
	if a := args[1]; a.Colon || a.Pos != (Pos{1, 49}) {
		t.Errorf("-ExtendedRights = %+v", a)
	}

	// -Custom before another parameter is a switch.
	s = parse(`New-SendConnector -Name "Smart host to Internet" -AddressSpaces * -Custom -DNSRoutingEnabled $false`)
	if a := s.Statements[0].Pipeline.Commands[0].Args[2]; a.Param != "Custom" || a.Value != nil {
		t.Errorf("-Custom = %+v", a)
	}

	// A byte quantity keeps its text.
	s = parse(`Set-SendConnector "X" -MaxMessageSize 35mb -WhatIf`)
	n, ok := s.Statements[0].Pipeline.Commands[0].Args[1].Value.(*Number)
	if !ok || n.Text != "35mb" || n.Unit != "MB" || !n.IsInt || n.Int != 35<<20 || n.Float != 35<<20 {
		t.Errorf("35mb = %#v", s.Statements[0].Pipeline.Commands[0].Args[1].Value)
	}

	// Hashtable entries in order, looked up case-insensitively.
	s = parse(`Set-SendConnector "X" -AddressSpaces @{Add="smtp:*.fabrikam.com;2"; Remove="contoso.com","b"}`)
	h := s.Statements[0].Pipeline.Commands[0].Args[1].Value.(*Hashtable)
	if len(h.Entries) != 2 || h.Entries[0].Key != "Add" || h.Entries[1].Key != "Remove" || h.Entries[1].Pos != (Pos{1, 69}) {
		t.Errorf("entries = %+v", h.Entries)
	}
	if v, ok := h.Get("remove"); !ok || dumpValue(v) != `["contoso.com", "b"]` {
		t.Errorf(`Get("remove") = %v, %v`, v, ok)
	}
	if _, ok := h.Get("Replace"); ok {
		t.Error(`Get("Replace") found something`)
	}

	// Statements on one line, each with its position and text.
	s = parse(`$c = Get-SendConnector "X"; Set-SendConnector $c -Port 587`)
	if st := s.Statements[0]; st.Assign != "c" || st.Pos != (Pos{1, 1}) || st.Text != `$c = Get-SendConnector "X"` {
		t.Errorf("statement 1 = %+v", st)
	}
	if st := s.Statements[1]; st.Assign != "" || st.Pos != (Pos{1, 29}) || st.Text != `Set-SendConnector $c -Port 587` {
		t.Errorf("statement 2 = %+v", st)
	}
	if v, ok := s.Statements[1].Pipeline.Commands[0].Args[0].Value.(*Var); !ok || v.Name != "c" || v.At != (Pos{1, 47}) {
		t.Errorf("$c = %#v", s.Statements[1].Pipeline.Commands[0].Args[0].Value)
	}

	// Continuation lines: positions on later lines; Text spans them.
	src := "New-SendConnector -Name \"Two\" `\n    -AddressSpaces \"contoso.com\",\"fabrikam.com\" `\n    -SmartHosts mail1.contoso.com, mail2.contoso.com\nGet-SendConnector"
	s = parse(src)
	if len(s.Statements) != 2 || s.Statements[1].Pos != (Pos{4, 1}) {
		t.Fatalf("statements = %s", dump(s))
	}
	if want := src[:strings.LastIndex(src, "\n")]; s.Statements[0].Text != want {
		t.Errorf("Text = %q, want %q", s.Statements[0].Text, want)
	}
	smart := s.Statements[0].Pipeline.Commands[0].Args[2]
	if smart.Pos != (Pos{3, 5}) || smart.Value.Pos() != (Pos{3, 17}) || smart.Value.(*List).Items[1].Pos() != (Pos{3, 36}) {
		t.Errorf("-SmartHosts at %v, value at %v", smart.Pos, smart.Value.Pos())
	}

	// The script block keeps its source text.
	s = parse(`Get-ADPermission "X" | where { ($_.Deny -eq $false) -and ($_.IsInherited -eq $false) }`)
	sb := s.Statements[0].Pipeline.Commands[1].Args[0].Value.(*ScriptBlock)
	if sb.Text != `($_.Deny -eq $false) -and ($_.IsInherited -eq $false)` || sb.At != (Pos{1, 30}) || sb.Expr.Pos() != (Pos{1, 53}) {
		t.Errorf("script block = %+v", sb)
	}
}

// TestParseAccepted covers the rest of the accepted language.
func TestParseAccepted(t *testing.T) {
	tests := []struct{ src, want string }{
		// comments, blank lines, separators
		{"# comment\n\nGet-SendConnector # trailing\n  ; ;\nGet-ReceiveConnector", "Get-SendConnector\nGet-ReceiveConnector"},
		{"<# a\nblock #> Get-X <# inline #> -A 1", "Get-X -A 1=1"},
		{"Get-X;Get-Y", "Get-X\nGet-Y"},
		{"\uFEFFGet-X\r\nGet-Y\r\n", "Get-X\nGet-Y"},
		// a pipe or a comma at the end of a line continues the statement
		{"Get-SendConnector |\n\n  Set-SendConnector -Enabled $false", "Get-SendConnector | Set-SendConnector -Enabled $false"},
		{"Set-X -A a,\n  b", "Set-X -A [a, b]"},
		// bare words
		{`Set-X -A * -B [::1]:25 -C user@contoso.com -D a=b -E x#y -F smtp:*.contoso.com;1 -G a*b?`, "Set-X -A * -B [::1]:25 -C user@contoso.com -D a=b -E x#y -F smtp:*.contoso.com;1 -G a*b?"},
		{"Set-X -A a`;b -B `$x -C a`,b", "Set-X -A a;b -B $x -C a,b"},
		{"Set-X -A a,b ,c , d", "Set-X -A [a, b, c, d]"},
		{"Set-X -A smtp:a.com;1,smtp:b.com;20; Get-Y -B x;2", "Set-X -A [smtp:a.com;1, smtp:b.com;20]\nGet-Y -B x;2"},
		{"Set-X -A a;b", "Set-X -A a\nb"},
		{"Set-X - -- --x -5x", "Set-X - -- --x -5x"},
		{"Set-X [abc] [a-z]* [fe80::1]:25", "Set-X [abc] [a-z]* [fe80::1]:25"},
		// strings
		{`Set-X 'it''s' "say ""hi"" ` + "`" + `"bye` + "`" + `"" "tab` + "`t`$`u{41}`0" + `."`, "Set-X \"it's\" \"say \\\"hi\\\" \\\"bye\\\"\" \"tab\\t$A\\x00.\""},
		{`Set-X "$" "a $ b" "50$"`, `Set-X "$" "a $ b" "50$"`},
		{"Set-X 'a\nb' \"c\nd\"", `Set-X "a\nb" "c\nd"`},
		{"Set-X \u2013Name \u201cX\u201d \u2018it\u2019\u2019s\u2019", `Set-X -Name "X" "it’s"`},
		// numbers
		{"Set-X 25 -5 1.5 .5 1e3 0x19 10kb 1.5MB 2gb 1TB 1PB 99999999999999999999", "Set-X 25=25 -5=-5 1.5=1.5 .5=0.5 1e3=1000 0x19=25 10kb=10240 1.5MB=1.572864e+06 2gb=2147483648 1TB=1099511627776 1PB=1125899906842624 99999999999999999999=1e+20"},
		{"Set-X 1.2.3 10.0.0.1 25x 0xZZ 1e 5.", "Set-X 1.2.3 10.0.0.1 25x 0xZZ 1e 5."},
		// variables and constants
		{"Set-X $c $c.Identity.Name $_ $TRUE $False $NULL", "Set-X $c $c.Identity.Name $_ $true $false $null"},
		// parameters
		{"Set-X -A:1 -B: 2 -C:'x',y -D:$false -E -F", `Set-X -A:1=1 -B:2=2 -C:["x", y] -D:$false -E -F`},
		{"Set-X -? -Name_2 x -a-b y", "Set-X -? -Name_2 x -a-b y"},
		// arrays, hashtables, sub-pipelines
		{`Set-X @("a","b") @('a', 'b') @() @(1) @(Get-Y -Z 1) @("a"` + "\n" + `"b"; "c")`, `Set-X @["a", "b"] @["a", "b"] @[] @[1=1] @(Get-Y -Z 1=1) @["a", "b", "c"]`},
		{"Set-X @{} @{ a = 1 ; 'b c' = \"x\", @(2)\n  3 = $null\n}", `Set-X @{} @{a=1=1; b c=["x", @[2=2]]; 3=$null}`},
		{`Set-X @{Add=@{x=$true}; Remove=("a","b")}`, `Set-X @{Add=@{x=$true}; Remove=["a", "b"]}`},
		{`Get-X | Select-Object Name, @{Name="N"; Expression={$_.A}}`, `Get-X | Select-Object [Name, @{Name="N"; Expression={$_.A}}]`},
		{`Set-X (587) ("a","b") ($c) (Get-Y "Z" | Get-W)`, `Set-X 587=587 ["a", "b"] $c (Get-Y "Z" | Get-W)`},
		{"Set-X (\n  Get-Y\n)", "Set-X (Get-Y)"},
		// values at the start of a statement
		{`$c | Set-SendConnector -Port 587`, "$c | Set-SendConnector -Port 587=587"},
		{`"A","B" | Get-SendConnector`, `["A", "B"] | Get-SendConnector`},
		{"$c", "$c"},
		{"$c.Identity; $c", "$c.Identity\n$c"},
		{"$x = $y\n$n = 25\n$s = 'a', \"b\"\n$p = @(Get-X)", "$x = $y\n$n = 25=25\n$s = [\"a\", \"b\"]\n$p = @(Get-X)"},
		{"$c =\n  Get-X", "$c = Get-X"},
		// script blocks
		{"Get-X | Where-Object -FilterScript { $_.A }", "Get-X | Where-Object -FilterScript {$_.A}"},
		{"Get-X | ForEach-Object { $_.Name } | % { $_ }", "Get-X | ForEach-Object {$_.Name} | % {$_}"},
		{"Get-X | foreach { $_.Name }", "Get-X | foreach {$_.Name}"},
		{"Get-X | where {\n  $_.A -eq 1 -and\n  $_.B -eq 2 `\n  -or $_.C\n}", "Get-X | where {((($_.A -eq 1) -and ($_.B -eq 2)) -or $_.C)}"},
		{"Get-X | where { $PSItem.A -eq $null }", "Get-X | where {($_.A -eq $null)}"},
		{"Get-X | where {$_.A-eq'x'-and$_.B}", "Get-X | where {(($_.A -eq 'x') -and $_.B)}"},
	}
	for _, tc := range tests {
		s, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		if got := dump(s); got != tc.want {
			t.Errorf("Parse(%q)\n got: %s\nwant: %s", tc.src, got, tc.want)
		}
	}
}

func TestParseEmpty(t *testing.T) {
	for _, src := range []string{"", "\n\n", "# only a comment", "  ;  ", "<# #>"} {
		s, err := Parse(src)
		if err != nil || len(s.Statements) != 0 {
			t.Errorf("Parse(%q) = %v, %v; want no statements", src, s, err)
		}
	}
}

// errorCases are inputs outside the subset, with the exact error.
var errorCases = []struct {
	src       string
	line, col int
	token     string
	msg       string
}{
	// unclosed things point at the opening character
	{`Set-SendConnector "X -Port 25`, 1, 19, `"`, `unclosed double quote; expected a closing "`},
	{"Set-SendConnector 'X\n-Port 25", 1, 19, `'`, `unclosed single quote; expected a closing '`},
	{`Set-X "a` + "`", 1, 7, `"`, `unclosed double quote; expected a closing "`},
	{`Get-ADPermission "X" | where {($_.Deny -eq $false) -and ($_.IsInherited -eq $false)`, 1, 30, "{", `unclosed script block "{"; expected a closing "}"`},
	{"Get-X | where { $_.A -eq\n", 1, 15, "{", `unclosed script block "{"; expected a closing "}"`},
	{"Get-X | where { ($_.A -eq 1 }", 1, 29, "}", `unexpected "}"; expected an operator or ")"`},
	{"Set-X -A (Get-Credential", 1, 10, "(", `unclosed parenthesis "("; expected a closing ")"`},
	{"Set-X -A @{Add='x'", 1, 10, "@{", `unclosed hashtable "@{"; expected a closing "}"`},
	{"Set-X -A @('x',", 1, 10, "@(", `unclosed array subexpression "@("; expected a closing ")"`},
	{"Get-X <# never closed", 1, 7, "<#", `unclosed block comment "<#"; expected a closing "#>"`},

	// values
	{`Set-SendConnector "X" -AddressSpaces @{Add=}`, 1, 44, "}", `unexpected "}"; expected a value after "Add="`},
	{`Set-X -A @{Add="x" Remove="y"}`, 1, 20, "Remove", `unexpected "Remove"; expected ";", a new line or "}" after a hashtable entry`},
	{`Set-X -A @{Add="x"; add="y"}`, 1, 21, "add", `duplicate key "add" in the hashtable (keys are case-insensitive)`},
	{`Set-X -A @{Add x}`, 1, 16, "x", `unexpected "x"; expected "=" after the hashtable key "Add"`},
	{`Set-X -A @{Add=x}`, 1, 16, "x", `bare word "x" is not a value here; quote it ('x'), or put a command in parentheses`},
	{`Set-X -A @{=1}`, 1, 12, "=", `unexpected "="; expected a hashtable key or "}"`},
	{"Set-X -Name:", 1, 13, "", `unexpected end of input; expected a value after -Name:`},
	{"Set-X -Confirm: -WhatIf", 1, 17, "-WhatIf", `unexpected "-WhatIf"; expected a value after -Confirm:`},
	{"Set-X -A x,", 1, 12, "", `unexpected end of input; expected a value after ","`},
	{"Set-X -A x, -B", 1, 13, "-B", `unexpected "-B"; expected a value after ","`},
	{"Set-X -A ()", 1, 11, ")", `unexpected ")"; expected a command or value inside "(...)"`},
	{"Set-X -A (Get-Y; Get-Z)", 1, 16, ";", `unexpected ";"; expected ")" to close the parenthesis opened at line 1, column 10`},
	{`Set-X -Name "a"b`, 1, 16, "b", `unexpected "b" right after '"a"'; separate arguments with a space (or quote the whole value)`},
	{`Set-X -Name a"b"`, 1, 14, `"`, `unexpected '"' after the bare word "a"; quote the whole value`},
	{`Set-X -Name a(b)`, 1, 14, "(", `unexpected "(" after the bare word "a"; quote the whole value`},
	{`Set-X -Name=x`, 1, 12, "=", `unexpected "=" after the parameter -Name; separate its value with a space or a colon`},
	{`Set-X , a`, 1, 7, ",", `unexpected ","; expected an argument, "|" or the end of the statement`},

	// the end of a pipeline
	{"Get-Foo -Name |", 1, 15, "|", `expected a command after "|", found the end of input`},
	{"Get-Foo -Name |\n\n", 1, 15, "|", `expected a command after "|", found the end of input`},
	{"Get-X | | Get-Y", 1, 9, "|", `unexpected "|"; expected a command after "|"`},
	{"Get-X | $c", 1, 9, "$c", `a value can only begin a pipeline; expected a command after "|"`},
	{"Get-X }", 1, 7, "}", `unexpected "}": nothing is open here to close`},
	{"Get-X )", 1, 7, ")", `unexpected ")": nothing is open here to close`},

	// documentation placeholders and redirection
	{`Set-SendConnector <SendConnector> -Port 587`, 1, 19, "<SendConnector>", `"<SendConnector>" looks like a placeholder from the documentation: replace it with a real value ("<" and ">" are reserved for redirection)`},
	{`Set-SendConnector -Identity <Send connector name>`, 1, 29, "<Send connector name>", `"<Send connector name>" looks like a placeholder from the documentation: replace it with a real value ("<" and ">" are reserved for redirection)`},
	{`Get-X < in.txt`, 1, 7, "<", `redirection ("<") is not supported`},
	{`Get-SendConnector > out.txt`, 1, 19, ">", `redirection (">") is not supported`},
	{`Get-SendConnector >> out.txt`, 1, 19, ">", `redirection (">") is not supported`},
	{`Get-SendConnector 2>&1`, 1, 19, "2>", `redirection ("2>") is not supported`},
	{`Get-SendConnector *> x`, 1, 19, "*>", `redirection ("*>") is not supported`},

	// other PowerShell outside the subset
	{`Set-X -Port $(1)`, 1, 13, "$(", `subexpressions "$(...)" are not supported; use parentheses around a single pipeline, such as (Get-Credential)`},
	{"Set-X -Name @'\nx\n'@", 1, 13, "@'", `here-strings (@'...'@ and @"..."@) are not supported; use an ordinary quoted string`},
	{"Set-X -Name @\"\nx\n\"@", 1, 13, `@"`, `here-strings (@'...'@ and @"..."@) are not supported; use an ordinary quoted string`},
	{`& Get-SendConnector`, 1, 1, "&", `the "&" operator (call operator or background job) is not supported; write the cmdlet name directly`},
	{`Get-X && Get-Y`, 1, 7, "&&", `the "&&" operator is not supported; put each command on its own line`},
	{`Get-X || Get-Y`, 1, 7, "||", `the "||" operator is not supported; put each command on its own line`},
	{`foreach ($c in Get-SendConnector) { $c }`, 1, 1, "foreach", `"foreach" is a PowerShell keyword: language statements (foreach, if, function, ...) are not supported, only cmdlet pipelines`},
	{"\n  If ($x) { Get-X }", 2, 3, "If", `"If" is a PowerShell keyword: language statements (foreach, if, function, ...) are not supported, only cmdlet pipelines`},
	{`Set-X -Port [int]25`, 1, 13, "[int]", `type casts such as [int] are not supported; quote the value if it is literal text`},
	{`[int]$x = 5`, 1, 1, "[int]", `type casts such as [int] are not supported; quote the value if it is literal text`},
	{`Set-X -Name $c.ToUpper()`, 1, 15, ".ToUpper(", `method calls such as $c.ToUpper() are not supported`},
	{`Set-X -Name $c[0]`, 1, 15, "[", `indexing such as $c[0] is not supported`},
	{`Set-X -Name $env:USERNAME`, 1, 13, "$env:", `$env: variables (scope or drive qualified) are not supported`},
	{`Set-X -Name ${a b}`, 1, 13, "${", `braced variable names "${...}" are not supported; variable names are letters, digits and underscores`},
	{`Set-X @params`, 1, 7, "@params", `splatting (@params) is not supported; pass each parameter by name`},
	{`Set-X -Port 5+5`, 1, 14, "+", `arithmetic ("+") is not supported; write the value itself`},
	{`$n = 5 + 5`, 1, 8, "+", `the arithmetic operator "+" is not supported`},
	{`$c -eq 5`, 1, 4, "-eq", `unexpected "-eq": operators are only supported inside script blocks, as in Where-Object { $_.Name -eq 'x' }`},
	{`$c.Port = 25`, 1, 9, "=", `assigning to a property is not supported; only $name = ... is`},
	{`$_ = 1`, 1, 4, "=", `$_ cannot be assigned to`},
	{`$c = `, 1, 6, "", `unexpected end of input; expected a command or value after "="`},
	{`Set-X -A x; 1`, 1, 13, "1", `a value alone is not a statement; expected a command such as Get-SendConnector, or $name = value`},
	{`"To Internet"`, 1, 1, `"To Internet"`, `a value alone is not a statement; expected a command such as Get-SendConnector, or $name = value`},
	{`Set-X -A x;1 ;2`, 1, 15, "2", `a value alone is not a statement; expected a command such as Get-SendConnector, or $name = value`},
	{`.\New-Connector.ps1 -Name x`, 1, 1, `.\New-Connector.ps1`, `".\\New-Connector.ps1" is not a cmdlet name; expected a command such as Get-SendConnector`},
	{`{ $_.A }`, 1, 1, "{", `a script block can only be an argument, as in Where-Object { ... }`},
	{`Set-X -Name "a $name b"`, 1, 16, "$name", "variable expansion inside strings is not supported ($name): escape the dollar sign as `$ or use single quotes"},
	{`Set-X -Name "$($c.Name)"`, 1, 14, "$(", `subexpressions "$(...)" inside strings are not supported`},
	{`Set-X -Name a$b`, 1, 14, "$b", `variable expansion inside bare words is not supported ($b): quote the value with single quotes`},
	{"Set-X -A 1 `  \n  -B 2", 1, 12, "`", "the backtick is followed by spaces: to continue a line it must be the last character on the line"},
	{"Set-X -A 1` \n  -B 2", 1, 11, "`", "the backtick is followed by spaces: to continue a line it must be the last character on the line"},
	{"Set-X -A \"`u{zz}\"", 1, 11, "`u", "invalid Unicode escape; expected `u{hex digits} such as `u{2013}"},

	// script blocks
	{`Get-X | where { }`, 1, 17, "}", `empty script block; expected an expression such as $_.Name -eq 'x'`},
	{`Get-X | where { $_.A -eq 1; $_.B }`, 1, 27, ";", `a script block may hold only one expression; to continue an expression on the next line, end the line with an operator or a backtick`},
	{"Get-X | where { $_.A -eq 1\n  -and $_.B }", 2, 3, "-and", `a script block may hold only one expression; to continue an expression on the next line, end the line with an operator or a backtick`},
	{`Get-X | ForEach-Object { Set-Y $_ }`, 1, 26, "Set-Y", `unexpected bare word "Set-Y" in a script block: quote literal text ('Set-Y'); commands cannot run inside a script block`},
	{`Get-X | where { $_.TlsAuthLevel -eq CertificateValidation }`, 1, 37, "CertificateValidation", `unexpected bare word "CertificateValidation" in a script block: quote literal text ('CertificateValidation'); commands cannot run inside a script block`},
	{`Get-X | % { if ($_.A) { 1 } }`, 1, 13, "if", `"if" is a PowerShell keyword: language statements are not supported; a script block holds a single expression`},
	{`Get-X | where { $c.Port -eq 25 }`, 1, 17, "$c.Port", `$c cannot be used in a script block; only $_ (or $PSItem), $true, $false and $null can`},
	{`Get-X | where { [int]$_.Port -gt 5 }`, 1, 17, "[", `type literals and casts such as [int] are not supported`},
	{`Get-X | where { $_.Port + 1 -eq 26 }`, 1, 25, "+", `the arithmetic operator "+" is not supported`},
	{`Get-X | where { $_.Port -eq }`, 1, 29, "}", `unexpected "}"; expected an operand after -eq`},
	{`Get-X | where { -eq 5 }`, 1, 17, "-eq", `unexpected "-eq"; expected an expression`},
	{`Get-X | where { $_.A -not $_.B }`, 1, 22, "-not", `unexpected "-not"; expected a comparison operator, -and, -or or the end of the expression`},
	{`Get-X | where { $_.Name -replace "a" }`, 1, 25, "-replace", `the -replace operator is not supported; supported are -eq -ne -gt -ge -lt -le -like -notlike -match -notmatch -contains -notcontains -in -notin (with c or i prefixes), -and -or -xor -not and !`},
	{`Get-X | where { $_.Name -eqq "a" }`, 1, 25, "-eqq", `unknown operator -eqq`},
	{`Get-X | where { $_.A == 1 }`, 1, 22, "==", `"==" is not a PowerShell operator; use -eq`},
	{`Get-X | where { $_.A != 1 }`, 1, 22, "!=", `"!=" is not a PowerShell operator; use -ne`},
	{`Get-X | where { $_.A eq 1 }`, 1, 22, "eq", `unexpected "eq"; expected an operator or "}"`},
	{`Get-X | where { $_.A -eq 1.2.3 }`, 1, 26, "1.2.3", `invalid number "1.2.3"`},
	{`Get-X | where { $_.A -in @{a=1} }`, 1, 26, "@{", `script blocks and hashtables are not supported inside a script block`},
	{`Get-X | where { $_.A.Count() }`, 1, 21, ".Count(", `method calls such as $_.A.Count() are not supported`},
	{`Get-X | where { $true.x }`, 1, 17, "$true.x", `$true cannot be used in a script block; only $_ (or $PSItem), $true, $false and $null can`},
	{"Get-X | where { `$_ }", 1, 17, "`", `unexpected backtick; a backtick continues a line only as its last character`},
}

func TestParseErrors(t *testing.T) {
	for _, tc := range errorCases {
		s, err := Parse(tc.src)
		if err == nil {
			t.Errorf("Parse(%q) = %s; want an error", tc.src, dump(s))
			continue
		}
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) error %T, want *SyntaxError", tc.src, err)
			continue
		}
		want := SyntaxError{Line: tc.line, Column: tc.col, Token: tc.token, Msg: tc.msg}
		if *se != want {
			t.Errorf("Parse(%q)\n got: %d:%d %q %s\nwant: %d:%d %q %s", tc.src, se.Line, se.Column, se.Token, se.Msg, want.Line, want.Column, want.Token, want.Msg)
		}
	}
}

func TestSyntaxErrorString(t *testing.T) {
	_, err := Parse("Get-X\n\n  Set-X -Name @{Add=}")
	if want := `line 3, column 21: unexpected "}"; expected a value after "Add="`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	// Columns count characters, not bytes.
	_, err = Parse(`Set-X -Name "Zürich – Köln" -Port "25`)
	if want := `line 1, column 35: unclosed double quote; expected a closing "`; err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
}

// TestDeepNesting makes sure deep input fails cleanly instead of
// exhausting the stack.
func TestDeepNesting(t *testing.T) {
	for _, src := range []string{
		"Set-X " + strings.Repeat("(", 5000),
		"Set-X " + strings.Repeat("@(", 5000),
		"Set-X " + strings.Repeat("@{a=", 5000),
		"Get-X | where {" + strings.Repeat("(", 5000),
		"Get-X | where {" + strings.Repeat("-not ", 5000) + "$true}",
		"Get-X | where {" + strings.Repeat("!", 5000) + "$true}",
	} {
		_, err := Parse(src)
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.Contains(se.Msg, "nesting is too deep") {
			t.Errorf("Parse(%.30q...) = %v; want a nesting error", src, err)
		}
	}
	// Up to the limit is fine.
	src := "Get-X | where {" + strings.Repeat("(", 90) + "$true" + strings.Repeat(")", 90) + "}"
	if _, err := Parse(src); err != nil {
		t.Errorf("90 parentheses: %v", err)
	}
}

func TestParseExpr(t *testing.T) {
	tests := []struct{ src, want string }{
		// -and, -or and -xor: one precedence, from the left
		{"$true -or $true -and $false", "(($true -or $true) -and $false)"},
		{"$a -and $b -or $c", ""}, // $a is not $_: an error, see below
		{"$_.A -and $_.B -or $_.C -xor $_.D", "((($_.A -and $_.B) -or $_.C) -xor $_.D)"},
		{"$_.A -or ($_.B -and $_.C)", "($_.A -or ($_.B -and $_.C))"},
		// comparisons bind tighter, -not and ! tighter still, commas tightest
		{"$_.A -eq 1 -or $_.B -ne 2", "(($_.A -eq 1) -or ($_.B -ne 2))"},
		{"-not $_.Name -eq 'x'", "((-not $_.Name) -eq 'x')"},
		{"!$_.A -and !($_.B)", "((!$_.A) -and (!$_.B))"},
		{"$_.Port -in 25, 587", "($_.Port -in @(25, 587))"},
		{"$_.A -eq $_.B -eq $true", "(($_.A -eq $_.B) -eq $true)"},
		// operators in any case, with c and i prefixes
		{"$_.A -CEQ 'x' -Or $_.B -iLike 'y*'", "(($_.A -ceq 'x') -or ($_.B -ilike 'y*'))"},
		{"$_.A -notin @('a', 'b')", "($_.A -notin @('a', 'b'))"},
		{"$_.A -contains @()", "($_.A -contains @())"},
		{"$_ -cnotmatch '^x' -and $_.A.B.C -ge -1.5kb", "(($_ -cnotmatch '^x') -and ($_.A.B.C -ge -1.5kb))"},
		{"\n $_.A \n", "$_.A"},
	}
	for _, tc := range tests {
		e, err := ParseExpr(tc.src)
		if tc.want == "" {
			if err == nil {
				t.Errorf("ParseExpr(%q) = %s; want an error", tc.src, e)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseExpr(%q): %v", tc.src, err)
			continue
		}
		if got := e.String(); got != tc.want {
			t.Errorf("ParseExpr(%q) = %s; want %s", tc.src, got, tc.want)
		}
	}
	if _, err := ParseExpr("$_.A -eq 1 )"); err == nil || err.Error() != `line 1, column 12: unexpected ")"; expected an operator or the end of the expression` {
		t.Errorf("trailing ): %v", err)
	}
}
