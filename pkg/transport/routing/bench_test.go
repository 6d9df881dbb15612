package routing

import (
	"fmt"
	"testing"

	"github.com/sendconn/sendconn/pkg/connector"
)

// benchConfig is an organization with n connectors: mostly partner
// connectors for one domain each, some for a domain and its subdomains, a
// few for every domain, and one for the accepted domains. The recipients
// the benchmarks use exist whatever n is, so every size does the same work.
func benchConfig(n int) ([]connector.SendConnector, []connector.AcceptedDomain) {
	conns := []connector.SendConnector{
		conn("Internet", "*;2"),
		conn("Internet small", "*;1", maxSize(kb)),
		conn("Internet backup", "*;2", sources("EX02")),
		conn("Inbound to org", "--", smartHosts(relayHost)),
	}
	for i := 0; len(conns) < n; i++ {
		var c connector.SendConnector
		if i%4 == 3 {
			c = conn(fmt.Sprintf("Wild %d", i), fmt.Sprintf("*.w%d.example;%d", i, 1+i%3), smartHosts(relayIP))
		} else {
			limit := connector.ByteSize(i%3) * mb // every third one 16 KB
			if limit == 0 {
				limit = 16 * kb
			}
			c = conn(fmt.Sprintf("Partner %d", i), fmt.Sprintf("p%d.example;%d", i, 1+i%5), maxSize(limit))
		}
		conns = append(conns, c)
	}
	domains := []connector.AcceptedDomain{
		accepted("contoso.com", connector.Authoritative),
		accepted("*.fabrikam.com", connector.InternalRelay),
	}
	return conns[:n], domains
}

var benchDomains = []string{
	"p1.example",        // exact
	"a.b.w3.example",    // wildcard two labels up
	"mail.fabrikam.com", // -- through a wildcard accepted domain
	"northwind.example", // falls to *
	"contoso.com",       // --
	"P2.Example",        // exact, upper case
	"p0.example",        // exact but 16 KB, too small: falls to *
	"a.very.deep.sub.domain.of.some.unknown.example", // many labels, none match but *
}

func BenchmarkResolve(b *testing.B) {
	for _, n := range []int{10, 1000, 10000} {
		conns, domains := benchConfig(n)
		ix := NewIndex(conns, domains, testLocal())
		b.Run(fmt.Sprintf("connectors=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				r := ix.Resolve(benchDomains[i%len(benchDomains)], 40*kb)
				if r.Connector == nil {
					b.Fatalf("%s not routed: %s", benchDomains[i%len(benchDomains)], r.Reply())
				}
				i++
			}
		})
	}
}

func BenchmarkBifurcate(b *testing.B) {
	conns, domains := benchConfig(1000)
	ix := NewIndex(conns, domains, testLocal())
	rcpts := make([]string, 50)
	for i := range rcpts {
		rcpts[i] = fmt.Sprintf("user%d@%s", i, benchDomains[i%len(benchDomains)])
	}
	b.Run("recipients=50", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			groups, unroutable := ix.Bifurcate(rcpts, 40*kb)
			if len(groups) == 0 || len(unroutable) != 0 {
				b.Fatalf("%d groups, %d unroutable", len(groups), len(unroutable))
			}
		}
	})
}

func BenchmarkNewIndex(b *testing.B) {
	conns, domains := benchConfig(10000)
	b.ReportAllocs()
	for b.Loop() {
		NewIndex(conns, domains, testLocal())
	}
}
