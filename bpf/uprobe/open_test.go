package uprobe

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// Map slots the counting program adds to.
const (
	entryCount = iota
	entrySum   // of add_one's argument
	retCount
	retSum // of add_one's return value
	slots
)

// argRetOffsets are the pt_regs offsets of the first argument and of the
// return value, for the architectures the sums are checked on.
var argRetOffsets = map[string][2]int16{
	"amd64": {112, 80}, // di, ax
	"arm64": {0, 0},    // x0
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: opening uprobes needs root")
	}
	if _, _, err := uprobePMU(); err != nil {
		t.Skipf("skipping: %v", err)
	}
}

// counter loads a kprobe-type program that adds 1 to slot count and the
// 32-bit register at regOff (if regOff >= 0) to slot sum.
func counter(t *testing.T, m *ebpf.Map, count, sum int32, regOff int16) *ebpf.Program {
	t.Helper()
	var insns asm.Instructions
	if regOff >= 0 {
		insns = append(insns, asm.LoadMem(asm.R6, asm.R1, regOff, asm.Word))
	} else {
		insns = append(insns, asm.Mov.Imm(asm.R6, 0))
	}
	add := func(slot int32, src asm.Register) {
		insns = append(insns,
			asm.StoreImm(asm.RFP, -4, int64(slot), asm.Word),
			asm.LoadMapPtr(asm.R1, m.FD()),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, -4),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "out"),
			asm.StoreXAdd(asm.R0, src, asm.DWord),
		)
	}
	insns = append(insns, asm.Mov.Imm(asm.R7, 1))
	add(count, asm.R7)
	add(sum, asm.R6)
	insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe, Instructions: insns, License: "GPL"})
	if err != nil {
		t.Fatalf("load program: %v", err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog
}

func newCounts(t *testing.T) *ebpf.Map {
	t.Helper()
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: slots})
	if err != nil {
		t.Fatalf("create map: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func counts(t *testing.T, m *ebpf.Map) [slots]uint64 {
	t.Helper()
	var out [slots]uint64
	for i := range out {
		if err := m.Lookup(uint32(i), &out[i]); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// attach opens a probe with Open and sets and enables prog on it, as the
// bpf package does; the fd is closed when the test ends.
func attach(t *testing.T, path string, off uint64, ret bool, pid int, prog *ebpf.Program) {
	t.Helper()
	fd, err := Open(path, off, ret, pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_SET_BPF, prog.FD()); err != nil {
		t.Fatalf("PERF_EVENT_IOC_SET_BPF: %v", err)
	}
	if err := unix.IoctlSetInt(fd, unix.PERF_EVENT_IOC_ENABLE, 0); err != nil {
		t.Fatalf("PERF_EVENT_IOC_ENABLE: %v", err)
	}
	if flags, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC == 0 {
		t.Errorf("perf event fd is not close-on-exec: %#x, %v", flags, err)
	}
}

// probes attaches a uprobe and a uretprobe counter on add_one.
func probes(t *testing.T, bin string, pid int) *ebpf.Map {
	t.Helper()
	syms, err := Match(bin, "add_one")
	if err != nil {
		t.Fatal(err)
	}
	regs, sums := argRetOffsets[runtime.GOARCH]
	if !sums {
		regs = [2]int16{-1, -1}
	}
	m := newCounts(t)
	attach(t, bin, syms[0].Offset, false, pid, counter(t, m, entryCount, entrySum, regs[0]))
	attach(t, bin, syms[0].Offset, true, pid, counter(t, m, retCount, retSum, regs[1]))
	return m
}

// want is what n calls of add_one(0), add_one(1), ... leave in the map.
func want(n uint64) [slots]uint64 {
	w := [slots]uint64{entryCount: n, retCount: n}
	if _, ok := argRetOffsets[runtime.GOARCH]; ok {
		w[entrySum] = n * (n - 1) / 2 // arguments 0..n-1
		w[retSum] = n * (n + 1) / 2   // return values 1..n
	}
	return w
}

func TestOpenCounts(t *testing.T) {
	needRoot(t)
	kerneltest.Lock(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		name  string
		flags []string
	}{
		{"pie", nil},
		{"nopie", []string{"-no-pie"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bin := buildC(t, dir, tc.name, tc.flags...)
			m := probes(t, bin, -1)
			const n = 25
			if out, err := exec.Command(bin, "25").Output(); err != nil || strings.TrimSpace(string(out)) != "25" {
				t.Fatalf("%s 25: %q, %v", bin, out, err)
			}
			if got := counts(t, m); got != want(n) {
				t.Errorf("counts %v, want %v (entry count, arg sum, return count, return sum)", got, want(n))
			}
			// A second run adds as many.
			if err := exec.Command(bin, "3").Run(); err != nil {
				t.Fatal(err)
			}
			w := want(n)
			for i, v := range want(3) {
				w[i] += v
			}
			if got := counts(t, m); got != w {
				t.Errorf("after a second run: counts %v, want %v", got, w)
			}
		})
	}
}

// TestOpenPid: a probe opened for one process sees only that process,
// not another running the same binary meanwhile.
func TestOpenPid(t *testing.T) {
	needRoot(t)
	kerneltest.Lock(t)
	bin := buildC(t, t.TempDir(), "prog")

	target := exec.Command(bin, "7", "wait")
	stdin, err := target.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Start(); err != nil {
		t.Fatal(err)
	}
	defer target.Process.Kill()
	m := probes(t, bin, target.Process.Pid)

	// Another process, started after the probes: not counted.
	if out, err := exec.Command(bin, "11").Output(); err != nil || strings.TrimSpace(string(out)) != "11" {
		t.Fatalf("%s 11: %q, %v", bin, out, err)
	}
	if got := counts(t, m); got != ([slots]uint64{}) {
		t.Errorf("the other process was counted: %v", got)
	}
	stdin.Write([]byte{'\n'})
	stdin.Close()
	if err := target.Wait(); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, m); got != want(7) {
		t.Errorf("counts %v, want %v", got, want(7))
	}
}

func TestOpenErrors(t *testing.T) {
	needRoot(t)
	kerneltest.Lock(t)
	dir := t.TempDir()
	bin := buildC(t, dir, "prog")
	syms, err := Match(bin, "add_one")
	if err != nil {
		t.Fatal(err)
	}
	off := syms[0].Offset
	// A pid no process has.
	nopid := 0x3ffff0
	for ; nopid > 0x3fff00; nopid-- {
		if errors.Is(syscall.Kill(nopid, 0), syscall.ESRCH) {
			break
		}
	}
	tests := []struct {
		name string
		path string
		off  uint64
		ret  bool
		pid  int
		want string
		errn error
	}{
		{"missing file", filepath.Join(dir, "nosuch"), off, false, -1, "file not found", unix.ENOENT},
		{"offset beyond the end", bin, 1 << 40, false, -1, "offset beyond the end of the file", unix.EINVAL},
		{"directory", dir, 0, true, -1, "uretprobe " + dir + ":0x0", unix.EINVAL},
		{"no such process", bin, off, false, nopid, "no process", unix.ESRCH},
		{"NUL in path", bin + "\x00x", off, false, -1, "invalid path", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd, err := Open(tc.path, tc.off, tc.ret, tc.pid)
			if err == nil {
				unix.Close(fd)
				t.Fatalf("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) || (tc.errn != nil && !errors.Is(err, tc.errn)) {
				t.Errorf("Open: %v; want %q wrapping %v", err, tc.want, tc.errn)
			}
		})
	}
}
