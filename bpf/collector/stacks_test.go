package collector_test

import (
	"bufio"
	"encoding/binary"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// The canonical halves of x86-64's address space.
const (
	kernelStart = 0xffff800000000000
	userEnd     = 0x0000800000000000
)

// frames are a stack entry's frames; it fails unless e is a stack entry
// (addr is marker) of whole frames, at most MaxStackFrames.
func frames(t *testing.T, e collector.String, marker uint64) []uint64 {
	t.Helper()
	if e.Addr != marker {
		t.Fatalf("entry at %#x, want the stack marker %#x", e.Addr, marker)
	}
	if len(e.Data)%8 != 0 || len(e.Data) > 8*collector.MaxStackFrames {
		t.Fatalf("stack entry of %d bytes", len(e.Data))
	}
	out := make([]uint64, len(e.Data)/8)
	for i := range out {
		out[i] = binary.LittleEndian.Uint64(e.Data[8*i:])
	}
	return out
}

// kernelFrames checks a kernel stack entry: at least min frames, all
// kernel addresses.
func kernelFrames(t *testing.T, e collector.String, min int) []uint64 {
	t.Helper()
	fs := frames(t, e, collector.KStackAddr)
	if len(fs) < min {
		t.Errorf("kernel stack of %d frames, want at least %d", len(fs), min)
	}
	for i, f := range fs {
		if f < kernelStart {
			t.Errorf("kernel stack frame %d at %#x, not a kernel address", i, f)
		}
	}
	return fs
}

// syscallKernelFrames checks the kernel stack entry of a syscall
// tracepoint's record: at least two frames where the kernel gives
// programs there the kernel stack, else none (6.1 gives them the system
// call's user registers: bpf.HaveSyscallKernelStacks), as bpftrace's
// kstack there. nil says the kernel gives none.
func syscallKernelFrames(t *testing.T, e collector.String) []uint64 {
	t.Helper()
	have, err := bpf.HaveSyscallKernelStacks()
	if err != nil {
		t.Fatalf("probing kernel stacks at syscall tracepoints: %v", err)
	}
	if !have {
		if fs := frames(t, e, collector.KStackAddr); len(fs) != 0 {
			t.Errorf("kernel stack of %d frames at a syscall tracepoint, where this kernel's probe found none", len(fs))
		}
		t.Log("no kernel stack at syscall tracepoints on this kernel (the program gets the system call's user registers): the entry is empty, as bpftrace's kstack")
		return nil
	}
	return kernelFrames(t, e, 2)
}

// userFrames checks a user stack entry: at least one frame, all user
// addresses.
func userFrames(t *testing.T, e collector.String) []uint64 {
	t.Helper()
	fs := frames(t, e, collector.UStackAddr)
	if len(fs) == 0 {
		t.Errorf("empty user stack")
	}
	for i, f := range fs {
		if f >= userEnd {
			t.Errorf("user stack frame %d at %#x, not a user address", i, f)
		}
	}
	return fs
}

// goFuncs are the Go functions of a user stack of this process, inlined
// ones included.
func goFuncs(fs []uint64) []string {
	pcs := make([]uintptr, len(fs))
	for i, f := range fs {
		pcs[i] = uintptr(f)
	}
	var out []string
	it := runtime.CallersFrames(pcs)
	for {
		f, more := it.Next()
		if f.Function != "" {
			out = append(out, f.Function)
		}
		if !more {
			return out
		}
	}
}

// kallsyms resolves kernel addresses to the functions they are in, or
// returns nil where kallsyms hides the addresses.
type kallsyms struct {
	addrs []uint64
	names []string
}

func readKallsyms(t *testing.T) *kallsyms {
	t.Helper()
	f, err := os.Open("/proc/kallsyms")
	if err != nil {
		t.Logf("no kallsyms: %v", err)
		return nil
	}
	defer f.Close()
	k := &kallsyms{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fl := strings.Fields(sc.Text())
		if len(fl) < 3 || (fl[1] != "t" && fl[1] != "T") {
			continue
		}
		a, err := strconv.ParseUint(fl[0], 16, 64)
		if err != nil || a == 0 {
			continue
		}
		k.addrs = append(k.addrs, a)
		k.names = append(k.names, fl[2])
	}
	if len(k.addrs) == 0 {
		t.Log("kallsyms hides the addresses")
		return nil
	}
	idx := make([]int, len(k.addrs))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return k.addrs[idx[a]] < k.addrs[idx[b]] })
	s := &kallsyms{addrs: make([]uint64, len(idx)), names: make([]string, len(idx))}
	for i, j := range idx {
		s.addrs[i], s.names[i] = k.addrs[j], k.names[j]
	}
	return s
}

func (k *kallsyms) funcs(fs []uint64) []string {
	var out []string
	for _, f := range fs {
		i := sort.Search(len(k.addrs), func(i int) bool { return k.addrs[i] > f }) - 1
		if i >= 0 {
			out = append(out, k.names[i])
		}
	}
	return out
}

func containsAny(names []string, want string) bool {
	for _, n := range names {
		if strings.Contains(n, want) {
			return true
		}
	}
	return false
}

// TestStacks takes the stacks of this process's getcwd calls in the
// tracepoint collector (both stacks) and the raw tracepoint collector
// (the kernel's), and the user stacks of its getcpu calls: the kernel
// stacks are in the system call's path, the user stacks in the Go code
// that made the calls. drain checks that each record re-encodes to its
// very bytes.
func TestStacks(t *testing.T) {
	needKernel(t)
	_, cwdLen := recordSize(t, "syscalls", "sys_enter_getcwd")
	_, cpuLen := recordSize(t, "syscalls", "sys_enter_getcpu")
	s := open(t, 0,
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: cwdLen, KStack: true, UStack: true},
		collector.Probe{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16, KStack: true},
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: cpuLen, UStack: true},
	)
	kerneltest.Syscalls(3, 2)
	// Reading makes system calls too, each a record of sys_enter.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	ksyms := readKallsyms(t)
	var cwd, raw, cpu int
	for _, r := range drainStopped(t, s, mine) {
		switch r.Probe {
		case 0:
			cwd++
			if len(r.Strings) != 2 {
				t.Fatalf("%d entries, want the kernel and the user stack", len(r.Strings))
			}
			ks := syscallKernelFrames(t, r.Strings[0])
			us := userFrames(t, r.Strings[1])
			if ksyms != nil && ks != nil {
				if names := ksyms.funcs(ks); !containsAny(names, "do_syscall_64") {
					t.Errorf("kernel stack %v does not pass do_syscall_64", names)
				}
			}
			if names := goFuncs(us); !containsAny(names, "kerneltest.Syscalls") {
				t.Errorf("user stack %v does not pass kerneltest.Syscalls", names)
			}
		case 1:
			if binary.LittleEndian.Uint64(r.Context[8:]) != getcwdNR {
				continue
			}
			raw++
			if len(r.Strings) != 1 {
				t.Fatalf("%d entries, want the kernel stack", len(r.Strings))
			}
			kernelFrames(t, r.Strings[0], 2)
		case 2:
			cpu++
			if len(r.Strings) != 1 {
				t.Fatalf("%d entries, want the user stack", len(r.Strings))
			}
			if names := goFuncs(userFrames(t, r.Strings[0])); !containsAny(names, "kerneltest.Syscalls") {
				t.Errorf("user stack %v does not pass kerneltest.Syscalls", names)
			}
		}
	}
	if cwd != 3 || raw != 3 || cpu != 2 {
		t.Errorf("%d getcwd records of the tracepoint and %d of sys_enter, %d of getcpu; want 3, 3 and 2", cwd, raw, cpu)
	}
}

// TestStacksAfterStrings fills every string slot and every read step,
// with the task, and takes both stacks too: a record of MaxEntries
// entries, the stacks last, as long as a record gets.
func TestStacksAfterStrings(t *testing.T) {
	needKernel(t)
	f, _ := recordSize(t, "syscalls", "sys_enter_openat")
	fn, _ := f.Field("filename")
	strs := make([]collector.StringSpec, collector.MaxStrings)
	for i := range strs {
		strs[i] = collector.StringSpec{CtxOff: fn.Offset, User: true}
	}
	reads := make([]program.KRead, collector.MaxSteps)
	for i := range reads {
		reads[i] = program.KRead{Task: true, Offs: []int{8 * i}, Size: collector.MaxString}
	}
	s := open(t, 0, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_openat", CtxLen: fn.Offset + 8,
		Strings: strs, KStack: true, UStack: true, Task: true, Reads: reads})
	long := filepath.Join(t.TempDir(), strings.Repeat("y", 300))
	os.Open(long) // fails: the tracepoint fires before
	n := 0
	for _, r := range drain(t, s, mine) {
		if len(r.Strings) != collector.MaxEntries {
			t.Fatalf("%d entries, want %d", len(r.Strings), collector.MaxEntries)
		}
		if !strings.HasPrefix(string(r.Strings[0].Data), long[:100]) {
			continue // the runtime's own opens
		}
		n++
		for i, str := range r.Strings[:collector.MaxStrings] {
			if len(str.Data) != collector.MaxString {
				t.Errorf("string %d of %d bytes", i, len(str.Data))
			}
		}
		task := r.Strings[collector.MaxStrings]
		if task.Addr != collector.TaskAddr || len(task.Data) != 8 {
			t.Fatalf("entry %d %#x of %d bytes, want the task's", collector.MaxStrings, task.Addr, len(task.Data))
		}
		for i, rd := range r.Strings[collector.MaxStrings+1 : collector.MaxEntries-2] {
			if want := binary.LittleEndian.Uint64(task.Data) + uint64(8*i); rd.Addr != want || len(rd.Data) != collector.MaxString {
				t.Errorf("read %d at %#x of %d bytes, want %#x and %d", i, rd.Addr, len(rd.Data), want, collector.MaxString)
			}
		}
		if sz := len(collector.Encode(nil, &r)); sz > collector.MaxRecord {
			t.Errorf("a record of %d bytes, more than MaxRecord, %d", sz, collector.MaxRecord)
		}
		syscallKernelFrames(t, r.Strings[collector.MaxEntries-2])
		if names := goFuncs(userFrames(t, r.Strings[collector.MaxEntries-1])); !containsAny(names, "TestStacksAfterStrings") {
			t.Errorf("user stack %v does not pass the test", names)
		}
	}
	if n != 1 {
		t.Errorf("%d records of the open, want 1", n)
	}
}

// TestUprobeStack takes the user stack (and the kernel stack, which a
// uprobe, whose registers are the user's, has none of: an empty entry)
// at a C function's entry: the innermost frame is where the registers
// say the process is.
func TestUprobeStack(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	syms, err := uprobe.Match(bin, "mark")
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	w := startWorkload(t, bin, strconv.Itoa(n), "arg")
	pid := w.cmd.Process.Pid
	const di, ip = 112, 128 // offsets in pt_regs
	s := open(t, 0, collector.Probe{Kind: program.Uprobe, Path: bin, Offset: syms[0].Offset, PID: pid,
		Strings: []collector.StringSpec{{CtxOff: di, User: true}}, KStack: true, UStack: true})
	w.run(t)
	got := 0
	for _, r := range drain(t, s, func(r *collector.Record) bool { return r.TGID == uint32(pid) }) {
		got++
		if len(r.Strings) != 3 || string(r.Strings[0].Data) != "arg\x00" {
			t.Fatalf("entries %+v, want the string, then the stacks", r.Strings)
		}
		if ks := frames(t, r.Strings[1], collector.KStackAddr); len(ks) != 0 {
			t.Errorf("a uprobe's kernel stack of %d frames: %#x", len(ks), ks)
		}
		// The workload has no frame pointers (gcc -O1): the frames
		// past the first are what its stack happens to hold, not
		// necessarily addresses.
		us := frames(t, r.Strings[2], collector.UStackAddr)
		if len(us) == 0 {
			t.Fatal("empty user stack")
		}
		if pc := binary.LittleEndian.Uint64(r.Context[ip:]); us[0] != pc {
			t.Errorf("innermost user frame %#x, the registers' ip %#x", us[0], pc)
		}
	}
	if got != n {
		t.Errorf("%d records, want %d", got, n)
	}
}
