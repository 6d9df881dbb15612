package permissions

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The oracle below splits and classifies header blocks on its own, in the
// plainest way, so that the fuzzer checks Filter against a second reading
// of the rules rather than against itself.

// refSplit cuts a block into fields (a line plus its continuation lines)
// and the tail that starts at the first empty line.
func refSplit(b []byte) (fields [][]byte, tail []byte) {
	type span struct{ start, end int }
	var spans []span
	for pos := 0; pos < len(b); {
		end := len(b)
		if i := bytes.IndexByte(b[pos:], '\n'); i >= 0 {
			end = pos + i + 1
		}
		line := string(b[pos:end])
		if line == "\n" || line == "\r\n" {
			tail = b[pos:]
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && len(spans) > 0 {
			spans[len(spans)-1].end = end
		} else {
			spans = append(spans, span{pos, end})
		}
		pos = end
	}
	for _, s := range spans {
		fields = append(fields, b[s.start:s.end])
	}
	return fields, tail
}

func refLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}

// refClass classifies a field and returns its lower-case name.
func refClass(field []byte) (HeaderClass, string) {
	first, _, _ := strings.Cut(string(field), "\n")
	name, _, hasColon := strings.Cut(first, ":")
	if !hasColon || first[0] == ' ' || first[0] == '\t' {
		return ClassNone, ""
	}
	name = refLower(strings.TrimRight(name, " \t"))
	switch {
	case name == "received", strings.HasPrefix(name, "resent-"):
		return ClassRouting, name
	case strings.HasPrefix(name, "x-ms-exchange-organization-"):
		return ClassOrganization, name
	case strings.HasPrefix(name, "x-ms-exchange-forest-"):
		return ClassForest, name
	case strings.HasPrefix(name, "x-ms-exchange-crosspremises-"):
		return ClassCrossPremises, name
	}
	return ClassNone, name
}

// isCopyOf reports whether field is the CrossPremises copy of the
// Organization field org, with or without a line ending added.
func isCopyOf(field, org []byte) bool {
	want := "X-MS-Exchange-CrossPremises-" + string(org[len("X-MS-Exchange-Organization-"):])
	got := string(field)
	return got == want || got == want+"\n" || got == want+"\r\n"
}

func FuzzFilter(f *testing.F) {
	f.Add(realisticHeader(), uint8(SendPolicy(routing, false).Remove), false)
	f.Add(append(realisticHeader(), realisticBody...), uint8(SendPolicy(routing, true).Remove), true)

	f.Fuzz(func(t *testing.T, data []byte, removeBits uint8, copyOrg bool) {
		p := Policy{Remove: ClassSet(removeBits), CopyToCrossPremises: copyOrg}
		copies := copyOrg && !p.Remove.Has(ClassCrossPremises)
		orig := bytes.Clone(data)

		out := Filter(data, p)
		if !bytes.Equal(data, orig) {
			t.Fatal("Filter modified its input")
		}
		if again := Filter(out, p); !bytes.Equal(again, out) {
			t.Fatalf("not idempotent:\nonce:  %q\ntwice: %q", out, again)
		}

		inFields, inTail := refSplit(data)
		outFields, outTail := refSplit(out)
		if !bytes.Equal(inTail, outTail) {
			t.Fatalf("the part after the empty line changed: %q became %q", inTail, outTail)
		}

		var orgFields [][]byte
		var inOther [][]byte
		touchesAnything := false
		for _, field := range inFields {
			class, _ := refClass(field)
			if class == ClassOrganization {
				orgFields = append(orgFields, field)
			}
			if class == ClassNone {
				inOther = append(inOther, field)
			}
			if p.Remove.Has(class) {
				touchesAnything = true
			}
		}
		if !touchesAnything && !copyOrg && (len(out) != len(data) || len(data) > 0 && &out[0] != &data[0]) {
			t.Fatalf("nothing to remove, yet the output is not the input:\nin:  %q\nout: %q", data, out)
		}

		// Every output field is the next input field kept verbatim, or a
		// copy of an Organization field; fields of removed classes are
		// gone and fields of no class are all still there, in order.
		next := 0
		var outOther [][]byte
		for _, field := range outFields {
			class, _ := refClass(field)
			if p.Remove.Has(class) {
				t.Fatalf("a %v field survived: %q", class, field)
			}
			if class == ClassNone {
				outOther = append(outOther, field)
			}
			if copies && class == ClassCrossPremises && slices.ContainsFunc(orgFields, func(org []byte) bool { return isCopyOf(field, org) }) {
				continue
			}
			i := slices.IndexFunc(inFields[next:], func(in []byte) bool { return bytes.Equal(in, field) })
			if i < 0 {
				t.Fatalf("output field %q is neither an input field in order nor a copy\nin:  %q\nout: %q", field, data, out)
			}
			next += i + 1
		}
		if !slices.EqualFunc(inOther, outOther, bytes.Equal) {
			t.Fatalf("fields of no class changed:\nin:  %q\nout: %q", inOther, outOther)
		}

		header, body := FilterMessage(data, p)
		end := HeaderEnd(data)
		if len(body) != len(data)-end || len(body) > 0 && &body[0] != &data[end] {
			t.Fatal("FilterMessage did not return the body as the rest of the message")
		}
		if !bytes.Equal(header, Filter(data[:end], p)) {
			t.Fatal("FilterMessage's header differs from Filter of the header block")
		}
	})
}

func FuzzParseRights(f *testing.F) {
	f.Add("ms-Exch-Send-Headers-Routing")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParseRights([]string{s})
		if err != nil {
			return
		}
		if rs&^AllRights != 0 {
			t.Fatalf("ParseRights(%q) = %#x, outside the five rights", s, uint8(rs))
		}
		back, err := ParseRights(rs.Names())
		if err != nil || back != rs {
			t.Fatalf("ParseRights(%q) = [%v], but its names parse to [%v], %v", s, rs, back, err)
		}
		back, err = ParseRights([]string{rs.String()})
		if err != nil || back != rs {
			t.Fatalf("ParseRights(%q) = [%v], but its String parses to [%v], %v", s, rs, back, err)
		}
	})
}

func FuzzParsePrincipal(f *testing.F) {
	f.Add(`NT AUTHORITY\ANONYMOUS LOGON`)
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePrincipal(s)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "principal ") {
				t.Fatalf("error %q does not name the principal", err)
			}
			return
		}
		if p == "" || !utf8.ValidString(string(p)) || strings.ContainsFunc(string(p), unicode.IsControl) {
			t.Fatalf("ParsePrincipal(%q) = %q", s, p)
		}
		q, err := ParsePrincipal(p.String())
		if err != nil || !q.Equal(p) || q != p {
			t.Fatalf("ParsePrincipal(%q) = %q, but that parses to %q, %v", s, p, q, err)
		}
	})
}
