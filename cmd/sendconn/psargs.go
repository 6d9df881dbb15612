package main

import (
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Exchange admins type cmdlet and parameter names they know; Linux admins
// type kebab-case flags. rewriteArgs turns the first into the second before
// cobra parses anything, so every command gets both for free:
//
//   - command names match case-insensitively, and each command also answers
//     to its cmdlet name (annotation "cmdlet"), which may map to a nested
//     command: "Get-ADPermission" is "permission get";
//   - long flags match case-insensitively and without dashes or
//     underscores: --DNSRoutingEnabled is --dns-routing-enabled;
//   - single-dash PowerShell parameters (-Name x, -Name:x, -Custom,
//     -Enabled $false) become long flags; a unique prefix is enough, as in
//     PowerShell (-SourceTransportServer). Single-letter flags such as -o
//     and -y stay short flags;
//   - $true, $false and $null become true, false and the empty string;
//   - -? asks for help, as in PowerShell.
//
// Anything it does not recognise is passed through for cobra to report.

const cmdletAnnotation = "cmdlet"

func rewriteArgs(root *cobra.Command, args []string) []string {
	out := make([]string, 0, len(args))
	cmd := root
	cmdlets := cmdletIndex(root)
	i := 0
	// Command words and any flags given before them.
	for i < len(args) {
		a := args[i]
		if a == "--" {
			return append(out, args[i:]...)
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			consumed := rewriteFlag(cmd, args, i, &out)
			if consumed == 0 {
				break
			}
			i += consumed
			continue
		}
		if path, ok := cmdlets[strings.ToLower(a)]; ok && cmd == root {
			out = append(out, path...)
			cmd = findPath(root, path)
			i++
			continue
		}
		sub := findSub(cmd, a)
		if sub == nil {
			break
		}
		out = append(out, sub.Name())
		cmd = sub
		i++
	}
	// Arguments and flags of the command found.
	for i < len(args) {
		if args[i] == "--" {
			out = append(out, args[i:]...)
			break
		}
		if strings.HasPrefix(args[i], "-") && len(args[i]) > 1 {
			if n := rewriteFlag(cmd, args, i, &out); n > 0 {
				i += n
				continue
			}
		}
		out = append(out, psLiteral(args[i]))
		i++
	}
	return out
}

// cmdletIndex maps lower-cased cmdlet names to command paths.
func cmdletIndex(root *cobra.Command) map[string][]string {
	index := map[string][]string{}
	var walk func(c *cobra.Command, path []string)
	walk = func(c *cobra.Command, path []string) {
		for _, sub := range c.Commands() {
			p := append(append([]string{}, path...), sub.Name())
			for _, name := range strings.Split(sub.Annotations[cmdletAnnotation], ",") {
				if name = strings.TrimSpace(name); name != "" {
					index[strings.ToLower(name)] = p
				}
			}
			walk(sub, p)
		}
	}
	walk(root, nil)
	return index
}

func findPath(root *cobra.Command, path []string) *cobra.Command {
	cmd := root
	for _, name := range path {
		cmd = findSub(cmd, name)
	}
	return cmd
}

func findSub(cmd *cobra.Command, name string) *cobra.Command {
	for _, sub := range cmd.Commands() {
		if strings.EqualFold(sub.Name(), name) {
			return sub
		}
		for _, alias := range sub.Aliases {
			if strings.EqualFold(alias, name) {
				return sub
			}
		}
	}
	return nil
}

// normalizeFlagName folds a flag name for matching: lower case, no dashes
// or underscores.
func normalizeFlagName(s string) string {
	return strings.NewReplacer("-", "", "_", "").Replace(strings.ToLower(s))
}

// allFlags lists the flags a command accepts, its own and inherited ones.
func allFlags(cmd *cobra.Command) []*pflag.Flag {
	var flags []*pflag.Flag
	seen := map[string]bool{}
	add := func(f *pflag.Flag) {
		if !seen[f.Name] {
			seen[f.Name] = true
			flags = append(flags, f)
		}
	}
	cmd.LocalFlags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return flags
}

// lookupFlag finds a long flag by its folded name; with prefix set, a
// unique prefix also matches (PowerShell's parameter abbreviation).
func lookupFlag(cmd *cobra.Command, name string, prefix bool) *pflag.Flag {
	n := normalizeFlagName(name)
	if n == "" {
		return nil
	}
	var candidates []*pflag.Flag
	for _, f := range allFlags(cmd) {
		fn := normalizeFlagName(f.Name)
		if fn == n {
			return f
		}
		if prefix && strings.HasPrefix(fn, n) {
			candidates = append(candidates, f)
		}
	}
	if len(candidates) == 1 {
		return candidates[0]
	}
	return nil
}

func isBoolFlag(f *pflag.Flag) bool { return f.NoOptDefVal == "true" }

// rewriteFlag rewrites the flag at args[i] (and its value) into out and
// returns how many arguments it used; 0 means "not a flag I know", and
// nothing is written.
func rewriteFlag(cmd *cobra.Command, args []string, i int, out *[]string) int {
	a := args[i]
	switch {
	case a == "-?":
		*out = append(*out, "--help") // PowerShell's help switch
		return 1
	case strings.HasPrefix(a, "--"):
		name, value, hasValue := strings.Cut(a[2:], "=")
		f := lookupFlag(cmd, name, false)
		if f == nil {
			*out = append(*out, a)
			return 1
		}
		if hasValue {
			*out = append(*out, "--"+f.Name+"="+psLiteral(value))
			return 1
		}
		if isBoolFlag(f) {
			// "--enabled '$false'": the dollar makes it unambiguous.
			if i+1 < len(args) && isPSBool(args[i+1]) {
				*out = append(*out, "--"+f.Name+"="+psLiteral(args[i+1]))
				return 2
			}
			*out = append(*out, "--"+f.Name)
			return 1
		}
		if i+1 < len(args) {
			*out = append(*out, "--"+f.Name+"="+psLiteral(args[i+1]))
			return 2
		}
		*out = append(*out, "--"+f.Name)
		return 1
	case len(a) > 2 && a[0] == '-' && isLetter(a[1]):
		name, value, hasValue := strings.Cut(a[1:], ":")
		f := lookupFlag(cmd, name, true)
		if f == nil {
			return passShort(cmd, args, i, out)
		}
		if hasValue {
			*out = append(*out, "--"+f.Name+"="+psLiteral(value))
			return 1
		}
		if isBoolFlag(f) {
			if i+1 < len(args) && isBoolWord(args[i+1]) {
				*out = append(*out, "--"+f.Name+"="+psLiteral(args[i+1]))
				return 2
			}
			*out = append(*out, "--"+f.Name)
			return 1
		}
		if i+1 < len(args) {
			*out = append(*out, "--"+f.Name+"="+psLiteral(args[i+1]))
			return 2
		}
		*out = append(*out, "--"+f.Name)
		return 1
	case len(a) >= 2 && a[0] == '-':
		return passShort(cmd, args, i, out)
	}
	return 0
}

// passShort passes a short flag through, with its value when it takes one,
// so that the value is not mistaken for a flag or a command word.
func passShort(cmd *cobra.Command, args []string, i int, out *[]string) int {
	a := args[i]
	*out = append(*out, a)
	if len(a) == 2 {
		for _, f := range allFlags(cmd) {
			if f.Shorthand == a[1:] && !isBoolFlag(f) && f.NoOptDefVal == "" && i+1 < len(args) {
				*out = append(*out, args[i+1])
				return 2
			}
		}
	}
	return 1
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isPSBool(s string) bool {
	return strings.EqualFold(s, "$true") || strings.EqualFold(s, "$false")
}

func isBoolWord(s string) bool {
	return isPSBool(s) || strings.EqualFold(s, "true") || strings.EqualFold(s, "false")
}

// psLiteral turns PowerShell's $true, $false and $null into what flags take.
func psLiteral(s string) string {
	switch strings.ToLower(s) {
	case "$true":
		return "true"
	case "$false":
		return "false"
	case "$null":
		return ""
	}
	return s
}
