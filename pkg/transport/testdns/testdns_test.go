package testdns

import (
	"errors"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

const testZone = `
$ORIGIN example.test.
$TTL 300
@        IN SOA ns hostmaster 1 3600 600 86400 60
@        IN NS  ns
ns       IN A   192.0.2.53
@        IN MX  10 mx
mx       IN A   192.0.2.1
Mixed    IN A   192.0.2.2
a.b.c    IN A   192.0.2.3
www      IN CNAME alias
alias    IN CNAME mx
out      IN CNAME mx.elsewhere.test.
loop1    IN CNAME loop2
loop2    IN CNAME loop1
gone     IN CNAME nothing
`

func ask(t *testing.T, s *Server, network, name string, qtype uint16, edns bool) *dns.Msg {
	t.Helper()
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(name), qtype)
	if edns {
		m.SetEdns0(1232, false)
	}
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, s.Addr)
	if err != nil {
		t.Fatalf("%s %s %s: %v", network, name, dns.TypeToString[qtype], err)
	}
	return r
}

func TestListenLoopbackOnly(t *testing.T) {
	s, err := Listen(testZone)
	if err != nil {
		t.Fatal(err)
	}
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("Addr = %q, want 127.0.0.1:port", s.Addr)
	}
	for _, network := range []string{"udp", "tcp"} {
		if r := ask(t, s, network, "mx.example.test", dns.TypeA, false); len(r.Answer) != 1 {
			t.Fatalf("%s: answer %v", network, r.Answer)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	c := &dns.Client{Net: "tcp", Timeout: 200 * time.Millisecond}
	if _, _, err := c.Exchange(new(dns.Msg).SetQuestion("mx.example.test.", dns.TypeA), s.Addr); err == nil {
		t.Fatal("server still answers after Close")
	}
}

func TestZoneValidation(t *testing.T) {
	for name, text := range map[string]string{
		"no soa":       "example.test. 300 IN A 192.0.2.1\n",
		"outside zone": "example.test. 300 IN SOA ns hm 1 1 1 1 1\nother.test. 300 IN A 192.0.2.1\n",
		"syntax":       "example.test. 300 IN SOA ns hm 1 1 1 1 1\nbad IN A not-an-ip\n",
		"two soa":      "example.test. 300 IN SOA ns hm 1 1 1 1 1\nexample.test. 300 IN SOA ns hm 2 1 1 1 1\n",
	} {
		if _, err := Listen(text); err == nil {
			t.Errorf("%s: Listen succeeded", name)
		}
	}
	s := Start(t, testZone)
	if err := s.SetZone("example.test. 300 IN A 192.0.2.1\n"); err == nil {
		t.Error("SetZone without soa succeeded")
	}
}

func TestAuthoritativeAnswers(t *testing.T) {
	s := Start(t, testZone)

	r := ask(t, s, "udp", "MIXED.Example.Test", dns.TypeA, true)
	if r.Rcode != dns.RcodeSuccess || !r.Authoritative || len(r.Answer) != 1 {
		t.Fatalf("positive: %v", r)
	}
	if r.IsEdns0() == nil {
		t.Error("no OPT in the reply to an EDNS0 query")
	}

	for _, name := range []string{"mx.example.test", "b.c.example.test", "c.example.test", "example.test"} {
		r = ask(t, s, "udp", name, dns.TypeAAAA, false)
		if r.Rcode != dns.RcodeSuccess || len(r.Answer) != 0 || len(r.Ns) != 1 {
			t.Fatalf("nodata %s: %v", name, r)
		}
		soa, ok := r.Ns[0].(*dns.SOA)
		if !ok || soa.Hdr.Ttl != 60 {
			t.Fatalf("nodata %s: authority %v, want the soa with ttl min(300, 60)", name, r.Ns)
		}
	}

	r = ask(t, s, "udp", "nope.example.test", dns.TypeA, false)
	if r.Rcode != dns.RcodeNameError || len(r.Ns) != 1 || r.Ns[0].Header().Rrtype != dns.TypeSOA {
		t.Fatalf("nxdomain: %v", r)
	}

	r = ask(t, s, "udp", "elsewhere.test", dns.TypeA, false)
	if r.Rcode != dns.RcodeRefused {
		t.Fatalf("out of zone: %v", r)
	}
}

func TestCNAMEChains(t *testing.T) {
	s := Start(t, testZone)
	types := func(r *dns.Msg) []string {
		var out []string
		for _, rr := range r.Answer {
			out = append(out, dns.TypeToString[rr.Header().Rrtype])
		}
		return out
	}

	r := ask(t, s, "udp", "www.example.test", dns.TypeA, false)
	if got := types(r); !slices.Equal(got, []string{"CNAME", "CNAME", "A"}) || r.Rcode != dns.RcodeSuccess {
		t.Fatalf("chain: %v %v", r.Rcode, got)
	}
	r = ask(t, s, "udp", "www.example.test", dns.TypeMX, false)
	if got := types(r); !slices.Equal(got, []string{"CNAME", "CNAME"}) || len(r.Ns) != 1 {
		t.Fatalf("chain to nodata: %v, ns %v", got, r.Ns)
	}
	r = ask(t, s, "udp", "www.example.test", dns.TypeCNAME, false)
	if got := types(r); !slices.Equal(got, []string{"CNAME"}) {
		t.Fatalf("cname query: %v", got)
	}
	r = ask(t, s, "udp", "out.example.test", dns.TypeA, false)
	if got := types(r); !slices.Equal(got, []string{"CNAME"}) || r.Rcode != dns.RcodeSuccess || len(r.Ns) != 0 {
		t.Fatalf("chain out of zone: %v %v %v", r.Rcode, got, r.Ns)
	}
	r = ask(t, s, "udp", "loop1.example.test", dns.TypeA, false)
	if got := types(r); !slices.Equal(got, []string{"CNAME", "CNAME"}) {
		t.Fatalf("loop: %v", got)
	}
	r = ask(t, s, "udp", "gone.example.test", dns.TypeA, false)
	if r.Rcode != dns.RcodeNameError || len(r.Answer) != 1 {
		t.Fatalf("chain to nxdomain: %v", r)
	}
}

func TestScripts(t *testing.T) {
	s := Start(t, testZone)

	s.ServFail("MX.example.test")
	if r := ask(t, s, "udp", "mx.example.test", dns.TypeA, false); r.Rcode != dns.RcodeServerFailure {
		t.Fatalf("servfail: %v", r)
	}

	s.Truncate("mx.example.test.")
	r := ask(t, s, "udp", "mx.example.test", dns.TypeA, true)
	if !r.Truncated || len(r.Answer) != 0 {
		t.Fatalf("truncate udp: %v", r)
	}
	r = ask(t, s, "tcp", "mx.example.test", dns.TypeA, true)
	if r.Truncated || len(r.Answer) != 1 {
		t.Fatalf("truncate tcp: %v", r)
	}

	s.Drop("mx.example.test")
	c := &dns.Client{Timeout: 150 * time.Millisecond}
	_, _, err := c.Exchange(new(dns.Msg).SetQuestion("mx.example.test.", dns.TypeA), s.Addr)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("drop: err = %v, want a timeout", err)
	}

	s.Clear("mx.example.test")
	if r := ask(t, s, "udp", "mx.example.test", dns.TypeA, false); len(r.Answer) != 1 {
		t.Fatalf("after clear: %v", r)
	}

	want := []Query{
		{"mx.example.test.", "A", "udp"},
		{"mx.example.test.", "A", "udp"},
		{"mx.example.test.", "A", "tcp"},
		{"mx.example.test.", "A", "udp"},
		{"mx.example.test.", "A", "udp"},
	}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Fatalf("Queries() = %v\nwant %v", got, want)
	}
	s.ResetQueries()
	if got := s.Queries(); len(got) != 0 {
		t.Fatalf("after ResetQueries: %v", got)
	}
}

func TestLargeAnswerTruncatedOverUDP(t *testing.T) {
	var b strings.Builder
	b.WriteString("example.test. 300 IN SOA ns hm 1 1 1 1 1\n")
	for i := range 60 {
		b.WriteString("many.example.test. 300 IN A 192.0.2." + strconv.Itoa(i+1) + "\n")
	}
	s := Start(t, b.String())
	r := ask(t, s, "udp", "many.example.test", dns.TypeA, false)
	if !r.Truncated || len(r.Answer) >= 60 {
		t.Fatalf("512-byte udp: tc=%v, %d records", r.Truncated, len(r.Answer))
	}
	r = ask(t, s, "udp", "many.example.test", dns.TypeA, true)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("edns0 udp: tc=%v, %d records", r.Truncated, len(r.Answer))
	}
	r = ask(t, s, "tcp", "many.example.test", dns.TypeA, false)
	if r.Truncated || len(r.Answer) != 60 {
		t.Fatalf("tcp: tc=%v, %d records", r.Truncated, len(r.Answer))
	}
}

func TestSetZone(t *testing.T) {
	s := Start(t, testZone)
	err := s.SetZone("$ORIGIN example.test.\n@ 300 IN SOA ns hm 1 1 1 1 1\nmx 300 IN A 192.0.2.99\n")
	if err != nil {
		t.Fatal(err)
	}
	r := ask(t, s, "udp", "mx.example.test", dns.TypeA, false)
	if len(r.Answer) != 1 || r.Answer[0].(*dns.A).A.String() != "192.0.2.99" {
		t.Fatalf("after SetZone: %v", r.Answer)
	}
	if r := ask(t, s, "udp", "mixed.example.test", dns.TypeA, false); r.Rcode != dns.RcodeNameError {
		t.Fatalf("old record still served: %v", r)
	}
}
