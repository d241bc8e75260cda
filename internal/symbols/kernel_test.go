package symbols

import (
	"bufio"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// testdata/kallsyms keeps 12 symbols for Resolve, few enough that
// std::sort is a plain insertion sort: of symbols at the same address, the
// last in the file is the one reported.
func TestKernelResolve(t *testing.T) {
	k, err := LoadKernel("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		addr   uint64
		want   Symbol
		wantOK bool
	}{
		{0, Symbol{}, false},
		{0x1f000, Symbol{}, false}, // per-CPU "address": dropped
		{0xffffffff80ffffff, Symbol{}, false},
		{0xffffffff81000000, Symbol{"_text", 0, ""}, true}, // alias of _stext
		{0xffffffff81000005, Symbol{"_text", 5, ""}, true},
		{0xffffffff81000010, Symbol{"helper", 0, ""}, true},
		{0xffffffff81000105, Symbol{"__ia32_sys_read", 5, ""}, true},
		{0xffffffff81000200, Symbol{"__ia32_sys_read", 256, ""}, true}, // jiffies is data
		{0xffffffff81000305, Symbol{"vfs_read", 5, ""}, true},
		{0xffffffff81000450, Symbol{"vfs_read", 336, ""}, true}, // linux_banner is data
		{0xffffffff81000600, Symbol{"weak_fn", 0, ""}, true},
		// kallsyms has no sizes: any distance resolves.
		{0xffffffffc0000000, Symbol{"weak_fn", 0xc0000000 - 0x81000600, ""}, true},
		{0xffffffffc0001004, Symbol{"ext4_fill_super", 4, "ext4"}, true},
		{0xffffffffc0001100, Symbol{"ext4_lookup", 0, "ext4"}, true},
		{0xffffffffc0002010, Symbol{"bpf_prog_6deef7357e7b4530_sd_fw_ingress", 16, "bpf"}, true},
		{0xffffffffc0201000, Symbol{"ftrace_trampoline", 0, "__builtin__ftrace"}, true},
		{0xffffffffffffffff, Symbol{"ftrace_trampoline", 0x3fdfefff, "__builtin__ftrace"}, true},
	} {
		got, ok := k.Resolve(tc.addr)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Resolve(%#x) = %+v, %v; want %+v, %v", tc.addr, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestKernelLookup(t *testing.T) {
	k, err := LoadKernel("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		want   uint64
		wantOK bool
	}{
		{"vfs_read", 0xffffffff81000300, true},
		{"jiffies", 0xffffffff81000200, true},      // data symbols too
		{"linux_banner", 0xffffffff81000400, true}, // (as bpftrace's kaddr)
		{"helper", 0xffffffff81000010, true},       // vmlinux's, not ext4's
		{"_stext", 0xffffffff81000000, true},
		{"cpu_number", 0x1f000, true},
		{"fixed_percpu_data", 0, false},
		{"ext4_lookup", 0, false}, // module symbols are not found
		{"ftrace_trampoline", 0, false},
		{"vfs_rea", 0, false},
		{"", 0, false},
	} {
		got, ok := k.Lookup(tc.name)
		if got != tc.want || ok != tc.wantOK {
			t.Errorf("Lookup(%q) = %#x, %v; want %#x, %v", tc.name, got, ok, tc.want, tc.wantOK)
		}
	}
}

func TestKernelFormat(t *testing.T) {
	k, err := LoadKernel("testdata/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ got, want string }{
		{k.Name(0xffffffff81000305), "vfs_read"},
		{k.Name(0x1234), "0x1234"},
		{k.Name(0), "0"},
		{k.Frame(0xffffffff81000305, false), "vfs_read+5"},
		{k.Frame(0xffffffff81000305, true), "ffffffff81000305 vfs_read+5"},
		{k.Frame(0x1234, false), "0x1234"},
		{k.Frame(0x1234, true), "1234 0x1234"},
		{k.Stack([]uint64{0xffffffff81000305, 0xffffffffc0001100, 0, 0xffffffff81000010}, false, 4),
			"\n    vfs_read+5\n    ext4_lookup+0\n"},
		{k.Stack([]uint64{0xffffffff81000305, 0x1234}, true, 4),
			"\n\tffffffff81000305 vfs_read+5\n\t1234 0x1234\n"},
		{k.Stack(nil, false, 8), "\n"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestKernelErrors(t *testing.T) {
	_, err := LoadKernel("testdata/kallsyms-restricted")
	if !errors.Is(err, errKptrHidden) || !strings.Contains(err.Error(), "kptr_restrict") {
		t.Errorf("all-zero addresses: got %v, want an error about kptr_restrict", err)
	}
	if _, err := parseKallsyms(""); !errors.Is(err, errNoKsyms) {
		t.Errorf("empty: got %v, want %v", err, errNoKsyms)
	}
	if _, err := LoadKernel("testdata/nonexistent"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v", err)
	}
}

// TestKernelReal resolves vfs_read in this machine's /proc/kallsyms.
func TestKernelReal(t *testing.T) {
	k, err := LoadKernel("")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var addr uint64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if a, rest, ok := strings.Cut(sc.Text(), " "); ok && (rest == "T vfs_read" || rest == "t vfs_read") {
			if addr, err = strconv.ParseUint(a, 16, 64); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if addr == 0 {
		t.Skip("skipping: no vfs_read in /proc/kallsyms")
	}
	if got, ok := k.Resolve(addr + 5); !ok || got != (Symbol{"vfs_read", 5, ""}) {
		t.Errorf("Resolve(vfs_read+5) = %+v, %v", got, ok)
	}
	if got := k.Frame(addr+5, true); got != strconv.FormatUint(addr+5, 16)+" vfs_read+5" {
		t.Errorf("Frame(vfs_read+5, perf) = %q", got)
	}
	if got, ok := k.Lookup("vfs_read"); !ok || got != addr {
		t.Errorf("Lookup(vfs_read) = %#x, %v; want %#x", got, ok, addr)
	}
	// User-space addresses lie below every kernel symbol.
	if got, ok := k.Resolve(0x55977d93b139); ok {
		t.Errorf("Resolve(user address) = %+v", got)
	}
}
