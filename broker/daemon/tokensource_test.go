package daemon

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestReadToken: the token comes from a file, stdin or the environment,
// never from anywhere else.
func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "token")
	os.WriteFile(file, []byte("  aaa.bbb.ccc\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == TokenEnv {
				return v
			}
			return ""
		}
	}
	for _, tt := range []struct {
		name, path, stdin, env, want, err string
	}{
		{"file", file, "", "ignored", "aaa.bbb.ccc", ""},
		{"stdin", "-", "ddd.eee.fff\n", "ignored", "ddd.eee.fff", ""},
		{"env", "", "", " ggg.hhh.iii ", "ggg.hhh.iii", ""},
		{"none", "", "", "", "", ""},
		{"empty_file", empty, "", "", "", "no token in it"},
		{"empty_stdin", "-", "", "", "", "no token in it"},
		{"huge_stdin", "-", strings.Repeat("a", maxTokenFile+1), "", "", "more than 16384 bytes"},
		{"missing_file", filepath.Join(dir, "nope"), "", "", "", "no such file"},
		{"directory", dir, "", "", "", "not a regular file"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(tt.path, bytes.NewBufferString(tt.stdin), env(tt.env))
			if got != tt.want || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ReadToken = %q, %v; want %q, %q", got, err, tt.want, tt.err)
			}
		})
	}
}
