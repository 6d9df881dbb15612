package main

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/renderer"
	"github.com/olekukonko/tablewriter/tw"
	"go.yaml.in/yaml/v3"
)

// column is one property of an object kind as printers see it. Get returns
// nil, string, bool, int, []string, or a value with String() for text and
// MarshalJSON() for json/yaml.
type column struct {
	Name string
	Get  func(obj any) any
	// Alias columns are another name for a property, such as the
	// "Inherited" heading Exchange's default permission view gives
	// IsInherited: selectable by name, never part of "every property".
	Alias bool
}

// objectKind is the one description every printer works from: a new
// property is one more column.
type objectKind struct {
	Name        string // "send connector", for messages
	Columns     []column
	DefaultView []string
	Identity    func(obj any) string
}

func (k *objectKind) columnNames() []string {
	names := make([]string, len(k.Columns))
	for i, c := range k.Columns {
		names[i] = c.Name
	}
	return names
}

// allColumns is every property once, aliases left out.
func (k *objectKind) allColumns() []column {
	out := make([]column, 0, len(k.Columns))
	for _, c := range k.Columns {
		if !c.Alias {
			out = append(out, c)
		}
	}
	return out
}

// outputFormats are the values of -o.
var outputFormats = []string{"table", "list", "json", "yaml", "csv", "name"}

// outputOptions are the flags every command that prints shares.
type outputOptions struct {
	Format     string
	Properties []string
	NoHeaders  bool
	// path is where exec's Export-Csv writes; empty is standard output.
	path string
}

// validate checks the format and properties before anything runs, so a typo
// fails before the store is touched.
func (o *outputOptions) validate(kind *objectKind) error {
	if !contains(outputFormats, o.Format) {
		return usageErrorf("unknown output format %q (valid: %s)", o.Format, strings.Join(outputFormats, ", "))
	}
	_, err := o.selectColumns(kind)
	return err
}

// selectColumns resolves --property (case-insensitive; "*" is every
// property) or the format's default set.
func (o *outputOptions) selectColumns(kind *objectKind) ([]column, error) {
	names := o.Properties
	if len(names) == 0 {
		if o.Format == "table" {
			names = kind.DefaultView
		} else {
			return kind.allColumns(), nil
		}
	}
	var out []column
	for _, raw := range names {
		for _, name := range strings.Split(raw, ",") {
			name = strings.TrimSpace(name)
			switch name {
			case "":
				continue
			case "*":
				out = append(out, kind.allColumns()...)
				continue
			}
			found := false
			for _, c := range kind.Columns {
				if strings.EqualFold(c.Name, name) {
					out = append(out, c)
					found = true
					break
				}
			}
			if !found {
				return nil, usageErrorf("unknown property %q for %s (valid: %s)", name, kind.Name, strings.Join(kind.columnNames(), ", "))
			}
		}
	}
	return out, nil
}

// pointersTo returns a pointer to each element of xs, as printers take
// them.
func pointersTo[T any](xs []T) []any {
	objs := make([]any, len(xs))
	for i := range xs {
		objs[i] = &xs[i]
	}
	return objs
}

// printObjects writes objs in the chosen format.
func printObjects(w io.Writer, kind *objectKind, objs []any, o outputOptions) error {
	if o.Format == "name" {
		for _, obj := range objs {
			fmt.Fprintln(w, kind.Identity(obj))
		}
		return nil
	}
	cols, err := o.selectColumns(kind)
	if err != nil {
		return err
	}
	switch o.Format {
	case "table":
		return printTable(w, cols, objs, o.NoHeaders)
	case "list":
		return printList(w, cols, objs)
	case "json":
		b, err := marshalObjects(cols, objs)
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	case "yaml":
		return printYAML(w, cols, objs)
	case "csv":
		return printCSV(w, cols, objs, o.NoHeaders)
	}
	return usageErrorf("unknown output format %q (valid: %s)", o.Format, strings.Join(outputFormats, ", "))
}

// textOf formats a value for table and list: booleans as True/False and
// lists as {a, b}, as PowerShell shows them.
func textOf(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		if x {
			return "True"
		}
		return "False"
	case int:
		return strconv.Itoa(x)
	case []string:
		return "{" + strings.Join(x, ", ") + "}"
	case fmt.Stringer:
		return x.String()
	}
	return fmt.Sprint(v)
}

// csvOf formats a value for csv: scalars as json/yaml carry them (sizes in
// bytes), lists joined with commas, booleans as True/False like Export-Csv.
func csvOf(v any) (string, error) {
	switch x := v.(type) {
	case nil, string, bool, int:
		return textOf(x), nil
	case []string:
		return strings.Join(x, ","), nil
	case json.Marshaler:
		b, err := x.MarshalJSON()
		if err != nil {
			return "", err
		}
		var s string
		if json.Unmarshal(b, &s) == nil {
			return s, nil
		}
		if len(b) > 0 && (b[0] == '{' || b[0] == '[') {
			return textOf(v), nil
		}
		return string(b), nil
	}
	return textOf(v), nil
}

func printTable(w io.Writer, cols []column, objs []any, noHeaders bool) error {
	if len(objs) == 0 {
		return nil
	}
	var buf bytes.Buffer
	t := tablewriter.NewTable(&buf,
		tablewriter.WithRenderer(renderer.NewBlueprint(tw.Rendition{
			Borders:  tw.BorderNone,
			Symbols:  tw.NewSymbols(tw.StyleNone),
			Settings: tw.Settings{Lines: tw.LinesNone, Separators: tw.SeparatorsNone},
		})),
		tablewriter.WithHeaderAlignment(tw.AlignLeft),
		tablewriter.WithRowAlignment(tw.AlignLeft),
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithRowAutoWrap(tw.WrapNone),
		tablewriter.WithHeaderAutoWrap(tw.WrapNone),
		tablewriter.WithPadding(tw.Padding{Right: "   ", Overwrite: true}),
	)
	if !noHeaders {
		header := make([]any, len(cols))
		for i, c := range cols {
			header[i] = c.Name
		}
		t.Header(header...)
	}
	for _, obj := range objs {
		row := make([]string, len(cols))
		for i, c := range cols {
			row[i] = sanitizeCell(textOf(c.Get(obj)))
		}
		if err := t.Append(row); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return err
	}
	// The borderless renderer pads the last column; trailing blanks only
	// get in the way of diff, grep and awk.
	for _, line := range strings.Split(strings.TrimRight(buf.String(), "\n"), "\n") {
		if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
			return err
		}
	}
	return nil
}

// sanitizeCell keeps one object on one line of a table.
func sanitizeCell(s string) string {
	return strings.NewReplacer("\r\n", " ", "\n", " ", "\r", " ", "\t", " ").Replace(s)
}

func printList(w io.Writer, cols []column, objs []any) error {
	width := 0
	for _, c := range cols {
		width = max(width, len(c.Name))
	}
	for i, obj := range objs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		for _, c := range cols {
			line := fmt.Sprintf("%-*s : %s", width, c.Name, textOf(c.Get(obj)))
			if _, err := fmt.Fprintln(w, strings.TrimRight(line, " ")); err != nil {
				return err
			}
		}
	}
	return nil
}

// nativeOf encodes a value as JSON: lists are arrays (never null), values
// with MarshalJSON use it, and fmt.Stringers without it use their text.
func nativeOf(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case []string:
		if x == nil {
			x = []string{}
		}
		return json.Marshal(x)
	case json.Marshaler:
		return x.MarshalJSON()
	case fmt.Stringer:
		return json.Marshal(x.String())
	}
	return json.Marshal(v)
}

// marshalObjects writes an indented JSON array whose objects keep the
// property order (a Go map would sort the keys).
func marshalObjects(cols []column, objs []any) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('[')
	for i, obj := range objs {
		if i > 0 {
			buf.WriteByte(',')
		}
		buf.WriteByte('{')
		for j, c := range cols {
			if j > 0 {
				buf.WriteByte(',')
			}
			key, _ := json.Marshal(c.Name)
			val, err := nativeOf(c.Get(obj))
			if err != nil {
				return nil, fmt.Errorf("encode %s: %w", c.Name, err)
			}
			buf.Write(key)
			buf.WriteByte(':')
			buf.Write(val)
		}
		buf.WriteByte('}')
	}
	buf.WriteByte(']')
	var out bytes.Buffer
	if err := json.Indent(&out, buf.Bytes(), "", "  "); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

// printYAML converts the ordered JSON to a YAML document (JSON is YAML), in
// block style with plain keys; string values stay quoted so that no YAML
// reader mistakes "00:10:00" or "True" for something else.
func printYAML(w io.Writer, cols []column, objs []any) error {
	b, err := marshalObjects(cols, objs)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(b, &doc); err != nil {
		return err
	}
	blockStyle(&doc)
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(&doc); err != nil {
		return err
	}
	return enc.Close()
}

func blockStyle(n *yaml.Node) {
	switch n.Kind {
	case yaml.SequenceNode:
		if len(n.Content) > 0 {
			n.Style = 0
		}
	case yaml.MappingNode:
		n.Style = 0
		for i := 0; i < len(n.Content); i += 2 {
			n.Content[i].Style = 0
		}
	}
	for _, c := range n.Content {
		blockStyle(c)
	}
}

func printCSV(w io.Writer, cols []column, objs []any, noHeaders bool) error {
	cw := csv.NewWriter(w)
	if !noHeaders {
		header := make([]string, len(cols))
		for i, c := range cols {
			header[i] = c.Name
		}
		if err := cw.Write(header); err != nil {
			return err
		}
	}
	for _, obj := range objs {
		row := make([]string, len(cols))
		for i, c := range cols {
			s, err := csvOf(c.Get(obj))
			if err != nil {
				return err
			}
			row[i] = s
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
