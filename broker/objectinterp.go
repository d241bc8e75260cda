package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/object"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/interp"
)

// objectExecutor runs a precompiled object's probes: in the kernel
// (bpf.ObjectSession) or in the interpreter over the static collectors'
// records (objectInterp).
type objectExecutor interface {
	Attach(ctx context.Context) error
	Detach()
	ReadRecords(stop <-chan struct{}, emit func(bpf.Record)) (lost uint64, err error)
	Dump(name string) ([]program.RawEntry, error)
	Close()
}

// objectInterpKinds are the probe kinds whose context the collectors
// copy whole, so an object's program reads in the interpreter what it
// would in the kernel. fentry, fexit and tp_btf programs follow kernel
// pointers in their typed arguments without a helper: JIT only.
var objectInterpKinds = map[program.ProbeKind]bool{
	program.Tracepoint: true, program.RawTracepoint: true, program.Uprobe: true, program.Uretprobe: true,
	program.Kprobe: true, program.Kretprobe: true, program.Profile: true,
}

// objectInterpCapable says why an object cannot run in the interpreter,
// or nil: before anything is loaded.
func objectInterpCapable(prog *program.Program) error {
	for _, p := range prog.Probes {
		if !objectInterpKinds[p.Kind] {
			return fmt.Errorf("%s: a %s program follows kernel pointers in its typed arguments, which interpreter mode cannot copy (use --mode jit)", p.Name, p.Kind)
		}
		for i := range p.Insns {
			if btf.CORERelocationMetadata(&p.Insns[i]) != nil {
				return fmt.Errorf("%s: the program has CO-RE relocations, which the kernel's loader applies: interpreter mode runs objects without them (use --mode jit)", p.Name)
			}
		}
	}
	return nil
}

// objectContexts sets what the collectors copy for each probe of an
// object: the whole context, and for a tracepoint the strings behind its
// char pointer fields (a syscall's are user memory), since which of them
// the program reads is in its bytecode, not in a script.
func objectContexts(prog *program.Program) error {
	for _, p := range prog.Probes {
		switch p.Kind {
		case program.Uprobe, program.Uretprobe:
			// The arguments' registers, and the return value's: any
			// may point at a string the program reads.
			p.CtxLen = program.PtRegsSize
			for _, off := range argRegs(p.Kind) {
				p.CtxStrings = append(p.CtxStrings, program.CtxString{Off: off, User: true})
			}
		case program.Kprobe, program.Kretprobe:
			// A kernel function's pointer arguments may be user memory
			// (a system call's) or the kernel's: both are copied.
			p.CtxLen = program.PtRegsSize
			for _, off := range argRegs(p.Kind) {
				p.CtxStrings = append(p.CtxStrings, program.CtxString{Off: off, User: true}, program.CtxString{Off: off})
			}
		case program.Profile:
			p.CtxLen = program.PerfEventDataSize
		case program.RawTracepoint:
			p.CtxLen = 8 * 12
		case program.Tracepoint:
			f, err := tracefs.ReadFormat(p.Category, p.Event)
			if err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			n := 0
			for _, fl := range append(slices.Clone(f.Common), f.Fields...) {
				n = max(n, fl.Offset+fl.Size)
				if strings.HasPrefix(fl.Type, "__data_loc") {
					n = program.MaxContext
				}
				if strings.HasSuffix(strings.TrimSpace(fl.Type), "char *") && fl.Size == 8 && len(p.CtxStrings) < collector.MaxStrings {
					p.CtxStrings = append(p.CtxStrings, program.CtxString{Off: fl.Offset, User: p.Category == "syscalls"})
				}
			}
			p.CtxLen = min(n, program.MaxContext)
		}
	}
	return nil
}

// argRegs are the offsets in x86-64's struct pt_regs of the registers
// that hold a function's first six arguments (di, si, dx, cx, r8, r9),
// and of ax, its return value, for a return probe.
func argRegs(k program.ProbeKind) []int {
	regs := []int{112, 104, 96, 88, 72, 64}
	if k == program.Uretprobe || k == program.Kretprobe {
		regs = append(regs, 80)
	}
	return regs
}

// objectInterp runs an object's programs in the interpreter: the static
// collectors copy each event, the program runs over the copy with
// user-space maps, and what it writes to its ring buffers and perf event
// arrays comes out as records.
type objectInterp struct {
	*interpSession
	rings []string // the object's ring buffers
	perf  map[string]bool
	out   []bpf.Record
}

// openObjectInterp is openInterp for an object.
func openObjectInterp(prog *program.Program, req *Request) (*objectInterp, error) {
	if err := objectInterpCapable(prog); err != nil {
		return nil, err
	}
	if err := objectContexts(prog); err != nil {
		return nil, err
	}
	cpus, err := possibleCPUs()
	if err != nil {
		return nil, err
	}
	s := newInterpState(prog, noEvents{})
	o := &objectInterp{interpSession: s, perf: map[string]bool{}}
	for _, name := range slices.Sorted(maps.Keys(prog.Object.Spec.Maps)) {
		ms := prog.Object.Spec.Maps[name]
		switch ms.Type {
		case ebpf.PerfEventArray:
			// Its records go to the session's queue (perfOutput); the
			// program only needs a map to name.
			o.perf[name] = true
			ms = &ebpf.MapSpec{Name: name, Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
		case ebpf.RingBuf:
			o.rings = append(o.rings, name)
		}
		m, err := s.addMap(ms, cpus)
		if err != nil {
			return nil, err
		}
		contents := ms.Contents
		if data, ok := object.SectionData(prog.Object, name); ok {
			// A section's bytes with its variables as they were set.
			contents = []ebpf.MapKV{{Key: uint32(0), Value: data}}
		}
		err = m.Fill(contents, nil)
		if err != nil {
			return nil, fmt.Errorf("interpreter mode: map %s: %w", name, err)
		}
	}
	if err := s.load(append(s.helpers(), interp.Helper{ID: asm.FnPerfEventOutput, Name: "perf_event_output", Args: 5, Fn: o.perfOutput})); err != nil {
		return nil, err
	}
	if err := s.collect(req); err != nil {
		return nil, err
	}
	return o, nil
}

// maxQueued bounds the records a run may queue before they are printed:
// a program that loops over perf_event_output cannot exhaust memory.
const maxQueued = 4096

// perfOutput is bpf_perf_event_output(ctx, map, flags, data, size) on
// one of the object's perf event arrays: the record is queued for
// printing, as the kernel's perf buffer would hold it.
func (o *objectInterp) perfOutput(c interp.Call, _, r2, _, r4, r5 uint64) (uint64, error) {
	m, _, err := c.Map(r2)
	if err != nil {
		return 0, err
	}
	if !o.perf[m.Name()] {
		return 0, fmt.Errorf("perf_event_output on %s, not a perf event array", m.Name())
	}
	data, err := c.Mem(r4, r5, false)
	if err != nil {
		return 0, err
	}
	if len(o.out) >= maxQueued {
		return negErrno(enospc), nil
	}
	o.out = append(o.out, bpf.Record{Map: m.Name(), Data: slices.Clone(data), CPU: int(c.Env().CPU)})
	return 0, nil
}

const enospc = 28

// ReadRecords runs the probes over the collectors' records until stop is
// closed, then over what is left, emitting what each run wrote to the
// object's ring buffers and perf event arrays in the order written per
// kind.
func (o *objectInterp) ReadRecords(stop <-chan struct{}, emit func(bpf.Record)) (uint64, error) {
	stopping := false
	// What the runs of the attach wrote (interpSession.Attach).
	o.emitWritten(emit)
	for {
		deadline := time.Now().Add(pollInterval)
		if !stopping {
			select {
			case <-stop:
				stopping = true
				o.src.Stop()
			default:
			}
		}
		if stopping {
			deadline = time.Now()
		}
		raw, err := o.src.Next(deadline)
		switch {
		case errors.Is(err, bpf.ErrTimeout) || errors.Is(err, io.EOF):
			if stopping {
				return o.src.Lost(), nil
			}
			continue
		case err != nil:
			return o.src.Lost(), err
		}
		o.handle(raw)
		o.emitWritten(emit)
	}
}

// emitWritten emits what the runs so far wrote to the object's ring
// buffers and perf event arrays.
func (o *objectInterp) emitWritten(emit func(bpf.Record)) {
	for _, name := range o.rings {
		for {
			b, ok := o.maps[name].ReadRecord()
			if !ok {
				break
			}
			emit(bpf.Record{Map: name, Data: b, CPU: -1})
		}
	}
	for _, r := range o.out {
		emit(r)
	}
	o.out = o.out[:0]
}

// Dump is bpf.ObjectSession.Dump for the interpreter's maps.
func (o *objectInterp) Dump(name string) ([]program.RawEntry, error) {
	m := o.maps[name]
	if m == nil {
		return nil, fmt.Errorf("no map %s", name)
	}
	stride := (int(m.ValueSize()) + 7) &^ 7
	var out []program.RawEntry
	m.Iterate(func(k, v []byte) bool {
		e := program.RawEntry{Key: slices.Clone(k)}
		if bpf.PerCPU(m.Type()) {
			for off := 0; off+int(m.ValueSize()) <= len(v); off += stride {
				e.Vals = append(e.Vals, slices.Clone(v[off:off+int(m.ValueSize())]))
			}
		} else {
			e.Vals = [][]byte{slices.Clone(v)}
		}
		if bpf.Written(m.Type(), e) {
			out = append(out, e)
		}
		return true
	})
	return out, nil
}

func (o *objectInterp) Detach() { o.src.Detach() }
func (o *objectInterp) Close()  { o.src.Close() }
