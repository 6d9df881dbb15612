package ems

import (
	"fmt"
	"strings"
)

// maxDepth bounds nesting (parentheses, braces, -not chains) so that no
// input can exhaust the stack.
const maxDepth = 100

// Parse parses a script. Every error it returns is a *SyntaxError.
func Parse(src string) (script *Script, err error) {
	p := newParser(src)
	defer p.recover(&err)
	return p.parseScript(), nil
}

// ParseExpr parses the body of a Where-Object script block, without the
// braces: ($_.Deny -eq $false) -and ($_.IsInherited -eq $false). Every
// error it returns is a *SyntaxError.
func ParseExpr(src string) (expr Expr, err error) {
	p := newParser(src)
	defer p.recover(&err)
	p.skipNewlines(exprMode)
	e := p.parseLogical("an expression")
	p.skipNewlines(exprMode)
	if t := p.peek(exprMode); t.kind != tEOF {
		p.unexpected(t, "an operator or the end of the expression")
	}
	return e, nil
}

type opener struct {
	tok    token
	what   string // "parenthesis", "script block", ...
	closer string
}

type parser struct {
	lx      *lexer
	la      token // lookahead, valid when have is set
	laMode  mode
	have    bool
	lastEnd int      // end of the last token taken
	open    []opener // unclosed brackets, innermost last
	depth   int      // -not and ! nesting
}

func newParser(src string) *parser { return &parser{lx: newLexer(src)} }

func (p *parser) recover(errp *error) {
	if r := recover(); r != nil {
		b, ok := r.(bailout)
		if !ok {
			panic(r)
		}
		*errp = b.err
	}
}

// peek returns the next token read in mode m, reading it again if it was
// read in the other mode.
func (p *parser) peek(m mode) token {
	if p.have {
		if p.laMode == m || sameInBothModes(p.la.kind) {
			return p.la
		}
		p.lx.off = p.la.start
	}
	p.la, p.laMode, p.have = p.lx.next(m), m, true
	return p.la
}

// cur returns the lookahead in whatever mode it was read.
func (p *parser) cur() token {
	if p.have {
		return p.la
	}
	return p.peek(argMode)
}

func (p *parser) next(m mode) token {
	t := p.peek(m)
	p.have = false
	p.lastEnd = t.end
	return t
}

func (p *parser) skipNewlines(m mode) {
	for p.peek(m).kind == tNewline {
		p.next(m)
	}
}

func (p *parser) pos(t token) Pos { return p.lx.pos(t.start) }

func (p *parser) failAt(t token, format string, args ...any) {
	p.lx.fail(t.start, t.end, format, args...)
}

// describe names a token for a message.
func (p *parser) describe(t token) string {
	switch t.kind {
	case tEOF:
		return "end of input"
	case tNewline:
		return "end of line"
	case tString:
		return "string " + quote(p.lx.text(t.start, t.end))
	}
	return quote(p.lx.text(t.start, t.end))
}

// unexpected fails at t, saying what was expected instead. At the end of
// the input it reports the innermost bracket left open, if any.
func (p *parser) unexpected(t token, expected string) {
	if t.kind == tEOF && len(p.open) > 0 {
		o := p.open[len(p.open)-1]
		p.failAt(o.tok, "unclosed %s %q; expected a closing %q", o.what, p.lx.text(o.tok.start, o.tok.end), o.closer)
	}
	p.failAt(t, "unexpected %s; expected %s", p.describe(t), expected)
}

// enter records an opening bracket; leave forgets the innermost one.
func (p *parser) enter(t token, what, closer string) {
	if len(p.open)+p.depth >= maxDepth {
		p.failAt(t, "nesting is too deep (more than %d levels)", maxDepth)
	}
	p.open = append(p.open, opener{tok: t, what: what, closer: closer})
}

func (p *parser) leave() { p.open = p.open[:len(p.open)-1] }

// close takes the closing token of the innermost bracket or fails.
func (p *parser) close(m mode, k kind) token {
	t := p.peek(m)
	if t.kind != k {
		if t.kind == tEOF {
			p.unexpected(t, "")
		}
		o := p.open[len(p.open)-1]
		op := o.tok
		p.failAt(t, "unexpected %s; expected %q to close the %s opened at %s", p.describe(t), o.closer, o.what, p.pos(op))
	}
	p.leave()
	return p.next(m)
}

// startsValue reports whether a token of kind k can begin an argument.
func startsValue(k kind) bool {
	switch k {
	case tWord, tString, tNumber, tVar, tLParen, tAtParen, tAtBrace, tLBrace:
		return true
	}
	return false
}

// keywords are PowerShell's language keywords; none is supported.
var keywords = map[string]bool{
	"begin": true, "break": true, "catch": true, "class": true, "continue": true,
	"data": true, "define": true, "do": true, "dynamicparam": true, "else": true,
	"elseif": true, "end": true, "enum": true, "exit": true, "filter": true,
	"finally": true, "for": true, "foreach": true, "from": true, "function": true,
	"hidden": true, "if": true, "in": true, "param": true, "process": true,
	"return": true, "static": true, "switch": true, "throw": true, "trap": true,
	"try": true, "until": true, "using": true, "var": true, "while": true,
	"workflow": true,
}

// validCommandName accepts cmdlet names and aliases: letters, digits,
// "_" and "-", starting with a letter or "_"; and the aliases "?" and "%".
func validCommandName(s string) bool {
	if s == "?" || s == "%" {
		return true
	}
	for i, r := range s {
		if !(isLetter(r) || r == '_' || (i > 0 && (isDigit(r) || r == '-'))) {
			return false
		}
	}
	return s != ""
}

// script = { statement | newline | ";" } EOF
func (p *parser) parseScript() *Script {
	s := &Script{}
	for {
		switch p.peek(argMode).kind {
		case tEOF:
			return s
		case tNewline, tSemi:
			p.next(argMode)
		default:
			s.Statements = append(s.Statements, p.parseStatement())
		}
	}
}

// statement = [ variable "=" { newline } ] pipeline
func (p *parser) parseStatement() *Statement {
	first := p.peek(argMode)
	st := &Statement{Pos: p.pos(first)}
	pl := p.parsePipeline()
	if v, ok := pl.Input.(*Var); ok && len(pl.Commands) == 0 {
		if eq := p.peek(exprMode); eq.kind == tAssign {
			switch {
			case len(v.Path) > 0:
				p.failAt(eq, "assigning to a property is not supported; only $name = ... is")
			case v.Name == "_" || strings.EqualFold(v.Name, "PSItem"):
				p.failAt(eq, "$%s cannot be assigned to", v.Name)
			}
			p.next(exprMode)
			p.skipNewlines(argMode)
			if t := p.peek(argMode); t.kind != tWord && !startsValue(t.kind) {
				p.unexpected(t, `a command or value after "="`)
			}
			st.Assign = v.Name
			pl = p.parsePipeline()
		}
	}
	st.Pipeline = pl
	if _, isVar := pl.Input.(*Var); st.Assign == "" && len(pl.Commands) == 0 && !isVar {
		// PowerShell would print it; here it is almost always a mistake,
		// such as a value cut off by ";".
		p.failAt(first, "a value alone is not a statement; expected a command such as Get-SendConnector, or $name = value")
	}
	switch t := p.cur(); t.kind {
	case tEOF, tNewline, tSemi:
	case tOp:
		p.failAt(t, "unexpected %s: operators are only supported inside script blocks, as in Where-Object { $_.Name -eq 'x' }", p.describe(t))
	case tAssign:
		p.failAt(t, `unexpected "="; only a variable can be assigned to, as in $c = Get-SendConnector`)
	case tRParen, tRBrace:
		p.failAt(t, "unexpected %s: nothing is open here to close", p.describe(t))
	default:
		p.unexpected(t, `the end of the statement (a new line or ";")`)
	}
	st.Text = strings.TrimSpace(p.lx.text(first.start, p.lastEnd))
	return st
}

// pipeline = ( command | value ) { "|" { newline } command }
func (p *parser) parsePipeline() *Pipeline {
	pl := &Pipeline{}
	switch t := p.peek(argMode); {
	case t.kind == tWord:
		pl.Commands = append(pl.Commands, p.parseCommand(true))
	case t.kind == tLBrace:
		p.failAt(t, `a script block can only be an argument, as in Where-Object { ... }`)
	case startsValue(t.kind):
		pl.Input = p.parseExprValue()
	default:
		p.unexpected(t, "a command")
	}
	for p.cur().kind == tPipe {
		pipe := p.next(p.laMode)
		p.skipNewlines(argMode)
		switch t := p.peek(argMode); {
		case t.kind == tWord:
			pl.Commands = append(pl.Commands, p.parseCommand(false))
		case t.kind == tEOF && len(p.open) == 0:
			p.failAt(pipe, `expected a command after "|", found the end of input`)
		case startsValue(t.kind):
			p.failAt(t, `a value can only begin a pipeline; expected a command after "|"`)
		default:
			p.unexpected(t, `a command after "|"`)
		}
	}
	return pl
}

// command = name { parameter [ value ] | value }
func (p *parser) parseCommand(first bool) *Command {
	t := p.next(argMode)
	name := p.lx.text(t.start, t.end)
	if first && keywords[strings.ToLower(name)] {
		p.failAt(t, "%q is a PowerShell keyword: language statements (foreach, if, function, ...) are not supported, only cmdlet pipelines", name)
	}
	if !validCommandName(name) {
		p.failAt(t, "%s is not a cmdlet name; expected a command such as Get-SendConnector", quote(name))
	}
	cmd := &Command{Pos: p.pos(t), Name: name}
	for {
		t := p.peek(argMode)
		switch {
		case t.kind == tEOF, t.kind == tNewline, t.kind == tSemi, t.kind == tPipe, t.kind == tRParen, t.kind == tRBrace:
			return cmd
		case t.kind == tParam:
			p.next(argMode)
			a := &Arg{Pos: p.pos(t), Param: t.val, Colon: t.colon}
			if v := p.peek(argMode); startsValue(v.kind) {
				a.Value = p.parseArgValue()
			} else if t.colon {
				p.unexpected(v, fmt.Sprintf("a value after -%s:", t.val))
			}
			cmd.Args = append(cmd.Args, a)
		case startsValue(t.kind):
			cmd.Args = append(cmd.Args, &Arg{Pos: p.pos(t), Value: p.parseArgValue()})
		default:
			p.unexpected(t, `an argument, "|" or the end of the statement`)
		}
	}
}

// parseArgValue reads an argument: a value, or a comma list of them.
func (p *parser) parseArgValue() Value {
	return p.parseList(argMode, p.parseArgPrimary)
}

// parseExprValue reads a value in expression mode: at the start of a
// statement or parenthesis, in @(...) and as a hashtable value.
func (p *parser) parseExprValue() Value {
	return p.parseList(exprMode, p.parseExprPrimary)
}

// list = primary { "," { newline } primary }
func (p *parser) parseList(m mode, primary func() Value) Value {
	v := primary()
	if p.peek(m).kind != tComma {
		return v
	}
	l := &List{At: v.Pos(), Items: []Value{v}}
	for p.peek(m).kind == tComma {
		p.next(m)
		p.skipNewlines(m)
		if t := p.peek(m); !startsValue(t.kind) {
			p.unexpected(t, `a value after ","`)
		}
		l.Items = append(l.Items, primary())
	}
	return l
}

func (p *parser) parseArgPrimary() Value {
	t := p.next(argMode)
	v := p.parsePrimary(t)
	// "a"b, $x-1 and (x)y are one argument in PowerShell, made by
	// concatenation or expansion; they are refused rather than guessed.
	if end := p.lastEnd; !p.lx.isArgEnd(end) {
		p.lx.fail(end, end+1, "unexpected %s right after %s; separate arguments with a space (or quote the whole value)", quote(string(p.lx.at(end))), quote(p.lx.text(t.start, end)))
	}
	return v
}

func (p *parser) parseExprPrimary() Value {
	t := p.next(exprMode)
	switch t.kind {
	case tWord:
		p.failAt(t, "bare word %s is not a value here; quote it ('%s'), or put a command in parentheses", quote(t.val), t.val)
	case tOp:
		p.failAt(t, "unexpected %s: operators are only supported inside script blocks, as in Where-Object { $_.Name -eq 'x' }", p.describe(t))
	}
	return p.parsePrimary(t)
}

// parsePrimary turns the token t, already taken, into a value.
func (p *parser) parsePrimary(t token) Value {
	at := p.pos(t)
	switch t.kind {
	case tWord:
		return &String{At: at, Text: t.val}
	case tString:
		return &String{At: at, Text: t.val, Quoted: true}
	case tNumber:
		n := *t.num
		n.At = at
		return &n
	case tVar:
		switch name := strings.ToLower(t.val); {
		case name != "true" && name != "false" && name != "null":
			return &Var{At: at, Name: t.val, Path: t.path}
		case len(t.path) > 0:
			p.failAt(t, "properties of $%s are not supported", t.val)
		case name == "null":
			return &Null{At: at}
		default:
			return &Bool{At: at, Value: name == "true"}
		}
	case tLParen:
		return p.parseParen(t)
	case tAtParen:
		return p.parseArraySub(t)
	case tAtBrace:
		return p.parseHashtable(t)
	case tLBrace:
		return p.parseScriptBlock(t)
	}
	p.unexpected(t, "a value")
	return nil
}

// paren = "(" { newline } pipeline { newline } ")"
func (p *parser) parseParen(open token) Value {
	p.enter(open, "parenthesis", ")")
	p.skipNewlines(argMode)
	if t := p.peek(argMode); t.kind != tWord && !startsValue(t.kind) {
		p.unexpected(t, `a command or value inside "(...)"`)
	}
	pl := p.parsePipeline()
	if t := p.cur(); t.kind == tAssign {
		p.failAt(t, "assignments inside parentheses are not supported")
	}
	p.skipNewlines(p.laMode)
	p.close(p.laMode, tRParen)
	if len(pl.Commands) == 0 {
		return pl.Input
	}
	return &SubPipeline{At: p.pos(open), Pipeline: pl}
}

// arraysub = "@(" { newline | ";" } [ pipeline | list { (newline | ";") list } ] ")"
func (p *parser) parseArraySub(open token) Value {
	p.enter(open, "array subexpression", ")")
	l := &List{At: p.pos(open), Array: true, Items: []Value{}}
	for {
		t := p.peek(argMode)
		switch {
		case t.kind == tNewline || t.kind == tSemi:
			p.next(argMode)
			continue
		case t.kind == tRParen:
			p.close(argMode, tRParen)
			return l
		case t.kind == tWord && len(l.Items) > 0:
			p.failAt(t, `a command cannot follow values in "@(...)"`)
		case t.kind != tWord && !startsValue(t.kind):
			p.unexpected(t, `a value or ")"`)
		}
		var v Value
		if len(l.Items) == 0 {
			pl := p.parsePipeline()
			if len(pl.Commands) > 0 {
				p.skipNewlines(p.laMode)
				p.close(p.laMode, tRParen)
				return &SubPipeline{At: p.pos(open), Pipeline: pl, Array: true}
			}
			v = pl.Input
		} else {
			v = p.parseExprValue()
		}
		if items, ok := v.(*List); ok && !items.Array {
			l.Items = append(l.Items, items.Items...)
		} else {
			l.Items = append(l.Items, v)
		}
		if t := p.peek(exprMode); t.kind != tNewline && t.kind != tSemi && t.kind != tRParen {
			p.unexpected(t, `",", a new line or ")"`)
		}
	}
}

// hashtable = "@{" { entry ( newline | ";" ) } [ entry ] "}"
// entry     = ( word | string | number ) "=" { newline } list
func (p *parser) parseHashtable(open token) Value {
	p.enter(open, "hashtable", "}")
	h := &Hashtable{At: p.pos(open)}
	seen := map[string]bool{}
	for {
		t := p.next(exprMode)
		var key string
		switch t.kind {
		case tNewline, tSemi:
			continue
		case tRBrace:
			p.leave()
			return h
		case tWord, tString:
			key = t.val
		case tNumber:
			key = t.num.Text
		default:
			p.unexpected(t, `a hashtable key or "}"`)
		}
		if seen[strings.ToLower(key)] {
			p.failAt(t, "duplicate key %s in the hashtable (keys are case-insensitive)", quote(key))
		}
		seen[strings.ToLower(key)] = true
		if eq := p.peek(exprMode); eq.kind != tAssign {
			p.unexpected(eq, fmt.Sprintf(`"=" after the hashtable key %s`, quote(key)))
		}
		p.next(exprMode)
		p.skipNewlines(exprMode)
		if v := p.peek(exprMode); !startsValue(v.kind) && v.kind != tOp {
			p.unexpected(v, "a value after "+quote(key+"="))
		}
		h.Entries = append(h.Entries, &Entry{Pos: p.pos(t), Key: key, Value: p.parseExprValue()})
		switch e := p.peek(exprMode); e.kind {
		case tNewline, tSemi, tRBrace:
		default:
			p.unexpected(e, `";", a new line or "}" after a hashtable entry`)
		}
	}
}

// scriptblock = "{" { newline } expr { newline } "}"
func (p *parser) parseScriptBlock(open token) Value {
	p.enter(open, "script block", "}")
	p.skipNewlines(exprMode)
	if t := p.peek(exprMode); t.kind == tRBrace {
		p.failAt(t, `empty script block; expected an expression such as $_.Name -eq 'x'`)
	}
	e := p.parseLogical("an expression")
	nl := p.peek(exprMode).kind == tNewline
	p.skipNewlines(exprMode)
	switch t := p.peek(exprMode); {
	case t.kind == tSemi, nl && t.kind != tRBrace && t.kind != tEOF:
		p.failAt(t, "a script block may hold only one expression; to continue an expression on the next line, end the line with an operator or a backtick")
	case t.kind != tRBrace:
		p.unexpected(t, `an operator or "}"`)
	}
	end := p.close(exprMode, tRBrace)
	return &ScriptBlock{At: p.pos(open), Expr: e, Text: strings.TrimSpace(p.lx.text(open.end, end.start))}
}

// Operators. Comparison operators come plain (case-insensitive), with "c"
// (case-sensitive) or with "i" (explicitly case-insensitive).
var (
	compareOps = map[string]bool{
		"eq": true, "ne": true, "gt": true, "ge": true, "lt": true, "le": true,
		"like": true, "notlike": true, "match": true, "notmatch": true,
		"contains": true, "notcontains": true, "in": true, "notin": true,
	}
	logicalOps     = map[string]bool{"-and": true, "-or": true, "-xor": true}
	unsupportedOps = map[string]bool{
		"-replace": true, "-creplace": true, "-ireplace": true, "-split": true, "-csplit": true,
		"-isplit": true, "-join": true, "-f": true, "-is": true, "-isnot": true, "-as": true,
		"-band": true, "-bor": true, "-bxor": true, "-bnot": true, "-shl": true, "-shr": true,
	}
)

// splitOp splits a comparison operator such as "-ceq" into its base
// ("eq") and whether it is case-sensitive.
func splitOp(op string) (base string, caseSensitive, ok bool) {
	s := strings.TrimPrefix(op, "-")
	if compareOps[s] {
		return s, false, true
	}
	if len(s) > 1 && (s[0] == 'c' || s[0] == 'i') && compareOps[s[1:]] {
		return s[1:], s[0] == 'c', true
	}
	return "", false, false
}

// expr = comparison { ( "-and" | "-or" | "-xor" ) { newline } comparison }
//
// All three have the same precedence and group from the left, as in
// PowerShell: $a -or $b -and $c is ($a -or $b) -and $c.
func (p *parser) parseLogical(want string) Expr {
	x := p.parseComparison(want)
	for {
		t := p.peek(exprMode)
		if t.kind != tOp || !logicalOps[t.val] {
			return x
		}
		p.next(exprMode)
		p.skipNewlines(exprMode)
		y := p.parseComparison("an operand after " + t.val)
		x = &BinaryExpr{At: p.pos(t), Op: t.val, X: x, Y: y}
	}
}

// comparison = unary { cmpop { newline } unary }
func (p *parser) parseComparison(want string) Expr {
	x := p.parseUnary(want)
	for {
		t := p.peek(exprMode)
		if t.kind != tOp || logicalOps[t.val] {
			return x
		}
		if _, _, ok := splitOp(t.val); !ok {
			p.badOperator(t, `a comparison operator, -and, -or or the end of the expression`)
		}
		p.next(exprMode)
		p.skipNewlines(exprMode)
		y := p.parseUnary("an operand after " + t.val)
		x = &BinaryExpr{At: p.pos(t), Op: t.val, X: x, Y: y}
	}
}

func (p *parser) badOperator(t token, expected string) {
	switch {
	case unsupportedOps[t.val]:
		p.failAt(t, "the %s operator is not supported; supported are -eq -ne -gt -ge -lt -le -like -notlike -match -notmatch -contains -notcontains -in -notin (with c or i prefixes), -and -or -xor -not and !", t.val)
	case t.val == "-not" || t.val == "!":
		p.unexpected(t, expected)
	default:
		p.failAt(t, "unknown operator %s", t.val)
	}
}

// unary = ( "-not" | "!" ) unary | array
func (p *parser) parseUnary(want string) Expr {
	t := p.peek(exprMode)
	if t.kind != tOp {
		return p.parseArray(want)
	}
	if t.val != "-not" && t.val != "!" {
		if unsupportedOps[t.val] {
			p.badOperator(t, want)
		}
		p.unexpected(t, want)
	}
	p.next(exprMode)
	if p.depth++; len(p.open)+p.depth >= maxDepth {
		p.failAt(t, "nesting is too deep (more than %d levels)", maxDepth)
	}
	x := p.parseUnary("an operand after " + t.val)
	p.depth--
	return &UnaryExpr{At: p.pos(t), Op: t.val, X: x}
}

// array = operand { "," { newline } operand }
func (p *parser) parseArray(want string) Expr {
	x := p.parseOperand(want)
	if p.peek(exprMode).kind != tComma {
		return x
	}
	a := &ArrayExpr{At: x.Pos(), Items: []Expr{x}}
	for p.peek(exprMode).kind == tComma {
		p.next(exprMode)
		p.skipNewlines(exprMode)
		a.Items = append(a.Items, p.parseOperand(`a value after ","`))
	}
	return a
}

// operand = "$_" { "." name } | "$PSItem" { "." name } | "$true" | "$false"
//
//	| "$null" | string | number | "(" expr ")" | "@(" [ operand { ("," | newline) operand } ] ")"
func (p *parser) parseOperand(want string) Expr {
	t := p.next(exprMode)
	at := p.pos(t)
	switch t.kind {
	case tVar:
		switch name := strings.ToLower(t.val); {
		case name == "_" || name == "psitem":
			return &PropertyExpr{At: at, Path: t.path}
		case (name == "true" || name == "false" || name == "null") && len(t.path) == 0:
			return p.parsePrimary(t).(Expr)
		}
		p.failAt(t, "$%s cannot be used in a script block; only $_ (or $PSItem), $true, $false and $null can", t.val)
	case tString, tNumber:
		return p.parsePrimary(t).(Expr)
	case tLParen:
		p.enter(t, "parenthesis", ")")
		p.skipNewlines(exprMode)
		x := p.parseLogical(`an expression after "("`)
		p.skipNewlines(exprMode)
		if c := p.peek(exprMode); c.kind != tRParen && c.kind != tEOF {
			p.unexpected(c, `an operator or ")"`)
		}
		p.close(exprMode, tRParen)
		return x
	case tAtParen:
		p.enter(t, "array subexpression", ")")
		a := &ArrayExpr{At: at, Items: []Expr{}}
		for {
			switch c := p.peek(exprMode); c.kind {
			case tNewline, tSemi, tComma:
				if c.kind == tComma && len(a.Items) == 0 {
					p.unexpected(c, `a value or ")"`)
				}
				p.next(exprMode)
				continue
			case tRParen:
				p.close(exprMode, tRParen)
				return a
			}
			a.Items = append(a.Items, p.parseOperand(`a value or ")"`))
			if c := p.peek(exprMode); c.kind != tComma && c.kind != tNewline && c.kind != tSemi && c.kind != tRParen {
				p.unexpected(c, `",", a new line or ")"`)
			}
		}
	case tWord:
		if keywords[strings.ToLower(t.val)] {
			p.failAt(t, "%q is a PowerShell keyword: language statements are not supported; a script block holds a single expression", t.val)
		}
		p.failAt(t, "unexpected bare word %s in a script block: quote literal text ('%s'); commands cannot run inside a script block", quote(t.val), t.val)
	case tLBrace, tAtBrace:
		p.failAt(t, "script blocks and hashtables are not supported inside a script block")
	}
	p.unexpected(t, want)
	return nil
}
