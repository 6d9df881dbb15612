package smtpclient

import (
	"bufio"
	"bytes"
	"io"
	"net/textproto"
	"strings"
	"testing"
)

// The data on the wire is what textproto's own dot writer would send, for
// any split of the input into writes. (A bare CR, which receiving refuses,
// is passed on as it is; textproto doubles it.)
func TestDotWriterMatchesTextproto(t *testing.T) {
	inputs := []string{
		"",
		"Subject: x\r\n\r\nbody\r\n",
		".leading dot\r\n..two dots\r\nmiddle . dot\r\n.\r\n",
		"no final newline",
		"bare\nline feeds\n.dot after bare LF\n",
		"ends with CR\r",
		"\r\n\r\n.\r\n",
		"mixed\r\nline\nends\r\n.x\r\n",
	}
	for _, in := range inputs {
		var want bytes.Buffer
		tw := textproto.NewWriter(bufio.NewWriter(&want)).DotWriter()
		_, _ = io.WriteString(tw, in)
		_ = tw.Close()
		for chunk := 1; chunk <= len(in)+1; chunk++ {
			var got bytes.Buffer
			bw := bufio.NewWriter(&got)
			dw := newDotWriter(bw)
			for rest := in; len(rest) > 0; {
				k := min(chunk, len(rest))
				if _, err := dw.Write([]byte(rest[:k])); err != nil {
					t.Fatal(err)
				}
				rest = rest[k:]
			}
			if err := dw.Close(); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Fatalf("%q in chunks of %d:\n got %q\nwant %q", in, chunk, got.String(), want.String())
			}
		}
	}
}

func BenchmarkDotWriter(b *testing.B) {
	msg := []byte(strings.Repeat("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod\r\n", 1<<20/74))
	b.SetBytes(int64(len(msg)))
	b.Run("sendconn", func(b *testing.B) {
		for b.Loop() {
			dw := newDotWriter(bufio.NewWriterSize(io.Discard, 64<<10))
			_, _ = dw.Write(msg)
			_ = dw.Close()
		}
	})
	b.Run("textproto", func(b *testing.B) {
		for b.Loop() {
			tw := textproto.NewWriter(bufio.NewWriterSize(io.Discard, 64<<10)).DotWriter()
			_, _ = tw.Write(msg)
			_ = tw.Close()
		}
	})
}
