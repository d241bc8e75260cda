package broker

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCgroupRoots(t *testing.T) {
	for _, tt := range []struct {
		name, mounts string
		want         []cgroupRoot
	}{
		{"v1 and v2, unified first, v1 by name", `tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
cgroup /sys/fs/cgroup/blkio cgroup rw,relatime,blkio 0 0
cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0
cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0
`, []cgroupRoot{{"unified", "/sys/fs/cgroup/unified"}, {"blkio", "/sys/fs/cgroup/blkio"}, {"cpu", "/sys/fs/cgroup/cpu"}, {"systemd", "/sys/fs/cgroup/systemd"}}},
		{"v2 only", "cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid 0 0\nproc /proc proc rw 0 0\n", []cgroupRoot{{"unified", "/sys/fs/cgroup"}}},
		{"escaped mount point", `cgroup2 /mnt/my\040cgroups cgroup2 rw 0 0`, []cgroupRoot{{"unified", "/mnt/my cgroups"}}},
		{"short and bad lines", "cgroup2\n\n \\ \ncgroup /x\\9 cgroup\n", []cgroupRoot{{`x\9`, `/x\9`}}},
		{"none", "proc /proc proc rw 0 0\n", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := cgroupRoots(strings.NewReader(tt.mounts)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestCgroupPaths walks hierarchies made of plain directories: the path
// is found by the directory's inode, in each hierarchy that has it.
func TestCgroupPaths(t *testing.T) {
	tmp := t.TempDir()
	v2, v1 := filepath.Join(tmp, "unified"), filepath.Join(tmp, "cpu")
	for _, d := range []string{"a/b/c", "a/d", "e"} {
		for _, root := range []string{v2, v1} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(v2, "a", "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	mounts := filepath.Join(tmp, "mounts")
	if err := os.WriteFile(mounts, []byte("cgroup "+v1+" cgroup rw,cpu 0 0\ncgroup2 "+v2+" cgroup2 rw 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1e9, 0)
	c := &cgroupPaths{mounts: mounts, index: map[string]*cgroupIndex{}, now: func() time.Time { return now }}
	for _, tt := range []struct {
		name, filter, want string
		id                 uint64
	}{
		{"nested", "", "unified:/a/b/c", inode(filepath.Join(v2, "a/b/c"))},
		{"v1 only", "", "cpu:/a/d", inode(filepath.Join(v1, "a/d"))},
		{"root", "", "unified:/", inode(v2)},
		{"filtered out", "cpu", "", inode(filepath.Join(v2, "e"))},
		{"filter glob", "un*", "unified:/e", inode(filepath.Join(v2, "e"))},
		{"a file is no cgroup", "", "", inode(filepath.Join(v2, "a", "file"))},
		{"unknown", "", "", 1 << 62},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := c.text(tt.id, tt.filter); got != tt.want {
				t.Errorf("text(%d, %q) = %q, want %q", tt.id, tt.filter, got, tt.want)
			}
		})
	}
	// A cgroup made after the walk is found once a second has passed;
	// a moved one, whose indexed path lost its inode, too.
	if err := os.Mkdir(filepath.Join(v2, "new"), 0o755); err != nil {
		t.Fatal(err)
	}
	id := inode(filepath.Join(v2, "new"))
	if got := c.text(id, "unified"); got != "" {
		t.Errorf("within a second of the walk: got %q, want nothing", got)
	}
	now = now.Add(cgroupRewalk)
	if got := c.text(id, "unified"); got != "unified:/new" {
		t.Errorf("a second later: got %q, want unified:/new", got)
	}
	if err := os.Rename(filepath.Join(v2, "new"), filepath.Join(v2, "e/moved")); err != nil {
		t.Fatal(err)
	}
	now = now.Add(cgroupRewalk)
	if got := c.text(id, "unified"); got != "unified:/e/moved" {
		t.Errorf("after a rename: got %q, want unified:/e/moved", got)
	}
}

func FuzzCgroupRoots(f *testing.F) {
	f.Add("cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\ncgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n")
	f.Add(`cgroup /a\040b\ cgroup`)
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range cgroupRoots(strings.NewReader(s)) {
			if r.name == "" && r.dir != "" && filepath.Base(r.dir) != "" {
				t.Fatalf("root %q without a name", r.dir)
			}
		}
	})
}
