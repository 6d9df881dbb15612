package resolver

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/sendconn/sendconn/pkg/transport/testdns"
)

const zone = `
$ORIGIN example.test.
$TTL 300
@        IN SOA ns hostmaster 1 3600 600 86400 60
@        IN NS  ns
ns       IN A   192.0.2.53
@        IN MX  10 mx1
@        IN MX  10 mx2
@        IN MX  20 Backup
mx1      IN A   192.0.2.1
mx2      IN A   192.0.2.2
mx2      IN AAAA 2001:db8::2
backup   IN AAAA 2001:db8::3
multi    IN A   192.0.2.7
multi    IN AAAA 2001:db8::7
multi    IN A   192.0.2.5
multi    IN AAAA 2001:db8::5
multi    IN A   192.0.2.7
implicit IN A   192.0.2.10
null     IN MX  0 .
mixed    IN MX  0 .
mixed    IN MX  10 mx1
dup      IN MX  20 mx1
dup      IN MX  10 MX1.example.test.
dup      IN MX  30 mx2
alias    IN CNAME example.test.
dangling IN CNAME nowhere
mxalias  IN MX  10 www
www      IN CNAME mx1
loop1    IN CNAME loop2
loop2    IN CNAME loop1
out      IN CNAME mail.other.test.
noaddr   IN TXT "no address here"
a.b.c    IN A   192.0.2.9
long     3600 IN A 192.0.2.11
zero     0 IN A 192.0.2.12
`

const otherZone = `
$ORIGIN other.test.
@        IN SOA ns hostmaster 1 3600 600 86400 3600
mail     IN A   198.51.100.1
mail     IN MX  5 mail
back     IN CNAME loop.example.test.
`

// clock is a settable clock for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newResolver(t *testing.T, cfg Config, servers ...*testdns.Server) *Resolver {
	t.Helper()
	for _, s := range servers {
		cfg.Servers = append(cfg.Servers, s.Addr)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// count counts the queries s received for name (as given to the server,
// fully qualified), qtype and, if not empty, network.
func count(s *testdns.Server, name, qtype, network string) int {
	n := 0
	for _, q := range s.Queries() {
		if q.Name == name && q.Qtype == qtype && (network == "" || q.Net == network) {
			n++
		}
	}
	return n
}

func wantKind(t *testing.T, err error, k Kind) *Error {
	t.Helper()
	if KindOf(err) != k {
		t.Fatalf("err = %v (kind %v), want kind %v", err, KindOf(err), k)
	}
	e, _ := errors.AsType[*Error](err)
	return e
}

func hosts(mxs []MX) []string {
	var out []string
	for _, mx := range mxs {
		out = append(out, mx.Host+"/"+strconv.Itoa(int(mx.Preference)))
	}
	return out
}

func TestLookupMXOrder(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	mxs, err := r.LookupMX(context.Background(), "Example.TEST.")
	if err != nil {
		t.Fatal(err)
	}
	got := hosts(mxs)
	if len(got) != 3 || got[2] != "backup.example.test/20" ||
		!slices.Contains(got[:2], "mx1.example.test/10") || !slices.Contains(got[:2], "mx2.example.test/10") {
		t.Fatalf("LookupMX = %v", got)
	}
	for _, mx := range mxs {
		if mx.Implicit {
			t.Fatalf("%v is implicit", mx)
		}
	}
}

func TestLookupMXShufflesEqualPreferences(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	seen := map[string]bool{}
	for range 200 {
		mxs, err := r.LookupMX(context.Background(), "example.test")
		if err != nil {
			t.Fatal(err)
		}
		if mxs[2].Host != "backup.example.test" {
			t.Fatalf("shuffle crossed preferences: %v", hosts(mxs))
		}
		seen[mxs[0].Host] = true
	}
	if !seen["mx1.example.test"] || !seen["mx2.example.test"] {
		t.Fatalf("in 200 lookups the first host was only %v", seen)
	}
	// Shuffled per call, yet asked once: the cache holds the records.
	if n := count(s, "example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d MX queries, want 1", n)
	}
}

func TestLookupMXImplicit(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	for _, name := range []string{"implicit.example.test", "b.c.example.test"} {
		mxs, err := r.LookupMX(context.Background(), strings.ToUpper(name))
		if err != nil {
			t.Fatal(err)
		}
		if want := []MX{{Host: name, Preference: 0, Implicit: true}}; !slices.Equal(mxs, want) {
			t.Fatalf("LookupMX(%s) = %v, want %v", name, mxs, want)
		}
	}
}

func TestLookupMXNull(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	_, err := r.LookupMX(context.Background(), "null.example.test")
	e := wantKind(t, err, NullMX)
	if want := "lookup MX null.example.test: domain accepts no mail (null mx) (from " + s.Addr + ")"; e.Error() != want {
		t.Fatalf("error %q, want %q", e.Error(), want)
	}
	if e.Temporary() {
		t.Fatal("null mx is temporary")
	}

	mxs, err := r.LookupMX(context.Background(), "mixed.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts(mxs); !slices.Equal(got, []string{"mx1.example.test/10"}) {
		t.Fatalf("null mx beside a real one: %v", got)
	}
}

func TestLookupMXDuplicates(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	mxs, err := r.LookupMX(context.Background(), "dup.example.test")
	if err != nil {
		t.Fatal(err)
	}
	if got := hosts(mxs); !slices.Equal(got, []string{"mx1.example.test/10", "mx2.example.test/30"}) {
		t.Fatalf("LookupMX = %v", got)
	}
}

func TestNXDomain(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	_, err := r.LookupMX(context.Background(), "nope.example.test")
	e := wantKind(t, err, NXDomain)
	if want := "lookup MX nope.example.test: nonexistent domain (NXDOMAIN from " + s.Addr + ")"; e.Error() != want {
		t.Fatalf("error %q, want %q", e.Error(), want)
	}
	if e.Server != s.Addr || e.Rcode != "NXDOMAIN" || e.Temporary() {
		t.Fatalf("error fields %+v", e)
	}
	_, err = r.LookupHost(context.Background(), "nope.example.test")
	wantKind(t, err, NXDomain)

	// NXDOMAIN at the end of a chain is about the target (RFC 6604).
	_, err = r.LookupMX(context.Background(), "dangling.example.test")
	wantKind(t, err, NXDomain)
}

func TestLookupHostNoAddress(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	for _, name := range []string{"noaddr.example.test", "c.example.test", "example.test"} {
		_, err := r.LookupHost(context.Background(), name)
		e := wantKind(t, err, NoAddress)
		if want := "lookup A/AAAA " + name + ": no address records (from " + s.Addr + ")"; e.Error() != want {
			t.Fatalf("error %q, want %q", e.Error(), want)
		}
	}
}

func TestLookupHostOrder(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	addrs, err := r.LookupHost(context.Background(), "multi.example.test")
	if err != nil {
		t.Fatal(err)
	}
	want := []netip.Addr{
		netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.5"),
		netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("2001:db8::5"),
	}
	if !slices.Equal(addrs, want) {
		t.Fatalf("LookupHost = %v, want %v", addrs, want)
	}
	addrs, err = r.LookupHost(context.Background(), "backup.example.test")
	if err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("2001:db8::3")}) {
		t.Fatalf("IPv6 only: %v, %v", addrs, err)
	}
}

func TestIPLiteral(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	for in, want := range map[string]string{
		"192.0.2.7":          "192.0.2.7",
		"[192.0.2.7]":        "192.0.2.7",
		"2001:db8::1":        "2001:db8::1",
		"[2001:db8::1]":      "2001:db8::1",
		"[IPv6:2001:db8::1]": "2001:db8::1",
	} {
		addrs, err := r.LookupHost(context.Background(), in)
		if err != nil || len(addrs) != 1 || addrs[0].String() != want {
			t.Errorf("LookupHost(%q) = %v, %v; want %s", in, addrs, err, want)
		}
	}
	for _, bad := range []string{"[mx1.example.test]", "[192.0.2.7", "[IPv6:nope]"} {
		_, err := r.LookupHost(context.Background(), bad)
		wantKind(t, err, InvalidData)
	}
	if q := s.Queries(); len(q) != 0 {
		t.Fatalf("literals made queries: %v", q)
	}
}

func TestInvalidNames(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	for _, bad := range []string{"", ".", "exa mple.test", "bücher.test", "a..test", ".test", strings.Repeat("a", 64) + ".test", `a\.b.test`, "user@example.test", "a/b.test"} {
		_, err := r.LookupMX(context.Background(), bad)
		wantKind(t, err, InvalidData)
		_, err = r.LookupHost(context.Background(), bad)
		wantKind(t, err, InvalidData)
	}
	// An address literal is a host, not a mail domain to look up.
	_, err := r.LookupMX(context.Background(), "[192.0.2.1]")
	wantKind(t, err, InvalidData)
	if q := s.Queries(); len(q) != 0 {
		t.Fatalf("invalid names made queries: %v", q)
	}
}

func TestServFailFailover(t *testing.T) {
	bad := testdns.Start(t, zone)
	good := testdns.Start(t, zone)
	bad.ServFail("example.test")
	r := newResolver(t, Config{}, bad, good)

	mxs, err := r.LookupMX(context.Background(), "example.test")
	if err != nil || len(mxs) != 3 {
		t.Fatalf("LookupMX = %v, %v", mxs, err)
	}
	// SERVFAIL moves to the next server at once, without a second attempt.
	if b, g := count(bad, "example.test.", "MX", ""), count(good, "example.test.", "MX", ""); b != 1 || g != 1 {
		t.Fatalf("queries: %d to the failing server, %d to the good one; want 1 and 1", b, g)
	}
}

func TestServFailEverywhereNotCached(t *testing.T) {
	s1 := testdns.Start(t, zone)
	s2 := testdns.Start(t, zone)
	s1.ServFail("example.test")
	s2.ServFail("example.test")
	r := newResolver(t, Config{Now: newClock().Now}, s1, s2)

	_, err := r.LookupMX(context.Background(), "example.test")
	e := wantKind(t, err, Temporary)
	if !e.Temporary() || e.Rcode != "SERVFAIL" || e.Server != s2.Addr {
		t.Fatalf("error fields %+v", e)
	}
	if want := "lookup MX example.test: temporary failure (SERVFAIL from " + s2.Addr + ")"; e.Error() != want {
		t.Fatalf("error %q, want %q", e.Error(), want)
	}

	s2.Clear("example.test")
	if _, err := r.LookupMX(context.Background(), "example.test"); err != nil {
		t.Fatalf("after the failure cleared: %v", err)
	}
	if n := count(s2, "example.test.", "MX", ""); n != 2 {
		t.Fatalf("%d queries to the second server, want 2 (failure not cached)", n)
	}
}

func TestDropTimesOut(t *testing.T) {
	s := testdns.Start(t, zone)
	s.Drop("example.test")
	r := newResolver(t, Config{Timeout: 200 * time.Millisecond, Attempts: 1}, s)
	start := time.Now()
	_, err := r.LookupMX(context.Background(), "example.test")
	elapsed := time.Since(start)
	wantKind(t, err, Temporary)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if elapsed < 150*time.Millisecond || elapsed > 2*time.Second {
		t.Fatalf("took %v with a 200ms timeout", elapsed)
	}
	if n := count(s, "example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d queries, want 1", n)
	}
}

func TestDropFailover(t *testing.T) {
	dead := testdns.Start(t, zone)
	good := testdns.Start(t, zone)
	dead.Drop("example.test")
	r := newResolver(t, Config{Timeout: 100 * time.Millisecond, Attempts: 2}, dead, good)
	if _, err := r.LookupMX(context.Background(), "example.test"); err != nil {
		t.Fatal(err)
	}
	if d, g := count(dead, "example.test.", "MX", ""), count(good, "example.test.", "MX", ""); d != 2 || g != 1 {
		t.Fatalf("queries: %d to the silent server, %d to the good one; want 2 and 1", d, g)
	}
}

func TestTruncatedRetriedOverTCP(t *testing.T) {
	s := testdns.Start(t, zone)
	s.Truncate("example.test")
	r := newResolver(t, Config{}, s)
	mxs, err := r.LookupMX(context.Background(), "example.test")
	if err != nil {
		t.Fatal(err)
	}
	// The truncated UDP answer has no records; using it would have given
	// the implicit MX.
	if len(mxs) != 3 || mxs[0].Implicit {
		t.Fatalf("LookupMX = %v", mxs)
	}
	want := []testdns.Query{{Name: "example.test.", Qtype: "MX", Net: "udp"}, {Name: "example.test.", Qtype: "MX", Net: "tcp"}}
	if got := s.Queries(); !slices.Equal(got, want) {
		t.Fatalf("queries %v, want %v", got, want)
	}
}

func TestLargeAnswerOverTCP(t *testing.T) {
	var b strings.Builder
	b.WriteString("example.test. 300 IN SOA ns hm 1 1 1 1 1\n")
	for i := range 120 {
		b.WriteString("many.example.test. 300 IN A 10.0." + strconv.Itoa(i/100) + "." + strconv.Itoa(i%100) + "\n")
	}
	s := testdns.Start(t, b.String())
	r := newResolver(t, Config{}, s)
	addrs, err := r.LookupHost(context.Background(), "many.example.test")
	if err != nil || len(addrs) != 120 {
		t.Fatalf("LookupHost = %d addresses, %v", len(addrs), err)
	}
	if n := count(s, "many.example.test.", "A", "tcp"); n != 1 {
		t.Fatalf("%d tcp queries for A, want 1", n)
	}
}

func TestCNAMEForDomain(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	mxs, err := r.LookupMX(context.Background(), "alias.example.test")
	if err != nil || len(mxs) != 3 || mxs[2].Host != "backup.example.test" {
		t.Fatalf("LookupMX via cname = %v, %v", mxs, err)
	}
}

func TestCNAMEForMXTarget(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	mxs, err := r.LookupMX(context.Background(), "mxalias.example.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "www.example.test" {
		t.Fatalf("LookupMX = %v, %v", mxs, err)
	}
	addrs, err := r.LookupHost(context.Background(), mxs[0].Host)
	if err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("192.0.2.1")}) {
		t.Fatalf("LookupHost via cname = %v, %v", addrs, err)
	}
}

func TestCNAMEQueriedAcrossServers(t *testing.T) {
	// The first server stops at a target it does not serve (REFUSED when
	// asked); the second serves it.
	s1 := testdns.Start(t, zone)
	s2 := testdns.Start(t, otherZone)
	r := newResolver(t, Config{}, s1, s2)
	addrs, err := r.LookupHost(context.Background(), "out.example.test")
	if err != nil || !slices.Equal(addrs, []netip.Addr{netip.MustParseAddr("198.51.100.1")}) {
		t.Fatalf("LookupHost = %v, %v", addrs, err)
	}
	mxs, err := r.LookupMX(context.Background(), "out.example.test")
	if err != nil || len(mxs) != 1 || mxs[0].Host != "mail.other.test" || mxs[0].Preference != 5 {
		t.Fatalf("LookupMX = %v, %v", mxs, err)
	}
	if n := count(s2, "mail.other.test.", "MX", ""); n != 1 {
		t.Fatalf("%d MX queries for the target, want 1", n)
	}
}

func TestCNAMELoop(t *testing.T) {
	s := testdns.Start(t, zone)
	r := newResolver(t, Config{}, s)
	_, err := r.LookupMX(context.Background(), "loop1.example.test")
	wantKind(t, err, InvalidData)
	if !strings.Contains(err.Error(), "cname loop") {
		t.Fatalf("error %q does not say loop", err)
	}
	_, err = r.LookupHost(context.Background(), "loop2.example.test")
	wantKind(t, err, InvalidData)
}

func TestCNAMELoopAcrossQueries(t *testing.T) {
	s1 := testdns.Start(t, zone+"loop IN CNAME back.other.test.\n")
	s2 := testdns.Start(t, otherZone)
	r := newResolver(t, Config{}, s1, s2)
	_, err := r.LookupMX(context.Background(), "loop.example.test")
	wantKind(t, err, InvalidData)
	if !strings.Contains(err.Error(), "cname loop") {
		t.Fatalf("error %q does not say loop", err)
	}
}

func TestCNAMEChainLength(t *testing.T) {
	var b strings.Builder
	b.WriteString("$ORIGIN example.test.\n@ 300 IN SOA ns hm 1 1 1 1 1\nc9 300 IN A 192.0.2.1\n")
	for i := range 9 {
		b.WriteString("c" + strconv.Itoa(i) + " 300 IN CNAME c" + strconv.Itoa(i+1) + "\n")
	}
	s := testdns.Start(t, b.String())
	r := newResolver(t, Config{}, s)
	if _, err := r.LookupHost(context.Background(), "c1.example.test"); err != nil {
		t.Fatalf("8 links: %v", err)
	}
	_, err := r.LookupHost(context.Background(), "c0.example.test")
	wantKind(t, err, InvalidData)
}

func TestPositiveCache(t *testing.T) {
	s := testdns.Start(t, zone)
	clk := newClock()
	r := newResolver(t, Config{Now: clk.Now}, s)
	ctx := context.Background()
	lookup := func() {
		t.Helper()
		if _, err := r.LookupMX(ctx, "example.test"); err != nil {
			t.Fatal(err)
		}
	}
	lookup()
	clk.Advance(299 * time.Second)
	lookup()
	if n := count(s, "example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d queries within the ttl, want 1", n)
	}
	clk.Advance(time.Second)
	lookup()
	if n := count(s, "example.test.", "MX", ""); n != 2 {
		t.Fatalf("%d queries after the ttl, want 2", n)
	}

	// TTLs above an hour are capped; TTL 0 is not cached.
	host := func(name string) {
		t.Helper()
		if _, err := r.LookupHost(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	host("long.example.test")
	clk.Advance(3599 * time.Second)
	host("long.example.test")
	clk.Advance(time.Second)
	host("long.example.test")
	if n := count(s, "long.example.test.", "A", ""); n != 2 {
		t.Fatalf("%d queries for a 3600s record over 3600s, want 2", n)
	}
	host("zero.example.test")
	host("zero.example.test")
	if n := count(s, "zero.example.test.", "A", ""); n != 2 {
		t.Fatalf("%d queries for a ttl 0 record, want 2", n)
	}
}

func TestCacheUsesSmallestTTLOfChain(t *testing.T) {
	s := testdns.Start(t, zone+"short 30 IN CNAME mx1\n")
	clk := newClock()
	r := newResolver(t, Config{Now: clk.Now}, s)
	for range 2 {
		if _, err := r.LookupHost(context.Background(), "short.example.test"); err != nil {
			t.Fatal(err)
		}
		clk.Advance(29 * time.Second)
	}
	if n := count(s, "short.example.test.", "A", ""); n != 1 {
		t.Fatalf("%d queries within the cname ttl, want 1", n)
	}
	clk.Advance(time.Second)
	if _, err := r.LookupHost(context.Background(), "short.example.test"); err != nil {
		t.Fatal(err)
	}
	if n := count(s, "short.example.test.", "A", ""); n != 2 {
		t.Fatalf("%d queries after the cname ttl, want 2", n)
	}
}

func TestNegativeCache(t *testing.T) {
	s := testdns.Start(t, zone)
	clk := newClock()
	r := newResolver(t, Config{Now: clk.Now}, s)
	ctx := context.Background()

	// SOA minimum 60 is below its TTL of 300: 60s.
	for range 2 {
		_, err := r.LookupMX(ctx, "nope.example.test")
		wantKind(t, err, NXDomain)
		clk.Advance(59 * time.Second)
	}
	if n := count(s, "nope.example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d queries within the negative ttl, want 1", n)
	}
	clk.Advance(time.Second)
	_, err := r.LookupMX(ctx, "nope.example.test")
	wantKind(t, err, NXDomain)
	if n := count(s, "nope.example.test.", "MX", ""); n != 2 {
		t.Fatalf("%d queries after the negative ttl, want 2", n)
	}

	// NODATA (the implicit MX) is cached the same way.
	for range 2 {
		if _, err := r.LookupMX(ctx, "implicit.example.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(s, "implicit.example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d queries for a cached nodata, want 1", n)
	}

	// other.test has SOA TTL and minimum 3600: capped at five minutes.
	s2 := testdns.Start(t, otherZone)
	r2 := newResolver(t, Config{Now: clk.Now}, s2)
	for _, step := range []time.Duration{299 * time.Second, time.Second, 0} {
		_, err := r2.LookupHost(ctx, "nope.other.test")
		wantKind(t, err, NXDomain)
		clk.Advance(step)
	}
	if n := count(s2, "nope.other.test.", "A", ""); n != 2 {
		t.Fatalf("%d queries over 300s, want 2", n)
	}
}

func TestNegativeWithoutSOANotCached(t *testing.T) {
	m := new(dns.Msg)
	m.SetQuestion("nope.example.test.", dns.TypeMX)
	m.Rcode = dns.RcodeNameError
	a, err := interpret(m, "nope.example.test.", dns.TypeMX)
	if err != nil || !a.nxdomain || a.ttl != 0 {
		t.Fatalf("interpret = %+v, %v; want nxdomain, ttl 0", a, err)
	}
}

func TestCacheBounded(t *testing.T) {
	s := testdns.Start(t, zone)
	clk := newClock()
	r := newResolver(t, Config{Now: clk.Now, MaxCacheEntries: 3}, s)
	for _, name := range []string{"mx1", "mx2", "multi", "implicit", "ns", "long"} {
		if _, err := r.LookupMX(context.Background(), name+".example.test"); err != nil {
			t.Fatal(err)
		}
		if n := len(r.cache.entries); n > 3 {
			t.Fatalf("cache holds %d entries, max 3", n)
		}
	}

	r = newResolver(t, Config{Now: clk.Now, MaxCacheEntries: -1}, s)
	s.ResetQueries()
	for range 2 {
		if _, err := r.LookupMX(context.Background(), "example.test"); err != nil {
			t.Fatal(err)
		}
	}
	if n := count(s, "example.test.", "MX", ""); n != 2 {
		t.Fatalf("%d queries with the cache disabled, want 2", n)
	}
}

func TestContextCancel(t *testing.T) {
	s := testdns.Start(t, zone)
	s.Drop("example.test")
	r := newResolver(t, Config{Timeout: 5 * time.Second}, s)

	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := r.LookupMX(ctx, "example.test")
	if elapsed := time.Since(start); elapsed > time.Second {
		t.Fatalf("cancel took %v", elapsed)
	}
	wantKind(t, err, Temporary)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want it to wrap context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err = r.LookupHost(ctx, "example.test")
	wantKind(t, err, Temporary)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want it to wrap context.DeadlineExceeded", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	_, err = r.LookupMX(ctx, "mx1.example.test")
	wantKind(t, err, Temporary)
}

func TestConcurrentLookupsShareOneQuery(t *testing.T) {
	s := testdns.Start(t, zone)
	s.Drop("example.test")
	r := newResolver(t, Config{Timeout: 500 * time.Millisecond, Attempts: 1}, s)
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			_, err := r.LookupMX(context.Background(), "example.test")
			if KindOf(err) != Temporary {
				t.Errorf("err = %v, want temporary", err)
			}
		})
	}
	// Meanwhile, unrelated lookups proceed.
	for _, name := range []string{"mx1", "mx2", "multi", "www"} {
		wg.Go(func() {
			if _, err := r.LookupHost(context.Background(), name+".example.test"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := count(s, "example.test.", "MX", ""); n != 1 {
		t.Fatalf("%d queries for 10 concurrent lookups, want 1", n)
	}
}

func TestFlightCallerLeaves(t *testing.T) {
	var f flight
	release := make(chan struct{})
	started := make(chan struct{})
	fn := func(ctx context.Context) (*answer, error) {
		close(started)
		select {
		case <-release:
			return &answer{server: "done"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	k := cacheKey{name: "example.test.", qtype: dns.TypeMX}
	ctx1, cancel1 := context.WithCancel(context.Background())
	res1 := make(chan error, 1)
	go func() { _, err := f.do(ctx1, k, fn); res1 <- err }()
	<-started
	res2 := make(chan *answer, 1)
	go func() { a, _ := f.do(context.Background(), k, fn); res2 <- a }()
	// Wait until the second caller has joined.
	for {
		f.mu.Lock()
		n := f.calls[k].waiters
		f.mu.Unlock()
		if n == 2 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	cancel1()
	if err := <-res1; !errors.Is(err, context.Canceled) {
		t.Fatalf("first caller: %v", err)
	}
	close(release)
	if a := <-res2; a == nil || a.server != "done" {
		t.Fatalf("second caller got %+v; the first one's leaving cancelled the shared exchange", a)
	}
}

func TestServersFromResolvConf(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "resolv.conf")
	conf := "# generated\nsearch example.test\nnameserver 192.0.2.1\n; comment\nnameserver 2001:db8::1 # trailing\noptions ndots:2\nnameserver\tfe80::1%eth0\n"
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ServersFromResolvConf(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:53", "[2001:db8::1]:53", "[fe80::1%eth0]:53"}
	if !slices.Equal(got, want) {
		t.Fatalf("ServersFromResolvConf = %v, want %v", got, want)
	}
	if _, err := New(Config{Servers: got}); err != nil {
		t.Fatalf("New with them: %v", err)
	}

	for name, text := range map[string]string{
		"none":     "search example.test\n",
		"hostname": "nameserver dns.example.test\n",
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := ServersFromResolvConf(p); err == nil {
			t.Errorf("%s: ServersFromResolvConf = %v, want an error", name, s)
		}
	}
	if _, err := ServersFromResolvConf(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestNew(t *testing.T) {
	r, err := New(Config{Servers: []string{"192.0.2.1", "[2001:db8::1]", "::1", "127.0.0.1:5353", "[::1]:5353"}})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"192.0.2.1:53", "[2001:db8::1]:53", "[::1]:53", "127.0.0.1:5353", "[::1]:5353"}
	if !slices.Equal(r.servers, want) {
		t.Fatalf("servers %v, want %v", r.servers, want)
	}
	if r.timeout != 5*time.Second || r.attempts != 2 || r.cache.max != 10000 {
		t.Fatalf("defaults: timeout %v, attempts %d, cache %d", r.timeout, r.attempts, r.cache.max)
	}
	for _, bad := range [][]string{nil, {"dns.example.test"}, {"dns.example.test:53"}, {"192.0.2.1:0"}, {"192.0.2.1:x"}, {""}} {
		if _, err := New(Config{Servers: bad}); err == nil {
			t.Errorf("New(%q) succeeded", bad)
		}
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{
		NXDomain: "nxdomain", NullMX: "null mx", Temporary: "temporary",
		InvalidData: "invalid data", NoAddress: "no address", 0: "kind(0)",
	} {
		if k.String() != want {
			t.Errorf("Kind(%d).String() = %q, want %q", int(k), k.String(), want)
		}
	}
	if KindOf(errors.New("other")) != 0 || KindOf(nil) != 0 {
		t.Error("KindOf of a foreign error is not 0")
	}
}
