package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/term"

	"github.com/sendconn/sendconn/cmd/sendconn/ems"
	"github.com/sendconn/sendconn/pkg/store"
)

func newExecCmd(app *App) *cobra.Command {
	var o execOptions
	c := &cobra.Command{
		Use:   "exec FILE|-",
		Short: "Run Exchange Management Shell lines (New-SendConnector …) as they are written",
		Long: `Run a script of Exchange Management Shell lines with sendconn's semantics:
the cmdlets sendconn implements, with parameters as PowerShell writes them,
pipelines into Where-Object, Format-Table, Format-List, Select-Object,
ConvertTo-Json and Export-Csv, and variables assigned from a pipeline.

The whole script is parsed and every cmdlet and parameter checked before
the first line runs, so a typo, an unsupported cmdlet or an unclosed quote
changes nothing. Each line then runs as one sendconn command (one store
transaction); the first line that fails stops the script with its line
number, unless --continue-on-error. --whatif runs the whole script against
a copy of the store and leaves the real one untouched.

Supported cmdlets: New-, Set-, Get-, Remove-SendConnector; Add-, Remove-,
Get-ADPermission; New-, Get-, Remove-AcceptedDomain; Get-, Retry-,
Suspend-, Resume-Queue; Get-, Remove-, Suspend-, Resume-Message;
Get-MessageTrackingLog. docs/ems.md describes the accepted syntax.`,
		Example: `  # A script file, as an Exchange admin would write it
  sendconn exec connectors.ps1

  # One line from the shell (standard input)
  echo 'Get-SendConnector | where {$_.Enabled -eq $false} | ft Name' | sendconn exec -

  # Seed 004's line, verbatim
  sendconn exec - <<'EOF'
  New-SendConnector -Name "Smart host to Internet" -AddressSpaces * -Custom ` + "`" + `
      -DNSRoutingEnabled $false -SmartHosts 192.168.3.2 -SmartHostAuthMechanism None
  EOF

  # Copy a configuration to another store
  sendconn export | sendconn --store new.db exec -`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExec(cmd.Context(), app, args[0], o)
		},
	}
	fs := c.Flags()
	fs.BoolVar(&o.whatIf, "whatif", false, "run the whole script against a copy of the store; change nothing")
	fs.BoolVar(&o.continueOnError, "continue-on-error", false, "run the remaining lines after a line fails (the exit code is still non-zero)")
	return c
}

type execOptions struct {
	whatIf          bool
	continueOnError bool
}

// runExec parses the whole script, checks every command, then runs the
// statements in order.
func runExec(ctx context.Context, app *App, file string, o execOptions) error {
	src, name, err := readScript(app, file)
	if err != nil {
		return err
	}
	script, err := ems.Parse(src)
	if err != nil {
		return usageErrorf("%s: %v", name, err)
	}
	x := &executor{app: app, name: name, vars: map[string]*objectSet{}, storePath: app.cfg.Store}
	for _, st := range script.Statements {
		if err := x.check(st.Pipeline); err != nil {
			return err
		}
	}
	if o.whatIf {
		tmp, cleanup, err := copyStore(ctx, app, app.cfg.Store)
		if err != nil {
			return err
		}
		defer cleanup()
		x.storePath = tmp
		fmt.Fprintf(app.IO.ErrOut, "what if: running %s against a copy of the store; nothing is changed\n", name)
	}
	failed := 0
	for _, st := range script.Statements {
		err := x.statement(ctx, st)
		if err == nil {
			continue
		}
		err = lineError(name, st.Pos, err)
		if !o.continueOnError {
			return err
		}
		printError(app.IO.ErrOut, err)
		failed++
	}
	if failed > 0 {
		return &silentError{code: exitFailure}
	}
	return nil
}

func readScript(app *App, file string) (src, name string, err error) {
	var b []byte
	if file == "-" {
		b, err = io.ReadAll(app.IO.In)
		name = "standard input"
	} else {
		b, err = os.ReadFile(file)
		name = file
	}
	if err != nil {
		return "", "", fmt.Errorf("read script: %w", err)
	}
	return string(b), name, nil
}

// lineError names the line a runtime failure came from, keeping the
// failure's exit code.
func lineError(name string, at ems.Pos, err error) error {
	subject := fmt.Sprintf("%s: line %d", name, at.Line)
	if strings.HasPrefix(err.Error(), fmt.Sprintf("line %d, column ", at.Line)) {
		subject = name // the error names the place itself
	}
	return &subjectError{subject: subject, err: err}
}

// posErrorf is an error in the script at a known place, found before
// anything runs.
func posErrorf(name string, at ems.Pos, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf("%s: %s: %s", name, at, fmt.Sprintf(format, args...))}
}

// objectSet is what a pipeline stage hands the next: objects of one kind,
// as the command that produced them would print them.
type objectSet struct {
	kind *objectKind
	objs []any
}

type executor struct {
	app       *App
	name      string
	vars      map[string]*objectSet
	storePath string
}

// Formatting cmdlets and their aliases end a pipeline in an output format.
var formatCmdlets = map[string]string{
	"format-table": "table", "ft": "table",
	"format-list": "list", "fl": "list",
	"select-object": "table", "select": "table",
	"convertto-json": "json",
	"export-csv":     "csv",
}

func isSelect(name string) bool { return name == "select-object" || name == "select" }

func isFilter(name string) bool {
	switch strings.ToLower(name) {
	case "where-object", "where", "?":
		return true
	}
	return false
}

// cmdletPath resolves a cmdlet name to the sendconn command that
// implements it.
func (x *executor) cmdletPath(c *ems.Command) ([]string, *cobra.Command, error) {
	root := newRootCmd(x.app)
	if path, ok := cmdletIndex(root)[strings.ToLower(c.Name)]; ok {
		return path, findPath(root, path), nil
	}
	if strings.EqualFold(c.Name, "Get-Credential") {
		return nil, nil, posErrorf(x.name, c.Pos, "Get-Credential only in parentheses, as the value of -AuthenticationCredential")
	}
	return nil, nil, posErrorf(x.name, c.Pos, "%q is not a cmdlet sendconn runs (supported: %s, and Where-Object, Format-Table, Format-List, Select-Object, ConvertTo-Json, Export-Csv after them)",
		c.Name, strings.Join(cmdletDisplayNames(root), ", "))
}

func cmdletDisplayNames(root *cobra.Command) []string {
	var out []string
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if n := c.Annotations[cmdletAnnotation]; n != "" {
			out = append(out, n)
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	slices.Sort(out)
	return out
}

// check validates a pipeline before anything runs: every cmdlet known,
// every parameter one the cmdlet has, formatting only at the end.
func (x *executor) check(p *ems.Pipeline) error {
	for i, c := range p.Commands {
		name := strings.ToLower(c.Name)
		switch {
		case isFilter(name):
			if i == 0 && p.Input == nil {
				return posErrorf(x.name, c.Pos, "%s needs objects from a command before it", c.Name)
			}
			if _, err := filterBlock(x.name, c); err != nil {
				return err
			}
			continue
		case formatCmdlets[name] != "":
			if i == 0 && p.Input == nil {
				return posErrorf(x.name, c.Pos, "%s needs objects from a command before it", c.Name)
			}
			if i != len(p.Commands)-1 && (!isSelect(name) || formatCmdlets[strings.ToLower(p.Commands[i+1].Name)] == "") {
				return posErrorf(x.name, p.Commands[i+1].Pos, "only a formatting cmdlet may follow %s in a pipeline", c.Name)
			}
			if _, err := formatOptions(x.name, c); err != nil {
				return err
			}
			continue
		}
		_, cmd, err := x.cmdletPath(c)
		if err != nil {
			return err
		}
		for _, a := range c.Args {
			if err := x.checkValue(a.Value); err != nil {
				return err
			}
			if a.Param == "" || skipParam(cmd, a.Param) || lookupFlag(cmd, a.Param, true) != nil {
				continue
			}
			return posErrorf(x.name, a.Pos, "%s has no parameter -%s%s", c.Name, a.Param, suggestParam(cmd, a.Param))
		}
	}
	return nil
}

func (x *executor) checkValue(v ems.Value) error {
	switch v := v.(type) {
	case *ems.SubPipeline:
		if len(v.Pipeline.Commands) == 1 && strings.EqualFold(v.Pipeline.Commands[0].Name, "Get-Credential") {
			return nil
		}
		return x.check(v.Pipeline)
	case *ems.List:
		for _, it := range v.Items {
			if err := x.checkValue(it); err != nil {
				return err
			}
		}
	case *ems.ScriptBlock:
		return posErrorf(x.name, v.At, "a script block is only accepted by Where-Object")
	}
	return nil
}

// skipParam: -Confirm and -WhatIf are common parameters in PowerShell; a
// command without its own flag for them never asks, and exec runs a
// -WhatIf line against a copy of the store (see invoke).
func skipParam(cmd *cobra.Command, p string) bool {
	if ignoredParam(p) {
		return true
	}
	for _, common := range []string{"confirm", "whatif"} {
		if strings.EqualFold(p, common) && cmd.Flags().Lookup(common) == nil {
			return true
		}
	}
	return false
}

// ignoredParam are PowerShell's common parameters that mean nothing here.
func ignoredParam(p string) bool {
	switch strings.ToLower(p) {
	case "domaincontroller", "erroraction", "warningaction", "verbose", "debug":
		return true
	}
	return false
}

// suggestParam names the closest parameter, for a typo.
func suggestParam(cmd *cobra.Command, typo string) string {
	want := normalizeFlagName(typo)
	best, bestD := "", 4
	for _, f := range allFlags(cmd) {
		if f.Hidden {
			continue
		}
		if d := editDistance(want, normalizeFlagName(f.Name)); d < bestD {
			best, bestD = psParamName(f), d
		}
	}
	if best == "" {
		return fmt.Sprintf(" (see 'sendconn %s --help')", cmd.CommandPath()[len("sendconn "):])
	}
	return fmt.Sprintf("; did you mean -%s?", best)
}

// psParamName is the Exchange spelling of a flag: its annotation, or the
// flag's words run together.
func psParamName(f *pflag.Flag) string {
	if n := f.Annotations[psNameAnnotation]; len(n) > 0 && !strings.Contains(n[0], " ") {
		return n[0]
	}
	var b strings.Builder
	for _, w := range strings.Split(f.Name, "-") {
		if w != "" {
			b.WriteString(strings.ToUpper(w[:1]) + w[1:])
		}
	}
	return b.String()
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

func filterBlock(name string, c *ems.Command) (ems.Expr, error) {
	var block *ems.ScriptBlock
	for _, a := range c.Args {
		sb, ok := a.Value.(*ems.ScriptBlock)
		if !ok || (a.Param != "" && !strings.EqualFold(a.Param, "FilterScript")) || block != nil {
			return nil, posErrorf(name, a.Pos, "%s takes one script block: where {$_.Enabled -eq $true}", c.Name)
		}
		block = sb
	}
	if block == nil {
		return nil, posErrorf(name, c.Pos, "%s needs a script block: where {$_.Enabled -eq $true}", c.Name)
	}
	return block.Expr, nil
}

// formatOptions maps a formatting cmdlet onto sendconn's output options.
func formatOptions(name string, c *ems.Command) (outputOptions, error) {
	o := outputOptions{Format: formatCmdlets[strings.ToLower(c.Name)]}
	for _, a := range c.Args {
		switch {
		case a.Param == "" || strings.EqualFold(a.Param, "Property"):
			if o.Format == "csv" && a.Param == "" {
				// Export-Csv's positional parameter is -Path.
				if s, ok := scalarText(a.Value); ok {
					o.path = s
					continue
				}
			}
			props, err := wordList(name, a.Value)
			if err != nil {
				return o, err
			}
			o.Properties = append(o.Properties, props...)
		case o.Format == "csv" && (strings.EqualFold(a.Param, "Path") || strings.EqualFold(a.Param, "LiteralPath")):
			s, ok := scalarText(a.Value)
			if !ok {
				return o, posErrorf(name, a.Pos, "-%s needs a file name", a.Param)
			}
			o.path = s
		case slices.ContainsFunc([]string{"AutoSize", "Wrap", "NoTypeInformation", "Depth", "Compress", "Force", "Encoding"}, func(s string) bool { return strings.EqualFold(s, a.Param) }):
			// Presentation details sendconn's printers decide for themselves.
		default:
			return o, posErrorf(name, a.Pos, "%s: -%s is not supported (only the property names%s)", c.Name, a.Param, map[bool]string{true: " and -Path", false: ""}[o.Format == "csv"])
		}
	}
	if o.Format == "csv" && o.path == "" {
		return o, posErrorf(name, c.Pos, "Export-Csv needs -Path FILE")
	}
	if len(o.Properties) > 4 && strings.HasPrefix(strings.ToLower(c.Name), "select") {
		o.Format = "list" // PowerShell lists objects with more than four properties
	}
	return o, nil
}

func wordList(name string, v ems.Value) ([]string, error) {
	if l, ok := v.(*ems.List); ok {
		var out []string
		for _, it := range l.Items {
			w, err := wordList(name, it)
			if err != nil {
				return nil, err
			}
			out = append(out, w...)
		}
		return out, nil
	}
	if s, ok := scalarText(v); ok {
		return []string{s}, nil
	}
	return nil, posErrorf(name, v.Pos(), "expected a property name")
}

func scalarText(v ems.Value) (string, bool) {
	switch v := v.(type) {
	case *ems.String:
		return v.Text, true
	case *ems.Number:
		return v.Text, true
	case *ems.Bool:
		return strconv.FormatBool(v.Value), true
	case *ems.Null:
		return "", true
	}
	return "", false
}

// statement runs one statement: a pipeline, its output printed, or kept
// in a variable.
func (x *executor) statement(ctx context.Context, st *ems.Statement) error {
	p := st.Pipeline
	var in *objectSet
	var selected []string // Select-Object's properties, for the formatting after it
	cmds := p.Commands
	if p.Input != nil {
		set, err := x.valueObjects(ctx, p.Input)
		if err != nil {
			return err
		}
		in = set
	}
	for i, c := range cmds {
		name := strings.ToLower(c.Name)
		last := i == len(cmds)-1
		switch {
		case isFilter(name):
			expr, _ := filterBlock(x.name, c)
			kept, err := filterObjects(in, expr)
			if err != nil {
				return fmt.Errorf("%s: %w", c.Pos, err)
			}
			in = kept
			continue
		case formatCmdlets[name] != "":
			o, _ := formatOptions(x.name, c)
			if isSelect(name) && !last {
				selected = o.Properties
				continue
			}
			if len(o.Properties) == 0 {
				o.Properties = selected
			}
			return x.format(in, o)
		}
		// A cmdlet: the previous stage's objects are its identities.
		var ids []string
		if in != nil {
			for _, obj := range in.objs {
				ids = append(ids, in.kind.Identity(obj))
			}
			if len(ids) == 0 {
				return nil // nothing came through the pipeline
			}
		}
		keep := !last || st.Assign != ""
		out, err := x.invoke(ctx, c, ids, keep)
		if err != nil {
			return err
		}
		in = out
	}
	if st.Assign != "" {
		if in == nil {
			in = &objectSet{}
		}
		x.vars[strings.ToLower(st.Assign)] = in
		return nil
	}
	if len(cmds) == 0 || isFilter(cmds[len(cmds)-1].Name) {
		return x.format(in, outputOptions{Format: "table"})
	}
	return nil
}

// filterObjects keeps the objects the script block is true for, reading
// properties as the json output names them.
func filterObjects(in *objectSet, expr ems.Expr) (*objectSet, error) {
	if in == nil || in.kind == nil {
		return in, nil
	}
	out := &objectSet{kind: in.kind}
	for _, obj := range in.objs {
		m, err := objectMap(in.kind, obj)
		if err != nil {
			return nil, err
		}
		v, err := ems.Eval(expr, m)
		if err != nil {
			return nil, err
		}
		if ems.Truthy(v) {
			out.objs = append(out.objs, obj)
		}
	}
	return out, nil
}

func objectMap(kind *objectKind, obj any) (map[string]any, error) {
	b, err := marshalObjects(kind.allColumns(), []any{obj})
	if err != nil {
		return nil, err
	}
	var ms []map[string]any
	if err := json.Unmarshal(b, &ms); err != nil || len(ms) != 1 {
		return nil, fmt.Errorf("object as json: %v", err)
	}
	return ms[0], nil
}

func (x *executor) format(in *objectSet, o outputOptions) error {
	if in == nil || in.kind == nil || len(in.objs) == 0 {
		return nil
	}
	w := x.app.IO.Out
	if o.path != "" {
		f, err := os.Create(o.path)
		if err != nil {
			return fmt.Errorf("export-csv: %w", err)
		}
		defer f.Close()
		w = f
	}
	if err := o.validate(in.kind); err != nil {
		return err
	}
	return printObjects(w, in.kind, in.objs, o)
}

// valueObjects turns a pipeline's leading value into objects: a variable
// or a parenthesised pipeline.
func (x *executor) valueObjects(ctx context.Context, v ems.Value) (*objectSet, error) {
	switch v := v.(type) {
	case *ems.Var:
		set, ok := x.vars[strings.ToLower(v.Name)]
		if !ok {
			return nil, fmt.Errorf("%s: $%s is not set", v.At, v.Name)
		}
		if len(v.Path) > 0 {
			return nil, fmt.Errorf("%s: $%s.%s: only whole objects can be piped", v.At, v.Name, strings.Join(v.Path, "."))
		}
		return set, nil
	case *ems.SubPipeline:
		return x.subPipeline(ctx, v.Pipeline)
	}
	return nil, fmt.Errorf("%s: only a variable or a command can start a pipeline", v.Pos())
}

func (x *executor) subPipeline(ctx context.Context, p *ems.Pipeline) (*objectSet, error) {
	var captured *objectSet
	st := &ems.Statement{Assign: "\x00sub", Pipeline: p}
	if err := x.statement(ctx, st); err != nil {
		return nil, err
	}
	captured = x.vars["\x00sub"]
	delete(x.vars, "\x00sub")
	return captured, nil
}

// invoke runs one cmdlet in-process with identities from the pipeline
// (appended to its positional arguments). With keep, what it would print
// is returned instead.
func (x *executor) invoke(ctx context.Context, c *ems.Command, ids []string, keep bool) (*objectSet, error) {
	path, cmd, err := x.cmdletPath(c)
	if err != nil {
		return nil, err
	}
	env := map[string]string{}
	flags, positional, err := x.arguments(ctx, c, cmd, env)
	if err != nil {
		return nil, err
	}
	storePath := x.storePath
	if wantsWhatIf(c) && cmd.Flags().Lookup("whatif") == nil {
		tmp, cleanup, err := copyStore(ctx, x.app, x.storePath)
		if err != nil {
			return nil, err
		}
		defer cleanup()
		storePath = tmp
		fmt.Fprintf(x.app.IO.ErrOut, "what if: %s runs against a copy of the store; nothing is changed\n", c.Name)
	}
	argv := append([]string{}, path...)
	argv = append(argv, "--store="+storePath)
	if x.app.configFile != "" {
		argv = append(argv, "--config="+x.app.configFile)
	}
	argv = append(argv, flags...)
	argv = append(argv, "--")
	argv = append(argv, positional...)
	argv = append(argv, ids...)

	sub := *x.app
	sub.cfg = nil
	sub.capture = nil
	sub.IO = &IOStreams{In: strings.NewReader(""), Out: x.app.IO.Out, ErrOut: x.app.IO.ErrOut}
	getenv := x.app.Getenv
	sub.Getenv = func(k string) string {
		if v, ok := env[k]; ok {
			return v
		}
		return getenv(k)
	}
	var out *objectSet
	if keep {
		out = &objectSet{}
		sub.capture = func(kind *objectKind, objs []any) {
			out.kind = kind
			out.objs = append(out.objs, objs...)
		}
	}
	root := newRootCmd(&sub)
	root.SetArgs(argv)
	if err := root.ExecuteContext(ctx); err != nil {
		return nil, err
	}
	return out, nil
}

// arguments turns a cmdlet's parameters into sendconn flags and its
// positional values into arguments.
func (x *executor) arguments(ctx context.Context, c *ems.Command, cmd *cobra.Command, env map[string]string) (flags, positional []string, err error) {
	for _, a := range c.Args {
		if a.Param == "" {
			vals, err := x.values(ctx, a.Value)
			if err != nil {
				return nil, nil, err
			}
			positional = append(positional, vals...)
			continue
		}
		if skipParam(cmd, a.Param) {
			continue
		}
		f := lookupFlag(cmd, a.Param, true)
		switch {
		case f.Name == "authentication-credential" || f.Name == "auth-username" && isCredential(a.Value):
			user, err := x.credential(a, env)
			if err != nil {
				return nil, nil, err
			}
			flags = append(flags, "--auth-username="+user)
			continue
		case isBoolFlag(f):
			if a.Value == nil {
				flags = append(flags, "--"+f.Name)
				continue
			}
			if b, ok := a.Value.(*ems.Bool); ok {
				flags = append(flags, "--"+f.Name+"="+strconv.FormatBool(b.Value))
				continue
			}
			if a.Colon {
				s, _ := scalarText(a.Value)
				flags = append(flags, "--"+f.Name+"="+s)
				continue
			}
			// "-Custom X": a switch followed by a positional value.
			flags = append(flags, "--"+f.Name)
			vals, err := x.values(ctx, a.Value)
			if err != nil {
				return nil, nil, err
			}
			positional = append(positional, vals...)
			continue
		case a.Value == nil:
			return nil, nil, fmt.Errorf("%s: -%s needs a value", a.Pos, a.Param)
		}
		if h, ok := a.Value.(*ems.Hashtable); ok {
			more, err := x.delta(ctx, cmd, f, h)
			if err != nil {
				return nil, nil, err
			}
			flags = append(flags, more...)
			continue
		}
		vals, err := x.values(ctx, a.Value)
		if err != nil {
			return nil, nil, err
		}
		if f.Name == "identity" {
			positional = append(positional, vals...)
			continue
		}
		flags = append(flags, "--"+f.Name+"="+strings.Join(vals, ","))
	}
	return flags, positional, nil
}

// wantsWhatIf reports -WhatIf (or -WhatIf:$true) on the command line.
func wantsWhatIf(c *ems.Command) bool {
	for _, a := range c.Args {
		if strings.EqualFold(a.Param, "WhatIf") {
			b, isBool := a.Value.(*ems.Bool)
			return a.Value == nil || !isBool || b.Value || !a.Colon
		}
	}
	return false
}

func isCredential(v ems.Value) bool {
	sp, ok := v.(*ems.SubPipeline)
	return ok && len(sp.Pipeline.Commands) == 1 && strings.EqualFold(sp.Pipeline.Commands[0].Name, "Get-Credential")
}

// delta maps @{Add=…; Remove=…} onto --add-… and --remove-….
func (x *executor) delta(ctx context.Context, cmd *cobra.Command, f *pflag.Flag, h *ems.Hashtable) ([]string, error) {
	var out []string
	for _, e := range h.Entries {
		op := strings.ToLower(e.Key)
		if op != "add" && op != "remove" {
			return nil, fmt.Errorf("%s: @{%s=…}: only Add and Remove change a list", e.Pos, e.Key)
		}
		df := cmd.Flags().Lookup(op + "-" + f.Name)
		if df == nil {
			return nil, fmt.Errorf("%s: -%s is not a list that takes @{Add=…; Remove=…}", e.Pos, psParamName(f))
		}
		vals, err := x.values(ctx, e.Value)
		if err != nil {
			return nil, err
		}
		out = append(out, "--"+df.Name+"="+strings.Join(vals, ","))
	}
	return out, nil
}

// values is what a value means as arguments: a list's items, a
// variable's identities.
func (x *executor) values(ctx context.Context, v ems.Value) ([]string, error) {
	switch v := v.(type) {
	case *ems.List:
		var out []string
		for _, it := range v.Items {
			vals, err := x.values(ctx, it)
			if err != nil {
				return nil, err
			}
			out = append(out, vals...)
		}
		return out, nil
	case *ems.Var, *ems.SubPipeline:
		set, err := x.valueObjects(ctx, v)
		if err != nil {
			return nil, err
		}
		if vr, ok := v.(*ems.Var); ok && len(vr.Path) > 0 {
			return propertyValues(set, vr.Path[0])
		}
		var ids []string
		if set != nil && set.kind != nil {
			for _, obj := range set.objs {
				ids = append(ids, set.kind.Identity(obj))
			}
		}
		return ids, nil
	case *ems.Hashtable:
		return nil, fmt.Errorf("%s: @{…} only changes a list parameter", v.At)
	case *ems.ScriptBlock:
		return nil, fmt.Errorf("%s: a script block is only accepted by Where-Object", v.At)
	}
	s, _ := scalarText(v)
	return []string{s}, nil
}

func propertyValues(set *objectSet, prop string) ([]string, error) {
	var out []string
	if set == nil || set.kind == nil {
		return nil, nil
	}
	for _, obj := range set.objs {
		m, err := objectMap(set.kind, obj)
		if err != nil {
			return nil, err
		}
		for k, v := range m {
			if strings.EqualFold(k, prop) {
				out = append(out, fmt.Sprint(v))
			}
		}
	}
	return out, nil
}

// credential handles -AuthenticationCredential (Get-Credential): asked
// for on a terminal, refused otherwise. The password reaches the command
// the way $SENDCONN_AUTH_PASSWORD would, never as an argument.
func (x *executor) credential(a *ems.Arg, env map[string]string) (string, error) {
	if !isCredential(a.Value) {
		return "", &usageError{msg: fmt.Sprintf("%s: -%s takes (Get-Credential)", a.Pos, a.Param),
			hint: "or use sendconn's own -AuthUsername USER -AuthPasswordFile FILE"}
	}
	in, ok := x.app.IO.In.(*os.File)
	if !ok || !x.app.IO.StdinTTY || !term.IsTerminal(int(in.Fd())) {
		return "", &usageError{msg: fmt.Sprintf("%s: (Get-Credential) needs a terminal to ask for the password", a.Pos),
			hint: "in a script, use -AuthUsername USER -AuthPasswordFile FILE (a file holding the password) instead"}
	}
	fmt.Fprint(x.app.IO.ErrOut, "User name: ")
	user, err := bufio.NewReader(in).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("read user name: %w", err)
	}
	fmt.Fprint(x.app.IO.ErrOut, "Password: ")
	pw, err := term.ReadPassword(int(in.Fd()))
	fmt.Fprintln(x.app.IO.ErrOut)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	env[passwordEnv] = string(pw)
	return strings.TrimSpace(user), nil
}

// copyStore copies the store spec names into a bbolt file of its own for
// --whatif, whatever kind of store it is.
func copyStore(ctx context.Context, app *App, spec string) (string, func(), error) {
	dir, err := os.MkdirTemp("", "sendconn-whatif-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { os.RemoveAll(dir) }
	tmp := filepath.Join(dir, "store.db")
	if err := copyInto(ctx, app, spec, tmp); err != nil {
		cleanup()
		return "", nil, fmt.Errorf("copy the store for --whatif: %w", err)
	}
	return tmp, cleanup, nil
}

func copyInto(ctx context.Context, app *App, from, to string) error {
	src, err := openStore(app.cfg, from, app.Now)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := openStore(app.cfg, to, app.Now)
	if err != nil {
		return err
	}
	defer dst.Close()
	_, err = store.Copy(ctx, src, dst)
	return err
}
