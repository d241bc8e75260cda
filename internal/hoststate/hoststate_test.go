package hoststate

import (
	"os"
	"path/filepath"
	"testing"
)

// TestInit: every part is made with its mode; run again, each is found.
func TestInit(t *testing.T) {
	state := filepath.Join(t.TempDir(), "lib", "tracebroker")
	want := map[string]os.FileMode{"": 0o700, Trust: 0o700, Manifests: 0o700, Issuers: 0o700, Plugins: 0o700, Attestations: 0o750}
	for i, created := range []bool{true, false} {
		made, err := Init(state)
		if err != nil {
			t.Fatal(err)
		}
		if len(made) != len(want) {
			t.Fatalf("run %d made %v", i, made)
		}
		for _, m := range made {
			rel, _ := filepath.Rel(state, m.Path)
			if rel == "." {
				rel = ""
			}
			fi, err := os.Lstat(m.Path)
			if err != nil || !fi.IsDir() || fi.Mode().Perm() != want[rel] || m.Created != created {
				t.Errorf("run %d: %s: %v %v created %v; want mode %v created %v", i, m.Path, fi.Mode(), err, m.Created, want[rel], created)
			}
		}
	}
}

func TestNeedDir(t *testing.T) {
	dir := t.TempDir()
	if err := NeedDir(dir, dir, "state directory"); err != nil {
		t.Errorf("an existing directory: %v", err)
	}
	for _, tt := range []struct{ state, want string }{
		{DefaultState, "plugin directory /var/lib/tracebroker/nosuch does not exist: run `tracebroker init`"},
		{dir, "plugin directory " + dir + "/nosuch does not exist: run `tracebroker init --state " + dir + "`"},
	} {
		err := NeedDir(tt.state, filepath.Join(tt.state, "nosuch"), "plugin directory")
		if err == nil || err.Error() != tt.want {
			t.Errorf("NeedDir: %v, want %s", err, tt.want)
		}
	}
}
