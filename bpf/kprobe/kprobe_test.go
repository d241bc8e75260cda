package kprobe

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// From Debian's 6.1 kernel: a repeated static function, a module's, a
// blacklisted one.
const filterFunctions = `vfs_read
vfs_write
__x64_sys_getcwd
finish_task_switch.isra.0
finish_task_switch.isra.0
nft_trans_alloc_gfp [nf_tables]
vfs_kern_mount.part.0
vfs_read_helper [somemod]
vfs_readv
notify_die
`

const blacklist = "0xffffffff81a01230-0xffffffff81a01290\tnotify_die\n0xffffffffc0a01000-0xffffffffc0a01010\tsome_mod_fn [somemod]\n"

func TestFunctionsAndList(t *testing.T) {
	black, err := ParseBlacklist(strings.NewReader(blacklist))
	if err != nil {
		t.Fatal(err)
	}
	funcs, err := ParseFunctions(strings.NewReader(filterFunctions), black)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		provider, target, want string
	}{
		{"kprobe", "vfs_*", "kprobe:vfs_read\nkprobe:vfs_read_helper\nkprobe:vfs_readv\nkprobe:vfs_write\n"},
		{"kretprobe", "vfs_read", "kretprobe:vfs_read\n"},
		{"kprobe", "finish_*", "kprobe:finish_task_switch.isra.0\n"},
		{"kprobe", "notify_die", ""},
		{"kprobe", "nf_tables:*", "kprobe:nf_tables:nft_trans_alloc_gfp\n"},
		{"kprobe", "somemod:", "kprobe:somemod:vfs_read_helper\n"},
		{"kprobe", "nosuch", ""},
		{"kprobe", "vfs_kern_mount*", ""},
		{"kprobe", "vfs_kern_mount.part.0", "kprobe:vfs_kern_mount.part.0\n"},
	} {
		var b bytes.Buffer
		if err := list(&b, funcs, tt.provider, tt.target); err != nil {
			t.Errorf("%s:%s: %v", tt.provider, tt.target, err)
		}
		if b.String() != tt.want {
			t.Errorf("%s:%s:\n%s\nwant\n%s", tt.provider, tt.target, b.String(), tt.want)
		}
	}
	if _, err := Match(funcs, "", "vfs_[read"); err == nil {
		t.Error("a malformed pattern matched")
	}
}

func TestSymbolSize(t *testing.T) {
	kallsyms := "ffffffff81000000 T _stext\nffffffff81400100 T vfs_read\nffffffff81400300 t vfs_read_iter\nffffffff81400240 t helper\n0000000000000000 T hidden\n"
	for _, tt := range []struct {
		fn   string
		size uint64
		ok   bool
	}{{"vfs_read", 0x140, true}, {"vfs_read_iter", 0, false}, {"hidden", 0, false}, {"nosuch", 0, false}} {
		size, ok := symbolSize(strings.NewReader(kallsyms), tt.fn)
		if size != tt.size || ok != tt.ok {
			t.Errorf("%s: %d %v, want %d %v", tt.fn, size, ok, tt.size, tt.ok)
		}
	}
}

// TestSupported: a missing kprobe PMU next to the others means a kernel
// without kprobes; no PMUs at all means sysfs cannot tell.
func TestSupported(t *testing.T) {
	dir := t.TempDir()
	missing := func() (uint32, uint, error) { return 0, 0, os.ErrNotExist }
	if err := supported(dir, missing); !errors.Is(err, ErrNoKprobes) {
		t.Errorf("no kprobe PMU: %v, want %v", err, ErrNoKprobes)
	}
	if err := supported(filepath.Join(dir, "nosuch"), missing); err == nil || errors.Is(err, ErrNoKprobes) {
		t.Errorf("no sysfs: %v", err)
	}
	if err := supported(dir, func() (uint32, uint, error) { return 6, 0, nil }); err != nil {
		t.Errorf("kprobe PMU present: %v", err)
	}
}

// TestSupportedHere: on a kernel without kprobes, this package says so
// from the kernel's own sysfs, as the compiler and `list` report it.
func TestSupportedHere(t *testing.T) {
	err := Supported()
	if _, serr := os.Stat(pmuDir); serr == nil {
		if err != nil {
			t.Fatalf("kprobe PMU present, Supported: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrNoKprobes) {
		t.Fatalf("no kprobe PMU, Supported: %v, want %v", err, ErrNoKprobes)
	}
}
