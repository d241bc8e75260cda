package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/golden"
)

// goldenJSON checks that out is one JSON array of objects, then
// compares it, with dir written as DIR, with testdata/listjson/name.
func goldenJSON(t *testing.T, name, out, dir string) {
	t.Helper()
	var arr []map[string]any
	if err := json.Unmarshal([]byte(out), &arr); err != nil {
		t.Fatalf("%s: not a JSON array of objects: %v\n%s", name, err, out)
	}
	if dir != "" {
		out = strings.ReplaceAll(out, dir, "DIR")
	}
	golden.Check(t, filepath.Join("..", "..", "testdata", "listjson", name), []byte(out))
}

// TestListJSON: every listing's --json is a JSON array of objects of the
// documented fields (README "JSON output").
func TestListJSON(t *testing.T) {
	t.Run("collectors", func(t *testing.T) {
		// Signed by the test-only key: the golden file is the fields,
		// not the wording of a refusal.
		dir := t.TempDir()
		state := filepath.Join(dir, "state")
		if r := tracebroker(t, "init", "--state", state); r.code != 0 {
			t.Fatal(r.stderr)
		}
		signCollectors(t, state)
		r := tracebroker(t, "collectors", "list", "--json", "--state", state, "--trust", testPub)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		goldenJSON(t, "collectors.json", r.stdout, state)
		r = tracebroker(t, "collectors", "list", "--json", "--state", t.TempDir())
		if r.code != 0 || strings.Count(r.stdout, `"status":"refused","reason":"`) != len(collector.Programs()) {
			t.Errorf("unsigned: exit %d\n%s%s", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("plugins", func(t *testing.T) {
		dir := t.TempDir()
		// An executable with no manifest: listed as refused, never run.
		if err := os.WriteFile(filepath.Join(dir, "unsigned"), []byte("#!/bin/sh\necho ran >&2\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		r := tracebroker(t, "plugins", "list", "--json", "--plugin-dir", dir, "--state", t.TempDir())
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		goldenJSON(t, "plugins.json", r.stdout, dir)
		r = tracebroker(t, "plugins", "list", "--json", "--plugin-dir", t.TempDir(), "--state", t.TempDir())
		if r.stdout != "[]\n" {
			t.Errorf("no plugins: %q, want []", r.stdout)
		}
	})
	t.Run("list", func(t *testing.T) {
		require(t, needTracefs)
		r := tracebroker(t, "list", "-v", "--json", "tracepoint:syscalls:sys_enter_getcwd,tracepoint:syscalls:sys_exit_getcwd")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		goldenJSON(t, "list-v.json", r.stdout, "")
		r = tracebroker(t, "list", "--json", "tracepoint:syscalls:sys_enter_getcw*")
		goldenJSON(t, "list.json", r.stdout, "")
		if r = tracebroker(t, "list", "--json", "tracepoint:nosuch:*"); r.stdout != "[]\n" {
			t.Errorf("nothing matched: %q, want []", r.stdout)
		}
	})

}

func TestProbesJSON(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"", "null"},
		{"a:b:c\n", `[{"probe":"a:b:c"}]`},
		{"a:b:c\n    int x\n    char * y\nd:e:f\n", `[{"probe":"a:b:c","args":["int x","char * y"]},{"probe":"d:e:f"}]`},
	} {
		ps, err := probesJSON(strings.NewReader(c.in))
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := json.Marshal(ps); string(b) != c.want {
			t.Errorf("probesJSON(%q) = %s, want %s", c.in, b, c.want)
		}
	}
	if _, err := probesJSON(strings.NewReader("    int x\n")); err == nil {
		t.Error("a field before any probe was taken")
	}
}
