package collector_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

func needFuncCollectors(t testing.TB) {
	t.Helper()
	needKernel(t)
	if err := collector.FuncCollectors(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// vfs_read(struct file *, char __user *buf, size_t count, loff_t *pos):
// four argument slots, the return value in the fifth at the return.
const vfsReadArgs = 4

// TestKfuncCollector traces vfs_read's entry and return under this
// process's own preads of sizes no other read of the test has: each
// record holds the arguments (and at the return the value returned) as
// u64 slots, and the user buffer behind buf as a string, before the read
// (what the test put there) and after it (what the file holds).
func TestKfuncCollector(t *testing.T) {
	needFuncCollectors(t)
	objs := kerneltest.Track(t)
	file := filepath.Join(t.TempDir(), "data")
	content := append([]byte("read-by-kretfunc\x00"), make([]byte, 4096)...)
	if err := os.WriteFile(file, content, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := open(t, 0,
		collector.Probe{Kind: program.Fentry, Category: "vmlinux", Event: "vfs_read", CtxLen: 8 * vfsReadArgs, Strings: []collector.StringSpec{{CtxOff: 8, User: true}}},
		collector.Probe{Kind: program.Fexit, Category: "vmlinux", Event: "vfs_read", CtxLen: 8 * (vfsReadArgs + 1), Strings: []collector.StringSpec{{CtxOff: 8, User: true}}},
	)
	objs.Observe()
	sizes := map[uint64]int{1001: 1, 1002: 2, 1003: 3}
	for size, n := range sizes {
		for range n {
			buf := make([]byte, size)
			copy(buf, "before-the-read\x00")
			if _, err := f.ReadAt(buf, 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := map[string]int{}
	for _, r := range drain(t, s, mine) {
		le := binary.LittleEndian
		if len(r.Context) < 8*vfsReadArgs {
			t.Fatalf("probe %d: a context of %d bytes", r.Probe, len(r.Context))
		}
		count := le.Uint64(r.Context[16:])
		if sizes[count] == 0 {
			continue // another read of this process
		}
		want := 8 * vfsReadArgs
		if r.Probe == 1 {
			want += 8
		}
		if len(r.Context) != want {
			t.Errorf("probe %d: a context of %d bytes, want %d", r.Probe, len(r.Context), want)
			continue
		}
		if len(r.Strings) != 1 || le.Uint64(r.Context[8:]) != r.Strings[0].Addr {
			t.Errorf("probe %d: strings %v, want the one behind buf", r.Probe, r.Strings)
			continue
		}
		str := string(bytes.TrimRight(r.Strings[0].Data, "\x00"))
		key := fmt.Sprintf("probe %d count %d %s", r.Probe, count, str)
		if r.Probe == 1 {
			key += fmt.Sprintf(" ret %d", le.Uint64(r.Context[32:]))
		}
		got[key]++
	}
	want := map[string]int{}
	for size, n := range sizes {
		want[fmt.Sprintf("probe 0 count %d before-the-read", size)] = n
		want[fmt.Sprintf("probe 1 count %d read-by-kretfunc ret %d", size, size)] = n
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("records:\n%v\nwant:\n%v", got, want)
	}
	s.Close()
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after Close: %v", h)
	}
}

// TestAttacksKfuncCollector: what a script's author can make the
// kfunc/kretfunc collectors hold in the kernel, or attach to.
func TestAttacksKfuncCollector(t *testing.T) {
	needKernel(t)
	t.Run("item6/kfunc_instances_bounded", func(t *testing.T) {
		// Each kfunc probe is a program of its own with a per-CPU
		// scratch value and a trampoline: a script of the compiler's
		// thousand functions is refused before anything is loaded,
		// on any kernel.
		objs := kerneltest.Track(t)
		probes := make([]collector.Probe, collector.MaxFuncInstances+1)
		for i := range probes {
			probes[i] = collector.Probe{Kind: program.Fexit, Category: "vmlinux", Event: "vfs_read", CtxLen: 40}
		}
		s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
		if err == nil {
			s.Close()
			t.Fatalf("%d kfunc probes opened", len(probes))
		}
		if want := fmt.Sprintf("collector: %d kfunc/kretfunc probes, at most %d", len(probes), collector.MaxFuncInstances); !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v, want %q", err, want)
		}
		for _, h := range objs.HeldBySelf(t) {
			t.Errorf("after a refused Open: %v", h)
		}
	})
	for _, tc := range []struct {
		name  string
		probe collector.Probe
		want  string
	}{
		{"item6/kfunc_context_too_long", collector.Probe{Kind: program.Fentry, Category: "vmlinux", Event: "vfs_read", CtxLen: 8 * 14}, "context length 112: a kernel function's context is its arguments and return value, 8 bytes each, at most 13"},
		{"item6/kfunc_string_outside_args", collector.Probe{Kind: program.Fentry, Category: "vmlinux", Event: "vfs_read", CtxLen: 32, Strings: []collector.StringSpec{{CtxOff: 32}}}, "its pointer at offset 32 is not within the 32 bytes of context"},
		{"item6/kfunc_no_function", collector.Probe{Kind: program.Fentry, Category: "vmlinux", CtxLen: 8}, "a kfunc/kretfunc probe needs a module and a function"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := kerneltest.Track(t)
			s, err := collector.Open(collector.Options{Probes: []collector.Probe{tc.probe}, Trust: collector.Trust{Unsigned: true}})
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open: %v, want %q", err, tc.want)
			}
			for _, h := range objs.HeldBySelf(t) {
				t.Errorf("after a refused Open: %v", h)
			}
		})
	}
	t.Run("item6/kfunc_module_function_ambiguous", func(t *testing.T) {
		// A module's function of vmlinux's name would attach to
		// vmlinux's: refused.
		if err := collector.FuncCollectors(); err != nil {
			t.Skipf("skipping: %v", err)
		}
		_, err := collector.Open(collector.Options{Probes: []collector.Probe{{Kind: program.Fentry, Category: "nosuchmodule", Event: "vfs_read", CtxLen: 32}}, Trust: collector.Trust{Unsigned: true}})
		if err == nil || !strings.Contains(err.Error(), "the function vfs_read is not only in module nosuchmodule") {
			t.Errorf("Open: %v", err)
		}
	})
}

// BenchmarkOpenKfunc measures what a kfunc/kretfunc probe costs in
// interpreter mode before it fires: a session of four opened and closed,
// each a collector instance through the verifier (attaching, the
// trampoline, is not counted).
func BenchmarkOpenKfunc(b *testing.B) {
	needFuncCollectors(b)
	probes := []collector.Probe{
		{Kind: program.Fentry, Category: "vmlinux", Event: "vfs_read", CtxLen: 32},
		{Kind: program.Fexit, Category: "vmlinux", Event: "vfs_read", CtxLen: 40},
		{Kind: program.Fentry, Category: "vmlinux", Event: "vfs_write", CtxLen: 32},
		{Kind: program.Fexit, Category: "vmlinux", Event: "vfs_write", CtxLen: 40},
	}
	for b.Loop() {
		s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
		if err != nil {
			b.Fatal(err)
		}
		s.Close()
	}
}
