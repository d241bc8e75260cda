// Package interp runs eBPF bytecode in user space: the instruction set of
// RFC 9669 behind a verifier, with the kernel's helper ids and user-space
// maps. It is the executor where no new native code may be created (HVCI)
// and it runs every gatekeeper policy.
//
// Load decodes and verifies bytecode once; the resulting Program is
// immutable and may Run on any number of goroutines at once, each run
// drawing its registers and stack from a pool, so a run allocates
// nothing:
//
//	counts, _ := interp.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1}, interp.MapOptions{})
//	p, err := interp.LoadInstructions(insns, map[string]*interp.Map{"counts": counts}, interp.Options{})
//	r0, err := p.Run(&interp.Env{PID: 42, CPU: 1}, ctx)
//
// Safety rests on two things. The verifier proves what does not depend on
// values: known opcodes and registers, r10 read-only, jumps inside their
// function and never into a 64-bit immediate, no fall-through, constant
// stack offsets within the frame, helpers in the table, no recursion and at
// most MaxFrames frames, no register read before it is written. And no
// pointer is ever a Go address: a pointer is a tagged 64-bit value (see
// mem.go) resolved and bounds-checked on every access, so whatever a
// program computes, it can reach only its stack frames, its context, map
// values and ring-buffer records it reserved. A run ends with a RunError
// naming the instruction on any other access, and with ErrBudget after
// Options.Budget instructions.
//
// Differences from the kernel are deliberate and few: immediate shifts by
// the width or more are masked as RFC 9669 says (the kernel's verifier
// refuses them; the conformance suite runs them), callx calls the helper
// whose id is in the register (as uBPF does), and a ring-buffer
// reservation left unsubmitted is discarded with an error at exit (the
// kernel proves statically that none is).
package interp
