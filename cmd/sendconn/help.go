package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Flag annotations used by the help text.
const (
	psNameAnnotation = "powershell-name" // the Exchange parameter spelling
	syntaxAnnotation = "syntax"          // the value syntax shown after the flag
)

func annotate(f *pflag.Flag, key, value string) {
	if f.Annotations == nil {
		f.Annotations = map[string][]string{}
	}
	f.Annotations[key] = []string{value}
}

func annotation(f *pflag.Flag, key string) string {
	if v := f.Annotations[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// installHelp replaces cobra's help with one that shows each flag in both
// spellings: --dns-routing-enabled and -DNSRoutingEnabled.
func installHelp(root *cobra.Command) {
	root.SetHelpFunc(func(cmd *cobra.Command, _ []string) { renderHelp(cmd.OutOrStdout(), cmd) })
	root.SetUsageFunc(func(cmd *cobra.Command) error {
		renderHelp(cmd.OutOrStderr(), cmd)
		return nil
	})
}

func renderHelp(w io.Writer, cmd *cobra.Command) {
	var b strings.Builder
	desc := cmd.Long
	if desc == "" {
		desc = cmd.Short
	}
	if desc != "" {
		b.WriteString(strings.TrimSpace(desc) + "\n\n")
	}
	b.WriteString("Usage:\n")
	if cmd.Runnable() {
		b.WriteString("  " + cmd.UseLine() + "\n")
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("  " + cmd.CommandPath() + " COMMAND [flags]\n")
	}
	if names := cmd.Annotations[cmdletAnnotation]; names != "" {
		b.WriteString("\nAlso answers to: " + strings.ReplaceAll(names, ",", ", ") + " (any case)\n")
	}
	if cmd.Example != "" {
		b.WriteString("\nExamples:\n" + strings.TrimRight(cmd.Example, "\n") + "\n")
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\nCommands:\n")
		width := 0
		for _, sub := range cmd.Commands() {
			if sub.IsAvailableCommand() {
				width = max(width, len(sub.Name()))
			}
		}
		for _, sub := range cmd.Commands() {
			if !sub.IsAvailableCommand() {
				continue
			}
			short := sub.Short
			if c := sub.Annotations[cmdletAnnotation]; c != "" {
				short += " (" + strings.ReplaceAll(c, ",", ", ") + ")"
			}
			fmt.Fprintf(&b, "  %-*s  %s\n", width, sub.Name(), short)
		}
	}
	if local := cmd.LocalFlags(); local.HasAvailableFlags() {
		b.WriteString("\nFlags:\n" + flagUsages(local))
	}
	if inherited := cmd.InheritedFlags(); inherited.HasAvailableFlags() {
		b.WriteString("\nGlobal flags:\n" + flagUsages(inherited))
	}
	if cmd.HasAvailableSubCommands() {
		b.WriteString("\nRun '" + cmd.CommandPath() + " COMMAND --help' for more about a command.\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// flagUsages lists each flag on its own line with its Exchange spelling,
// and the help text wrapped beneath it:
//
//	--dns-routing-enabled[=bool]   -DNSRoutingEnabled
//	    route by the recipient domain's MX records; …
func flagUsages(fs *pflag.FlagSet) string {
	var b strings.Builder
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		left := "    --" + f.Name
		if f.Shorthand != "" {
			left = "-" + f.Shorthand + ", --" + f.Name
		}
		switch syntax := annotation(f, syntaxAnnotation); {
		case isBoolFlag(f):
			left += "[=bool]"
		case syntax != "":
			left += " " + syntax
		case f.Value.Type() != "":
			left += " " + f.Value.Type()
		}
		if ps := annotation(f, psNameAnnotation); ps != "" {
			left += "   -" + ps
		}
		help := f.Usage
		if f.DefValue != "" && f.DefValue != "false" && f.DefValue != "[]" && !strings.Contains(help, "(default") {
			help += " (default " + f.DefValue + ")"
		}
		b.WriteString("  " + left + "\n")
		for _, line := range wrapWords(help, 72) {
			b.WriteString("          " + line + "\n")
		}
	})
	return b.String()
}

// wrapWords breaks text into lines of at most width characters, at spaces.
func wrapWords(text string, width int) []string {
	var lines []string
	line := ""
	for _, w := range strings.Fields(text) {
		if line != "" && len(line)+1+len(w) > width {
			lines = append(lines, line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += w
	}
	if line != "" {
		lines = append(lines, line)
	}
	return lines
}
