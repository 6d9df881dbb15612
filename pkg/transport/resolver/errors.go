package resolver

import (
	"errors"
	"strconv"
	"strings"
)

// Kind classifies a lookup failure by what delivery should do about it:
// NXDomain, NullMX and NoAddress are permanent facts about the destination
// (a non-delivery report), Temporary means try again later, and InvalidData
// means the name or the DNS data is broken.
type Kind int

const (
	// NXDomain: the name does not exist (RCODE 3). After a CNAME, it is
	// the target that does not exist (RFC 6604).
	NXDomain Kind = iota + 1
	// NullMX: the domain publishes a null MX (RFC 7505) and accepts no mail.
	NullMX
	// Temporary: SERVFAIL, REFUSED or another unusable RCODE from every
	// server, a timeout, a network error, or the caller's context ending.
	Temporary
	// InvalidData: a malformed or inconsistent answer, a CNAME loop or a
	// chain over eight links, or a name that is not a valid ASCII domain.
	InvalidData
	// NoAddress: the name exists but has neither A nor AAAA records.
	NoAddress
)

// String returns the kind in lower case, as in log lines.
func (k Kind) String() string {
	switch k {
	case NXDomain:
		return "nxdomain"
	case NullMX:
		return "null mx"
	case Temporary:
		return "temporary"
	case InvalidData:
		return "invalid data"
	case NoAddress:
		return "no address"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Error is the only error type the lookups return, so that callers can
// decide between retrying and bouncing with KindOf or Temporary.
type Error struct {
	Kind   Kind
	Name   string // the name looked up, lower case, without the trailing dot
	Qtype  string // "MX", "A", "AAAA", or "A/AAAA" for a host with neither
	Server string // the server that gave the deciding answer, if any
	Rcode  string // its RCODE ("NXDOMAIN", "SERVFAIL", ...), if it was one
	Err    error  // the underlying cause (network error, ctx.Err(), detail)
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("lookup ")
	if e.Qtype != "" {
		b.WriteString(e.Qtype)
		b.WriteByte(' ')
	}
	b.WriteString(e.Name)
	b.WriteString(": ")
	switch e.Kind {
	case NXDomain:
		b.WriteString("nonexistent domain")
	case NullMX:
		b.WriteString("domain accepts no mail (null mx)")
	case Temporary:
		b.WriteString("temporary failure")
	case InvalidData:
		b.WriteString("invalid dns data")
	case NoAddress:
		b.WriteString("no address records")
	default:
		b.WriteString("failure")
	}
	switch {
	case e.Rcode != "" && e.Server != "":
		b.WriteString(" (" + e.Rcode + " from " + e.Server + ")")
	case e.Rcode != "":
		b.WriteString(" (" + e.Rcode + ")")
	case e.Server != "" && e.Err == nil:
		b.WriteString(" (from " + e.Server + ")")
	}
	if e.Err != nil {
		b.WriteString(": ")
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

// Unwrap returns the cause, so errors.Is(err, context.Canceled) works.
func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether the lookup may succeed if tried again later.
func (e *Error) Temporary() bool { return e.Kind == Temporary }

// KindOf returns the Kind of the first *Error in err's chain, or 0 (which is
// no Kind) if there is none. It is the way to tell the failures apart:
//
//	switch resolver.KindOf(err) {
//	case resolver.NXDomain, resolver.NullMX, resolver.NoAddress: // bounce
//	case resolver.Temporary: // retry later
//	}
func KindOf(err error) Kind {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Kind
	}
	return 0
}
