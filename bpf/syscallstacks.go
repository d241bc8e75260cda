package bpf

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
)

var syscallKStacks = sync.OnceValues(probeSyscallKernelStacks)

// HaveSyscallKernelStacks reports whether a program at a syscall
// tracepoint (tracepoint:syscalls:*) gets the kernel's stack from
// bpf_get_stack and bpf_get_stackid. On 6.1 it does not: the perf
// handler of the syscall tracepoints passes on the system call's user
// registers, from which the kernel unwinds no kernel frames, so kstack
// there is empty, for bpftrace as for tracebroker (raw tracepoints and
// the other tracepoints have it). The kernel is asked once, by a
// program at sys_enter_getppid that this process then calls; an error
// says the question could not be put (no root, no tracefs).
func HaveSyscallKernelStacks() (bool, error) { return syscallKStacks() }

func probeSyscallKernelStacks() (bool, error) {
	if _, err := tracefs.Root(); err != nil {
		return false, err
	}
	out, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		return false, err
	}
	defer out.Close()
	const buf = 128
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:    ebpf.TracePoint,
		License: "GPL",
		Instructions: asm.Instructions{
			// r0 = bpf_get_stack(ctx, fp-buf, buf, 0): the kernel stack.
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -buf),
			asm.Mov.Imm(asm.R3, buf),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnGetStack.Call(),
			// out[0] = r0, the bytes of frames copied (or an error).
			asm.StoreMem(asm.R10, -buf-8, asm.R0, asm.DWord),
			asm.StoreImm(asm.R10, -buf-12, 0, asm.Word),
			asm.LoadMapPtr(asm.R1, out.FD()),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -buf-12),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -buf-8),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnMapUpdateElem.Call(),
			asm.Mov.Imm(asm.R0, 0),
			asm.Return(),
		},
	})
	if err != nil {
		return false, fmt.Errorf("a tracepoint program taking a stack: %w", err)
	}
	defer prog.Close()
	l, err := link.Tracepoint("syscalls", "sys_enter_getppid", prog, nil)
	if err != nil {
		return false, fmt.Errorf("attaching to syscalls:sys_enter_getppid: %w", err)
	}
	unix.Getppid()
	l.Close()
	var n int64
	if err := out.Lookup(uint32(0), &n); err != nil {
		return false, err
	}
	return n > 0, nil
}
