package dsn

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzCompose feeds arbitrary originals and replies: whatever they hold,
// the report must parse as a multipart/report of three parts whose own
// header is clean CRLF, and the firewall must hold.
func FuzzCompose(f *testing.F) {
	msg, _ := original()
	f.Add([]byte(msg), "550 5.1.1 <bob@fabrikam.com>: user unknown")
	f.Add([]byte(strings.ReplaceAll(msg, "\r\n", "\n")), "550-5.7.1 a\r\n550 5.7.1 b")
	f.Add([]byte("Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n\r\nbody"), "451 4.4.0 é\x00\r\n.\r\n")
	f.Add([]byte("Subject: x\rX-MS-Exchange-Organization-A: b\r\n\rReceived: y\n\n"), "")
	f.Add([]byte("no header at all"), "550")
	f.Add([]byte("\r\n"), strings.Repeat("x", 1000))
	f.Fuzz(func(t *testing.T, orig []byte, reply string) {
		if bytes.Contains(orig, []byte(testBoundary)) || strings.Contains(reply, testBoundary) {
			t.Skip("a fixed boundary must not occur in the content (a random one cannot be guessed)")
		}
		r := baseReport(
			Recipient{Address: "bob@fabrikam.com", Action: Failed, Reply: reply, RemoteMTA: reply, OriginalRecipient: reply},
			Recipient{Address: "carol@nowhere.invalid", Action: Failed, Reply: reply},
		)
		r.Original, r.OriginalSize = bytes.NewReader(orig), int64(len(orig))
		out := compose(t, r)
		p := parse(t, out)
		if len(p.recipients) != 2 {
			t.Fatalf("%d recipient blocks", len(p.recipients))
		}
		hdr, _ := p.attachedHeader()
		checkFirewall(t, hdr)
	})
}
