package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// clock is an injected, settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

var t0 = time.Date(2026, 11, 23, 18, 2, 40, 123_000_000, time.UTC)

func testConfig(t *testing.T, c *clock) Config {
	t.Helper()
	return Config{
		Dir:     filepath.Join(t.TempDir(), "logs"),
		Prefix:  "SEND",
		LogType: "SMTP Send Protocol Log",
		Version: "1.2.3",
		Fields:  []string{"date-time", "a", "b"},
		Now:     c.Now,
	}
}

func mustOpen(t *testing.T, cfg Config) *Writer {
	t.Helper()
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func names(t *testing.T, dir, prefix string) []string {
	t.Helper()
	paths, err := Files(dir, prefix)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range paths {
		out = append(out, filepath.Base(p))
	}
	return out
}

func TestHeaderExact(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	w := mustOpen(t, cfg)
	if err := w.Write("x", "y", "z"); err != nil {
		t.Fatal(err)
	}
	want := "#Software: sendconn\n" +
		"#Version: 1.2.3\n" +
		"#Log-type: SMTP Send Protocol Log\n" +
		"#Date: 2026-11-23T18:02:40.123Z\n" +
		"#Fields: date-time,a,b\n" +
		"x,y,z\n"
	if got := readFile(t, filepath.Join(cfg.Dir, "SEND20261123-1.LOG")); got != want {
		t.Errorf("file:\n%s\nwant:\n%s", got, want)
	}
	st, err := os.Stat(cfg.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o750 {
		t.Errorf("dir mode %v, want 0750", st.Mode().Perm())
	}
}

func TestQuoting(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{[]string{"a", "b", "c"}, `a,b,c`},
		{[]string{"", "", ""}, `,,`},
		{[]string{"a,b", `say "hi"`, "x"}, `"a,b","say ""hi""",x`},
		{[]string{"line1\r\nline2", "cr\ronly", "lf\nonly"}, `line1  line2,cr only,lf only`},
		{[]string{"a\n,b", `"`, ""}, `"a ,b","""",`},
		{[]string{"#not a header", "#fine", ""}, `"#not a header",#fine,`},
	} {
		got := string(appendRecord(nil, tc.in))
		if got != tc.want {
			t.Errorf("appendRecord(%q) = %s, want %s", tc.in, got, tc.want)
		}
		back, ok := parseRecord(got)
		if !ok || len(back) != len(tc.in) {
			t.Errorf("parseRecord(%s) = %q, %v", got, back, ok)
		}
	}
}

func TestParseRecordMalformed(t *testing.T) {
	for _, s := range []string{`"unterminated,a,b`, `"a"b,c`} {
		if v, ok := parseRecord(s); ok {
			t.Errorf("parseRecord(%s) = %q, want malformed", s, v)
		}
	}
}

func TestSizeRotation(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxFileSize = 200 // the header is ~120 bytes: about two records per file
	w := mustOpen(t, cfg)
	for i := range 10 {
		if err := w.Write(fmt.Sprint(i), "0123456789", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	got := names(t, cfg.Dir, "SEND")
	if len(got) < 3 {
		t.Fatalf("files %v, want several", got)
	}
	var all []string
	for i, name := range got {
		if want := fmt.Sprintf("SEND20261123-%d.LOG", i+1); name != want {
			t.Errorf("file %d is %s, want %s", i, name, want)
		}
		path := filepath.Join(cfg.Dir, name)
		st, _ := os.Stat(path)
		if st.Size() > cfg.MaxFileSize {
			t.Errorf("%s has %d bytes, over %d", name, st.Size(), cfg.MaxFileSize)
		}
		if !strings.HasPrefix(readFile(t, path), "#Software: sendconn\n") {
			t.Errorf("%s has no header", name)
		}
		err := ReadRecords(path, func(m map[string]string) error {
			all = append(all, m["date-time"])
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := strings.Split("0 1 2 3 4 5 6 7 8 9", " "); !reflect.DeepEqual(all, want) {
		t.Errorf("records %v, want %v", all, want)
	}
}

func TestOversizedRecordStillWritten(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxFileSize = 50 // smaller than the header
	w := mustOpen(t, cfg)
	for range 2 {
		if err := w.Write("a", "b", "c"); err != nil {
			t.Fatal(err)
		}
	}
	// Every file takes at least one record, so rotation cannot loop.
	if got := names(t, cfg.Dir, "SEND"); len(got) != 2 {
		t.Errorf("files %v, want 2", got)
	}
}

func TestDayRotation(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxFileSize = 200
	w := mustOpen(t, cfg)
	for range 4 {
		if err := w.Write("d1", "0123456789", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	c.Set(time.Date(2026, 11, 24, 0, 0, 0, 5_000_000, time.UTC))
	if err := w.Write("d2", "x", "y"); err != nil {
		t.Fatal(err)
	}
	got := names(t, cfg.Dir, "SEND")
	last := got[len(got)-1]
	if last != "SEND20261124-1.LOG" {
		t.Fatalf("files %v, want the last to be SEND20261124-1.LOG", got)
	}
	if len(got) < 3 || got[1] != "SEND20261123-2.LOG" {
		t.Errorf("files %v, want day one rotated by size first", got)
	}
	content := readFile(t, filepath.Join(cfg.Dir, last))
	if !strings.Contains(content, "#Date: 2026-11-24T00:00:00.005Z\n") || !strings.HasSuffix(content, "\nd2,x,y\n") {
		t.Errorf("new day's file:\n%s", content)
	}
	if w.Path() != filepath.Join(cfg.Dir, last) {
		t.Errorf("Path() = %s", w.Path())
	}
}

func TestContinueAfterReopen(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	w, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write("1", "a", "b"); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Write("x", "y", "z"); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close = %v, want ErrClosed", err)
	}

	c.Set(t0.Add(time.Hour))
	w = mustOpen(t, cfg)
	if err := w.Write("2", "a", "b"); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(cfg.Dir, "SEND20261123-1.LOG")
	content := readFile(t, path)
	if strings.Count(content, "#Software") != 1 || !strings.HasSuffix(content, "\n1,a,b\n2,a,b\n") {
		t.Errorf("continued file:\n%s", content)
	}
	w.Close()

	// A crash cut the last line: the next record starts on a new line
	// and the cut one is skipped by readers.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`3,"cut`)
	f.Close()
	w = mustOpen(t, cfg)
	if err := w.Write("4", "a", "b"); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := ReadRecords(path, func(m map[string]string) error {
		got = append(got, m["date-time"])
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"1", "2", "4"}; !reflect.DeepEqual(got, want) {
		t.Errorf("records %v, want %v", got, want)
	}
	w.Close()

	// Other columns (an upgrade): start a new file rather than mislabel.
	cfg.Fields = []string{"date-time", "a", "b", "c"}
	w = mustOpen(t, cfg)
	if want := filepath.Join(cfg.Dir, "SEND20261123-2.LOG"); w.Path() != want {
		t.Errorf("with new fields, writing %s, want %s", w.Path(), want)
	}
}

func TestContinueFullFileStartsNext(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxFileSize = 130
	w := mustOpen(t, cfg)
	w.Write("1", "0123456789", "0123456789")
	w.Close()
	w = mustOpen(t, cfg)
	if want := filepath.Join(cfg.Dir, "SEND20261123-2.LOG"); w.Path() != want {
		t.Errorf("writing %s, want %s", w.Path(), want)
	}
}

// touch creates a log file of size bytes last written at mtime.
func touch(t *testing.T, dir, name string, size int, mtime time.Time) {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(strings.Repeat("x", size-1)+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestAgeCleanup(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxAge = 48 * time.Hour
	os.MkdirAll(cfg.Dir, 0o750)
	touch(t, cfg.Dir, "SEND20261120-1.LOG", 10, t0.Add(-72*time.Hour))
	touch(t, cfg.Dir, "SEND20261121-1.LOG", 10, t0.Add(-47*time.Hour))
	touch(t, cfg.Dir, "MSGTRK20261120-1.LOG", 10, t0.Add(-72*time.Hour)) // another log's
	touch(t, cfg.Dir, "notes.txt", 10, t0.Add(-72*time.Hour))
	w := mustOpen(t, cfg)
	if got, want := names(t, cfg.Dir, "SEND"), []string{"SEND20261121-1.LOG", "SEND20261123-1.LOG"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Open: %v, want %v", got, want)
	}
	for _, other := range []string{"MSGTRK20261120-1.LOG", "notes.txt"} {
		if _, err := os.Stat(filepath.Join(cfg.Dir, other)); err != nil {
			t.Errorf("%s: %v", other, err)
		}
	}

	// At the next rotation (a day later), the 21st is too old as well;
	// the file being written is never a candidate.
	c.Set(t0.Add(24 * time.Hour))
	if err := w.Write("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if got, want := names(t, cfg.Dir, "SEND"), []string{"SEND20261123-1.LOG", "SEND20261124-1.LOG"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after day rotation: %v, want %v", got, want)
	}
}

func TestDirectorySizeCleanup(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxDirectorySize = 1000
	cfg.MaxFileSize = 400
	os.MkdirAll(cfg.Dir, 0o750)
	touch(t, cfg.Dir, "SEND20261121-1.LOG", 300, t0.Add(-time.Hour))
	touch(t, cfg.Dir, "SEND20261121-2.LOG", 300, t0.Add(-time.Hour))
	touch(t, cfg.Dir, "SEND20261122-1.LOG", 300, t0.Add(-time.Hour))
	touch(t, cfg.Dir, "MSGTRK20261121-1.LOG", 5000, t0.Add(-time.Hour)) // not counted
	w := mustOpen(t, cfg)
	// 900 + the new file's header (>100) is over 1000: the oldest goes.
	if got, want := names(t, cfg.Dir, "SEND"), []string{"SEND20261121-2.LOG", "SEND20261122-1.LOG", "SEND20261123-1.LOG"}; !reflect.DeepEqual(got, want) {
		t.Errorf("after Open: %v, want %v", got, want)
	}
	for range 20 {
		if err := w.Write("0123456789", "0123456789", "0123456789"); err != nil {
			t.Fatal(err)
		}
	}
	got := names(t, cfg.Dir, "SEND")
	var total int64
	for _, name := range got {
		st, _ := os.Stat(filepath.Join(cfg.Dir, name))
		total += st.Size()
	}
	if got[0] == "SEND20261121-2.LOG" || got[len(got)-1] != filepath.Base(w.Path()) {
		t.Errorf("after writing: %v", got)
	}
	// Cleanup runs at rotation; the current file may have grown since.
	if total > cfg.MaxDirectorySize+cfg.MaxFileSize {
		t.Errorf("total %d bytes in %v", total, got)
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "MSGTRK20261121-1.LOG")); err != nil {
		t.Error(err)
	}

	// Even a single oversized current file is kept.
	cfg2 := testConfig(t, c)
	cfg2.MaxDirectorySize = 10
	w2 := mustOpen(t, cfg2)
	if err := w2.Write("a", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if got := names(t, cfg2.Dir, "SEND"); len(got) != 1 {
		t.Errorf("files %v", got)
	}
}

func TestConcurrentWriters(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	cfg.MaxFileSize = 4096 // rotate under contention too
	w := mustOpen(t, cfg)
	const goroutines, each = 8, 100
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range each {
				if err := w.Write(fmt.Sprintf("g%d", g), fmt.Sprintf("%d", i), `pad,"quoted"`+strings.Repeat("x", 20)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	paths, _ := Files(cfg.Dir, "SEND")
	for _, p := range paths {
		err := ReadRecords(p, func(m map[string]string) error {
			if m["b"] != `pad,"quoted"`+strings.Repeat("x", 20) {
				t.Errorf("mangled record %q", m)
			}
			seen[m["date-time"]+"/"+m["a"]] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(strings.TrimSuffix(readFile(t, p), "\n"), "\n") {
			if i >= 5 && !strings.HasPrefix(line, "g") {
				t.Errorf("%s: broken line %q", p, line)
			}
		}
	}
	if len(seen) != goroutines*each {
		t.Errorf("%d distinct records, want %d", len(seen), goroutines*each)
	}
	if len(paths) < 2 {
		t.Errorf("files %v, want rotation", paths)
	}
}

func TestReadRecordsRoundTrip(t *testing.T) {
	c := &clock{t: t0}
	cfg := testConfig(t, c)
	w := mustOpen(t, cfg)
	recs := [][]string{
		{"2026-11-23T18:02:40.123Z", "plain", ""},
		{"t2", `comma, and "quotes"`, "multi\r\nline"},
		{"t3", "", `"`},
	}
	for _, r := range recs {
		if err := w.Write(r...); err != nil {
			t.Fatal(err)
		}
	}
	// Another process is in the middle of writing a line.
	f, _ := os.OpenFile(w.Path(), os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`t4,"half`)
	f.Close()

	var got []map[string]string
	if err := ReadRecords(w.Path(), func(m map[string]string) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"date-time": "2026-11-23T18:02:40.123Z", "a": "plain", "b": ""},
		{"date-time": "t2", "a": `comma, and "quotes"`, "b": "multi  line"},
		{"date-time": "t3", "a": "", "b": `"`},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records\n%q\nwant\n%q", got, want)
	}

	// fn's error stops the reading and comes back unwrapped.
	stop := errors.New("stop")
	n := 0
	if err := ReadRecords(w.Path(), func(map[string]string) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("ReadRecords = %v after %d records", err, n)
	}
}

func TestReadRecordsExchangeFile(t *testing.T) {
	// CRLF line ends, a #Fields line with spaces, short and long records,
	// a record before any #Fields line.
	path := filepath.Join(t.TempDir(), "SEND20240501-1.LOG")
	os.WriteFile(path, []byte("orphan,line\r\n"+
		"#Software: Microsoft Exchange Server\r\n#Fields: date-time, x ,y\r\n"+
		"1,a\r\n2,b,c,extra\r\n\r\n3,\"q,\"\"\",z\r\n"), 0o640)
	var got []map[string]string
	if err := ReadRecords(path, func(m map[string]string) error {
		got = append(got, m)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := []map[string]string{
		{"date-time": "1", "x": "a", "y": ""},
		{"date-time": "2", "x": "b", "y": "c"},
		{"date-time": "3", "x": `q,"`, "y": "z"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	if err := ReadRecords(filepath.Join(t.TempDir(), "missing.LOG"), func(map[string]string) error { return nil }); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestFilesOrder(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{
		"MSGTRK20261123-10.LOG", "MSGTRK20261123-2.LOG", "MSGTRK20261122-3.log",
		"MSGTRKMD20261101-1.LOG", "MSGTRK20261123-0.LOG", "MSGTRK2026112-1.LOG",
		"MSGTRK20261123-.LOG", "MSGTRK20261123-1.TXT", "xMSGTRK20261123-1.LOG",
	} {
		os.WriteFile(filepath.Join(dir, n), nil, 0o640)
	}
	os.Mkdir(filepath.Join(dir, "MSGTRK20261124-1.LOG"), 0o750)
	got := names(t, dir, "MSGTRK")
	want := []string{"MSGTRK20261122-3.log", "MSGTRK20261123-2.LOG", "MSGTRK20261123-10.LOG"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Files = %v, want %v", got, want)
	}
	if _, err := Files(filepath.Join(dir, "nope"), "MSGTRK"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestOpenAndWriteErrors(t *testing.T) {
	c := &clock{t: t0}
	for _, mod := range []func(*Config){
		func(c *Config) { c.Dir = "" },
		func(c *Config) { c.Prefix = "" },
		func(c *Config) { c.Prefix = "a/b" },
		func(c *Config) { c.Fields = nil },
		func(c *Config) { c.Fields = []string{"a,b"} },
		func(c *Config) { c.Version = "1\n#Fields: x" },
	} {
		cfg := testConfig(t, c)
		mod(&cfg)
		if w, err := Open(cfg); err == nil {
			w.Close()
			t.Errorf("Open(%+v) succeeded", cfg)
		}
	}
	w := mustOpen(t, testConfig(t, c))
	if err := w.Write("only", "two"); err == nil {
		t.Error("Write with a missing value succeeded")
	}
}
