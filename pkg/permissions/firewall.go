package permissions

import (
	"bytes"
	"strconv"
	"strings"
)

// HeaderClass is the header firewall's view of a header field: which right,
// if any, a receiver needs to get it.
type HeaderClass uint8

const (
	ClassNone          HeaderClass = iota // every other field; the firewall never removes these
	ClassOrganization                     // X-MS-Exchange-Organization-*
	ClassForest                           // X-MS-Exchange-Forest-*
	ClassRouting                          // Received, Resent-*
	ClassCrossPremises                    // X-MS-Exchange-CrossPremises-*
)

var headerClassNames = []string{"None", "Organization", "Forest", "Routing", "CrossPremises"}

func (c HeaderClass) String() string {
	if int(c) < len(headerClassNames) {
		return headerClassNames[c]
	}
	return "HeaderClass(" + strconv.Itoa(int(c)) + ")"
}

// The prefixes are matched without regard to ASCII case, as header field
// names are case-insensitive.
const (
	exchangePrefix      = "X-MS-Exchange-"
	organizationPrefix  = "X-MS-Exchange-Organization-"
	forestPrefix        = "X-MS-Exchange-Forest-"
	crossPremisesPrefix = "X-MS-Exchange-CrossPremises-"
	resentPrefix        = "Resent-"
	receivedName        = "Received"
)

// Classify returns the class of a field name. Trailing SP and HTAB are
// ignored, as the obsolete syntax allows them before the colon. Only
// "Received" itself is routing: Received-SPF and the like are not.
func Classify(name []byte) HeaderClass {
	name = trimTrailingBlanks(name)
	if len(name) == 0 {
		return ClassNone
	}
	switch name[0] {
	case 'X', 'x':
		if !hasPrefixFold(name, exchangePrefix) {
			return ClassNone
		}
		switch {
		case hasPrefixFold(name, organizationPrefix):
			return ClassOrganization
		case hasPrefixFold(name, forestPrefix):
			return ClassForest
		case hasPrefixFold(name, crossPremisesPrefix):
			return ClassCrossPremises
		}
	case 'R', 'r':
		if len(name) == len(receivedName) && hasPrefixFold(name, receivedName) || hasPrefixFold(name, resentPrefix) {
			return ClassRouting
		}
	}
	return ClassNone
}

// ClassSet is a set of header classes. ClassNone is never in a set: the
// firewall only ever removes the classes a right or a setting governs.
type ClassSet uint8

// Has reports whether c is in the set.
func (s ClassSet) Has(c HeaderClass) bool {
	return c != ClassNone && c < 8 && s&(1<<c) != 0
}

// With returns the set with c added.
func (s ClassSet) With(c HeaderClass) ClassSet {
	if c == ClassNone || c >= 8 {
		return s
	}
	return s | 1<<c
}

// String lists the classes, for logs.
func (s ClassSet) String() string {
	var names []string
	for c := ClassOrganization; c <= ClassCrossPremises; c++ {
		if s.Has(c) {
			names = append(names, c.String())
		}
	}
	return strings.Join(names, ", ")
}

// Policy says what a filter pass does.
type Policy struct {
	Remove ClassSet // classes to strip
	// CopyToCrossPremises copies each X-MS-Exchange-Organization-<suffix>
	// field to X-MS-Exchange-CrossPremises-<suffix> before anything is
	// stripped, so a hybrid peer still learns how the message was
	// authenticated. Stripping ClassCrossPremises wins over it.
	CopyToCrossPremises bool
}

// SendPolicy is the policy for a message leaving through a connector to a
// session with the given effective rights: every Organization, Forest and
// Routing field the rights do not cover goes. With cloudServicesMailEnabled
// false every CrossPremises field goes too; with it true, Organization
// fields are first copied to CrossPremises, so they survive even where the
// Organization fields themselves are stripped.
func SendPolicy(effective Rights, cloudServicesMailEnabled bool) Policy {
	var p Policy
	if !effective.Has(SendHeadersRouting) {
		p.Remove = p.Remove.With(ClassRouting)
	}
	if !effective.Has(SendHeadersForest) {
		p.Remove = p.Remove.With(ClassForest)
	}
	if !effective.Has(SendHeadersOrganization) {
		p.Remove = p.Remove.With(ClassOrganization)
	}
	if cloudServicesMailEnabled {
		p.CopyToCrossPremises = true
	} else {
		p.Remove = p.Remove.With(ClassCrossPremises)
	}
	return p
}

// ReceivePolicy is the policy for mail arriving from a client that is not
// trusted: Organization and Forest fields go, so nobody outside can claim
// to have been authenticated or scanned by the organization.
func ReceivePolicy() Policy {
	return Policy{Remove: ClassSet(0).With(ClassOrganization).With(ClassForest)}
}

// HeaderEnd returns the length of the header block of msg, including the
// empty line that ends it. A line is empty when it is CRLF or a bare LF,
// whatever the other lines end with. Without an empty line the whole
// message is header.
func HeaderEnd(msg []byte) int {
	for i := 0; i < len(msg); {
		if n := emptyLineLen(msg, i); n > 0 {
			return i + n
		}
		next := bytes.IndexByte(msg[i:], '\n')
		if next < 0 {
			break
		}
		i += next + 1
	}
	return len(msg)
}

// FilterMessage splits msg at HeaderEnd and filters the header. The body is
// a sub-slice of msg: it is never copied, whatever its size. The header is
// capped at its length, so appending to it cannot overwrite the body.
func FilterMessage(msg []byte, p Policy) (header, body []byte) {
	end := HeaderEnd(msg)
	return Filter(msg[:end:end], p), msg[end:]
}

// Filter applies p to a header block (msg[:HeaderEnd(msg)]) and returns the
// block that may leave. Whatever is kept stays byte for byte as it was:
// order, case, folding, whitespace and line endings. When nothing changes
// Filter returns hdr itself without allocating; otherwise it returns a new
// slice. hdr is never modified. Anything after an empty line is left alone,
// so a body passed by mistake is never filtered.
func Filter(hdr []byte, p Policy) []byte {
	if p.Remove.Has(ClassCrossPremises) {
		// A copy that is stripped again at once would make the filter
		// disagree with itself on a second pass.
		p.CopyToCrossPremises = false
	}
	changes, copyBytes := survey(hdr, p)
	if !changes {
		return hdr
	}
	return rewrite(hdr, p, len(hdr)+copyBytes)
}

// survey reports whether p changes hdr, and how many bytes the copies it
// makes may add, so that rewrite allocates once.
func survey(hdr []byte, p Policy) (changes bool, copyBytes int) {
	s := fieldScanner{hdr: hdr}
	for f, ok := s.next(); ok; f, ok = s.next() {
		if p.CopyToCrossPremises && f.class == ClassOrganization {
			// The copy is one byte longer than the original, plus the
			// line ending it may need when the original has none.
			changes = true
			copyBytes += f.end - f.start + 1 + len("\r\n")
			continue
		}
		if p.Remove.Has(f.class) {
			changes = true
			if !p.CopyToCrossPremises {
				return changes, 0
			}
		}
	}
	return changes, copyBytes
}

// rewrite builds the filtered block. Runs of kept fields are copied in one
// append each: pending marks the start of the kept bytes not yet written.
func rewrite(hdr []byte, p Policy, size int) []byte {
	out := make([]byte, 0, size)
	pending := 0
	var copied suffixSet // suffixes of the Organization fields, built when first needed
	s := fieldScanner{hdr: hdr}
	for f, ok := s.next(); ok; f, ok = s.next() {
		switch {
		case p.CopyToCrossPremises && f.class == ClassOrganization:
			keep := !p.Remove.Has(ClassOrganization)
			out = appendWithCrossPremisesCopy(out, hdr[pending:f.start], hdr, f, keep)
			pending = f.end
		case p.CopyToCrossPremises && f.class == ClassCrossPremises && copied.lazy(hdr).has(f.suffix(hdr)):
			// A fresh copy of the Organization field replaces it, which
			// keeps a second pass from adding a second copy.
			out = append(out, hdr[pending:f.start]...)
			pending = f.end
		case p.Remove.Has(f.class):
			out = append(out, hdr[pending:f.start]...)
			pending = f.end
		}
	}
	return append(out, hdr[pending:]...)
}

// appendWithCrossPremisesCopy writes the kept bytes before an Organization
// field f, then f (when keep) and its CrossPremises copy. The copy goes right
// after the original with the same line ending. An original on the last
// line without a line ending stays last as it was, so its copy goes before
// it, ended so that a second pass ends it the same way (see copyLineEnding).
func appendWithCrossPremisesCopy(out, before, hdr []byte, f field, keep bool) []byte {
	out = append(out, before...)
	original := hdr[f.start:f.end]
	copyRest := original[len(organizationPrefix):]
	if !keep || hasLineEnding(original) {
		if keep {
			out = append(out, original...)
		}
		out = append(out, crossPremisesPrefix...)
		return append(out, copyRest...)
	}
	out = append(out, crossPremisesPrefix...)
	out = append(out, copyRest...)
	out = append(out, copyLineEnding(hdr, f)...)
	return append(out, original...)
}

// copyLineEnding returns the line ending for the copy of an Organization
// field f that has none of its own. It must come out the same when the
// filter runs again on its own output, where the copy is the line before f:
// after a stray CR it is the LF that completes a CRLF; otherwise it is the
// ending of the line before f.
func copyLineEnding(hdr []byte, f field) string {
	if hdr[f.end-1] == '\r' {
		return "\n"
	}
	return lineEndingBefore(hdr, f.start)
}

// field is one header field of a block: its first line and every
// continuation line, with their line endings.
type field struct {
	start, end int // hdr[start:end]
	nameEnd    int // hdr[start:nameEnd] is the name, trailing blanks trimmed; meaningful for classified fields
	class      HeaderClass
}

// suffix returns what follows the class prefix in the field's name; only
// meaningful for Organization and CrossPremises fields.
func (f field) suffix(hdr []byte) []byte {
	name := hdr[f.start:f.nameEnd]
	switch f.class {
	case ClassOrganization:
		return name[len(organizationPrefix):]
	case ClassCrossPremises:
		return name[len(crossPremisesPrefix):]
	}
	return nil
}

// fieldScanner walks the fields of a header block up to its empty line.
// A line that starts with SP or HTAB continues the field before it; such
// lines at the very start form a field of their own, of no class. A line
// without a colon (an mbox "From " line, garbage) is a field of no class.
type fieldScanner struct {
	hdr []byte
	pos int
}

func (s *fieldScanner) next() (field, bool) {
	hdr, start := s.hdr, s.pos
	if start >= len(hdr) || emptyLineLen(hdr, start) > 0 {
		return field{}, false
	}
	firstLineEnd := lineEnd(hdr, start)
	end := firstLineEnd
	for end < len(hdr) && isBlank(hdr[end]) {
		end = lineEnd(hdr, end)
	}
	s.pos = end
	f := field{start: start, end: end}
	f.class, f.nameEnd = classifyFirstLine(hdr, start, firstLineEnd)
	return f, true
}

// classifyFirstLine classifies the field whose first line is
// hdr[start:end]. Lines that cannot start a field of a firewall class are
// turned away on their first byte, so ordinary fields cost one comparison.
func classifyFirstLine(hdr []byte, start, end int) (HeaderClass, int) {
	switch hdr[start] {
	case 'X', 'x', 'R', 'r':
	default:
		return ClassNone, start
	}
	colon := bytes.IndexByte(hdr[start:end], ':')
	if colon < 0 {
		return ClassNone, start
	}
	name := trimTrailingBlanks(hdr[start : start+colon])
	return Classify(name), start + len(name)
}

// lineEnd returns the index just past the line starting at i: past its LF,
// or the end of hdr for a last line without one.
func lineEnd(hdr []byte, i int) int {
	if n := bytes.IndexByte(hdr[i:], '\n'); n >= 0 {
		return i + n + 1
	}
	return len(hdr)
}

// emptyLineLen returns the length of the empty line at i (2 for CRLF, 1 for
// LF), or 0 if the line at i is not empty.
func emptyLineLen(b []byte, i int) int {
	switch {
	case b[i] == '\n':
		return 1
	case b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n':
		return 2
	}
	return 0
}

func hasLineEnding(b []byte) bool {
	return len(b) > 0 && b[len(b)-1] == '\n'
}

// lineEndingBefore returns the line ending of the line before index i, or
// CRLF, SMTP's own, when i is the start of the block.
func lineEndingBefore(hdr []byte, i int) string {
	switch {
	case i >= 2 && hdr[i-2] == '\r' && hdr[i-1] == '\n':
		return "\r\n"
	case i >= 1 && hdr[i-1] == '\n':
		return "\n"
	}
	return "\r\n"
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

func trimTrailingBlanks(b []byte) []byte {
	for len(b) > 0 && isBlank(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold compares ASCII letters without regard to case and every
// other byte exactly; header names are ASCII, and Unicode case folding would
// let a look-alike name slip into a class.
func hasPrefixFold(b []byte, prefix string) bool {
	if len(b) < len(prefix) {
		return false
	}
	for i := 0; i < len(prefix); i++ {
		if lowerASCII(b[i]) != lowerASCII(prefix[i]) {
			return false
		}
	}
	return true
}

// suffixSet holds the Organization suffixes of a block, lower-cased, so that
// CrossPremises fields can be matched against them in constant time.
type suffixSet map[string]struct{}

// lazy builds the set on first use; most blocks carry no CrossPremises
// field and never need it.
func (s *suffixSet) lazy(hdr []byte) suffixSet {
	if *s == nil {
		*s = suffixSet{}
		sc := fieldScanner{hdr: hdr}
		for f, ok := sc.next(); ok; f, ok = sc.next() {
			if f.class == ClassOrganization {
				(*s)[foldKey(f.suffix(hdr))] = struct{}{}
			}
		}
	}
	return *s
}

func (s suffixSet) has(suffix []byte) bool {
	_, ok := s[foldKey(suffix)]
	return ok
}

func foldKey(b []byte) string {
	key := make([]byte, len(b))
	for i, c := range b {
		key[i] = lowerASCII(c)
	}
	return string(key)
}
