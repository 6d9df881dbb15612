package ems

import (
	"fmt"
	"strconv"
	"strings"
)

// dump renders a script compactly, one statement per line, so that tests
// can compare the whole shape of a tree at once:
//
//	bare word      *            quoted string   "text"
//	number         35MB=36700160               list   [a, b]   @(...) list   @[a, b]
//	hashtable      @{Add="x"; Remove=["y", "z"]}
//	sub-pipeline   (Get-Credential)   @(...) pipeline   @(Get-X)
//	script block   {(($_.Deny -eq $false) -and ...)}
//	named arg      -Name "X"    glued   -Confirm:$false    switch   -Custom
func dump(s *Script) string {
	var lines []string
	for _, st := range s.Statements {
		l := dumpPipeline(st.Pipeline)
		if st.Assign != "" {
			l = "$" + st.Assign + " = " + l
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

func dumpPipeline(pl *Pipeline) string {
	var parts []string
	if pl.Input != nil {
		parts = append(parts, dumpValue(pl.Input))
	}
	for _, c := range pl.Commands {
		parts = append(parts, dumpCommand(c))
	}
	return strings.Join(parts, " | ")
}

func dumpCommand(c *Command) string {
	parts := []string{c.Name}
	for _, a := range c.Args {
		switch {
		case a.Param == "":
			parts = append(parts, dumpValue(a.Value))
		case a.Value == nil:
			parts = append(parts, "-"+a.Param)
		case a.Colon:
			parts = append(parts, "-"+a.Param+":"+dumpValue(a.Value))
		default:
			parts = append(parts, "-"+a.Param+" "+dumpValue(a.Value))
		}
	}
	return strings.Join(parts, " ")
}

func dumpValue(v Value) string {
	switch v := v.(type) {
	case *String:
		if v.Quoted {
			return strconv.Quote(v.Text)
		}
		return v.Text
	case *Number:
		if v.IsInt {
			return fmt.Sprintf("%s=%d", v.Text, v.Int)
		}
		return fmt.Sprintf("%s=%g", v.Text, v.Float)
	case *Bool:
		return v.String()
	case *Null:
		return "$null"
	case *Var:
		return "$" + strings.Join(append([]string{v.Name}, v.Path...), ".")
	case *List:
		items := make([]string, len(v.Items))
		for i, it := range v.Items {
			items[i] = dumpValue(it)
		}
		if v.Array {
			return "@[" + strings.Join(items, ", ") + "]"
		}
		return "[" + strings.Join(items, ", ") + "]"
	case *Hashtable:
		items := make([]string, len(v.Entries))
		for i, e := range v.Entries {
			items[i] = e.Key + "=" + dumpValue(e.Value)
		}
		return "@{" + strings.Join(items, "; ") + "}"
	case *SubPipeline:
		if v.Array {
			return "@(" + dumpPipeline(v.Pipeline) + ")"
		}
		return "(" + dumpPipeline(v.Pipeline) + ")"
	case *ScriptBlock:
		return "{" + v.Expr.String() + "}"
	}
	return fmt.Sprintf("<%T>", v)
}
