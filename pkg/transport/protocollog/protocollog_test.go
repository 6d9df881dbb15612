package protocollog

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/transport/logfile"
)

// tick is a clock that advances 1 ms per reading, so that every line has
// its own, predictable time.
type tick struct {
	mu sync.Mutex
	t  time.Time
}

func (c *tick) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(time.Millisecond)
	return t
}

var t0 = time.Date(2024, 5, 1, 10, 15, 2, 101_000_000, time.UTC)

func openLog(t *testing.T) (*Log, string) {
	t.Helper()
	dir := t.TempDir()
	c := &tick{t: t0}
	l, err := Open(logfile.Config{Dir: dir, Version: "test", Now: c.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, dir
}

func records(t *testing.T, dir string) []map[string]string {
	t.Helper()
	paths, err := logfile.Files(dir, Prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, p := range paths {
		if err := logfile.ReadRecords(p, func(m map[string]string) error {
			out = append(out, m)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func rawLog(t *testing.T, dir string) []byte {
	t.Helper()
	paths, _ := logfile.Files(dir, Prefix)
	var b []byte
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b = append(b, data...)
	}
	return b
}

func TestFullSession(t *testing.T) {
	l, dir := openLog(t)
	s := l.NewSession("To Internet", "203.0.113.25:25")
	s.Connecting()
	s.Connected("192.0.2.10:50123")
	s.Received("220 mx.fabrikam.com ESMTP\r\n")
	s.Sent("EHLO mail.contoso.com\r\n")
	s.Received("250-mx.fabrikam.com\r\n250-SIZE 52428800\r\n250 STARTTLS")
	s.Sent("STARTTLS")
	s.Received("220 2.0.0 Ready")
	s.Info("SendRoutingHeaders SendOrganizationHeaders", "Set Session Permissions")
	s.Sent("MAIL FROM:<a@contoso.com> SIZE=2048")
	s.Info("sending message with RecordId 42 and InternetMessageId <x,y@contoso.com>", "")
	s.Disconnected("Local")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}

	paths, _ := logfile.Files(dir, Prefix)
	if len(paths) != 1 || filepath.Base(paths[0]) != "SEND20240501-1.LOG" {
		t.Fatalf("files %v", paths)
	}
	head := string(rawLog(t, dir))
	wantHead := "#Software: sendconn\n#Version: test\n#Log-type: SMTP Send Protocol Log\n#Date: 2024-05-01T10:15:02.101Z\n" +
		"#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context\n"
	if !strings.HasPrefix(head, wantHead) {
		t.Errorf("header:\n%s", head)
	}

	type line struct{ local, event, data, context string }
	want := []line{
		{"", "*", "", "attempting to connect"},
		{"192.0.2.10:50123", "+", "", ""},
		{"192.0.2.10:50123", "<", "220 mx.fabrikam.com ESMTP", ""},
		{"192.0.2.10:50123", ">", "EHLO mail.contoso.com", ""},
		{"192.0.2.10:50123", "<", "250-mx.fabrikam.com 250-SIZE 52428800 250 STARTTLS", ""},
		{"192.0.2.10:50123", ">", "STARTTLS", ""},
		{"192.0.2.10:50123", "<", "220 2.0.0 Ready", ""},
		{"192.0.2.10:50123", "*", "SendRoutingHeaders SendOrganizationHeaders", "Set Session Permissions"},
		{"192.0.2.10:50123", ">", "MAIL FROM:<a@contoso.com> SIZE=2048", ""},
		{"192.0.2.10:50123", "*", "sending message with RecordId 42 and InternetMessageId <x,y@contoso.com>", ""},
		{"192.0.2.10:50123", "-", "", "Local"},
	}
	recs := records(t, dir)
	if len(recs) != len(want) {
		t.Fatalf("%d records, want %d: %q", len(recs), len(want), recs)
	}
	idRE := regexp.MustCompile(`^[0-9A-F]{16}$`)
	for i, r := range recs {
		if !idRE.MatchString(r["session-id"]) || r["session-id"] != s.ID() {
			t.Errorf("line %d: session-id %q (session %q)", i, r["session-id"], s.ID())
		}
		if r["sequence-number"] != strconv.Itoa(i) {
			t.Errorf("line %d: sequence-number %q", i, r["sequence-number"])
		}
		if r["connector-id"] != "To Internet" || r["remote-endpoint"] != "203.0.113.25:25" {
			t.Errorf("line %d: %q", i, r)
		}
		got := line{r["local-endpoint"], r["event"], r["data"], r["context"]}
		if got != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got, want[i])
		}
		tm, err := time.Parse(logfile.TimeLayout, r["date-time"])
		if err != nil || !strings.HasSuffix(r["date-time"], "Z") || len(r["date-time"]) != len("2024-05-01T10:15:02.101Z") {
			t.Errorf("line %d: date-time %q: %v", i, r["date-time"], err)
		}
		if i > 0 && !tm.After(t0) {
			t.Errorf("line %d: date-time %v not from the clock", i, tm)
		}
	}
}

func TestSessionIDs(t *testing.T) {
	l, err := Open(logfile.Config{Dir: t.TempDir(), Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	// The same instant twice: .NET ticks of the time, then one more.
	a, b := l.NewSession("c", "r:25").ID(), l.NewSession("c", "r:25").ID()
	if a != "08DC69C7905A4050" || b != "08DC69C7905A4051" {
		t.Errorf("ids %s, %s", a, b)
	}
	seen := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				id := l.NewSession("c", "r:25").ID()
				mu.Lock()
				seen[id] = true
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 800 {
		t.Errorf("%d distinct ids of 800", len(seen))
	}
}

func TestAuthNeverLogged(t *testing.T) {
	l, dir := openLog(t)
	const user, password = "relay@contoso.com", "s3cr3t-P4ssw0rd!"
	plain := base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
	userB64 := base64.StdEncoding.EncodeToString([]byte(user))
	passB64 := base64.StdEncoding.EncodeToString([]byte(password))
	token := base64.StdEncoding.EncodeToString([]byte("user=" + user + "\x01auth=Bearer ya29.TOKEN" + password + "\x01\x01"))

	s := l.NewSession("Smarthost", "198.51.100.7:587")
	s.Connecting()
	s.Connected("192.0.2.10:40000")
	s.Sent("AUTH PLAIN " + plain + "\r\n")
	s.Received("235 2.7.0 Authentication successful")
	for _, cmd := range []string{
		"auth plain " + plain,
		"  Auth\tPlain " + plain,
		"AUTH " + plain,         // malformed: no mechanism
		"AUTH XOAUTH2 " + token, // initial response
	} {
		s.Sent(cmd)
		s.Received("503 5.5.1 Already authenticated")
	}
	s.Sent("AUTH LOGIN")
	s.Received("334 VXNlcm5hbWU6")
	s.SentAuth() // userB64
	s.Received("334 UGFzc3dvcmQ6")
	s.SentAuth() // passB64
	s.Received("235 2.7.0 Authentication successful")
	// A caller that forgets SentAuth inside the exchange is still covered.
	s.Sent("AUTH LOGIN")
	s.Received("334 VXNlcm5hbWU6")
	s.Sent(userB64)
	s.Received("334 UGFzc3dvcmQ6")
	s.Sent(passB64 + "\r\n")
	s.Received("535 5.7.8 Authentication credentials invalid")
	s.Sent("QUIT")
	s.Disconnected("Local")
	l.Close()

	raw := rawLog(t, dir)
	for _, secret := range []string{plain, password, passB64, userB64, token, "ya29"} {
		if bytes.Contains(raw, []byte(secret)) {
			t.Errorf("the log holds %q:\n%s", secret, raw)
		}
	}
	var data []string
	for _, r := range records(t, dir) {
		if r["event"] == ">" || r["event"] == "<" {
			data = append(data, r["event"]+r["data"])
		}
	}
	want := []string{
		">AUTH PLAIN <authentication information>",
		"<235 2.7.0 Authentication successful",
		">AUTH PLAIN <authentication information>",
		"<503 5.5.1 Already authenticated",
		">AUTH PLAIN <authentication information>",
		"<503 5.5.1 Already authenticated",
		">AUTH <authentication information>",
		"<503 5.5.1 Already authenticated",
		">AUTH XOAUTH2 <authentication information>",
		"<503 5.5.1 Already authenticated",
		">AUTH LOGIN <authentication information>",
		"<334 <authentication information>",
		"><authentication information>",
		"<334 <authentication information>",
		"><authentication information>",
		"<235 2.7.0 Authentication successful",
		">AUTH LOGIN <authentication information>",
		"<334 <authentication information>",
		"><authentication information>",
		"<334 <authentication information>",
		"><authentication information>",
		"<535 5.7.8 Authentication credentials invalid",
		">QUIT",
	}
	if !reflect.DeepEqual(data, want) {
		t.Errorf("lines\n%q\nwant\n%q", data, want)
	}
}

func TestNilSafe(t *testing.T) {
	var l *Log
	s := l.NewSession("c", "r:25")
	if s != nil {
		t.Fatal("nil log gave a session")
	}
	s.Connecting()
	s.Connected("l:1")
	s.Sent("EHLO x")
	s.SentAuth()
	s.Received("250 ok")
	s.Info("a", "b")
	s.Certificate(&x509.Certificate{})
	s.Disconnected("Remote")
	if s.ID() != "" || l.Err() != nil || l.Close() != nil {
		t.Error("nil log or session is not a no-op")
	}
}

func TestCertificate(t *testing.T) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	notAfter := time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(0x0A1B2C3D4E),
		Subject:      pkix.Name{CommonName: "mx.fabrikam.com", Organization: []string{"Fabrikam, Inc."}, Country: []string{"US"}},
		NotBefore:    t0,
		NotAfter:     notAfter,
		DNSNames:     []string{"mx.fabrikam.com", "mail.fabrikam.com"},
		IPAddresses:  []net.IP{net.ParseIP("203.0.113.25")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}

	l, dir := openLog(t)
	s := l.NewSession("To Internet", "203.0.113.25:25")
	s.Connected("192.0.2.10:50123")
	s.Certificate(cert)
	s.Certificate(nil) // ignored
	l.Close()

	sum := sha1.Sum(der)
	subject := "CN=mx.fabrikam.com,O=Fabrikam\\, Inc.,C=US"
	want := [][2]string{
		{"", "Received certificate"},
		{subject, "Certificate subject"},
		{subject, "Certificate issuer name"},
		{"0A1B2C3D4E", "Certificate serial number"},
		{strings.ToUpper(hex.EncodeToString(sum[:])), "Certificate thumbprint"},
		{"2027-01-02T03:04:05Z", "Certificate expiration date"},
		{"mx.fabrikam.com;mail.fabrikam.com;203.0.113.25", "Certificate alternate names"},
	}
	recs := records(t, dir)[1:]
	if len(recs) != len(want) {
		t.Fatalf("%d lines: %q", len(recs), recs)
	}
	for i, r := range recs {
		if r["event"] != "*" || r["data"] != want[i][0] || r["context"] != want[i][1] {
			t.Errorf("line %d: %s,%s,%s; want *,%s,%s", i, r["event"], r["data"], r["context"], want[i][0], want[i][1])
		}
		if r["sequence-number"] != strconv.Itoa(i+1) {
			t.Errorf("line %d: sequence-number %s", i, r["sequence-number"])
		}
	}
	if thumb := want[4][0]; len(thumb) != 40 {
		t.Errorf("thumbprint %s", thumb)
	}
}

func TestWriteErrorKept(t *testing.T) {
	l, _ := openLog(t)
	s := l.NewSession("c", "r:25")
	l.Close()
	s.Connecting() // must not panic; the error is kept
	if l.Err() == nil {
		t.Error("Err() = nil after writing to a closed log")
	}
}
