package connector

import (
	"errors"
	"fmt"
	"strings"
)

// PropertyError is one broken rule about one property of a connector. It names
// the property with its Exchange name, the offending value when there is one,
// and the rule in words; Code is the name Exchange gives the same error
// (reference: Appendix A.4), kept so tests and docs can map one to the other.
type PropertyError struct {
	Property string
	Value    string
	Code     string
	Message  string
}

func (e *PropertyError) Error() string {
	if e.Value != "" {
		return fmt.Sprintf("%s %q: %s", e.Property, e.Value, e.Message)
	}
	return fmt.Sprintf("%s: %s", e.Property, e.Message)
}

// ValidationError carries every broken rule found in one check, so an admin
// sees all of them at once instead of fixing one per run.
type ValidationError struct {
	Problems []*PropertyError
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return strings.Join(msgs, "; ")
}

// Has reports whether one of the problems carries the given Exchange code.
func (e *ValidationError) Has(code string) bool {
	for _, p := range e.Problems {
		if p.Code == code {
			return true
		}
	}
	return false
}

// problems accumulates PropertyErrors; its zero value is ready to use.
type problems struct {
	list []*PropertyError
}

func (ps *problems) add(property, value, code, format string, args ...any) {
	ps.list = append(ps.list, &PropertyError{Property: property, Value: value, Code: code, Message: fmt.Sprintf(format, args...)})
}

// addErr records err against property. A rule error from a parser keeps its
// code; a PropertyError is taken as it is.
func (ps *problems) addErr(property, value string, err error) {
	var pe *PropertyError
	if errors.As(err, &pe) {
		ps.list = append(ps.list, pe)
		return
	}
	var ve *ValidationError
	if errors.As(err, &ve) {
		ps.list = append(ps.list, ve.Problems...)
		return
	}
	code := ""
	var re *ruleError
	if errors.As(err, &re) {
		code = re.code
	}
	ps.list = append(ps.list, &PropertyError{Property: property, Value: value, Code: code, Message: err.Error()})
}

func (ps *problems) err() error {
	if len(ps.list) == 0 {
		return nil
	}
	return &ValidationError{Problems: ps.list}
}

// ruleError is what the value parsers return: the rule that was broken and
// the Exchange code for it, without the property name (the caller knows it).
type ruleError struct {
	code string
	msg  string
}

func (e *ruleError) Error() string { return e.msg }

func ruleErr(code, format string, args ...any) error {
	return &ruleError{code: code, msg: fmt.Sprintf(format, args...)}
}
