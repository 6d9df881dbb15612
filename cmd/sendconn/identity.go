package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// identityArgs collects the identities a command was given: positional
// arguments, --identity, and "-", which reads standard input: one identity
// per line, or the JSON that "get -o json" prints (the Guid, else the
// Identity or Name, of each object). readStdin reports whether standard
// input was used, so a command can tell it cannot also prompt or read a
// password from it.
func identityArgs(in io.Reader, args []string, identityFlag string) (ids []string, readStdin bool, err error) {
	if identityFlag != "" {
		args = append([]string{identityFlag}, args...)
	}
	for _, a := range args {
		if a != "-" {
			ids = append(ids, a)
			continue
		}
		if readStdin {
			return nil, true, usageErrorf("\"-\" (standard input) can be given only once")
		}
		readStdin = true
		fromStdin, err := readIdentities(in)
		if err != nil {
			return nil, true, err
		}
		ids = append(ids, fromStdin...)
	}
	return ids, readStdin, nil
}

func readIdentities(in io.Reader) ([]string, error) {
	data, err := io.ReadAll(in)
	if err != nil {
		return nil, fmt.Errorf("read identities from standard input: %w", err)
	}
	text := strings.TrimSpace(string(data))
	if strings.HasPrefix(text, "[") || strings.HasPrefix(text, "{") {
		return identitiesFromJSON(text)
	}
	var ids []string
	for _, line := range strings.Split(text, "\n") {
		if line = strings.TrimSpace(line); line != "" {
			ids = append(ids, line)
		}
	}
	return ids, nil
}

// identitiesFromJSON reads an array (or a single object, or a stream of
// objects) as printed by "-o json".
func identitiesFromJSON(text string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	var ids []string
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, usageErrorf("standard input is not valid JSON: %v", err)
		}
		items, ok := v.([]any)
		if !ok {
			items = []any{v}
		}
		for _, item := range items {
			id, err := identityOf(item)
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func identityOf(item any) (string, error) {
	switch x := item.(type) {
	case string:
		return x, nil
	case map[string]any:
		for _, key := range []string{"Guid", "Identity", "Name"} {
			if s, ok := x[key].(string); ok && s != "" {
				return s, nil
			}
		}
	}
	return "", usageErrorf("JSON on standard input has an item without Guid, Identity or Name")
}

// isWildcard reports whether an identity is a pattern ("*Internet*").
func isWildcard(s string) bool { return strings.ContainsAny(s, "*?") }

// wildcardMatch matches name against a pattern with * and ?,
// case-insensitively, as Exchange's identity parameters do.
func wildcardMatch(pattern, name string) bool {
	p, n := []rune(strings.ToLower(pattern)), []rune(strings.ToLower(name))
	// Iterative matching with backtracking to the last star.
	pi, ni, star, mark := 0, 0, -1, 0
	for ni < len(n) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == n[ni]):
			pi++
			ni++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, ni
			pi++
		case star >= 0:
			pi, mark = star+1, mark+1
			ni = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
