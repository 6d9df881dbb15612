package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/store"
)

// Exit codes. They are documented in docs/exit-codes.md and never
// renumbered: scripts depend on them.
const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 2 // bad usage or a validation failure
	exitNotFound = 3
	exitConflict = 4 // already exists
	exitBusy     = 5 // store locked by another process, or etcd unreachable
)

// usageError is a mistake in how the command was called.
type usageError struct {
	msg  string
	hint string
}

func (e *usageError) Error() string { return e.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// hinted attaches a "hint:" line to any error.
type hinted struct {
	err  error
	hint string
}

func (e *hinted) Error() string { return e.err.Error() }
func (e *hinted) Unwrap() error { return e.err }

func withHint(err error, hint string) error {
	if err == nil {
		return nil
	}
	return &hinted{err: err, hint: hint}
}

// silentError carries an exit code whose message was already printed.
type silentError struct{ code int }

func (e *silentError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// exitCode maps an error to the process exit code; this is the only place
// that does.
func exitCode(err error) int {
	var silent *silentError
	var usage *usageError
	var invalid *connector.ValidationError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &silent):
		return silent.code
	case errors.As(err, &usage), errors.As(err, &invalid), isCobraUsageError(err):
		return exitUsage
	case errors.Is(err, store.ErrBusy), errors.Is(err, store.ErrUnavailable):
		return exitBusy
	case errors.Is(err, store.ErrNotFound), errors.As(err, new(*notFoundError)):
		return exitNotFound
	case errors.Is(err, store.ErrExists):
		return exitConflict
	}
	return exitFailure
}

// isCobraUsageError recognises cobra's own argument errors, which it
// returns as plain errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, prefix := range []string{"unknown command ", "accepts ", "requires ", "unknown flag", "unknown shorthand flag", "flag needs an argument", "invalid argument "} {
		if strings.HasPrefix(msg, prefix) {
			return true
		}
	}
	return false
}

// printError writes err as "sendconn: …" lines: one per validation
// problem, then a hint where one helps.
func printError(w io.Writer, err error) {
	var silent *silentError
	if errors.As(err, &silent) {
		return
	}
	// Every subject on the way down names where a validation problem
	// is: "script.ps1: line 3: Relay: …".
	prefix := ""
	for e := err; e != nil; e = errors.Unwrap(e) {
		if subject, ok := e.(*subjectError); ok {
			prefix += subject.subject + ": "
		}
	}
	var invalid *connector.ValidationError
	if errors.As(err, &invalid) {
		for _, p := range invalid.Problems {
			fmt.Fprintf(w, "sendconn: %s%s\n", prefix, p.Error())
		}
	} else {
		fmt.Fprintf(w, "sendconn: %s\n", err)
	}
	if hint := hintFor(err); hint != "" {
		fmt.Fprintf(w, "hint: %s\n", hint)
	}
}

func hintFor(err error) string {
	var h *hinted
	var usage *usageError
	switch {
	case errors.As(err, &h):
		return h.hint
	case errors.As(err, &usage) && usage.hint != "":
		return usage.hint
	case errors.Is(err, store.ErrBusy):
		return "another sendconn command is writing the store; retry, or wait longer with --store-timeout"
	case isCobraUsageError(err):
		return "see 'sendconn --help' or 'sendconn COMMAND --help'"
	}
	return ""
}
