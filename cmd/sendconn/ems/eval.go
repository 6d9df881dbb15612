package ems

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EvalError is an error evaluating an expression for one object: an
// invalid wildcard or regular expression, or an ordering comparison
// between values that cannot be converted (25 -lt "abc"). PowerShell
// reports such errors per object and goes on; what to do is the caller's
// choice.
type EvalError struct {
	Pos Pos // of the operator
	Msg string
}

func (e *EvalError) Error() string {
	return fmt.Sprintf("line %d, column %d: %s", e.Pos.Line, e.Pos.Column, e.Msg)
}

// Eval evaluates e with obj as $_ and returns the result: nil, bool,
// string, int64, float64, []any or map[string]any. Use Truthy to decide
// whether Where-Object keeps the object.
//
// obj is normally what encoding/json decodes into an any: map[string]any
// with string, float64, bool, nil, []any and map[string]any values. Go
// integers, float32, []string and map[string]string are accepted too.
// Property names match case-insensitively; a missing property is $null.
func Eval(e Expr, obj any) (any, error) {
	if e == nil {
		return nil, fmt.Errorf("ems: Eval of a nil expression")
	}
	return eval(e, norm(obj))
}

func eval(e Expr, obj any) (any, error) {
	switch e := e.(type) {
	case *String:
		return e.Text, nil
	case *Number:
		if e.IsInt {
			return e.Int, nil
		}
		return e.Float, nil
	case *Bool:
		return e.Value, nil
	case *Null:
		return nil, nil
	case *PropertyExpr:
		v := obj
		for _, name := range e.Path {
			v = member(v, name)
		}
		return v, nil
	case *ArrayExpr:
		out := make([]any, len(e.Items))
		for i, it := range e.Items {
			v, err := eval(it, obj)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	case *UnaryExpr:
		v, err := eval(e.X, obj)
		if err != nil {
			return nil, err
		}
		return !Truthy(v), nil
	case *BinaryExpr:
		return evalBinary(e, obj)
	}
	return nil, fmt.Errorf("ems: cannot evaluate %T", e)
}

func evalBinary(e *BinaryExpr, obj any) (any, error) {
	x, err := eval(e.X, obj)
	if err != nil {
		return nil, err
	}
	if logicalOps[e.Op] {
		// -and and -or stop as soon as the left side decides.
		switch tx := Truthy(x); {
		case e.Op == "-and" && !tx:
			return false, nil
		case e.Op == "-or" && tx:
			return true, nil
		}
		y, err := eval(e.Y, obj)
		if err != nil {
			return nil, err
		}
		if e.Op == "-xor" {
			return Truthy(x) != Truthy(y), nil
		}
		return Truthy(y), nil
	}
	y, err := eval(e.Y, obj)
	if err != nil {
		return nil, err
	}
	base, cs, ok := splitOp(e.Op)
	if !ok {
		return nil, &EvalError{e.At, "unknown operator " + e.Op}
	}
	fail := func(err error) (any, error) { return nil, &EvalError{e.At, err.Error()} }
	switch base {
	case "contains", "notcontains":
		return contains(asSlice(x), y, cs) == (base == "contains"), nil
	case "in", "notin":
		return contains(asSlice(y), x, cs) == (base == "in"), nil
	}
	// With an array on the left, the operator filters it: the result is
	// the elements for which it holds, true when any does.
	if arr, ok := x.([]any); ok {
		out := []any{}
		for _, el := range arr {
			el = norm(el)
			keep, err := compareScalar(base, el, y, cs)
			if err != nil {
				return fail(err)
			}
			if keep {
				out = append(out, el)
			}
		}
		return out, nil
	}
	r, err := compareScalar(base, x, y, cs)
	if err != nil {
		return fail(err)
	}
	return r, nil
}

func compareScalar(base string, x, y any, cs bool) (bool, error) {
	switch base {
	case "eq":
		return equal(x, y, cs), nil
	case "ne":
		return !equal(x, y, cs), nil
	case "lt", "le", "gt", "ge":
		c, err := order(x, y, cs)
		if err != nil {
			return false, err
		}
		switch base {
		case "lt":
			return c < 0, nil
		case "le":
			return c <= 0, nil
		case "gt":
			return c > 0, nil
		}
		return c >= 0, nil
	case "like", "notlike":
		re, err := wildcard(toString(y), cs)
		if err != nil {
			return false, err
		}
		return re.MatchString(toString(x)) == (base == "like"), nil
	case "match", "notmatch":
		flags := "(?i)"
		if cs {
			flags = ""
		}
		re, err := regexp.Compile(flags + toString(y))
		if err != nil {
			var se *syntax.Error
			if errors.As(err, &se) {
				err = errors.New(se.Code.String())
			}
			return false, fmt.Errorf("invalid regular expression %s: %v", quote(toString(y)), err)
		}
		return re.MatchString(toString(x)) == (base == "match"), nil
	}
	return false, fmt.Errorf("unknown operator -%s", base)
}

// Truthy reports whether PowerShell treats v as true: $null, $false, "",
// 0 and an empty array are false; an array of one element is as true as
// that element (unless the element is itself an array, which is true when
// not empty); any other array, string or object is true. The string
// "False" is true.
func Truthy(v any) bool {
	switch v := norm(v).(type) {
	case nil:
		return false
	case bool:
		return v
	case string:
		return v != ""
	case int64:
		return v != 0
	case float64:
		return v != 0
	case []any:
		switch len(v) {
		case 0:
			return false
		case 1:
			if inner, ok := norm(v[0]).([]any); ok {
				return len(inner) > 0
			}
			return Truthy(v[0])
		}
		return true
	}
	return true
}

// norm converts the Go values a caller may pass into the few types the
// evaluator works with.
func norm(v any) any {
	switch v := v.(type) {
	case int:
		return int64(v)
	case int8:
		return int64(v)
	case int16:
		return int64(v)
	case int32:
		return int64(v)
	case uint:
		return normUint(uint64(v))
	case uint8:
		return int64(v)
	case uint16:
		return int64(v)
	case uint32:
		return int64(v)
	case uint64:
		return normUint(v)
	case float32:
		return float64(v)
	case []string:
		out := make([]any, len(v))
		for i, s := range v {
			out[i] = s
		}
		return out
	case map[string]string:
		out := make(map[string]any, len(v))
		for k, s := range v {
			out[k] = s
		}
		return out
	case []any:
		if v == nil {
			return nil
		}
	case map[string]any:
		if v == nil {
			return nil
		}
	}
	return v
}

func normUint(u uint64) any {
	if u > math.MaxInt64 {
		return float64(u)
	}
	return int64(u)
}

// member returns property name of v. Arrays have Count and Length and
// otherwise pass the lookup on to their elements (member enumeration):
// the non-null results, unwrapped to a single value or $null when there
// are fewer than two. Every non-null scalar has Count and Length 1 unless
// it has such a property; $null has Count and Length 0; a string's
// Length is its length in characters.
func member(v any, name string) any {
	intrinsic := strings.EqualFold(name, "Count") || strings.EqualFold(name, "Length")
	switch v := v.(type) {
	case nil:
		if intrinsic {
			return int64(0)
		}
		return nil
	case []any:
		if intrinsic {
			return int64(len(v))
		}
		var out []any
		for _, el := range v {
			switch r := member(norm(el), name).(type) {
			case nil:
			case []any:
				out = append(out, r...)
			default:
				out = append(out, r)
			}
		}
		switch len(out) {
		case 0:
			return nil
		case 1:
			return out[0]
		}
		return out
	case map[string]any:
		if r, ok := lookup(v, name); ok {
			return r
		}
	case string:
		if strings.EqualFold(name, "Length") {
			return int64(utf8.RuneCountInString(v))
		}
	}
	if intrinsic {
		return int64(1)
	}
	return nil
}

// lookup finds a key case-insensitively, preferring an exact match and
// then the first matching key in sorted order.
func lookup(m map[string]any, name string) (any, bool) {
	if r, ok := m[name]; ok {
		return norm(r), true
	}
	var keys []string
	for k := range m {
		if strings.EqualFold(k, name) {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return nil, false
	}
	sort.Strings(keys)
	return norm(m[keys[0]]), true
}

func asSlice(v any) []any {
	if arr, ok := v.([]any); ok {
		return arr
	}
	return []any{v}
}

func contains(coll []any, v any, cs bool) bool {
	for _, el := range coll {
		if equal(norm(el), v, cs) {
			return true
		}
	}
	return false
}

// equal is PowerShell's -eq for a scalar x: y is converted to x's type.
// $null equals only $null.
func equal(x, y any, cs bool) bool {
	y = norm(y)
	if x == nil || y == nil {
		return x == nil && y == nil
	}
	switch a := x.(type) {
	case string:
		b := toString(y)
		if cs {
			return a == b
		}
		return strings.EqualFold(a, b)
	case bool:
		return a == Truthy(y)
	case int64, float64:
		an, _ := toNumber(x)
		bn, ok := toNumber(y)
		return ok && an.cmp(bn) == 0
	}
	return false // arrays and objects are equal only to themselves
}

// order compares x with y converted to x's type, as -lt, -le, -gt and -ge
// do. $null sorts before everything but negative numbers.
func order(x, y any, cs bool) (int, error) {
	y = norm(y)
	switch {
	case x == nil && y == nil:
		return 0, nil
	case x == nil:
		return -nullOrder(y), nil
	case y == nil:
		return nullOrder(x), nil
	}
	switch a := x.(type) {
	case string:
		b := toString(y)
		if !cs {
			a, b = strings.ToLower(a), strings.ToLower(b)
		}
		return strings.Compare(a, b), nil
	case bool:
		b := Truthy(y)
		switch {
		case a == b:
			return 0, nil
		case b:
			return -1, nil
		}
		return 1, nil
	case int64, float64:
		an, _ := toNumber(x)
		bn, ok := toNumber(y)
		if !ok {
			return 0, fmt.Errorf("cannot compare %s with %s: it is not a number", toString(x), quote(toString(y)))
		}
		return an.cmp(bn), nil
	}
	return 0, fmt.Errorf("cannot compare %s with %s", typeName(x), typeName(y))
}

// nullOrder is how v compares with $null: negative numbers sort before
// it, everything else after.
func nullOrder(v any) int {
	if n, ok := v.(int64); ok && n < 0 {
		return -1
	}
	if f, ok := v.(float64); ok && f < 0 {
		return -1
	}
	return 1
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

type number struct {
	isInt bool
	i     int64
	f     float64
}

func (a number) cmp(b number) int {
	if a.isInt && b.isInt {
		switch {
		case a.i < b.i:
			return -1
		case a.i > b.i:
			return 1
		}
		return 0
	}
	switch {
	case a.f < b.f:
		return -1
	case a.f > b.f:
		return 1
	}
	return 0
}

// toNumber converts v to a number: numbers as they are, booleans to 1 and
// 0, $null and "" to 0, strings that are decimal or 0x-hex numbers
// (surrounding blanks ignored), and a one-element array as its element.
func toNumber(v any) (number, bool) {
	switch v := norm(v).(type) {
	case nil:
		return number{isInt: true}, true
	case int64:
		return number{isInt: true, i: v, f: float64(v)}, true
	case float64:
		return number{f: v}, true
	case bool:
		if v {
			return number{isInt: true, i: 1, f: 1}, true
		}
		return number{isInt: true}, true
	case string:
		s := strings.TrimSpace(v)
		if s == "" {
			return number{isInt: true}, true
		}
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			return number{isInt: true, i: i, f: float64(i)}, true
		}
		if n, ok := parseNumber(strings.TrimPrefix(s, "+")); ok && n.Unit == "" {
			return number{isInt: n.IsInt, i: n.Int, f: n.Float}, true
		}
	case []any:
		if len(v) == 1 {
			return toNumber(v[0])
		}
	}
	return number{}, false
}

// toString converts v to a string as PowerShell does: True and False,
// numbers in invariant culture, arrays joined with spaces.
func toString(v any) string {
	switch v := norm(v).(type) {
	case nil:
		return ""
	case string:
		return v
	case bool:
		if v {
			return "True"
		}
		return "False"
	case int64:
		return strconv.FormatInt(v, 10)
	case float64:
		return formatFloat(v)
	case []any:
		parts := make([]string, len(v))
		for i, el := range v {
			parts[i] = toString(el)
		}
		return strings.Join(parts, " ")
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = k + "=" + toString(v[k])
		}
		return "@{" + strings.Join(parts, "; ") + "}"
	default:
		return fmt.Sprint(v)
	}
}

// formatFloat writes f as .NET's double.ToString() does: no ".0" on whole
// numbers, exponent notation below 1e-5 and from 1e15 on.
func formatFloat(f float64) string {
	abs := math.Abs(f)
	switch {
	case math.IsInf(f, 0) || math.IsNaN(f):
		return strconv.FormatFloat(f, 'g', -1, 64)
	case f == 0:
		return "0"
	case abs >= 1e-5 && abs < 1e15:
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'E', -1, 64)
}

// wildcard compiles a -like pattern: * is any run of characters, ? is one
// character, [abc] and [a-z] are sets, and a backtick makes the next
// character literal. The whole string must match.
func wildcard(pattern string, cs bool) (*regexp.Regexp, error) {
	var b strings.Builder
	b.WriteString("(?s)")
	if !cs {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	rs := []rune(pattern)
	bad := func(why string) (*regexp.Regexp, error) {
		return nil, fmt.Errorf("invalid wildcard pattern %s: %s", quote(pattern), why)
	}
	lit := func(r rune) string { return fmt.Sprintf(`\x{%x}`, r) }
	for i := 0; i < len(rs); i++ {
		switch r := rs[i]; r {
		case '*':
			b.WriteString(".*")
		case '?':
			b.WriteString(".")
		case '`':
			if i+1 < len(rs) {
				i++
			}
			b.WriteString(lit(rs[i]))
		case '[':
			var set []rune
			j := i + 1
			for ; j < len(rs) && rs[j] != ']'; j++ {
				if rs[j] == '`' && j+1 < len(rs) {
					j++
				}
				set = append(set, rs[j])
			}
			if j == len(rs) {
				return bad(`"[" is not closed by "]"`)
			}
			if len(set) == 0 {
				return bad(`empty set "[]"`)
			}
			b.WriteString("[")
			for k := 0; k < len(set); k++ {
				if k+2 < len(set) && set[k+1] == '-' {
					if set[k] > set[k+2] {
						return bad(fmt.Sprintf("range %c-%c is backwards", set[k], set[k+2]))
					}
					b.WriteString(lit(set[k]) + "-" + lit(set[k+2]))
					k += 2
					continue
				}
				b.WriteString(lit(set[k]))
			}
			b.WriteString("]")
			i = j
		default:
			b.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}
