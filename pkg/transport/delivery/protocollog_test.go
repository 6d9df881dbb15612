package delivery

import (
	"bytes"
	"context"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendconn/sendconn/pkg/connector"
	"github.com/sendconn/sendconn/pkg/transport/internal/testsmtp"
	"github.com/sendconn/sendconn/pkg/transport/logfile"
	"github.com/sendconn/sendconn/pkg/transport/protocollog"
)

// A Verbose connector's session is in the send protocol log, in
// Exchange's layout, with the session permissions and the certificate and
// without the credential; a None connector writes nothing.
func TestSendProtocolLog(t *testing.T) {
	dir := t.TempDir()
	plog, err := protocollog.Open(logfile.Config{Dir: dir, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ca := testsmtp.NewCA(t)
	cert := ca.Issue(t, "127.0.0.1")
	const password = "Tr0ub4dor-3"
	srv := testsmtp.Start(t, testsmtp.Options{TLS: &cert, Users: map[string]string{"svc": password}})
	d := New(Config{ServerFQDN: "ex01.contoso.com", RootCAs: ca.Pool, DialTimeout: 5 * time.Second, ProtocolLog: plog})
	verbose := smartHostConnector(t, srv)
	verbose.Name = "Verbose relay"
	verbose.ProtocolLoggingLevel = connector.LoggingVerbose
	verbose.SmartHostAuthMechanism = connector.AuthBasicRequireTLS
	verbose.AuthenticationCredential = &connector.Credential{UserName: "svc", Password: connector.NewSecret(password)}
	quiet := smartHostConnector(t, srv)
	quiet.Name, quiet.Guid = "Quiet relay", "11111111-7425-40de-944b-e07fc1f90ae7"
	wantStatus(t, d.Deliver(context.Background(), hop(verbose), message("bob@fabrikam.com")), Delivered, "250")
	wantStatus(t, d.Deliver(context.Background(), hop(quiet), message("bob@fabrikam.com")), Delivered, "250")
	d.Close()
	if err := plog.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := logfile.Files(dir, protocollog.Prefix)
	if err != nil || len(files) != 1 {
		t.Fatalf("log files %v, %v", files, err)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	for _, want := range []string{
		"#Log-type: SMTP Send Protocol Log\r\n",
		"#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,event,data,context\r\n",
		",Verbose relay,",
		",*,,attempting to connect",
		",<,220 ",
		",>,EHLO mail.contoso.com,",
		",>,STARTTLS,",
		"Received certificate",
		",*,SendRoutingHeaders,Set Session Permissions",
		",>,AUTH PLAIN <authentication information>,",
		",>,MAIL FROM:<alice@contoso.com>",
		",-,,Local",
	} {
		if !strings.Contains(strings.ReplaceAll(text, "\r\n", "\n"), strings.ReplaceAll(want, "\r\n", "\n")) {
			t.Errorf("log lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "Quiet relay") {
		t.Errorf("a connector without Verbose logged:\n%s", text)
	}
	secret := base64.StdEncoding.EncodeToString([]byte("\x00svc\x00" + password))
	filepath.WalkDir(dir, func(p string, _ os.DirEntry, _ error) error {
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, []byte(password)) || bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s contains the credential", p)
		}
		return nil
	})
}
