package ems

import (
	"fmt"
	"strconv"
	"strings"
)

// Pos is a place in the source: 1-based line and 1-based column, the
// column counted in runes (a tab is one column).
type Pos struct {
	Line, Column int
}

func (p Pos) String() string { return fmt.Sprintf("line %d, column %d", p.Line, p.Column) }

// Script is a parsed script: its statements in source order.
type Script struct {
	Statements []*Statement
}

// Statement is one pipeline, or an assignment of a pipeline's output to a
// variable ($c = Get-SendConnector "X").
type Statement struct {
	Pos      Pos
	Assign   string    // variable name without "$", or "" when nothing is assigned
	Pipeline *Pipeline // never nil
	Text     string    // the statement's source text, continuation lines included
}

// Pipeline is commands joined by "|". It may begin with a value instead
// of a command ($c | Set-SendConnector -Port 587); a statement that is a
// value alone ($c, or the right-hand side of $a = $b) has Input and no
// commands. At least one of Input and Commands is set.
type Pipeline struct {
	Input    Value
	Commands []*Command
}

// Command is a cmdlet name and its arguments, in source order. Name is as
// written (case kept, aliases not resolved: "where", "?", "fl").
type Command struct {
	Pos  Pos
	Name string
	Args []*Arg
}

// Arg is one argument of a command:
//
//   - positional value:   Param == "", Value != nil
//   - switch:             Param != "", Value == nil (-Custom, -WhatIf)
//   - named parameter:    Param != "", Value != nil
//
// The parser cannot know which parameters are switches. It gives the
// next token to a parameter whenever that token is a value, so
// "-Custom $false" and "-Custom X" both come out as a named parameter
// with Colon false; when the executor knows -Custom is a switch it should
// treat such a value as the next positional argument. With Colon true the
// value was glued on (-Confirm:$false) and always belongs to the
// parameter, which is how PowerShell passes a value to a switch.
type Arg struct {
	Pos   Pos    // of the parameter, or of the value when positional
	Param string // name without the dash, as written; "" when positional
	Colon bool   // the value was given as -Param:value
	Value Value  // nil for a switch
}

// Value is an argument value. The concrete types are *String, *Number,
// *Bool, *Null, *Var, *List, *Hashtable, *SubPipeline and *ScriptBlock.
type Value interface {
	Pos() Pos
	valueNode()
}

// Expr is an expression inside a script block. The concrete types are
// *BinaryExpr, *UnaryExpr, *PropertyExpr, *ArrayExpr, *String, *Number,
// *Bool and *Null. String returns it fully parenthesised, for messages
// and tests.
type Expr interface {
	Pos() Pos
	String() string
	exprNode()
}

// String is a bare word (Quoted false: *, 192.168.3.2, [::1]:25) or a
// quoted string (Quoted true) with its quotes removed and escapes applied.
type String struct {
	At     Pos
	Text   string
	Quoted bool
}

// Number is a numeric literal: 25, -5, 1.5, 0x19, 1e3, and byte
// quantities 35MB, 10kb (1KB = 1024, as in PowerShell). Text is the
// literal as written. Float always holds the value (for 35MB, 36700160);
// when IsInt is set Int holds it exactly. IsInt is set for literals
// without a decimal point or exponent whose value fits an int64, which is
// when PowerShell makes an integer. Unit is "", "KB", "MB", "GB", "TB" or
// "PB", upper-case whatever the spelling.
type Number struct {
	At    Pos
	Text  string
	Unit  string
	IsInt bool
	Int   int64
	Float float64
}

// Bool is $true or $false.
type Bool struct {
	At    Pos
	Value bool
}

// Null is $null.
type Null struct {
	At Pos
}

// Var is a variable reference, $c or $_, with an optional property path:
// $c.Identity.Name is Name "c", Path ["Identity", "Name"]. $true, $false
// and $null are never a Var.
type Var struct {
	At   Pos
	Name string
	Path []string
}

// List is a comma list (a,b,c) or an array subexpression of values
// (@("a","b"), Array true). Items are in order; an @() inside a list
// stays a nested *List.
type List struct {
	At    Pos
	Items []Value
	Array bool
}

// Hashtable is @{Key=value; ...}. Entries keep source order; keys are
// unique, compared case-insensitively.
type Hashtable struct {
	At      Pos
	Entries []*Entry
}

// Entry is one Key=Value of a hashtable. Key is unquoted.
type Entry struct {
	Pos   Pos // of the key
	Key   string
	Value Value
}

// Get returns the value of key, matched case-insensitively as PowerShell
// does, and whether it is present.
func (h *Hashtable) Get(key string) (Value, bool) {
	for _, e := range h.Entries {
		if strings.EqualFold(e.Key, key) {
			return e.Value, true
		}
	}
	return nil, false
}

// SubPipeline is a pipeline in parentheses, (Get-Credential), or in an
// array subexpression, @(Get-SendConnector) (Array true), used as a value.
type SubPipeline struct {
	At       Pos
	Pipeline *Pipeline
	Array    bool
}

// ScriptBlock is { expression }. Text is the source between the braces,
// trimmed.
type ScriptBlock struct {
	At   Pos
	Expr Expr
	Text string
}

// BinaryExpr is X Op Y. Op is lower-case with its dash: "-eq", "-ceq",
// "-ilike", "-and", "-or", "-xor".
type BinaryExpr struct {
	At   Pos // of the operator
	Op   string
	X, Y Expr
}

// UnaryExpr is -not X or !X; Op is "-not" or "!".
type UnaryExpr struct {
	At Pos
	Op string
	X  Expr
}

// PropertyExpr is $_ (Path empty) or $_.A.B (Path ["A", "B"]). $PSItem is
// read as $_.
type PropertyExpr struct {
	At   Pos
	Path []string
}

// ArrayExpr is a comma list or @(...) inside an expression: 25, 587.
type ArrayExpr struct {
	At    Pos
	Items []Expr
}

func (v *String) Pos() Pos       { return v.At }
func (v *Number) Pos() Pos       { return v.At }
func (v *Bool) Pos() Pos         { return v.At }
func (v *Null) Pos() Pos         { return v.At }
func (v *Var) Pos() Pos          { return v.At }
func (v *List) Pos() Pos         { return v.At }
func (v *Hashtable) Pos() Pos    { return v.At }
func (v *SubPipeline) Pos() Pos  { return v.At }
func (v *ScriptBlock) Pos() Pos  { return v.At }
func (e *BinaryExpr) Pos() Pos   { return e.At }
func (e *UnaryExpr) Pos() Pos    { return e.At }
func (e *PropertyExpr) Pos() Pos { return e.At }
func (e *ArrayExpr) Pos() Pos    { return e.At }

func (*String) valueNode()      {}
func (*Number) valueNode()      {}
func (*Bool) valueNode()        {}
func (*Null) valueNode()        {}
func (*Var) valueNode()         {}
func (*List) valueNode()        {}
func (*Hashtable) valueNode()   {}
func (*SubPipeline) valueNode() {}
func (*ScriptBlock) valueNode() {}

func (*String) exprNode()       {}
func (*Number) exprNode()       {}
func (*Bool) exprNode()         {}
func (*Null) exprNode()         {}
func (*BinaryExpr) exprNode()   {}
func (*UnaryExpr) exprNode()    {}
func (*PropertyExpr) exprNode() {}
func (*ArrayExpr) exprNode()    {}

// String returns the text single-quoted, as PowerShell would need it.
func (v *String) String() string { return "'" + strings.ReplaceAll(v.Text, "'", "''") + "'" }
func (v *Number) String() string { return v.Text }
func (v *Bool) String() string {
	if v.Value {
		return "$true"
	}
	return "$false"
}
func (v *Null) String() string { return "$null" }
func (e *BinaryExpr) String() string {
	return "(" + e.X.String() + " " + e.Op + " " + e.Y.String() + ")"
}
func (e *UnaryExpr) String() string {
	if e.Op == "!" {
		return "(!" + e.X.String() + ")"
	}
	return "(" + e.Op + " " + e.X.String() + ")"
}
func (e *PropertyExpr) String() string {
	if len(e.Path) == 0 {
		return "$_"
	}
	return "$_." + strings.Join(e.Path, ".")
}
func (e *ArrayExpr) String() string {
	items := make([]string, len(e.Items))
	for i, it := range e.Items {
		items[i] = it.String()
	}
	return "@(" + strings.Join(items, ", ") + ")"
}

// SyntaxError is every error Parse and ParseExpr return. Line and Column
// (1-based, column in runes) point at the first character of the
// offending token; for something left open (a quote, brace, parenthesis)
// they point at the opening character.
type SyntaxError struct {
	Line, Column int
	Token        string // the offending source text; "" at the end of a line or of the input
	Msg          string // what is wrong and what was expected
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Line, e.Column, e.Msg)
}

// quote renders source text for a message, shortened when long: in double
// quotes, or in single quotes when that needs no escaping.
func quote(s string) string {
	r := []rune(s)
	if len(r) > 40 {
		s = string(r[:37]) + "..."
	}
	q := strconv.Quote(s)
	if strings.Contains(s, `"`) && !strings.Contains(s, "'") && q == `"`+strings.ReplaceAll(s, `"`, `\"`)+`"` {
		return "'" + s + "'"
	}
	return q
}
