// Package object reads a clang-built eBPF ELF object, the libbpf-tools
// way of shipping a program, into a program.Program the gatekeeper can
// judge and an executor can run: each tracing program becomes a Probe
// named as bpftrace would name its attach point, from libbpf's section
// names (tracepoint/CAT/NAME, kprobe/FUNC, uprobe/PATH:FUNC, fentry/FUNC,
// perf_event, ...).
//
// Parse reads only the bytes it is given, so what it reads is what the
// caller verified (attest.ReadSigned); it never touches the file system
// or the kernel. It refuses what a trace must not do or could not undo:
// programs that are not tracing programs, pinned maps (they would outlive
// the trace), and sizes past its limits.
package object

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
)

// Limits on an object, well above any tracing tool's.
const (
	MaxSize     = 64 << 20 // bytes of ELF
	MaxPrograms = 1024
	MaxMaps     = 256
	// MaxInsns bounds one program's instructions: the kernel's own
	// limit on a program's size (BPF_COMPLEXITY_LIMIT_INSNS).
	MaxInsns = 1_000_000
)

// PerfEventHz is how often a perf_event program runs on each CPU: the
// object has no user space to choose an event, so it samples the CPU
// clock as bpftrace's profile:hz:99 does.
const PerfEventHz = 99

// mapTypes are the map types a tracing object may create: those whose
// contents the broker can read back (or that need no reading), and that
// hold no references to other kernel objects.
var mapTypes = map[ebpf.MapType]bool{
	ebpf.Hash: true, ebpf.Array: true, ebpf.PerCPUHash: true, ebpf.PerCPUArray: true,
	ebpf.LRUHash: true, ebpf.LRUCPUHash: true, ebpf.RingBuf: true, ebpf.PerfEventArray: true,
	ebpf.StackTrace: true, ebpf.Queue: true, ebpf.Stack: true, ebpf.BloomFilter: true,
}

// Error is a refusal, naming the object part refused.
type Error struct {
	Name string // the object (its path)
	What string // "program handle_exec (section kprobe/x)", "map events"
	Err  error
}

func (e *Error) Error() string {
	if e.What == "" {
		return fmt.Sprintf("%s: %v", e.Name, e.Err)
	}
	return fmt.Sprintf("%s: %s: %v", e.Name, e.What, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// IsELF says whether data starts like an ELF file: how run tells an
// object from a script.
func IsELF(data []byte) bool { return bytes.HasPrefix(data, []byte("\x7fELF")) }

// Parse reads an eBPF ELF object (name is its path, for messages) into
// a Program with Object set. Uprobes name their file and function but
// have no Offset yet: the caller resolves them (Probe.Path, Probe.Event)
// against the file system it trusts.
func Parse(name string, data []byte) (p *program.Program, err error) {
	fail := func(what string, err error) (*program.Program, error) {
		return nil, &Error{Name: name, What: what, Err: err}
	}
	if len(data) > MaxSize {
		return fail("", fmt.Errorf("%d bytes, at most %d", len(data), MaxSize))
	}
	if !IsELF(data) {
		return fail("", errors.New("not an ELF file"))
	}
	spec, err := loadSpec(data)
	if err != nil {
		return fail("", err)
	}
	if len(spec.Programs) == 0 {
		return fail("", errors.New("no programs: an object's programs are in sections named for their attach points (tracepoint/CAT/NAME, kprobe/FUNC, ...)"))
	}
	if len(spec.Programs) > MaxPrograms {
		return fail("", fmt.Errorf("%d programs, at most %d", len(spec.Programs), MaxPrograms))
	}
	if len(spec.Maps) > MaxMaps {
		return fail("", fmt.Errorf("%d maps, at most %d", len(spec.Maps), MaxMaps))
	}
	obj := &program.Object{Spec: spec, Records: map[string]btf.Type{}}
	for _, mn := range slices.Sorted(maps.Keys(spec.Maps)) {
		m := spec.Maps[mn]
		if err := checkMap(m); err != nil {
			return fail("map "+mn, err)
		}
		switch {
		case m.Type == ebpf.RingBuf || m.Type == ebpf.PerfEventArray:
			obj.Records[mn] = m.Value
			if m.Type == ebpf.PerfEventArray {
				// The record type rides on the declaration only: the
				// kernel's perf event array holds an fd per CPU.
				m.Key, m.Value, m.KeySize, m.ValueSize = nil, nil, 4, 4
				m.MaxEntries = 0 // one per possible CPU, as libbpf sizes it
			}
		case isSectionMap(mn):
		case m.Type == ebpf.StackTrace, m.Type == ebpf.Queue, m.Type == ebpf.Stack, m.Type == ebpf.BloomFilter:
			// Read by the programs, not printed: their elements are
			// not key-value pairs.
		default:
			obj.Printed = append(obj.Printed, mn)
		}
	}
	p = &program.Program{Generator: "object", Object: obj}
	names := slices.Sorted(maps.Keys(spec.Programs))
	// Sections first, then names, so probes come in the object's order
	// whatever the map iteration.
	sort.SliceStable(names, func(i, j int) bool {
		return spec.Programs[names[i]].SectionName < spec.Programs[names[j]].SectionName
	})
	for _, pn := range names {
		ps := spec.Programs[pn]
		what := fmt.Sprintf("program %s (section %s)", pn, ps.SectionName)
		if len(ps.Instructions) > MaxInsns {
			return fail(what, fmt.Errorf("%d instructions, at most %d", len(ps.Instructions), MaxInsns))
		}
		pr, err := probe(ps)
		if err != nil {
			return fail(what, err)
		}
		if ps.License != "" {
			obj.License = ps.License
		}
		pr.Insns = ps.Instructions
		pr.Reads = reads(pr.Kind, ps)
		p.Probes = append(p.Probes, pr)
		obj.Progs = append(obj.Progs, pn)
	}
	return p, nil
}

// loadSpec is cilium/ebpf's ELF reader, which must not take the process
// down whatever the bytes: a panic in it is the object's error.
func loadSpec(data []byte) (spec *ebpf.CollectionSpec, err error) {
	defer func() {
		if r := recover(); r != nil {
			spec, err = nil, fmt.Errorf("malformed object: %v", r)
		}
	}()
	return ebpf.LoadCollectionSpecFromReader(bytes.NewReader(data))
}

// isSectionMap says whether a map is one of the ELF sections' own:
// global variables, which are the program's state, not its output.
func isSectionMap(name string) bool {
	for _, s := range []string{".rodata", ".data", ".bss", ".kconfig", ".ksyms"} {
		if name == s || strings.HasPrefix(name, s+".") {
			return true
		}
	}
	return false
}

func checkMap(m *ebpf.MapSpec) error {
	if m.Pinning != ebpf.PinNone {
		return errors.New("pinned by name: a trace leaves nothing behind, and a pinned map outlives it (remove LIBBPF_PIN_BY_NAME)")
	}
	if isSectionMap(m.Name) {
		return nil
	}
	if !mapTypes[m.Type] {
		return fmt.Errorf("type %v is not one a tracing object may create (hash, array, their per-CPU and LRU kinds, ring buffer, perf event array, stack trace, queue, stack, bloom filter)", m.Type)
	}
	if m.InnerMap != nil || len(m.Contents) > 0 && m.Type != ebpf.Array && m.Type != ebpf.Hash {
		return errors.New("initial contents or inner maps are not supported")
	}
	return nil
}

// probe is the attach point a program's section names.
func probe(ps *ebpf.ProgramSpec) (*program.Probe, error) {
	sec := ps.SectionName
	kind, arg, _ := strings.Cut(sec, "/")
	need := func(what string) error {
		return fmt.Errorf("section %q names no %s: write %s/%s", sec, what, kind, strings.ToUpper(strings.ReplaceAll(what, " ", "_")))
	}
	switch kind {
	case "tracepoint", "tp":
		if ps.Type != ebpf.TracePoint {
			break
		}
		cat, ev, ok := strings.Cut(arg, "/")
		if !ok || cat == "" || ev == "" || strings.Contains(ev, "/") {
			return nil, fmt.Errorf("section %q: a tracepoint section is tracepoint/CATEGORY/NAME", sec)
		}
		return &program.Probe{Kind: program.Tracepoint, Category: cat, Event: ev, Name: "tracepoint:" + cat + ":" + ev}, nil
	case "raw_tracepoint", "raw_tp":
		if ps.Type != ebpf.RawTracepoint {
			break
		}
		if arg == "" {
			return nil, need("tracepoint")
		}
		return &program.Probe{Kind: program.RawTracepoint, Event: arg, Name: "rawtracepoint:" + arg}, nil
	case "tp_btf":
		if arg == "" {
			return nil, need("tracepoint")
		}
		return &program.Probe{Kind: program.TpBTF, Event: arg, Name: "tp_btf:" + arg}, nil
	case "fentry", "fexit":
		if arg == "" {
			return nil, need("function")
		}
		k, n := program.Fentry, "kfunc"
		if kind == "fexit" {
			k, n = program.Fexit, "kretfunc"
		}
		return &program.Probe{Kind: k, Category: "vmlinux", Event: arg, Name: n + ":vmlinux:" + arg}, nil
	case "kprobe", "kretprobe":
		if ps.Type != ebpf.Kprobe {
			break
		}
		if arg == "" {
			return nil, need("function")
		}
		fn, off, err := funcOffset(arg)
		if err != nil {
			return nil, fmt.Errorf("section %q: %w", sec, err)
		}
		k := program.Kprobe
		if kind == "kretprobe" {
			k = program.Kretprobe
			if off != 0 {
				return nil, fmt.Errorf("section %q: a kretprobe has no offset", sec)
			}
		}
		name := k.String() + ":" + fn
		if off != 0 {
			name += "+" + strconv.FormatUint(off, 10)
		}
		return &program.Probe{Kind: k, Event: fn, Offset: off, Name: name}, nil
	case "uprobe", "uretprobe":
		if ps.Type != ebpf.Kprobe {
			break
		}
		// libbpf: uprobe/PATH:FUNC[+OFFSET]; PATH is absolute, so the
		// section reads uprobe//usr/bin/bash:readline.
		i := strings.LastIndexByte(arg, ':')
		if i <= 0 || i == len(arg)-1 {
			return nil, fmt.Errorf("section %q: a uprobe section is %s/PATH:FUNCTION (libbpf's form; attaching by hand is for programs with a user space)", sec, kind)
		}
		path, fn := arg[:i], arg[i+1:]
		if !strings.HasPrefix(path, "/") {
			return nil, fmt.Errorf("section %q: the file %q is not an absolute path", sec, path)
		}
		fn, off, err := funcOffset(fn)
		if err != nil {
			return nil, fmt.Errorf("section %q: %w", sec, err)
		}
		k := program.Uprobe
		if kind == "uretprobe" {
			k = program.Uretprobe
		}
		name := k.String() + ":" + path + ":" + fn
		if off != 0 {
			name += "+" + strconv.FormatUint(off, 10)
		}
		// Event is the symbol; Offset is into it until the caller
		// resolves the symbol and adds its file offset.
		return &program.Probe{Kind: k, Path: path, Event: fn, Offset: off, Name: name}, nil
	case "perf_event":
		if ps.Type != ebpf.PerfEvent || arg != "" {
			break
		}
		return &program.Probe{Kind: program.Profile, Freq: PerfEventHz, Name: "profile:hz:" + strconv.Itoa(PerfEventHz)}, nil
	}
	return nil, fmt.Errorf("a %v program: tracebroker runs tracing programs in sections tracepoint/, raw_tracepoint/ (raw_tp/), tp_btf/, fentry/, fexit/, kprobe/, kretprobe/, uprobe/, uretprobe/ and perf_event", ps.Type)
}

// funcOffset splits FUNC[+OFFSET].
func funcOffset(s string) (string, uint64, error) {
	fn, o, ok := strings.Cut(s, "+")
	if fn == "" {
		return "", 0, errors.New("no function name")
	}
	if !ok {
		return fn, 0, nil
	}
	off, err := strconv.ParseUint(o, 0, 64)
	if err != nil {
		return "", 0, fmt.Errorf("offset %q is not a number", o)
	}
	return fn, off, nil
}

// reads classifies what a program reads from its helpers, as for any
// raw program, and from its context: a BTF-typed context (fentry,
// tp_btf) hands the program kernel pointers it may follow without a
// helper.
func reads(k program.ProbeKind, ps *ebpf.ProgramSpec) program.Reads {
	r := program.ReadsContext | program.HelperReads(ps.Instructions)
	switch k {
	case program.Fentry, program.Fexit, program.TpBTF:
		r |= program.ReadsKernel
	}
	return r
}

// IsFile says whether the file at path starts like an ELF file; a file
// that cannot be read is not one (reading it as a script says why).
func IsFile(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	var magic [4]byte
	_, err = io.ReadFull(f, magic[:])
	return err == nil && IsELF(magic[:])
}
