package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// testApp returns an App on buffers with a store in a temporary directory.
func testApp(t *testing.T, stdin string, env map[string]string) (*App, *strings.Builder, *strings.Builder) {
	t.Helper()
	dir := t.TempDir()
	vars := map[string]string{
		"SENDCONN_STORE":       filepath.Join(dir, "sendconn.db"),
		"SENDCONN_SERVER_NAME": "EX01",
		"HOME":                 dir,
	}
	for k, v := range env {
		vars[k] = v
	}
	io, _, _ := testStreams(stdin)
	out, errOut := &strings.Builder{}, &strings.Builder{}
	io.Out, io.ErrOut = out, errOut
	app := &App{
		IO:       io,
		Getenv:   func(k string) string { return vars[k] },
		Now:      func() time.Time { return time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC) },
		Hostname: func() (string, error) { return "mail.contoso.com", nil },
		Euid:     1000,
	}
	return app, out, errOut
}

func runApp(t *testing.T, app *App, args ...string) int {
	t.Helper()
	return run(args, app)
}

func TestRemoveAsksOnATerminal(t *testing.T) {
	for _, tt := range []struct {
		answer  string
		removed bool
	}{{"y\n", true}, {"yes\n", true}, {"n\n", false}, {"\n", false}} {
		app, _, errOut := testApp(t, tt.answer, nil)
		if code := runApp(t, app, "new", "Doomed", "--address-spaces", "*"); code != 0 {
			t.Fatalf("new: %d", code)
		}
		app.IO.StdinTTY = true
		if code := runApp(t, app, "remove", "Doomed"); code != 0 {
			t.Fatalf("remove: exit %d: %s", code, errOut)
		}
		if !strings.Contains(errOut.String(), `Remove Send connector "Doomed"? [y/N]`) {
			t.Errorf("no prompt: %q", errOut)
		}
		code := runApp(t, app, "get", "Doomed")
		if gone := code == exitNotFound; gone != tt.removed {
			t.Errorf("answer %q: removed=%v, want %v", tt.answer, gone, tt.removed)
		}
	}
}

func TestCreatedConnectorUsesInjectedClock(t *testing.T) {
	app, out, _ := testApp(t, "", nil)
	runApp(t, app, "new", "A", "--address-spaces", "*")
	out.Reset()
	runApp(t, app, "get", "A", "-o", "csv", "--property", "WhenCreated,SourceTransportServers", "--no-headers")
	if got := strings.TrimSpace(out.String()); got != "2026-11-23T12:00:00Z,EX01" {
		t.Errorf("got %q", got)
	}
}

func TestRewriteArgs(t *testing.T) {
	app, _, _ := testApp(t, "", nil)
	root := newRootCmd(app)
	tests := []struct{ in, want string }{
		{"new -Name X -AddressSpaces *", "new --name=X --address-spaces=*"},
		{"New-SendConnector -Name:X -Custom -DNSRoutingEnabled $false", "new --name=X --custom --dns-routing-enabled=false"},
		{"new -Enabled $true -Port 25", "new --enabled=true --port=25"},
		{"new -Enabled -Port 25", "new --enabled --port=25"},
		{"new --DNSRoutingEnabled=$false", "new --dns-routing-enabled=false"},
		{"new --dns-routing-enabled $false", "new --dns-routing-enabled=false"},
		{"new --dns-routing-enabled false", "new --dns-routing-enabled false"},
		{"new --Smart_Hosts a", "new --smart-hosts=a"},
		{"new -SourceTransportServer a,b", "new --source-transport-servers=a,b"},
		{"new -S a", "new -S a"}, // not unique, left for cobra to report
		{"get -o json X", "get -o json X"},
		{"get -ojson", "get -ojson"},
		{"remove X -Confirm:$false", "remove X --confirm=false"},
		{"remove X -y", "remove X -y"},
		{"--store x.db get", "--store=x.db get"},
		{"GET-sendconnector -?", "get --help"},
		{"set X -Comment $null", "set X --comment="},
		{"set X --comment -weird-", "set X --comment=-weird-"},
		{"set -- -Name", "set -- -Name"},
	}
	for _, tt := range tests {
		got := strings.Join(rewriteArgs(root, strings.Fields(tt.in)), " ")
		if got != tt.want {
			t.Errorf("rewriteArgs(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWildcardMatch(t *testing.T) {
	tests := []struct {
		pattern, name string
		want          bool
	}{
		{"*", "anything", true},
		{"*Internet*", "To Internet", true},
		{"*internet", "To INTERNET", true},
		{"To*", "Partner", false},
		{"P?rtner", "Partner", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
		{"", "", true},
	}
	for _, tt := range tests {
		if got := wildcardMatch(tt.pattern, tt.name); got != tt.want {
			t.Errorf("wildcardMatch(%q, %q) = %v", tt.pattern, tt.name, got)
		}
	}
}

func TestIdentitiesFromJSONAndLines(t *testing.T) {
	ids, used, err := identityArgs(strings.NewReader(`[{"Name":"A","Guid":"g1"},{"Identity":"B"}]`), []string{"-"}, "")
	if err != nil || !used || strings.Join(ids, ",") != "g1,B" {
		t.Errorf("json: %v %v %v", ids, used, err)
	}
	ids, _, err = identityArgs(strings.NewReader("A\n\n  B  \n"), []string{"X", "-"}, "Y")
	if err != nil || strings.Join(ids, ",") != "Y,X,A,B" {
		t.Errorf("lines: %v %v", ids, err)
	}
	if _, _, err := identityArgs(strings.NewReader("[{}]"), []string{"-"}, ""); err == nil {
		t.Error("an object without identity should fail")
	}
}

func TestDefaultPaths(t *testing.T) {
	env := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	root := &configEnv{getenv: env(nil), euid: 0, hostname: "mx1.contoso.com"}
	user := &configEnv{getenv: env(map[string]string{"HOME": "/home/ann", "XDG_RUNTIME_DIR": "/run/user/1000"}), euid: 1000, hostname: "box"}
	xdg := &configEnv{getenv: env(map[string]string{"HOME": "/home/ann", "XDG_DATA_HOME": "/data"}), euid: 1000, hostname: "box"}
	for _, tt := range []struct {
		env       *configEnv
		key, want string
	}{
		{root, "store", "/var/lib/sendconn/sendconn.db"},
		{root, "queue.dir", "/var/spool/sendconn"},
		{root, "admin.socket", "/run/sendconn/admin.sock"},
		{root, "server.name", "mx1"},
		{root, "server.fqdn", "mx1.contoso.com"},
		{user, "store", "/home/ann/.local/share/sendconn/sendconn.db"},
		{user, "admin.socket", "/run/user/1000/sendconn/admin.sock"},
		{xdg, "store", "/data/sendconn/sendconn.db"},
	} {
		for _, k := range configKeys {
			if k.name == tt.key {
				if got := k.def(tt.env); got != tt.want {
					t.Errorf("default %s = %v, want %s", tt.key, got, tt.want)
				}
			}
		}
	}
}

func TestConfigDefaultsParse(t *testing.T) {
	app, _, errOut := testApp(t, "", nil)
	if code := runApp(t, app, "get"); code != 0 {
		t.Fatalf("get: %d %s", code, errOut)
	}
	c := app.cfg
	if c.MessageExpirationTimeout != 48*time.Hour || c.ReceiveMaxMessageSize.Bytes() != 36<<20 || c.ReceiveListen != "127.0.0.1:2525" ||
		len(c.ReceiveRemoteIPRanges) != 2 || c.TransientFailureRetryCount != 6 || c.OrganizationDomain != "SENDCONN" || c.ServerSite != "Default-First-Site-Name" {
		t.Errorf("defaults: %+v", c)
	}
}

// TestExampleConfigLoads keeps docs/sendconn.example.yaml valid and complete:
// it must load, and mention every key.
func TestExampleConfigLoads(t *testing.T) {
	example := filepath.Join("..", "..", "docs", "sendconn.example.yaml")
	app, _, errOut := testApp(t, "", nil)
	if code := runApp(t, app, "--config", example, "get"); code != 0 {
		t.Fatalf("example config: %s", errOut)
	}
	text, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range configKeys {
		leaf := k.name[strings.LastIndex(k.name, ".")+1:]
		if !strings.Contains(string(text), leaf+":") {
			t.Errorf("docs/sendconn.example.yaml does not mention %s", k.name)
		}
	}
}

func TestHashPassword(t *testing.T) {
	app, out, _ := testApp(t, "correct horse\n", nil)
	if code := runApp(t, app, "hash-password"); code != 0 {
		t.Fatalf("exit %d", code)
	}
	hash := strings.TrimSpace(out.String())
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte("correct horse")); err != nil {
		t.Errorf("the hash %q does not match the password: %v", hash, err)
	}
	if strings.Contains(out.String(), "horse") {
		t.Error("the password was printed")
	}
	for _, bad := range []string{"", "\n", strings.Repeat("x", 73) + "\n"} {
		app, _, errOut := testApp(t, bad, nil)
		if code := runApp(t, app, "hash-password"); code != exitUsage {
			t.Errorf("%q: exit %d, want %d (%s)", bad, code, exitUsage, errOut)
		}
	}
}
