package permissions

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// headerField is one field of the realistic test header, with a short label
// the expectations use.
type headerField struct {
	label string
	text  string
}

// realisticFields is a header as an Exchange organization leaves it on a
// message to the Internet: three Received fields (folded the way Exchange
// folds them), resent fields, the Organization fields transport stamps, a
// Forest field, a CrossPremises field, Microsoft fields outside every class
// and the usual RFC 5322 fields.
var realisticFields = []headerField{
	{"Received#1", "Received: from EX02.contoso.com (10.0.0.7) by EX01.contoso.com (10.0.0.6) with Microsoft SMTP\r\n" +
		" Server (version=TLS1_2, cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id\r\n" +
		" 15.2.1118.7; Mon, 3 Jun 2024 10:00:02 +0000\r\n"},
	{"Received#2", "Received: from EX02.contoso.com ([fe80::1]) by EX02.contoso.com\r\n" +
		"\t([fe80::1%12]) with mapi id 15.02.1118.007; Mon, 3 Jun 2024 10:00:01 +0000\r\n"},
	{"Received#3", "Received: from laptop.contoso.com (192.0.2.10) by EX02.contoso.com (10.0.0.7) with Microsoft SMTP Server id 15.2.1118.7; Mon, 3 Jun 2024 10:00:00 +0000\r\n"},
	{"Resent-From", "Resent-From: Carol <carol@contoso.com>\r\n"},
	{"Resent-Date", "Resent-Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n"},
	{"Org-AuthAs", "X-MS-Exchange-Organization-AuthAs: Internal\r\n"},
	{"Org-AuthSource", "X-MS-Exchange-Organization-AuthSource: EX02.contoso.com\r\n"},
	{"Org-Network-Message-Id", "X-MS-Exchange-Organization-Network-Message-Id:\r\n 5c1f3a8e-2b4d-4e6f-9a0b-1c2d3e4f5a6b\r\n"},
	{"Org-OriginalArrivalTime", "X-MS-Exchange-Organization-OriginalArrivalTime: 03 Jun 2024 10:00:01.2345\r\n (UTC)\r\n"},
	{"Org-SCL", "X-MS-Exchange-Organization-SCL: -1\r\n"},
	{"Forest-RulesExecuted", "X-MS-Exchange-Forest-RulesExecuted: EX01\r\n"},
	{"CrossPremises-AuthAs", "X-MS-Exchange-CrossPremises-AuthAs: Internal\r\n"},
	{"Transport-EndToEndLatency", "X-MS-Exchange-Transport-EndToEndLatency: 00:00:01.2345678\r\n"},
	{"X-MS-Has-Attach", "X-MS-Has-Attach: yes\r\n"},
	{"From", "From: Alice Example <alice@contoso.com>\r\n"},
	{"To", "To: Bob Example <bob@fabrikam.com>\r\n"},
	{"Subject", "Subject: Quarterly numbers\r\n"},
	{"Date", "Date: Mon, 3 Jun 2024 10:00:00 +0000\r\n"},
	{"Message-ID", "Message-ID: <4a7f9b2c0d1e4f5a@EX02.contoso.com>\r\n"},
	{"MIME-Version", "MIME-Version: 1.0\r\n"},
	{"Content-Type", "Content-Type: multipart/mixed;\r\n\tboundary=\"----=_NextPart_000_0001_01DAB5A1.5C1F3A80\"\r\n"},
}

const realisticBody = "------=_NextPart_000_0001_01DAB5A1.5C1F3A80\r\n" +
	"Content-Type: message/rfc822\r\n\r\n" +
	"Received: from inner.example by inner.example\r\n" +
	"X-MS-Exchange-Organization-SCL: 9\r\n" +
	"Subject: attached\r\n\r\nhello\r\n"

func realisticHeader() []byte {
	var b bytes.Buffer
	for _, f := range realisticFields {
		b.WriteString(f.text)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// headerOf joins the realistic fields whose labels keep accepts, followed
// by the empty line.
func headerOf(keep func(label string) bool) string {
	var b strings.Builder
	for _, f := range realisticFields {
		if keep(f.label) {
			b.WriteString(f.text)
		}
	}
	b.WriteString("\r\n")
	return b.String()
}

func labelsIn(header string) []string {
	var labels []string
	for _, f := range realisticFields {
		if strings.Contains(header, f.text) {
			labels = append(labels, f.label)
		}
	}
	return labels
}

func isRouting(label string) bool {
	return strings.HasPrefix(label, "Received") || strings.HasPrefix(label, "Resent-")
}
func isOrg(label string) bool    { return strings.HasPrefix(label, "Org-") }
func isForest(label string) bool { return strings.HasPrefix(label, "Forest-") }
func isCross(label string) bool  { return strings.HasPrefix(label, "CrossPremises-") }

// checkFilter runs Filter and the properties every result must have: hdr
// unchanged, and a second pass changes nothing.
func checkFilter(t *testing.T, hdr []byte, p Policy) []byte {
	t.Helper()
	orig := bytes.Clone(hdr)
	got := Filter(hdr, p)
	if !bytes.Equal(hdr, orig) {
		t.Fatalf("Filter modified its input")
	}
	if again := Filter(got, p); !bytes.Equal(again, got) {
		t.Errorf("second pass changed the result:\nonce:  %q\ntwice: %q", got, again)
	}
	return got
}

func TestFilterRealisticHeaderPerPrincipal(t *testing.T) {
	defaults := DefaultACL("CONTOSO")
	afterRemoval, _, err := defaults.Remove(ACE{User: AnonymousLogon, ExtendedRights: routing})
	if err != nil {
		t.Fatal(err)
	}
	afterDeny, _, err := defaults.Add(ACE{User: AnonymousLogon, ExtendedRights: routing, Deny: true, InheritanceType: DefaultInheritance})
	if err != nil {
		t.Fatal(err)
	}
	withOrg, _, err := defaults.Add(ACE{User: ExternallySecuredServers, ExtendedRights: RightsOf(SendHeadersOrganization), InheritanceType: DefaultInheritance})
	if err != nil {
		t.Fatal(err)
	}

	routingOnly := func(l string) bool { return !isOrg(l) && !isForest(l) && !isCross(l) }
	allButCross := func(l string) bool { return !isCross(l) }
	nothingClassified := func(l string) bool { return !isOrg(l) && !isForest(l) && !isCross(l) && !isRouting(l) }

	tests := []struct {
		name string
		acl  ACL
		user Principal
		keep func(label string) bool
	}{
		{"anonymous", defaults, AnonymousLogon, routingOnly},
		{"partner servers", defaults, PartnerServers, routingOnly},
		{"externally secured servers", defaults, ExternallySecuredServers, routingOnly},
		{"legacy exchange servers", defaults, LegacyExchangeServers, routingOnly},
		{"organization's exchange servers", defaults, contosoExchangeServers, allButCross},
		{"hub transport servers", defaults, HubTransportServers, allButCross},
		{"edge transport servers", defaults, EdgeTransportServers, allButCross},
		{"unknown principal holds nothing", defaults, `FABRIKAM\Exchange Servers`, nothingClassified},
		{"anonymous after removing routing", afterRemoval, AnonymousLogon, nothingClassified},
		{"partner servers after anonymous lost routing", afterRemoval, PartnerServers, routingOnly},
		{"anonymous after a deny entry", afterDeny, AnonymousLogon, nothingClassified},
		{"externally secured servers with organization", withOrg, ExternallySecuredServers,
			func(l string) bool { return !isForest(l) && !isCross(l) }},
	}
	hdr := realisticHeader()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkFilter(t, hdr, SendPolicy(tt.acl.Effective(tt.user), false))
			want := headerOf(tt.keep)
			if string(got) != want {
				t.Errorf("kept %q\nwant %q", labelsIn(string(got)), labelsIn(want))
			}
		})
	}
}

func TestFilterCrossPremisesCopies(t *testing.T) {
	hdr := realisticHeader()
	copyOf := func(label string) string {
		for _, f := range realisticFields {
			if f.label == label {
				return strings.Replace(f.text, "X-MS-Exchange-Organization-", "X-MS-Exchange-CrossPremises-", 1)
			}
		}
		panic(label)
	}
	// expected builds the realistic header with the old CrossPremises field
	// gone (an Organization field of the same suffix replaces it) and a copy
	// after (or instead of) every Organization field.
	expected := func(keepOrg, keepForest, keepRouting bool) string {
		var b strings.Builder
		for _, f := range realisticFields {
			switch {
			case isOrg(f.label):
				if keepOrg {
					b.WriteString(f.text)
				}
				b.WriteString(copyOf(f.label))
			case isCross(f.label):
			case isForest(f.label) && !keepForest, isRouting(f.label) && !keepRouting:
			default:
				b.WriteString(f.text)
			}
		}
		b.WriteString("\r\n")
		return b.String()
	}

	t.Run("exchange servers", func(t *testing.T) {
		got := checkFilter(t, hdr, SendPolicy(AllRights, true))
		if want := expected(true, true, true); string(got) != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
	t.Run("anonymous", func(t *testing.T) {
		got := checkFilter(t, hdr, SendPolicy(routing, true))
		if want := expected(false, false, true); string(got) != want {
			t.Errorf("got  %q\nwant %q", got, want)
		}
	})
}

func TestFilterCases(t *testing.T) {
	routingOut := Policy{Remove: ClassSet(0).With(ClassRouting)}
	everything := SendPolicy(0, false)
	cloud := SendPolicy(AllRights, true)
	cloudAnonymous := SendPolicy(0, true)

	tests := []struct {
		name   string
		in     string
		policy Policy
		want   string
	}{
		{"empty input", "", everything, ""},
		{"only the empty line", "\r\n", everything, "\r\n"},
		{"LF endings", "Received: a\nSubject: b\nResent-To: c\n\n", routingOut, "Subject: b\n\n"},
		{"CRLF endings", "Received: a\r\nSubject: b\r\n\r\n", routingOut, "Subject: b\r\n\r\n"},
		{"mixed endings survive as they were",
			"Received: a\r\n b\nSubject: x\r\nResent-To: y\nTo: z\n\r\n", routingOut, "Subject: x\r\nTo: z\n\r\n"},
		{"last line without newline, kept", "Received: a\r\nSubject: b", routingOut, "Subject: b"},
		{"last line without newline, removed", "Subject: b\r\nReceived: a", routingOut, "Subject: b\r\n"},
		{"last line without newline, removed with its fold", "Subject: b\nReceived: a\n b", routingOut, "Subject: b\n"},
		{"obsolete space before the colon", "Received : a\r\nReceived\t: b\r\nSubject: c\r\n\r\n", routingOut, "Subject: c\r\n\r\n"},
		{"case variants", "RECEIVED: a\r\nresent-to: b\r\nReSeNt-MeSsAgE-iD: <c>\r\nSubject: d\r\n\r\n", routingOut, "Subject: d\r\n\r\n"},
		{"Received-SPF and X-Received are not routing",
			"Received-SPF: pass\r\nX-Received: a\r\nReceivedX: b\r\nReceived: c\r\n\r\n", routingOut,
			"Received-SPF: pass\r\nX-Received: a\r\nReceivedX: b\r\n\r\n"},
		{"folded field goes with every continuation line",
			"Received: a\r\n\tb\r\n  c\r\n \r\nSubject: d\r\n\r\n", routingOut, "Subject: d\r\n\r\n"},
		{"kept bytes keep their case, folding and spacing",
			"sUbJeCt :\t  odd \r\n\tfold  \r\nReceived: x\r\nX-Mailer:x\r\n\r\n", routingOut,
			"sUbJeCt :\t  odd \r\n\tfold  \r\nX-Mailer:x\r\n\r\n"},
		{"mbox From line and a line without colon are kept",
			"From alice@contoso.com Mon Jun  3 10:00:00 2024\nno colon here\nReceived: a\nSubject: b\n\n", routingOut,
			"From alice@contoso.com Mon Jun  3 10:00:00 2024\nno colon here\nSubject: b\n\n"},
		{"continuation lines before any field are kept",
			" leading\r\n\tfold\r\nReceived: a\r\nSubject: b\r\n\r\n", routingOut, " leading\r\n\tfold\r\nSubject: b\r\n\r\n"},
		{"a colon only on a continuation line makes no field name",
			"Received\r\n : a\r\nSubject: b\r\n\r\n", routingOut, "Received\r\n : a\r\nSubject: b\r\n\r\n"},
		{"nothing after the empty line is touched",
			"Received: a\r\n\r\nReceived: body\r\nX-MS-Exchange-Organization-SCL: 9\r\n", everything,
			"\r\nReceived: body\r\nX-MS-Exchange-Organization-SCL: 9\r\n"},
		{"LF empty line after CRLF fields", "Received: a\r\nSubject: b\r\n\nReceived: body\r\n", routingOut,
			"Subject: b\r\n\nReceived: body\r\n"},
		{"other Microsoft prefixes pass",
			"X-MS-Exchange-Transport-EndToEndLatency: 1\r\nX-MS-Exchange-Organizational: 2\r\nX-MS-Exchange-Forest: 3\r\n" +
				"X-MS-TNEF-Correlator: 4\r\nX-MS-Exchange-Organization-SCL: 5\r\n\r\n", everything,
			"X-MS-Exchange-Transport-EndToEndLatency: 1\r\nX-MS-Exchange-Organizational: 2\r\nX-MS-Exchange-Forest: 3\r\n" +
				"X-MS-TNEF-Correlator: 4\r\n\r\n"},
		{"receive policy keeps routing and cross-premises",
			"Received: a\r\nX-MS-Exchange-Organization-SCL: -1\r\nx-ms-exchange-forest-rulesexecuted: b\r\n" +
				"X-MS-Exchange-CrossPremises-SCL: -1\r\n\r\n", ReceivePolicy(),
			"Received: a\r\nX-MS-Exchange-CrossPremises-SCL: -1\r\n\r\n"},

		{"copy follows its original",
			"X-MS-Exchange-Organization-SCL: -1\r\nSubject: a\r\n\r\n", cloud,
			"X-MS-Exchange-Organization-SCL: -1\r\nX-MS-Exchange-CrossPremises-SCL: -1\r\nSubject: a\r\n\r\n"},
		{"copy keeps suffix case, spacing, folding and line ending",
			"x-ms-exchange-organization-AuthAs :  Internal\n\tnext\nSubject: a\r\n\r\n", cloud,
			"x-ms-exchange-organization-AuthAs :  Internal\n\tnext\nX-MS-Exchange-CrossPremises-AuthAs :  Internal\n\tnext\nSubject: a\r\n\r\n"},
		{"copy stays when the original goes",
			"Received: a\r\nX-MS-Exchange-Organization-AuthAs: Anonymous\r\nX-MS-Exchange-Forest-X: b\r\n\r\n", cloudAnonymous,
			"X-MS-Exchange-CrossPremises-AuthAs: Anonymous\r\n\r\n"},
		{"an existing copy of the same suffix is replaced, others stay",
			"X-MS-Exchange-CrossPremises-scl: 9\r\nX-MS-Exchange-CrossPremises-PCL: 1\r\nX-MS-Exchange-Organization-SCL: -1\r\n\r\n", cloud,
			"X-MS-Exchange-CrossPremises-PCL: 1\r\nX-MS-Exchange-Organization-SCL: -1\r\nX-MS-Exchange-CrossPremises-SCL: -1\r\n\r\n"},
		{"cross-premises fields without an organization field stay",
			"X-MS-Exchange-CrossPremises-SCL: 9\r\nSubject: a\r\n\r\n", cloud,
			"X-MS-Exchange-CrossPremises-SCL: 9\r\nSubject: a\r\n\r\n"},
		{"every organization field gets its copy",
			"X-MS-Exchange-Organization-SCL: 1\nX-MS-Exchange-Organization-SCL: 2\n\n", cloud,
			"X-MS-Exchange-Organization-SCL: 1\nX-MS-Exchange-CrossPremises-SCL: 1\nX-MS-Exchange-Organization-SCL: 2\nX-MS-Exchange-CrossPremises-SCL: 2\n\n"},
		{"an unterminated original stays last, its copy goes before it",
			"Subject: a\nX-MS-Exchange-Organization-SCL: 1", cloud,
			"Subject: a\nX-MS-Exchange-CrossPremises-SCL: 1\nX-MS-Exchange-Organization-SCL: 1"},
		{"an unterminated original alone gets a CRLF copy",
			"X-MS-Exchange-Organization-SCL: 1", cloud,
			"X-MS-Exchange-CrossPremises-SCL: 1\r\nX-MS-Exchange-Organization-SCL: 1"},
		{"an unterminated original that goes is replaced in place",
			"Subject: a\r\nX-MS-Exchange-Organization-SCL: 1", cloudAnonymous,
			"Subject: a\r\nX-MS-Exchange-CrossPremises-SCL: 1"},
		{"stripping cross-premises wins over copying",
			"X-MS-Exchange-Organization-SCL: 1\r\nX-MS-Exchange-CrossPremises-PCL: 2\r\n\r\n",
			Policy{Remove: ClassSet(0).With(ClassCrossPremises), CopyToCrossPremises: true},
			"X-MS-Exchange-Organization-SCL: 1\r\n\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkFilter(t, []byte(tt.in), tt.policy)
			if string(got) != tt.want {
				t.Errorf("Filter(%q)\n got  %q\n want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestFilterReturnsInputWhenNothingChanges(t *testing.T) {
	hdr := []byte(headerOf(func(l string) bool { return !isCross(l) }))
	p := SendPolicy(AllRights, false)
	got := Filter(hdr, p)
	if len(got) != len(hdr) || &got[0] != &hdr[0] {
		t.Fatal("Filter returned a new slice although nothing changed")
	}
	allocs := testing.AllocsPerRun(100, func() { Filter(hdr, p) })
	if allocs != 0 {
		t.Errorf("Filter allocated %v times with nothing to change", allocs)
	}
	if got := Filter(nil, p); got != nil {
		t.Errorf("Filter(nil) = %q", got)
	}
}

func TestFilterMessage(t *testing.T) {
	hdr := realisticHeader()
	msg := append(bytes.Clone(hdr), realisticBody...)
	header, body := FilterMessage(msg, SendPolicy(0, false))

	if string(body) != realisticBody {
		t.Errorf("body = %q, want %q", body, realisticBody)
	}
	if len(body) > 0 && &body[0] != &msg[len(hdr)] {
		t.Error("the body was copied")
	}
	if want := headerOf(func(l string) bool { return !isOrg(l) && !isForest(l) && !isCross(l) && !isRouting(l) }); string(header) != want {
		t.Errorf("header kept %q, want %q", labelsIn(string(header)), labelsIn(want))
	}

	// A header that needs no change comes back as part of msg, capped so
	// that appending to it cannot run into the body.
	clean := append([]byte("Subject: a\r\n\r\n"), "Received: body\r\n"...)
	header, body = FilterMessage(clean, SendPolicy(0, false))
	if string(header) != "Subject: a\r\n\r\n" || string(body) != "Received: body\r\n" {
		t.Fatalf("FilterMessage = %q, %q", header, body)
	}
	_ = append(header, "X-Appended: 1\r\n"...)
	if string(body) != "Received: body\r\n" {
		t.Error("appending to the header overwrote the body")
	}

	tests := []struct {
		msg, header, body string
	}{
		{"", "", ""},
		{"Received: a\r\nSubject: b\r\n", "Subject: b\r\n", ""},
		{"Received: a\nSubject: b", "Subject: b", ""},
		{"\r\nReceived: body", "\r\n", "Received: body"},
		{"Received: a\n\nReceived: body\n", "\n", "Received: body\n"},
	}
	for _, tt := range tests {
		header, body := FilterMessage([]byte(tt.msg), SendPolicy(0, false))
		if string(header) != tt.header || string(body) != tt.body {
			t.Errorf("FilterMessage(%q) = %q, %q; want %q, %q", tt.msg, header, body, tt.header, tt.body)
		}
	}
}

func TestHeaderEnd(t *testing.T) {
	tests := []struct {
		msg  string
		want int
	}{
		{"", 0},
		{"\r\n", 2},
		{"\n", 1},
		{"\r\nbody", 2},
		{"Subject: a\r\n\r\nbody", 14},
		{"Subject: a\n\nbody", 12},
		{"Subject: a\r\n\nbody", 13},
		{"Subject: a\n\r\nbody", 13},
		{"Subject: a\r\n \r\n\r\nbody", 17},
		{"Subject: a\r\n", 12},
		{"Subject: a", 10},
		{"Subject: a\r\r\nb: c\r\n\r\n", 21},
		{"Subject: a\r\n\r", 13},
	}
	for _, tt := range tests {
		if got := HeaderEnd([]byte(tt.msg)); got != tt.want {
			t.Errorf("HeaderEnd(%q) = %d, want %d", tt.msg, got, tt.want)
		}
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		want HeaderClass
	}{
		{"Received", ClassRouting},
		{"RECEIVED", ClassRouting},
		{"received \t", ClassRouting},
		{"Received-SPF", ClassNone},
		{"X-Received", ClassNone},
		{"Receive", ClassNone},
		{"Resent-From", ClassRouting},
		{"resent-message-id", ClassRouting},
		{"Resent-", ClassRouting},
		{"Resent", ClassNone},
		{"X-MS-Exchange-Organization-AuthAs", ClassOrganization},
		{"x-ms-exchange-organization-scl", ClassOrganization},
		{"X-MS-Exchange-Organization-", ClassOrganization},
		{"X-MS-Exchange-Organization", ClassNone},
		{"X-MS-Exchange-Forest-RulesExecuted", ClassForest},
		{"X-MS-Exchange-CrossPremises-AuthAs", ClassCrossPremises},
		{"X-MS-Exchange-Transport-EndToEndLatency", ClassNone},
		{"X-MS-Has-Attach", ClassNone},
		{"X-MS-Exchange-\u212Arganization-SCL", ClassNone}, // no Unicode folding: ASCII names only
		{"Subject", ClassNone},
		{"", ClassNone},
		{" Received", ClassNone},
	}
	for _, tt := range tests {
		if got := Classify([]byte(tt.name)); got != tt.want {
			t.Errorf("Classify(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPolicies(t *testing.T) {
	set := func(cs ...HeaderClass) ClassSet {
		var s ClassSet
		for _, c := range cs {
			s = s.With(c)
		}
		return s
	}
	tests := []struct {
		name string
		got  Policy
		want Policy
	}{
		{"anonymous", SendPolicy(routing, false), Policy{Remove: set(ClassOrganization, ClassForest, ClassCrossPremises)}},
		{"nothing", SendPolicy(0, false), Policy{Remove: set(ClassRouting, ClassOrganization, ClassForest, ClassCrossPremises)}},
		{"exchange", SendPolicy(AllRights, false), Policy{Remove: set(ClassCrossPremises)}},
		{"exchange, cloud", SendPolicy(AllRights, true), Policy{CopyToCrossPremises: true}},
		{"anonymous, cloud", SendPolicy(routing, true), Policy{Remove: set(ClassOrganization, ClassForest), CopyToCrossPremises: true}},
		{"exch50 and xshadow change nothing", SendPolicy(RightsOf(SMTPSendExch50, SMTPSendXShadow), false), SendPolicy(0, false)},
		{"receive", ReceivePolicy(), Policy{Remove: set(ClassOrganization, ClassForest)}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: policy = %+v (%v), want %+v (%v)", tt.name, tt.got, tt.got.Remove, tt.want, tt.want.Remove)
		}
	}
}

func TestClassSet(t *testing.T) {
	var s ClassSet
	if s.With(ClassNone) != s || s.With(ClassNone).Has(ClassNone) {
		t.Error("ClassNone entered a set")
	}
	s = s.With(ClassRouting).With(ClassCrossPremises)
	for c := ClassNone; c <= ClassCrossPremises; c++ {
		want := c == ClassRouting || c == ClassCrossPremises
		if s.Has(c) != want {
			t.Errorf("Has(%v) = %v, want %v", c, s.Has(c), want)
		}
	}
	if got := s.String(); got != "Routing, CrossPremises" {
		t.Errorf("String() = %q", got)
	}
	if ClassSet(0xFF).Has(ClassNone) {
		t.Error("a raw set holds ClassNone")
	}
	if got := fmt.Sprint(HeaderClass(9)); got != "HeaderClass(9)" {
		t.Errorf("HeaderClass(9) prints %q", got)
	}
}
