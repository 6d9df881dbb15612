package main

import (
	"bufio"
	"context"
	"fmt"
	"strings"

	"github.com/spf13/pflag"

	"github.com/sendconn/sendconn/pkg/store"
)

// removal is what every remove command shares: resolve the identities, say
// what would go (--whatif), ask (or insist on --confirm=false without a
// terminal), then resolve again and delete everything in one transaction,
// so that a concurrent change between the question and the delete cannot
// remove something the admin did not see.
type removal[T any] struct {
	what    string // "Send connector", for messages
	find    func(tx store.Tx, identity string) (T, error)
	guid    func(T) string
	name    func(T) string
	delete  func(tx store.Tx, guid string) error
	confirm bool // --confirm (true unless --confirm=false or -y)
	whatIf  bool
}

// run removes what ids name and returns it; nil when nothing was removed
// (--whatif, or the admin said no).
func (r removal[T]) run(ctx context.Context, app *App, ids []string, stdinUsed bool) ([]T, error) {
	var targets []T
	resolve := func(tx store.Tx) error {
		targets = nil
		seen := map[string]bool{}
		for _, id := range ids {
			obj, err := r.find(tx, id)
			if err != nil {
				return err
			}
			if !seen[r.guid(obj)] {
				seen[r.guid(obj)] = true
				targets = append(targets, obj)
			}
		}
		return nil
	}
	s := app.store()
	if err := s.View(ctx, resolve); err != nil {
		return nil, err
	}
	names := make([]string, len(targets))
	for i, obj := range targets {
		names[i] = r.name(obj)
	}
	if r.whatIf {
		for _, n := range names {
			fmt.Fprintf(app.IO.Out, "What if: Removing %s %q.\n", r.what, n)
		}
		return nil, nil
	}
	if r.confirm {
		ok, err := confirmRemoval(app, r.what, names, stdinUsed)
		if err != nil || !ok {
			return nil, err
		}
	}
	err := s.Update(ctx, func(tx store.Tx) error {
		if err := resolve(tx); err != nil {
			return err
		}
		for _, obj := range targets {
			if err := r.delete(tx, r.guid(obj)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return targets, nil
}

func addConfirmFlags(fs *pflag.FlagSet, confirm, yes *bool) {
	fs.BoolVar(confirm, "confirm", true, "ask before removing; --confirm=false removes without asking")
	annotate(fs.Lookup("confirm"), psNameAnnotation, "Confirm")
	fs.BoolVarP(yes, "yes", "y", false, "remove without asking (same as --confirm=false)")
}

// confirmRemoval asks on a terminal; without one there is nobody to ask, so
// the admin must have said --confirm=false.
func confirmRemoval(app *App, what string, names []string, stdinUsed bool) (bool, error) {
	if !app.IO.StdinTTY || stdinUsed {
		return false, &usageError{msg: "refusing to remove without confirmation (no terminal to ask on)",
			hint: "add --confirm=false or -y to remove without asking"}
	}
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = fmt.Sprintf("%q", n)
	}
	fmt.Fprintf(app.IO.ErrOut, "Remove %s %s? [y/N] ", what, strings.Join(quoted, ", "))
	answer, _ := bufio.NewReader(app.IO.In).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return true, nil
	}
	fmt.Fprintln(app.IO.ErrOut, "Nothing removed.")
	return false, nil
}
