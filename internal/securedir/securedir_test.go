package securedir

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestEnsure: a directory that does not exist is made with the mode and
// group asked for, whatever the umask; one that exists and is sound is
// left as it is.
func TestEnsure(t *testing.T) {
	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	dir := filepath.Join(t.TempDir(), "run")
	gid := os.Getgid()
	if os.Geteuid() == 0 {
		gid = 65532
	}
	created, err := Ensure(dir, 0o750, gid)
	if err != nil || !created {
		t.Fatalf("Ensure: created %v, %v", created, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o750 || !fi.IsDir() || int(st.Gid) != gid {
		t.Errorf("made %v, group %d; want drwxr-x--- group %d", fi.Mode(), st.Gid, gid)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if created, err := Ensure(dir, 0o750, gid); err != nil || created {
		t.Fatalf("Ensure of an existing dir: created %v, %v", created, err)
	}
	if fi, _ := os.Lstat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("an existing dir was changed to %v", fi.Mode())
	}
}

// TestAttacksSecureDir: what another user plants where root's daemon
// makes its directories is refused, and nothing it points to changes.
func TestAttacksSecureDir(t *testing.T) {
	for _, tt := range []struct {
		name   string
		plant  func(t *testing.T, dir, victim string)
		root   bool
		reason string
	}{
		{"item1/symlink_to_elsewhere", func(t *testing.T, dir, victim string) {
			if err := os.Symlink(victim, dir); err != nil {
				t.Fatal(err)
			}
		}, false, "is a symbolic link: refused"},
		{"item1/dangling_symlink", func(t *testing.T, dir, victim string) {
			if err := os.Symlink(filepath.Join(victim, "new"), dir); err != nil {
				t.Fatal(err)
			}
		}, false, "is a symbolic link: refused"},
		{"item1/world_writable", func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o777); err != nil {
				t.Fatal(err)
			}
		}, false, "is writable by others than its owner (mode 0777)"},
		{"item1/group_writable", func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, 0o770); err != nil {
				t.Fatal(err)
			}
		}, false, "is writable by others than its owner (mode 0770)"},
		{"item1/other_owner", func(t *testing.T, dir, _ string) {
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, 65533, 65533); err != nil {
				t.Fatal(err)
			}
		}, true, "is owned by uid 65533, not by uid 0 (this process): refused"},
		{"item1/a_file", func(t *testing.T, dir, _ string) {
			if err := os.WriteFile(dir, nil, 0o600); err != nil {
				t.Fatal(err)
			}
		}, false, "exists and is not a directory"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to plant a directory of another uid")
			}
			base := t.TempDir()
			victim := filepath.Join(base, "victim")
			if err := os.Mkdir(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(base, "run")
			tt.plant(t, dir, victim)
			created, err := Ensure(dir, 0o750, 65532)
			var se *Error
			if !errors.As(err, &se) || created || !strings.Contains(err.Error(), tt.reason) || se.Path != dir {
				t.Fatalf("Ensure: created %v, %v; want refused: %s", created, err, tt.reason)
			}
			fi, err := os.Lstat(victim)
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); fi.Mode().Perm() != 0o700 || int(st.Uid) != os.Geteuid() || int(st.Gid) != os.Getegid() {
				t.Errorf("the link's target was changed: %v uid %d gid %d", fi.Mode(), st.Uid, st.Gid)
			}
			if _, err := os.Lstat(filepath.Join(victim, "new")); err == nil {
				t.Error("a directory was made through the link")
			}
		})
	}
	t.Run("item1/missing_parent", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "no", "run")
		if _, err := Ensure(dir, 0o750, -1); err == nil || !strings.Contains(err.Error(), "its parent directory does not exist") {
			t.Fatalf("Ensure: %v", err)
		}
	})
}
