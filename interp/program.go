package interp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf/asm"
)

// DefaultBudget is the number of instructions one run may execute unless
// Options says otherwise: a few milliseconds of work, far more than any
// tracing program needs per event, small enough that a runaway loop is
// noticed at once.
const DefaultBudget = 1 << 22

// Options configure Load.
type Options struct {
	// Maps are the maps the program may use. Raw bytecode names a map by
	// its position here: the imm of a map load (BPF_PSEUDO_MAP_FD or
	// BPF_PSEUDO_MAP_IDX and their value forms).
	Maps []*Map
	// Helpers is the helper table; nil means DefaultHelpers(). A call to a
	// helper not in the table is rejected before anything runs.
	Helpers []Helper
	// Args is how many argument registers (r1, r2, ...) hold a value at
	// entry; the verifier rejects reads of the others. 0 means 1 (the
	// context pointer, as in the kernel). The conformance suite uses 2
	// (memory pointer and length).
	Args int
	// WritableContext lets the program store into its context.
	WritableContext bool
	// Budget is the number of instructions one run may execute; 0 means
	// DefaultBudget.
	Budget uint64
}

// Program is verified bytecode ready to run. It is immutable: any number
// of goroutines may Run it at once.
type Program struct {
	code       []byte // as loaded, for error messages and traces
	insns      []insn
	maps       []*Map
	helpers    []HelperFunc // indexed by helper id; nil = not in the table
	helperArgs []int
	helperVoid []bool
	args       int
	ctxW       bool
	budget     uint64
	pool       sync.Pool
}

// Load decodes and verifies raw bytecode (8-byte little-endian slots, as
// the bpf syscall takes it). Nothing runs unless every check passes.
func Load(code []byte, opts Options) (*Program, error) {
	if len(code) == 0 {
		return nil, &VerifyError{PC: -1, Msg: "empty program"}
	}
	if len(code)%8 != 0 {
		return nil, &VerifyError{PC: -1, Msg: fmt.Sprintf("program is %d bytes, not a whole number of 8-byte instructions", len(code))}
	}
	if len(code)/8 > MaxInsns {
		return nil, &VerifyError{PC: -1, Msg: fmt.Sprintf("program has %d instructions, more than %d", len(code)/8, MaxInsns)}
	}
	p := &Program{
		code:   bytes.Clone(code),
		maps:   opts.Maps,
		args:   opts.Args,
		ctxW:   opts.WritableContext,
		budget: opts.Budget,
	}
	if p.args <= 0 {
		p.args = 1
	}
	if p.args > 5 {
		return nil, &VerifyError{PC: -1, Msg: fmt.Sprintf("%d argument registers: at most 5", p.args)}
	}
	if p.budget == 0 {
		p.budget = DefaultBudget
	}
	for i, m := range p.maps {
		if m == nil {
			return nil, &VerifyError{PC: -1, Msg: fmt.Sprintf("map %d is nil", i)}
		}
	}
	if len(p.maps) > maxMaps {
		return nil, &VerifyError{PC: -1, Msg: fmt.Sprintf("%d maps: at most %d", len(p.maps), maxMaps)}
	}
	helpers := opts.Helpers
	if helpers == nil {
		helpers = DefaultHelpers()
	}
	if err := p.setHelpers(helpers); err != nil {
		return nil, err
	}
	if err := p.verify(); err != nil {
		return nil, err
	}
	p.pool.New = func() any { return newMachine(p) }
	return p, nil
}

// LoadInstructions loads a program built with cilium/ebpf's asm package
// (what the script compiler emits and what an ELF object decodes to).
// Map loads name their map by reference; maps supplies them by that name.
func LoadInstructions(insns asm.Instructions, maps map[string]*Map, opts Options) (*Program, error) {
	insns = append(asm.Instructions(nil), insns...) // Marshal rewrites map loads
	index := map[string]int{}
	for i := range insns {
		ins := &insns[i]
		if !ins.IsLoadFromMap() {
			continue
		}
		name := ins.Reference()
		if name == "" {
			if m := ins.Map(); m != nil {
				return nil, fmt.Errorf("interp: insn %d loads a kernel map (fd %d): give it by name", i, m.FD())
			}
			continue // raw fd/idx in the constant: taken as an index into opts.Maps
		}
		idx, ok := index[name]
		if !ok {
			m, ok := maps[name]
			if !ok {
				return nil, fmt.Errorf("interp: insn %d uses map %q, which was not supplied", i, name)
			}
			idx = len(opts.Maps)
			opts.Maps = append(opts.Maps[:len(opts.Maps):len(opts.Maps)], m)
			index[name] = idx
		}
		if err := ins.AssociateMap(mapIndex(idx)); err != nil {
			return nil, fmt.Errorf("interp: insn %d: %w", i, err)
		}
	}
	var buf bytes.Buffer
	if err := insns.Marshal(&buf, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("interp: %w", err)
	}
	return Load(buf.Bytes(), opts)
}

// mapIndex stands in for a map's file descriptor when marshalling: the
// interpreter's "fd" is the map's position in Options.Maps.
type mapIndex int

func (i mapIndex) FD() int { return int(i) }

// Code returns the bytecode as loaded.
func (p *Program) Code() []byte { return p.code }

// Len is the number of 8-byte instruction slots.
func (p *Program) Len() int { return len(p.insns) }

// Maps returns the maps the program uses, in the order Options gave them.
func (p *Program) Maps() []*Map { return p.maps }

// VerifyError is why Load refused a program.
type VerifyError struct {
	PC   int // instruction slot, -1 for the program as a whole
	Insn string
	Msg  string
}

func (e *VerifyError) Error() string {
	if e.PC < 0 {
		return "interp: verifier: " + e.Msg
	}
	return fmt.Sprintf("interp: verifier: insn %d (%s): %s", e.PC, e.Insn, e.Msg)
}

// RunError is why a run stopped early. The program's effects up to that
// instruction (map updates, ring-buffer records) stay.
type RunError struct {
	PC   int
	Insn string
	Err  error
}

func (e *RunError) Error() string {
	return fmt.Sprintf("interp: insn %d (%s): %v", e.PC, e.Insn, e.Err)
}

func (e *RunError) Unwrap() error { return e.Err }

// ErrBudget is wrapped by the RunError of a run that used up its budget.
var ErrBudget = errors.New("instruction budget exhausted")

// ErrFault is wrapped by the RunError of an access outside the memory the
// program may touch.
var ErrFault = errors.New("memory access fault")
