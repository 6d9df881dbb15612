// Package ems parses the part of the Exchange Management Shell (PowerShell)
// language that sendconn runs: cmdlet pipelines such as the ones in
// Exchange's documentation, with Where-Object filters. It does not run
// anything; Parse returns a syntax tree for an executor, and Eval
// evaluates a Where-Object script block against one object.
//
// Anything outside the subset is a *SyntaxError that says what was found
// and what was expected, with the line and column (in characters) of the
// offending token, or of the opening quote or bracket left unclosed.
//
// # Grammar
//
// The notation is EBNF: { x } repeats, [ x ] is optional, ( x | y )
// chooses. Names and keywords are case-insensitive throughout.
//
//	script      = { statement | newline | ";" } .
//	statement   = [ variable "=" { newline } ] pipeline .
//	pipeline    = ( command | value ) { "|" { newline } command } .
//	command     = name { parameter [ argument ] | argument } .
//	name        = letter { letter | digit | "_" | "-" } | "?" | "%" .
//	parameter   = "-" letter { letter | digit | "_" | "-" | "?" } [ ":" ] .
//	argument    = primary { "," { newline } primary } .
//	primary     = bareword | number | string | variable | "$true" | "$false" | "$null"
//	            | "(" { newline } pipeline { newline } ")"
//	            | "@(" [ pipeline | list { ( newline | ";" ) list } ] ")"
//	            | "@{" [ entry { ( newline | ";" ) entry } ] "}"
//	            | "{" { newline } expr { newline } "}" .
//	entry       = ( word | string | number ) "=" { newline } list .
//	list        = value { "," { newline } value } .
//	variable    = "$" namechar { namechar } { "." namechar { namechar } } .
//	number      = [ "-" ] ( digits [ "." digits ] | "." digits ) [ exponent ] [ unit ]
//	            | [ "-" ] "0x" hexdigits [ unit ] .
//	unit        = "KB" | "MB" | "GB" | "TB" | "PB" .
//
//	expr        = comparison { ( "-and" | "-or" | "-xor" ) { newline } comparison } .
//	comparison  = unary { cmpop { newline } unary } .
//	unary       = ( "-not" | "!" ) unary | array .
//	array       = operand { "," { newline } operand } .
//	operand     = "$_" { "." name } | "$PSItem" { "." name }
//	            | "$true" | "$false" | "$null" | string | number
//	            | "(" expr ")" | "@(" [ operand { ( "," | newline ) operand } ] ")" .
//	cmpop       = "-" [ "c" | "i" ] ( "eq" | "ne" | "gt" | "ge" | "lt" | "le"
//	            | "like" | "notlike" | "match" | "notmatch"
//	            | "contains" | "notcontains" | "in" | "notin" ) .
//
// A value (in list) is a primary other than a bare word: at the start of
// a statement, inside parentheses and in hashtables PowerShell reads a
// bare word as a command, so there text must be quoted. Only the first
// element of a pipeline may be a value ($c | Set-SendConnector -Port 587),
// and a statement that is nothing but a value must be a variable ($c), so
// that a stray "; 1" is an error rather than a statement.
//
// Script blocks may be the argument of any command (the executor decides
// which accept one), but each holds exactly one expression. The
// PowerShell 3 form "Where-Object Name -eq x" parses as an ordinary
// command: a positional "Name" and a parameter -eq with the value x.
//
// # Lexical rules
//
//   - Comments run from "#" at the start of a token to the end of the
//     line; block comments are <# ... #>.
//   - A backtick that is the last character of a line continues the
//     statement on the next line; with spaces after it, it is an error.
//     A line that ends with "|" or "," also continues.
//   - A bare word runs up to a space or one of ; | , ) } and may hold
//     anything else that is not a quote, "(", "{", "$name", "<", ">" or
//     "&": *, 192.168.3.2, [::1]:25, smtp:*.contoso.com. A backtick
//     escapes the next character. A bare word that is wholly a number is
//     a number.
//   - A ";" followed by digits ends no statement inside a bare word, so
//     smtp:*.contoso.com;1 is one address space with its cost.
//   - '...' is literal text, with two single quotes standing for one.
//     "..." takes backtick escapes (`n `t `r `0 `a `b `e `f `v `u{2013}
//     `" `$, and two backticks for one) and two double quotes for one.
//     A "$" that would expand a variable or a subexpression inside "..."
//     is an error: write `$ or use '...'.
//   - Numbers: 25, -5, 1.5, .5, 1e3, 0x19, and byte quantities with KB,
//     MB, GB, TB, PB in any case, 1KB being 1024. 35MB keeps its text and
//     its value, 36700160.
//   - -Name value and -Name:value are parameters. A parameter followed by
//     another parameter or by the end of the command ("|", ";", ")", the
//     end of the line) is a switch; followed by a value it takes the
//     value, and the executor sorts out switches (see Arg).
//   - Typographic quotes and dashes (‘’ “” – —), as pasted from documents,
//     read as the plain ones, as in PowerShell.
//
// # Operators
//
// In a script block -and, -or and -xor have the same precedence and group
// from the left, as in PowerShell: $true -or $true -and $false is
// ($true -or $true) -and $false, which is false. Comparison operators bind
// tighter, all at one level, left to right. The unary -not and ! bind
// tighter than comparisons: -not $_.Name -eq "x" is
// (-not $_.Name) -eq "x". A comma list binds tighter than all of them:
// $_.Port -in 25, 587 and -not 1, 2 apply to the whole list. ParseExpr
// parses an expression alone and Expr.String shows how it grouped.
//
// # Evaluation
//
// Eval follows PowerShell:
//
//   - Strings compare case-insensitively unless the operator starts with
//     c (-ceq, -clike, -cmatch).
//   - The right operand is converted to the type of the left one:
//     $_.Port -eq "25" is true for Port 25; $_.Name -eq 25 compares text.
//     A string becomes a boolean by being non-empty, so
//     $_.Enabled -eq "false" is true when Enabled is true.
//   - With an array on the left, -eq, -ne, -lt, -like, -match and the
//     others filter it and return the matching elements (true when there
//     is at least one that is itself true); -contains and -in test
//     membership.
//   - -like patterns use * ? [abc] [a-z] and must match the whole string;
//     -match is an unanchored regular expression.
//   - A missing property is $null; .Count and .Length work on arrays,
//     strings and $null; a property of an array is the property of each
//     element (member enumeration).
//   - Truthy: $null, $false, "", 0 and @() are false; an array of one
//     element is as true as the element; everything else is true.
//
// # Differences from PowerShell
//
//   - A script block holds exactly one expression, and only $_, $PSItem,
//     $true, $false and $null may be used in it.
//   - No string or bare-word interpolation: "$x" is an error, not an
//     expansion.
//   - "a"b, "a"'b' and $x.y-z, which PowerShell joins into one argument,
//     are errors; so are ( and { inside a bare word.
//   - smtp:*.contoso.com;1 unquoted is one value (PowerShell would end the
//     statement at ";").
//   - -match uses Go's RE2 syntax, without backreferences or lookaround.
//   - Numbers compare by value without first converting the right operand
//     to the left one's integer type: 6 -eq "5.5" is false (PowerShell
//     rounds "5.5" to 6). String ordering (-lt, -gt) compares lower-cased
//     code points, not culture-aware collation.
//   - A string's Length counts characters, not UTF-16 code units.
//   - Number type suffixes (25L, 1.5D) are not recognised.
package ems
