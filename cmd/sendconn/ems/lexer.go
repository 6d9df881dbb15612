package ems

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// PowerShell tokenizes in two modes, and so does this lexer. The parser
// says which one it wants for each token and asks again, from the same
// place, when it changes its mind.
//
//   - argMode reads command names and arguments: almost anything up to a
//     space is a bare word (*, 192.168.3.2, [::1]:25), -Name is a
//     parameter, and a word that is wholly a number is a number.
//   - exprMode reads script blocks, hashtables and values at the start of
//     a statement or parenthesis: -eq is an operator, words are only
//     identifiers (hashtable keys), and +, *, [ are errors.
//
// Everything else (quotes, variables, punctuation) reads the same in both.
type mode int

const (
	argMode mode = iota
	exprMode
)

type kind int

const (
	tEOF     kind = iota
	tNewline      // a line break that ends a statement
	tSemi         // ;
	tPipe         // |
	tComma        // ,
	tLParen       // (
	tRParen       // )
	tLBrace       // {
	tRBrace       // }
	tAtParen      // @(
	tAtBrace      // @{
	tAssign       // = (exprMode only)
	tWord         // bare word; val has escapes applied
	tParam        // -Name or -Name: (argMode only); val is the name
	tString       // quoted string; val is the content
	tNumber       // number literal; num is set
	tVar          // $name or $name.A.B; val is the name, path the members
	tOp           // -eq, -and, -not, ! (exprMode only); val is lower-case
)

// sameInBothModes reports whether a token of kind k reads the same in
// both modes, so that the parser need not lex it again.
func sameInBothModes(k kind) bool {
	switch k {
	case tWord, tParam, tNumber, tOp, tAssign:
		return false
	}
	return true
}

type token struct {
	kind       kind
	start, end int // rune offsets into the source
	val        string
	colon      bool     // tParam: written -Name:
	path       []string // tVar
	num        *Number  // tNumber, At not yet set
}

const eof = -1

// bailout carries a syntax error up to Parse, which recovers it. Any
// other panic is a bug and is not recovered.
type bailout struct{ err *SyntaxError }

type lexer struct {
	src   []rune
	lines []int // offset of the first rune of each line
	off   int
}

func newLexer(src string) *lexer {
	src = strings.TrimPrefix(src, "\uFEFF")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	lx := &lexer{src: []rune(src), lines: []int{0}}
	for i, r := range lx.src {
		if r == '\n' {
			lx.lines = append(lx.lines, i+1)
		}
	}
	return lx
}

func (lx *lexer) at(i int) rune {
	if i < 0 || i >= len(lx.src) {
		return eof
	}
	return lx.src[i]
}

func (lx *lexer) pos(off int) Pos {
	line := sort.Search(len(lx.lines), func(i int) bool { return lx.lines[i] > off })
	return Pos{Line: line, Column: off - lx.lines[line-1] + 1}
}

func (lx *lexer) text(start, end int) string {
	end = min(end, len(lx.src))
	if start >= end {
		return ""
	}
	return string(lx.src[start:end])
}

// fail stops parsing with an error about the source from start to end.
func (lx *lexer) fail(start, end int, format string, args ...any) {
	p := lx.pos(start)
	tok := lx.text(start, end)
	if tok == "\n" {
		tok = ""
	}
	panic(bailout{&SyntaxError{Line: p.Line, Column: p.Column, Token: tok, Msg: fmt.Sprintf(format, args...)}})
}

func isSpace(r rune) bool { return r != '\n' && r != eof && unicode.IsSpace(r) }

// PowerShell reads the typographic dashes and quotes that word processors
// put into copied commands as the plain ones, and so does this lexer.
func isDash(r rune) bool        { return r == '-' || r == '\u2013' || r == '\u2014' || r == '\u2015' }
func isSingleQuote(r rune) bool { return r == '\'' || (r >= '\u2018' && r <= '\u201b') }
func isDoubleQuote(r rune) bool { return r == '"' || (r >= '\u201c' && r <= '\u201e') }
func isQuote(r rune) bool       { return isSingleQuote(r) || isDoubleQuote(r) }
func isDigit(r rune) bool       { return r >= '0' && r <= '9' }
func isLetter(r rune) bool      { return r != eof && unicode.IsLetter(r) }

// isVarChar reports whether r may appear in a variable or property name.
func isVarChar(r rune) bool { return r == '_' || isDigit(r) || isLetter(r) }

// isParamChar reports whether r may appear in a parameter name after its
// first letter.
func isParamChar(r rune) bool { return isVarChar(r) || r == '-' || r == '?' }

// isArgEnd reports whether an argument may end just before offset i:
// there is a space, the end of the statement or of a list item, or a
// character that is an error of its own.
func (lx *lexer) isArgEnd(i int) bool {
	switch r := lx.at(i); r {
	case eof, '\n', ';', '|', ',', ')', '}', '&', '<', '>':
		return true
	case '`':
		return lx.backtickEndsLine(i)
	default:
		return isSpace(r)
	}
}

// backtickEndsLine reports whether the backtick at i is followed by
// nothing but blanks up to the end of its line.
func (lx *lexer) backtickEndsLine(i int) bool {
	j := i + 1
	for isSpace(lx.at(j)) {
		j++
	}
	return lx.at(j) == '\n' || lx.at(j) == eof
}

// skipSpace skips blanks, comments and line continuations.
func (lx *lexer) skipSpace() {
	for {
		r := lx.at(lx.off)
		switch {
		case isSpace(r):
			lx.off++
		case r == '`' && lx.backtickEndsLine(lx.off):
			if n := lx.at(lx.off + 1); n != '\n' && n != eof {
				lx.fail(lx.off, lx.off+1, "the backtick is followed by spaces: to continue a line it must be the last character on the line")
			}
			lx.off = min(lx.off+2, len(lx.src)) // past the backtick and the line break
		case r == '#':
			for lx.at(lx.off) != '\n' && lx.at(lx.off) != eof {
				lx.off++
			}
		case r == '<' && lx.at(lx.off+1) == '#':
			end := -1
			for j := lx.off + 2; j+1 < len(lx.src); j++ {
				if lx.src[j] == '#' && lx.src[j+1] == '>' {
					end = j + 2
					break
				}
			}
			if end < 0 {
				lx.fail(lx.off, lx.off+2, `unclosed block comment "<#"; expected a closing "#>"`)
			}
			lx.off = end
		default:
			return
		}
	}
}

// next reads the next token in mode m.
func (lx *lexer) next(m mode) token {
	lx.skipSpace()
	start := lx.off
	r := lx.at(start)
	one := func(k kind) token {
		lx.off = start + 1
		return token{kind: k, start: start, end: lx.off}
	}
	switch {
	case r == eof:
		return token{kind: tEOF, start: start, end: start}
	case r == '\n':
		return one(tNewline)
	case r == ';':
		return one(tSemi)
	case r == '|':
		if lx.at(start+1) == '|' {
			lx.fail(start, start+2, `the "||" operator is not supported; put each command on its own line`)
		}
		return one(tPipe)
	case r == ',':
		return one(tComma)
	case r == '(':
		return one(tLParen)
	case r == ')':
		return one(tRParen)
	case r == '{':
		return one(tLBrace)
	case r == '}':
		return one(tRBrace)
	case r == '&':
		if lx.at(start+1) == '&' {
			lx.fail(start, start+2, `the "&&" operator is not supported; put each command on its own line`)
		}
		lx.fail(start, start+1, `the "&" operator (call operator or background job) is not supported; write the cmdlet name directly`)
	case r == '>':
		lx.fail(start, start+1, `redirection (">") is not supported`)
	case r == '<':
		lx.lessThan(start)
	case isSingleQuote(r):
		return lx.singleQuoted(start)
	case isDoubleQuote(r):
		return lx.doubleQuoted(start)
	case r == '$':
		return lx.variable(start)
	case r == '@':
		return lx.atSign(start)
	}
	if m == argMode {
		if isDash(r) {
			if n := lx.at(start + 1); isLetter(n) || n == '_' || n == '?' {
				return lx.param(start)
			}
		}
		return lx.word(start)
	}
	return lx.exprToken(start)
}

// lessThan reports "<": a documentation placeholder such as <Name>, or
// an attempt at redirection.
func (lx *lexer) lessThan(start int) {
	for j := start + 1; j < len(lx.src) && j-start < 80; j++ {
		r := lx.src[j]
		if r == '>' && j > start+1 {
			lx.fail(start, j+1, `%s looks like a placeholder from the documentation: replace it with a real value ("<" and ">" are reserved for redirection)`, quote(lx.text(start, j+1)))
		}
		if r == '\n' || r == '<' || r == '>' {
			break
		}
	}
	lx.fail(start, start+1, `redirection ("<") is not supported`)
}

func (lx *lexer) singleQuoted(start int) token {
	var b strings.Builder
	for i := start + 1; ; i++ {
		r := lx.at(i)
		switch {
		case r == eof:
			lx.fail(start, start+1, "unclosed single quote; expected a closing '")
		case isSingleQuote(r) && isSingleQuote(lx.at(i+1)):
			b.WriteRune(r) // '' is one quote
			i++
		case isSingleQuote(r):
			lx.off = i + 1
			return token{kind: tString, start: start, end: lx.off, val: b.String()}
		default:
			b.WriteRune(r)
		}
	}
}

func (lx *lexer) doubleQuoted(start int) token {
	var b strings.Builder
	for i := start + 1; ; i++ {
		r := lx.at(i)
		switch {
		case r == eof:
			lx.fail(start, start+1, `unclosed double quote; expected a closing "`)
		case isDoubleQuote(r) && isDoubleQuote(lx.at(i+1)):
			b.WriteRune(r) // "" is one quote
			i++
		case isDoubleQuote(r):
			lx.off = i + 1
			return token{kind: tString, start: start, end: lx.off, val: b.String()}
		case r == '`':
			if lx.at(i+1) == eof {
				lx.fail(start, start+1, `unclosed double quote; expected a closing "`)
			}
			i = lx.escape(&b, i)
		case r == '$':
			lx.dollarInText(i, "strings", "escape the dollar sign as `$ or use single quotes")
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
}

// dollarInText fails when the "$" at i would expand a variable or a
// subexpression inside a double-quoted string or a bare word. A "$" that
// cannot start a name (a space, a quote, the end) is literal, as in
// PowerShell.
func (lx *lexer) dollarInText(i int, where, hint string) {
	switch n := lx.at(i + 1); {
	case n == '(':
		lx.fail(i, i+2, `subexpressions "$(...)" inside %s are not supported`, where)
	case isVarChar(n) || n == '{' || n == '?' || n == '^' || n == '$':
		end := i + 2
		for isVarChar(n) && isVarChar(lx.at(end)) {
			end++
		}
		lx.fail(i, end, "variable expansion inside %s is not supported (%s): %s", where, lx.text(i, end), hint)
	}
}

// escape writes the character escaped by the backtick at i and returns the
// offset of the last rune it used.
func (lx *lexer) escape(b *strings.Builder, i int) int {
	n := lx.at(i + 1)
	switch n {
	case '0':
		b.WriteRune(0)
	case 'a':
		b.WriteRune('\a')
	case 'b':
		b.WriteRune('\b')
	case 'e':
		b.WriteRune(0x1b)
	case 'f':
		b.WriteRune('\f')
	case 'n':
		b.WriteRune('\n')
	case 'r':
		b.WriteRune('\r')
	case 't':
		b.WriteRune('\t')
	case 'v':
		b.WriteRune('\v')
	case 'u':
		if lx.at(i+2) == '{' {
			j := i + 3
			for j < len(lx.src) && j-i < 12 && lx.src[j] != '}' {
				j++
			}
			v, err := strconv.ParseUint(lx.text(i+3, j), 16, 32)
			if lx.at(j) != '}' || err != nil || v > unicode.MaxRune {
				lx.fail(i, i+2, "invalid Unicode escape; expected `u{hex digits} such as `u{2013}")
			}
			b.WriteRune(rune(v))
			return j
		}
		b.WriteRune(n)
	default:
		b.WriteRune(n) // `" `$ `` and any other character stand for themselves
	}
	return i + 1
}

func (lx *lexer) variable(start int) token {
	i := start + 1
	switch n := lx.at(i); {
	case n == '(':
		lx.fail(start, i+1, `subexpressions "$(...)" are not supported; use parentheses around a single pipeline, such as (Get-Credential)`)
	case n == '{':
		lx.fail(start, i+1, `braced variable names "${...}" are not supported; variable names are letters, digits and underscores`)
	case n == '?' || n == '^' || n == '$':
		lx.fail(start, i+1, "the automatic variable $%c is not supported", n)
	case !isVarChar(n):
		lx.fail(start, start+1, `expected a variable name after "$"`)
	}
	for isVarChar(lx.at(i)) {
		i++
	}
	name := lx.text(start+1, i)
	if lx.at(i) == ':' && isVarChar(lx.at(i+1)) {
		lx.fail(start, i+1, "$%s: variables (scope or drive qualified) are not supported", name)
	}
	var path []string
	for lx.at(i) == '.' {
		j := i + 1
		if !isVarChar(lx.at(j)) {
			lx.fail(i, j, `expected a property name after "."`)
		}
		for isVarChar(lx.at(j)) {
			j++
		}
		if lx.at(j) == '(' {
			lx.fail(i, j+1, "method calls such as %s() are not supported", lx.text(start, j))
		}
		path = append(path, lx.text(i+1, j))
		i = j
	}
	switch {
	case lx.at(i) == '[':
		lx.fail(i, i+1, "indexing such as %s[0] is not supported", lx.text(start, i))
	case lx.at(i) == ':' && lx.at(i+1) == ':':
		lx.fail(i, i+2, "static members (::) are not supported")
	}
	lx.off = i
	return token{kind: tVar, start: start, end: i, val: name, path: path}
}

func (lx *lexer) atSign(start int) token {
	switch n := lx.at(start + 1); {
	case n == '(':
		lx.off = start + 2
		return token{kind: tAtParen, start: start, end: lx.off}
	case n == '{':
		lx.off = start + 2
		return token{kind: tAtBrace, start: start, end: lx.off}
	case isQuote(n):
		lx.fail(start, start+2, `here-strings (@'...'@ and @"..."@) are not supported; use an ordinary quoted string`)
	case isVarChar(n):
		end := start + 1
		for isVarChar(lx.at(end)) {
			end++
		}
		lx.fail(start, end, "splatting (%s) is not supported; pass each parameter by name", lx.text(start, end))
	}
	lx.fail(start, start+1, `unexpected "@"; expected "@(" or "@{"`)
	panic("unreachable")
}

// param reads -Name or -Name: in argMode.
func (lx *lexer) param(start int) token {
	i := start + 1
	for isParamChar(lx.at(i)) {
		i++
	}
	t := token{kind: tParam, start: start, val: lx.text(start+1, i)}
	switch {
	case lx.at(i) == ':':
		t.colon = true
		i++
	case !lx.isArgEnd(i):
		lx.fail(i, i+1, "unexpected %s after the parameter -%s; separate its value with a space or a colon", quote(string(lx.at(i))), t.val)
	}
	lx.off = i
	t.end = i
	return t
}

// castPrefix returns the length in runes of what would be a type literal
// or cast in PowerShell at the start of s ([int], [System.String]), or 0.
func castPrefix(s []rune) int {
	if len(s) < 3 || s[0] != '[' || !(isLetter(s[1]) || s[1] == '_') {
		return 0
	}
	for i := 2; i < len(s); i++ {
		switch c := s[i]; {
		case c == ']':
			return i + 1
		case c != '.' && !isVarChar(c):
			return 0
		}
	}
	return 0
}

// word reads a bare word in argMode. Backtick escapes apply, as in
// PowerShell; a word that is wholly a number literal is a number.
func (lx *lexer) word(start int) token {
	// [int]25 and [string]$x look like casts; [abc] alone is a word.
	if n := castPrefix(lx.src[start:min(start+200, len(lx.src))]); n > 0 && !lx.isArgEnd(start+n) {
		lx.fail(start, start+n, "type casts such as %s are not supported; quote the value if it is literal text", lx.text(start, start+n))
	}
	var b strings.Builder
	escaped := false
	i := start
scan:
	for {
		r := lx.at(i)
		switch {
		case lx.isArgEnd(i) && r != ';' && r != '>':
			break scan
		case r == ';':
			// "smtp:*.contoso.com;1": an address space with its cost. In
			// PowerShell ";" would end the statement and run "1"; a bare
			// number is no statement here, so the word keeps it.
			j := i + 1
			for isDigit(lx.at(j)) {
				j++
			}
			if i == start || j == i+1 || !lx.isArgEnd(j) {
				break scan
			}
			b.WriteString(lx.text(i, j))
			i = j
		case r == '>':
			if w := b.String(); w == "*" || (len(w) == 1 && isDigit(rune(w[0]))) {
				lx.fail(start, i+1, "redirection (%q) is not supported", w+">")
			}
			break scan
		case r == '`':
			i = lx.escape(&b, i) + 1
			escaped = true
		case r == '(' || r == '{' || isQuote(r):
			lx.fail(i, i+1, "unexpected %s after the bare word %s; quote the whole value", quote(string(r)), quote(lx.text(start, i)))
		case r == '$':
			lx.dollarInText(i, "bare words", "quote the value with single quotes")
			b.WriteRune(r)
			i++
		default:
			b.WriteRune(r)
			i++
		}
	}
	lx.off = i
	raw := lx.text(start, i)
	t := token{kind: tWord, start: start, end: i, val: b.String()}
	if i == start {
		lx.fail(start, start+1, "unexpected %s", quote(string(lx.at(start))))
	}
	if !escaped {
		if n, ok := parseNumber(raw); ok {
			t.kind, t.num = tNumber, n
			return t
		}
	}
	if k := strings.IndexByte(raw, '+'); k >= 0 {
		if _, isNum := parseNumber(raw[:k]); raw == "+" || isNum {
			plus := start + len([]rune(raw[:k]))
			lx.fail(plus, plus+1, `arithmetic ("+") is not supported; write the value itself`)
		}
	}
	return t
}

// exprToken reads a token in exprMode that is not common to both modes.
func (lx *lexer) exprToken(start int) token {
	r, n := lx.at(start), lx.at(start+1)
	switch {
	case isDash(r) && isLetter(n):
		i := start + 1
		for isLetter(lx.at(i)) {
			i++
		}
		lx.off = i
		return token{kind: tOp, start: start, end: i, val: "-" + strings.ToLower(lx.text(start+1, i))}
	case isDash(r) && (isDigit(n) || n == '.' && isDigit(lx.at(start+2))),
		isDigit(r), r == '.' && isDigit(n):
		return lx.number(start)
	case r == '!':
		if n == '=' {
			lx.fail(start, start+2, `"!=" is not a PowerShell operator; use -ne`)
		}
		lx.off = start + 1
		return token{kind: tOp, start: start, end: lx.off, val: "!"}
	case r == '=':
		if n == '=' {
			lx.fail(start, start+2, `"==" is not a PowerShell operator; use -eq`)
		}
		lx.off = start + 1
		return token{kind: tAssign, start: start, end: lx.off}
	case isLetter(r) || r == '_':
		i := start + 1
		for isParamChar(lx.at(i)) && lx.at(i) != '?' {
			i++
		}
		lx.off = i
		return token{kind: tWord, start: start, end: i, val: lx.text(start, i)}
	case isDash(r) || r == '+' || r == '*' || r == '/' || r == '%':
		end := start + 1
		if n == '=' || (n == r && (r == '+' || r == '-')) {
			end++
		}
		lx.fail(start, end, "the arithmetic operator %q is not supported", lx.text(start, end))
	case r == '[':
		lx.fail(start, start+1, "type literals and casts such as [int] are not supported")
	case r == '`':
		lx.fail(start, start+1, "unexpected backtick; a backtick continues a line only as its last character")
	}
	lx.fail(start, start+1, "unexpected %s", quote(string(r)))
	panic("unreachable")
}

// number reads a number literal in exprMode.
func (lx *lexer) number(start int) token {
	i := start + 1
	for {
		r := lx.at(i)
		if r == '.' || r == '_' || isVarChar(r) {
			i++
			continue
		}
		// an exponent's sign: 1e+3
		if (r == '+' || r == '-') && (lx.at(i-1) == 'e' || lx.at(i-1) == 'E') && isDigit(lx.at(i+1)) {
			i++
			continue
		}
		break
	}
	raw := lx.text(start, i)
	n, ok := parseNumber(raw)
	if !ok {
		lx.fail(start, i, "invalid number %q", raw)
	}
	lx.off = i
	return token{kind: tNumber, start: start, end: i, num: n}
}

var units = []struct {
	name string
	mult int64
}{{"KB", 1 << 10}, {"MB", 1 << 20}, {"GB", 1 << 30}, {"TB", 1 << 40}, {"PB", 1 << 50}}

// parseNumber reads a PowerShell number literal: an optional minus, then
// decimal digits with an optional fraction and exponent (25, 1.5, .5, 1e3)
// or hex digits (0x19), then an optional KB, MB, GB, TB or PB in any case.
// Type suffixes (25L, 1.5D) are not recognised.
func parseNumber(text string) (*Number, bool) {
	s := text
	neg := false
	if r := []rune(s); len(r) > 0 && isDash(r[0]) {
		neg = true
		s = string(r[1:])
	}
	n := &Number{Text: text}
	mult := int64(1)
	if len(s) > 2 {
		suffix := strings.ToUpper(s[len(s)-2:])
		for _, u := range units {
			if suffix == u.name {
				n.Unit, mult = u.name, u.mult
				s = s[:len(s)-2]
			}
		}
	}
	var f float64
	isInt := false
	var iv int64
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		u, err := strconv.ParseUint(s[2:], 16, 64)
		if err != nil || !allHex(s[2:]) {
			return nil, false
		}
		f = float64(u)
		if u <= math.MaxInt64 {
			isInt, iv = true, int64(u)
		}
	} else {
		if !decimalLiteral(s) {
			return nil, false
		}
		var err error
		if f, err = strconv.ParseFloat(s, 64); err != nil {
			return nil, false // out of range
		}
		if !strings.ContainsAny(s, ".eE") {
			if v, err := strconv.ParseInt(s, 10, 64); err == nil {
				isInt, iv = true, v
			}
		}
	}
	if isInt && iv > math.MaxInt64/mult {
		isInt = false
	}
	f *= float64(mult)
	if math.IsInf(f, 0) {
		return nil, false
	}
	if neg {
		f, iv = -f, -iv
	}
	n.Float = f
	if isInt {
		n.IsInt, n.Int = true, iv*mult
	}
	return n, true
}

func allHex(s string) bool {
	for _, c := range s {
		if !strings.ContainsRune("0123456789abcdefABCDEF", c) {
			return false
		}
	}
	return s != ""
}

// decimalLiteral reports whether s is digits[.digits][e[+-]digits] or
// .digits[e[+-]digits].
func decimalLiteral(s string) bool {
	digits := func(i int) int {
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		return j - i
	}
	i := digits(0)
	intPart := i
	if i < len(s) && s[i] == '.' {
		k := digits(i + 1)
		if k == 0 {
			return false
		}
		i += 1 + k
	} else if intPart == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		k := digits(i)
		if k == 0 {
			return false
		}
		i += k
	}
	return i == len(s)
}
