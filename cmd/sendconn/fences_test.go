package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDependencyFences keeps the layering of ARCHITECTURE.md: the model
// packages import nothing of ours and nothing third-party beyond
// golang.org/x; only the store imports bbolt; only the CLI imports cobra,
// viper and tablewriter.
func TestDependencyFences(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	const module = "github.com/sendconn/sendconn/"
	deps := func(pkg string) []string {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		return strings.Fields(string(out))
	}
	for _, pkg := range []string{"pkg/connector", "pkg/permissions", "pkg/transport/routing"} {
		for _, d := range deps(pkg) {
			if d == module+pkg || d == module+"pkg/connector" || strings.HasPrefix(d, "golang.org/x/") {
				continue
			}
			t.Errorf("%s must stay pure but depends on %s", pkg, d)
		}
	}
	// The transport reads the store through its own small Source
	// interface, so that a second store backend needs no transport change.
	for _, d := range deps("pkg/transport") {
		if d == module+"pkg/store" || strings.HasPrefix(d, "go.etcd.io/bbolt") {
			t.Errorf("pkg/transport depends on %s; it must read the store through transport.Source", d)
		}
	}
	for _, pkg := range []string{"pkg/connector", "pkg/permissions", "pkg/store", "pkg/transport"} {
		for _, d := range deps(pkg) {
			for _, cliOnly := range []string{"github.com/spf13/", "github.com/olekukonko/"} {
				if strings.HasPrefix(d, cliOnly) {
					t.Errorf("%s depends on %s, which only cmd/sendconn may use", pkg, d)
				}
			}
		}
	}
	for _, pkg := range []string{"pkg/connector", "pkg/permissions"} {
		for _, d := range deps(pkg) {
			if strings.HasPrefix(d, "go.etcd.io/bbolt") {
				t.Errorf("%s depends on bbolt, which only pkg/store may use", pkg)
			}
		}
	}
}
