package permissions

import (
	"bytes"
	"strings"
	"testing"
)

// benchHeaderFields is a header as it leaves an Exchange organization for
// the Internet: 30 fields, about 2 KB, a third of them stripped for an
// anonymous peer.
var benchHeaderFields = []string{
	"Received: from EX01.contoso.com (10.0.0.6) by EDGE01.contoso.com (10.0.1.4) with Microsoft SMTP\r\n Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n 15.2.1118.7; Mon, 3 Jun 2024 10:00:03 +0000\r\n",
	"Received: from EX02.contoso.com (10.0.0.7) by EX01.contoso.com (10.0.0.6) with Microsoft SMTP\r\n Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n 15.2.1118.7; Mon, 3 Jun 2024 10:00:02 +0000\r\n",
	"Received: from EX02.contoso.com ([fe80::1]) by EX02.contoso.com\r\n\t([fe80::1%12]) with mapi id 15.02.1118.007; Mon, 3 Jun 2024 10:00:01 +0000\r\n",
	"Resent-From: Carol Example <carol@contoso.com>\r\n",
	"Resent-Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n",
	"From: Alice Example <alice@contoso.com>\r\n",
	"To: Bob Example <bob@fabrikam.com>, Dave Example <dave@fabrikam.com>\r\n",
	"CC: Erin Example <erin@contoso.com>\r\n",
	"Subject: Quarterly numbers for the regional review\r\n",
	"Thread-Topic: Quarterly numbers for the regional review\r\n",
	"Thread-Index: AdqzAbCdEfGhIjKlMnOpQrStUvWxYz0123456789==\r\n",
	"Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n",
	"Message-ID: <4a7f9b2c0d1e4f5a8b9c0d1e2f3a4b5c@EX02.contoso.com>\r\n",
	"Accept-Language: en-US\r\n",
	"Content-Language: en-US\r\n",
	"X-MS-Has-Attach: yes\r\n",
	"X-MS-TNEF-Correlator: <4a7f9b2c0d1e4f5a8b9c0d1e2f3a4b5c@EX02.contoso.com>\r\n",
	"X-MS-Exchange-Organization-AuthAs: Internal\r\n",
	"X-MS-Exchange-Organization-AuthMechanism: 04\r\n",
	"X-MS-Exchange-Organization-AuthSource: EX02.contoso.com\r\n",
	"X-MS-Exchange-Organization-Network-Message-Id:\r\n 5c1f3a8e-2b4d-4e6f-9a0b-1c2d3e4f5a6b\r\n",
	"X-MS-Exchange-Organization-OriginalArrivalTime: 03 Jun 2024 10:00:01.2345\r\n (UTC)\r\n",
	"X-MS-Exchange-Organization-MessageDirectionality: Originating\r\n",
	"X-MS-Exchange-Organization-SCL: -1\r\n",
	"X-MS-Exchange-Forest-RulesExecuted: EX01 EX02\r\n",
	"X-MS-Exchange-Transport-EndToEndLatency: 00:00:03.1234567\r\n",
	"X-MS-Exchange-Processed-By-BccFoldering: 15.02.1118.007\r\n",
	"X-Originating-IP: [192.0.2.10]\r\n",
	"MIME-Version: 1.0\r\n",
	"Content-Type: multipart/mixed;\r\n\tboundary=\"----=_NextPart_000_0001_01DAB5A1.5C1F3A80\"\r\n",
}

func benchHeader(keep func(string) bool) []byte {
	var b bytes.Buffer
	for _, f := range benchHeaderFields {
		if keep(f) {
			b.WriteString(f)
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func everyField(string) bool { return true }

func BenchmarkFilterRealistic(b *testing.B) {
	hdr := benchHeader(everyField)
	p := SendPolicy(DefaultACL("CONTOSO").Effective(AnonymousLogon), false)
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		Filter(hdr, p)
	}
}

func BenchmarkFilterNoChange(b *testing.B) {
	hdr := benchHeader(everyField)
	p := SendPolicy(AllRights, false) // strips only CrossPremises, of which there is none
	b.SetBytes(int64(len(hdr)))
	b.ReportAllocs()
	for b.Loop() {
		Filter(hdr, p)
	}
}

func TestBenchHeaders(t *testing.T) {
	hdr := benchHeader(everyField)
	if n := len(benchHeaderFields); n != 30 {
		t.Errorf("the realistic header has %d fields, want 30", n)
	}
	if len(hdr) < 1800 || len(hdr) > 2300 {
		t.Errorf("the realistic header is %d bytes, want about 2 KB", len(hdr))
	}
	stripped := Filter(hdr, SendPolicy(routing, false))
	want := benchHeader(func(f string) bool {
		return !strings.HasPrefix(f, "X-MS-Exchange-Organization-") && !strings.HasPrefix(f, "X-MS-Exchange-Forest-")
	})
	if !bytes.Equal(stripped, want) {
		t.Errorf("anonymous filter kept %q", stripped)
	}
	if allocs := testing.AllocsPerRun(100, func() { Filter(hdr, SendPolicy(AllRights, false)) }); allocs != 0 {
		t.Errorf("Filter allocated %v times with nothing to change", allocs)
	}
}

const bigBodySize = 35 << 20

func BenchmarkFilterMessage35MB(b *testing.B) {
	hdr := benchHeader(everyField)
	msg := make([]byte, 0, len(hdr)+bigBodySize)
	msg = append(msg, hdr...)
	line := []byte("Received: this line is body text and must pass through untouched......\r\n")
	for len(msg)+len(line) <= cap(msg) {
		msg = append(msg, line...)
	}
	p := SendPolicy(routing, false)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		header, body := FilterMessage(msg, p)
		if len(header)+len(body) > len(msg) {
			b.Fatal("the message grew")
		}
	}
}
