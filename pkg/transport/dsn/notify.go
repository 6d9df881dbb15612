package dsn

import "strings"

// Action is what happened to a recipient (RFC 3464 §2.3.3).
type Action string

// The actions a report can state. "expanded" is left out: this relay never
// expands lists.
const (
	Failed    Action = "failed"    // not delivered, no further attempts
	Delayed   Action = "delayed"   // not delivered yet, attempts continue
	Relayed   Action = "relayed"   // handed to a system that sends no DSNs
	Delivered Action = "delivered" // delivered to the recipient
)

func (a Action) valid() bool {
	switch a {
	case Failed, Delayed, Relayed, Delivered:
		return true
	}
	return false
}

// genericStatus is the status of a recipient that has no better one: the
// class of its action, no detail (RFC 3463 §3.1).
func (a Action) genericStatus() string {
	switch a {
	case Failed:
		return "5.0.0"
	case Delayed:
		return "4.0.0"
	}
	return "2.0.0"
}

// Return is the sender's RET parameter (RFC 3461 §4.3): how much of the
// original a failure report carries.
type Return int

const (
	// ReturnDefault is no RET parameter: the MTA chooses. Like Exchange,
	// this package returns the full message when it is small enough.
	ReturnDefault Return = iota
	ReturnHeaders        // RET=HDRS: the header block only
	ReturnFull           // RET=FULL: the whole message, within MaxFullReturn
)

// Wants reports whether a sender whose RCPT TO carried NOTIFY=notify asked
// for a notification of action a. notify holds the keywords as given (any
// case; an element may itself be a comma-separated list, as on the wire).
//
// Without NOTIFY, RFC 3461 §4.1 says failures SHOULD be reported and delays
// MAY be; we report both, as Exchange and most MTAs do, because a sender
// who hears nothing for days is worse off than one told of a delay. Success
// (relayed, delivered) is only ever reported on request. NEVER anywhere in
// the list means nothing, even if other keywords are present (such a list
// is a syntax error the receiving side should have refused).
func Wants(notify []string, a Action) bool {
	var success, failure, delay, given bool
	for _, item := range notify {
		for kw := range strings.SplitSeq(item, ",") {
			kw = strings.TrimSpace(kw)
			switch {
			case strings.EqualFold(kw, "NEVER"):
				return false
			case strings.EqualFold(kw, "SUCCESS"):
				success = true
			case strings.EqualFold(kw, "FAILURE"):
				failure = true
			case strings.EqualFold(kw, "DELAY"):
				delay = true
			default:
				continue // unknown keywords are ignored, so they cannot switch the defaults off
			}
			given = true
		}
	}
	if !given {
		return a == Failed || a == Delayed
	}
	switch a {
	case Failed:
		return failure
	case Delayed:
		return delay
	case Relayed, Delivered:
		return success
	}
	return false
}

// StatusOf returns the enhanced status code (RFC 3463) of an SMTP reply
// such as "550 5.1.1 <x@y>: user unknown", so that a report can carry the
// remote server's own diagnosis. A reply without one gets the generic code
// of its class: 5xx "5.0.0", 4xx "4.0.0", 2xx "2.0.0". Anything else, ""
// included, gives "". Only the first line of a multi-line reply is looked
// at.
func StatusOf(reply string) string {
	line := strings.TrimLeft(reply, " \t")
	if i := strings.IndexAny(line, "\r\n"); i >= 0 {
		line = line[:i]
	}
	if len(line) < 3 || !isDigits(line[:3]) || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
		return ""
	}
	class := line[0]
	if class != '2' && class != '4' && class != '5' {
		return ""
	}
	if len(line) > 4 {
		word, _, _ := strings.Cut(line[4:], " ")
		if validStatus(word) {
			return word
		}
	}
	return string(class) + ".0.0"
}

// validStatus reports whether s is an enhanced status code: class "." subject
// "." detail, with class 2, 4 or 5 and the other two of 1 to 3 digits
// without leading zeros (RFC 3463 §2).
func validStatus(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 3 || len(parts[0]) != 1 || strings.IndexByte("245", parts[0][0]) < 0 {
		return false
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 || !isDigits(p) || len(p) > 1 && p[0] == '0' {
			return false
		}
	}
	return true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
