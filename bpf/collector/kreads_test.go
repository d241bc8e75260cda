package collector_test

import (
	"encoding/binary"
	"os"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
)

// taskOff is the offset of task_struct's member name in the running
// kernel's BTF.
func taskOff(t *testing.T, name string) int {
	t.Helper()
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	var task *btf.Struct
	if err := spec.TypeByName("task_struct", &task); err != nil {
		t.Fatal(err)
	}
	for _, m := range task.Members {
		if m.Name == name {
			return int(m.Offset / 8)
		}
	}
	t.Fatalf("task_struct has no member %s", name)
	return 0
}

// TestKernelReads reads through the current task and through a pointer
// in the context (sys_enter's struct pt_regs *) at each of this
// process's getcwd calls, and checks every entry: its address, what the
// task holds there, and the failed reads of a chain through a pointer
// that is not one.
func TestKernelReads(t *testing.T) { rawCollectors(t, testKernelReads) }

func testKernelReads(t *testing.T) {
	needKernel(t)
	pid, tgid, parent, comm := taskOff(t, "pid"), taskOff(t, "tgid"), taskOff(t, "real_parent"), taskOff(t, "comm")
	reads := []program.KRead{
		{Task: true, Offs: []int{pid}, Size: 4},
		{Task: true, Offs: []int{parent, tgid}, Size: 4}, // getppid()
		{Task: true, Offs: []int{comm}, Size: 16, Str: true},
		{Ctx: 0, Offs: []int{112}, Size: 8},   // regs->di: getcwd's buf
		{Ctx: 8, Offs: []int{0, 16}, Size: 2}, // the syscall number, read as a pointer
	}
	s := open(t, 0, collector.Probe{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16, Task: true, Reads: reads})
	buf := getcwdBuf[:]
	const n = 3
	for i := 0; i < n; i++ {
		if _, err := unix.Getcwd(buf); err != nil {
			t.Fatal(err)
		}
	}
	le := binary.LittleEndian
	got := 0
	for _, r := range drain(t, s, mine) {
		if le.Uint64(r.Context[8:]) != getcwdNR || r.Probe != 0 {
			continue
		}
		got++
		e := r.Strings
		if len(e) != 8 {
			t.Fatalf("%d entries, want the task and 7 reads: %+v", len(e), e)
		}
		if e[0].Addr != collector.TaskAddr || len(e[0].Data) != 8 {
			t.Fatalf("first entry %+v, want the task's", e[0])
		}
		task := le.Uint64(e[0].Data)
		want := []struct {
			addr uint64
			data []byte
		}{
			{task + uint64(pid), le.AppendUint32(nil, uint32(r.PID))},
			{task + uint64(parent), nil},                    // the parent's address, checked below
			{0, le.AppendUint32(nil, uint32(os.Getppid()))}, // at the parent's address, below
			{task + uint64(comm), append([]byte(ownComm(t)), 0)},
			{le.Uint64(r.Context) + 112, le.AppendUint64(nil, uint64(uintptrOf(buf)))},
			{getcwdNR, nil},
			{16, nil},
		}
		want[2].addr = le.Uint64(e[2].Data) + uint64(tgid)
		for i, w := range want {
			if e[i+1].Addr != w.addr {
				t.Errorf("entry %d at %#x, want %#x", i+1, e[i+1].Addr, w.addr)
			}
			if i == 1 {
				if len(e[2].Data) != 8 || le.Uint64(e[2].Data) < kernelStart {
					t.Errorf("entry 2 (real_parent) %x, want a kernel pointer", e[2].Data)
				}
				continue
			}
			if string(e[i+1].Data) != string(w.data) {
				t.Errorf("entry %d: %x, want %x", i+1, e[i+1].Data, w.data)
			}
		}
	}
	if got != n {
		t.Errorf("%d getcwd records, want %d", got, n)
	}
}

// getcwdBuf is where getcwd writes: in the data segment, where its
// address stays what the test compares with (a goroutine's stack moves
// as it grows).
var getcwdBuf [4096]byte

func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
