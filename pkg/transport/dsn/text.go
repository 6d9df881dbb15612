package dsn

import (
	"fmt"
	"mime"
	"strings"
	"unicode"
	"unicode/utf8"
)

const (
	softLineLimit = 78  // RFC 5322 §2.1.1: SHOULD
	hardLineLimit = 998 // RFC 5322 §2.1.1: MUST, excluding CRLF
	// maxTextLen bounds a single value from outside (a reply, an address)
	// so that a remote server cannot make us write a huge report; real
	// replies, even multi-line ones, are far shorter.
	maxTextLen = 4096
)

// oneLine turns text from outside into a single line: line breaks, tabs
// and runs of white space become one space, other control characters go,
// invalid UTF-8 becomes U+FFFD, and the result is trimmed and capped at
// maxTextLen bytes. With ascii set, every non-ASCII character becomes '?',
// for the 7-bit delivery-status part. This is what keeps a reply such as
// "550 x\r\nAction: delivered" from adding a field to a report.
func oneLine(s string, ascii bool) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		switch {
		case r == ' ' || r == '\t' || r == '\r' || r == '\n' || unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r) || r == '\u2028' || r == '\u2029':
			continue
		case ascii && r >= utf8.RuneSelf:
			r = '?'
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r) // an invalid byte came in as RuneError and goes out as U+FFFD
		if b.Len() > maxTextLen {
			return truncateUTF8(b.String(), maxTextLen-3) + "..."
		}
	}
	return b.String()
}

// truncateUTF8 cuts s to at most n bytes without splitting a character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// isASCII reports whether s is all 7-bit.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// hasCTL reports whether s holds a control character, which no header value
// we are given verbatim (an address, a host name, an id) may carry.
func hasCTL(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] == 0x7f {
			return true
		}
	}
	return false
}

// field renders "Name: value" as one header or delivery-status field, CRLF
// terminated, folded at spaces to keep lines within 78 octets where it can
// and within 998 always. value must already be one line (see oneLine).
// A word too long for a line on its own is split; that adds a space to the
// unfolded value, which is acceptable for the diagnostic text it happens to.
func field(name, value string) string {
	var out strings.Builder
	line := name + ":"
	first := true // no word on the current line yet
	for _, w := range strings.Fields(value) {
		switch {
		case first:
			line += " " + w
		case len(line)+1+len(w) <= softLineLimit:
			line += " " + w
		default:
			out.WriteString(line + "\r\n")
			line = " " + w
		}
		first = false
		for len(line) > hardLineLimit {
			out.WriteString(line[:hardLineLimit] + "\r\n")
			line = " " + line[hardLineLimit:]
		}
	}
	out.WriteString(line + "\r\n")
	return out.String()
}

// recipientValue is the address-type ";" address of a Final-Recipient or
// Original-Recipient field. An ASCII address keeps its type. A UTF-8 one
// (SMTPUTF8) is written the RFC 6533 §3 way, "utf-8;" with every non-ASCII
// character and '+', '=', '\', SP as \x{HEX}, so that the part stays 7-bit
// and the address can still be recovered exactly.
func recipientValue(addrType, addr string) string {
	addr = oneLine(addr, false)
	if isASCII(addr) {
		return addrType + ";" + addr
	}
	var b strings.Builder
	b.WriteString("utf-8;")
	for _, r := range addr {
		if r >= utf8.RuneSelf || r == '+' || r == '=' || r == '\\' || r == ' ' {
			fmt.Fprintf(&b, `\x{%X}`, r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// reportSubject builds the Subject of the report from a prefix and the
// original's raw Subject value (unfolded). The original is decoded (RFC
// 2047) so that the prefix and the text can be re-encoded together; when
// it cannot be decoded (an unknown charset), it is kept as it was, as its
// encoded-words are still valid in our header. Non-ASCII text goes out as
// Q-encoded UTF-8 words.
func reportSubject(prefix, raw string) string {
	dec := new(mime.WordDecoder)
	text, err := dec.DecodeHeader(raw)
	if err != nil {
		if s := oneLine(raw, true); s != "" && isASCII(raw) {
			return prefix + ": " + s
		}
		text = raw
	}
	text = oneLine(text, false)
	if text == "" {
		return prefix
	}
	return prefix + ": " + mime.QEncoding.Encode("utf-8", text)
}
