// Package dsn composes delivery status notifications: non-delivery reports,
// delay notices and "relayed" notices, as RFC 3464 message/delivery-status
// reports inside an RFC 6522 multipart/report, honouring the RFC 3461
// parameters (NOTIFY, RET, ENVID, ORCPT) the sender gave at submission.
//
// The package only builds bytes. The transport decides whether a notice is
// due (Wants, and never for a null reverse-path), puts what Compose writes
// into its own queue with the null reverse-path and routes it like any
// other message. Compose does no I/O besides the reader and writer it is
// given, and its output depends on nothing but its input (a random MIME
// boundary or Message-ID is drawn only when the caller leaves them empty),
// so golden tests can pin it byte for byte.
//
// # The three parts
//
// A report has, in order:
//
//  1. text/plain; charset=utf-8 for people, worded after Exchange's NDRs
//     ("Delivery has failed to these recipients or groups:", then
//     "Diagnostic information for administrators:"). It is 7bit when it
//     can be, quoted-printable otherwise (non-ASCII text, very long lines).
//  2. message/delivery-status for programs: the per-message fields, then
//     one block per recipient. It is always 7bit: whatever came from
//     outside (replies, addresses, host names) is reduced to one line of
//     printable ASCII and folded, so a remote server cannot inject fields
//     or MIME structure through its reply text.
//  3. The original: message/rfc822 with the whole message for a failure
//     whose sender did not ask for RET=HDRS and whose original is at most
//     MaxFullReturn bytes; text/rfc822-headers with its header block only
//     otherwise (RET=HDRS, delay and relayed notices, large originals,
//     and header blocks too large to keep).
//
// # Header firewall
//
// The original goes back to its sender, who may sit anywhere on the
// Internet, inside a message whose own header is filtered by the Send
// connector but whose attachment is not (permissions.Filter only sees the
// top-level header block). So before attaching it, Compose removes from the
// original's header block every field of the Organization, Forest, Routing
// (Received, Resent-*) and CrossPremises classes, through permissions.Filter;
// everything else stays byte for byte, except that line endings become
// CRLF and a bare CR inside a header line becomes a space (so that it
// cannot split a kept line into a field the filter never saw).
//
// # 8-bit and long lines
//
// The attached original is copied as it was stored. If it holds 8-bit
// data, the report needs an 8BITMIME (or, for UTF-8 headers, SMTPUTF8)
// path, exactly as the original did; lines longer than 998 octets are kept
// too, as rewrapping them would change the message being reported. The
// message/rfc822 part carries no Content-Transfer-Encoding, because the
// body is streamed after the part header is written. Everything Compose
// writes itself is 7-bit with CRLF lines of at most 998 octets, except
// that To: carries the envelope sender as given, which may be UTF-8 when
// the original was sent with SMTPUTF8.
package dsn
