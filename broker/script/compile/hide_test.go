package compile

import (
	"testing"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// TestHidePID: every probe but BEGIN and END returns before its
// predicate on an event of the hidden process.
func TestHidePID(t *testing.T) {
	f, err := syntax.Parse("stdin", []byte(`BEGIN { @b = 1; } t:syscalls:sys_enter_openat /comm == "x"/ { @ = count(); } u:/bin/work:add_one { @u = count(); } fentry:vfs_read, fexit:vfs_read { @f = count(); } END { @e = 1; }`))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}, Funcs: fakeFuncs{}, HidePID: 4242})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prog.Probes {
		hides := false
		for i, ins := range p.Insns {
			if ins.OpCode.JumpOp() == asm.JEq && ins.Constant == 4242 && i >= 2 &&
				p.Insns[i-1].OpCode.ALUOp() == asm.RSh && p.Insns[i-2].IsBuiltinCall() && p.Insns[i-2].Constant == int64(asm.FnGetCurrentPidTgid) {
				hides = true
				// Before the predicate: nothing else is called first.
				for _, before := range p.Insns[:i-2] {
					if before.IsBuiltinCall() {
						t.Errorf("%s: calls %v before the pid check", p.Name, before)
					}
				}
			}
		}
		if want := p.Name != "BEGIN" && p.Name != "END"; hides != want {
			t.Errorf("%s: hides pid 4242 %v, want %v", p.Name, hides, want)
		}
	}
}
