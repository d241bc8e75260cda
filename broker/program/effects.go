package program

import (
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/cilium/ebpf/asm"
)

// Effects lists, once each in the order of the code, the calls of insns
// that may do more than read: helpers that change the traced system
// (send a signal, write user memory, change a return value) and calls
// whose target is unknown here (an unknown helper id, a kfunc, callx),
// which may do anything. The script compiler calls one of them only for
// signal() under --unsafe; raw eBPF may call any. No token scope grants
// them.
func Effects(insns asm.Instructions) []string {
	var out []string
	add := func(name string) {
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	for _, ins := range insns {
		if ins.OpCode.JumpOp() != asm.Call {
			continue
		}
		switch {
		case ins.OpCode.Source() == asm.RegSource:
			add("callx")
		case ins.IsBuiltinCall():
			fn := asm.BuiltinFunc(ins.Constant)
			_, reads := readingHelpers[fn]
			if effectHelpers[fn] || !reads && !quietHelpers[fn] {
				add(helperName(fn))
			}
		case ins.IsFunctionCall():
			// bpf-to-bpf: its instructions are in insns.
		default:
			add("a kfunc")
		}
	}
	return out
}

// effectHelpers change the system they trace.
var effectHelpers = map[asm.BuiltinFunc]bool{
	asm.FnSendSignal: true, asm.FnSendSignalThread: true,
	// The host's trace buffer, which every tracer shares (debugf()):
	// a token holder could fill it, or forge lines in it.
	asm.FnTracePrintk: true, asm.FnTraceVprintk: true,
}

// helperName is a helper's C name (bpf_send_signal), or its number when
// it has none here.
func helperName(fn asm.BuiltinFunc) string {
	name, ok := strings.CutPrefix(fn.String(), "Fn")
	if !ok {
		return fmt.Sprintf("helper %d", int32(fn))
	}
	var b strings.Builder
	b.WriteString("bpf")
	for _, r := range name {
		if unicode.IsUpper(r) {
			b.WriteByte('_')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
