package main

import (
	"os"
	"path/filepath"
	"testing"
)

// TestReferenceDocsAreCurrent fails when docs/reference no longer matches
// the commands' help; run 'make docs' to refresh it.
func TestReferenceDocsAreCurrent(t *testing.T) {
	app, _, _ := testApp(t, "", nil)
	dir := t.TempDir()
	if err := genDocs(newRootCmd(app), dir); err != nil {
		t.Fatal(err)
	}
	committed := filepath.Join("..", "..", "docs", "reference")
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		want, _ := os.ReadFile(filepath.Join(dir, f.Name()))
		got, err := os.ReadFile(filepath.Join(committed, f.Name()))
		if err != nil || string(got) != string(want) {
			t.Errorf("docs/reference/%s is out of date; run 'make docs'", f.Name())
		}
	}
	committedFiles, _ := os.ReadDir(committed)
	if len(committedFiles) != len(files) {
		t.Errorf("docs/reference has %d files, the commands make %d; run 'make docs'", len(committedFiles), len(files))
	}
}
