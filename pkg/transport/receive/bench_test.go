package receive

import (
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"testing"
)

// discardSpool reads and drops each message, as fast as a spool can be.
type discardSpool struct{}

func (discardSpool) Put(_ Envelope, body io.Reader) (string, error) {
	_, err := io.Copy(io.Discard, body)
	return "id", err
}

// BenchmarkData is the receiving side's cost per message over loopback:
// go-smtp's DATA reader, the line-ending check and the stamp, with a spool
// that only reads. One session, so the figure is per-message CPU, not
// concurrency.
func BenchmarkData(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("size=%dKB", size>>10), func(b *testing.B) {
			cfg := hostileConfig()
			cfg.MaxMessageSize = 40 << 20
			_, addr := startServer(b, cfg, discardSpool{})
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer conn.Close()
			tc := textproto.NewConn(conn)
			expect := func(code int) {
				if _, _, err := tc.ReadResponse(code); err != nil {
					b.Fatal(err)
				}
			}
			expect(220)
			_ = tc.PrintfLine("EHLO app1.contoso.com")
			expect(250)
			line := strings.Repeat("x", 74) + "\r\n"
			body := "Subject: bench\r\n\r\n" + strings.Repeat(line, size/len(line))
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				_, _ = tc.W.WriteString("MAIL FROM:<a@contoso.com>\r\nRCPT TO:<b@fabrikam.com>\r\nDATA\r\n")
				_ = tc.W.Flush()
				expect(250)
				expect(250)
				expect(354)
				_, _ = tc.W.WriteString(body)
				_, _ = tc.W.WriteString(".\r\n")
				_ = tc.W.Flush()
				expect(250)
			}
		})
	}
}
