package progen

import "github.com/cilium/ebpf/asm"

// builder collects instructions and jumps to labels, and resolves the
// labels into raw offsets (in 8-byte slots: a 64-bit immediate takes two)
// at the end. Calls to subprograms keep cilium's symbol references, which
// the kernel loader and interp.LoadInstructions both resolve.
type builder struct {
	insns  asm.Instructions
	labels []int // label -> index into insns of the instruction it names
	fixups []fixup
	total  int // instructions emitted, cut ones included
}

type fixup struct{ at, label int }

func (b *builder) emit(ins ...asm.Instruction) {
	b.insns = append(b.insns, ins...)
	b.total += len(ins)
}

func (b *builder) label() int {
	b.labels = append(b.labels, -1)
	return len(b.labels) - 1
}

// place puts label l on the next instruction emitted.
func (b *builder) place(l int) { b.labels[l] = len(b.insns) }

// jump emits a jump (conditional, ja or gotol) to label l.
func (b *builder) jump(ins asm.Instruction, l int) {
	b.fixups = append(b.fixups, fixup{len(b.insns), l})
	b.emit(ins)
}

// cut drops the instructions from index start on and the jumps recorded
// since there were nfix of them. Labels placed in the cut part are left
// dangling: only the cut jumps used them.
func (b *builder) cut(start, nfix int) {
	b.insns = b.insns[:start]
	b.fixups = b.fixups[:nfix]
}

func (b *builder) resolve() asm.Instructions {
	slot := make([]int, len(b.insns)+1)
	for i, ins := range b.insns {
		slot[i+1] = slot[i] + int(ins.Size()/asm.InstructionSize)
	}
	for _, f := range b.fixups {
		t := b.labels[f.label]
		if t < 0 {
			panic("progen: jump to a label never placed")
		}
		rel := slot[t] - slot[f.at] - 1
		ins := &b.insns[f.at]
		if ins.OpCode.Class() == asm.Jump32Class && ins.OpCode.JumpOp() == asm.Ja {
			ins.Constant = int64(rel)
			ins.Offset = 0
		} else {
			ins.Offset = int16(rel)
		}
	}
	return b.insns
}
