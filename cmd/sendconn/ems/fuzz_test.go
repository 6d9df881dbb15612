package ems

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics; that every error is a
// *SyntaxError pointing inside the input; and that every script block in
// a script that parses re-parses alone to the same expression and
// evaluates without panicking.
func FuzzParse(f *testing.F) {
	for _, s := range seeds {
		f.Add(s.src)
	}
	for _, e := range errorCases {
		f.Add(e.src)
	}
	f.Add("Get-X | where { $_.A -like '[a-c]*' -or $_.B -match '^x+' -and $_.C -in 1,2 -and $_.D.Count -gt 0 }")
	f.Add("$x = @{a=1;'b'=@(1,'2');c={$_.X}}\n$x | Set-Y -Z:(Get-W)")

	obj := decode(f, connectorJSON)
	f.Fuzz(func(t *testing.T, src string) {
		s, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if s != nil {
				t.Fatalf("Parse returned a script and the error %v", err)
			}
			checkErrorPos(t, src, se)
			return
		}
		for _, st := range s.Statements {
			if st.Pos.Line < 1 || st.Pos.Column < 1 || st.Text == "" || st.Pipeline == nil {
				t.Fatalf("bad statement %+v", st)
			}
			if st.Pipeline.Input == nil && len(st.Pipeline.Commands) == 0 {
				t.Fatalf("empty pipeline in %q", st.Text)
			}
			walkPipeline(st.Pipeline, func(sb *ScriptBlock) {
				again, err := ParseExpr(sb.Text)
				if err != nil {
					t.Fatalf("script block text %q does not parse alone: %v", sb.Text, err)
				}
				if again.String() != sb.Expr.String() {
					t.Fatalf("script block %q parses alone as %s, in place as %s", sb.Text, again, sb.Expr)
				}
				if _, err := Eval(sb.Expr, obj); err != nil {
					var ee *EvalError
					if !errors.As(err, &ee) {
						t.Fatalf("Eval error %T %v is not an *EvalError", err, err)
					}
				}
			})
		}
	})
}

// checkErrorPos fails unless the error's line exists and its column is
// within that line (or just past its end).
func checkErrorPos(t *testing.T, src string, se *SyntaxError) {
	t.Helper()
	src = strings.TrimPrefix(src, "\uFEFF")
	src = strings.ReplaceAll(src, "\r\n", "\n")
	src = strings.ReplaceAll(src, "\r", "\n")
	lines := strings.Split(src, "\n")
	if se.Line < 1 || se.Line > len(lines) || se.Column < 1 {
		t.Fatalf("error position %d:%d outside the input (%d lines): %v", se.Line, se.Column, len(lines), se)
	}
	// []rune counts invalid bytes as one character each, as Parse does.
	if n := len([]rune(lines[se.Line-1])); se.Column > n+1 {
		t.Fatalf("error column %d past the end of line %d (%d characters): %v", se.Column, se.Line, n, se)
	}
	if !utf8.ValidString(se.Error()) && utf8.ValidString(src) {
		t.Fatalf("invalid UTF-8 in the message: %q", se.Error())
	}
}

func walkPipeline(pl *Pipeline, fn func(*ScriptBlock)) {
	if pl.Input != nil {
		walkValue(pl.Input, fn)
	}
	for _, c := range pl.Commands {
		for _, a := range c.Args {
			if a.Value != nil {
				walkValue(a.Value, fn)
			}
		}
	}
}

func walkValue(v Value, fn func(*ScriptBlock)) {
	switch v := v.(type) {
	case *List:
		for _, it := range v.Items {
			walkValue(it, fn)
		}
	case *Hashtable:
		for _, e := range v.Entries {
			walkValue(e.Value, fn)
		}
	case *SubPipeline:
		walkPipeline(v.Pipeline, fn)
	case *ScriptBlock:
		fn(v)
	}
}
