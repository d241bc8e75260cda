package plugins

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// Limits on a raw program, well above what a tracing program needs and
// well below what would hurt the host.
const (
	maxProbes    = 1024
	maxMaps      = 256
	maxInsnSlots = 1_000_000 // the kernel's limit on instructions processed
	maxTypeDepth = 8
	maxTypeSize  = 1 << 16
	maxSchemaLen = 4 << 20
)

// probeKinds are sdk.Probe.Kind's names: the probe kinds a generator's
// own program may have, by the names bpftrace gives them.
var probeKinds = func() map[string]program.ProbeKind {
	m := map[string]program.ProbeKind{}
	for _, k := range []program.ProbeKind{program.Begin, program.End, program.Tracepoint, program.RawTracepoint,
		program.Interval, program.Profile, program.Uprobe, program.Uretprobe} {
		m[k.String()] = k
	}
	return m
}()

// mapTypes are the sdk.Map.Type names accepted: cilium/ebpf's MapType
// names of the map types the executors (kernel and interpreter) handle.
var mapTypes = map[string]ebpf.MapType{
	"Hash":        ebpf.Hash,
	"LRUHash":     ebpf.LRUHash,
	"Array":       ebpf.Array,
	"PerCPUHash":  ebpf.PerCPUHash,
	"PerCPUArray": ebpf.PerCPUArray,
	"RingBuf":     ebpf.RingBuf,
	"StackTrace":  ebpf.StackTrace,
}

// RawProgram converts a plugin's raw output (Output.Program) into the
// broker's program.Program, refusing anything the executor could not run
// as the plugin meant it:
//   - probes: a known Kind with its fields (tracepoint: Category and
//     Event; rawtracepoint: Event; interval, profile: PeriodNs; uprobe,
//     uretprobe: an absolute Path) and a Name;
//   - instructions: a whole number of 8-byte slots that decode; every
//     map load (lddw with src 1, a map's address, or 2, a map value's)
//     has a MapRefs entry at its first slot naming a declared map, and
//     every MapRefs entry is such a load; no other lddw pseudo sources;
//   - maps: unique names of at most 15 [A-Za-z0-9_.] characters, a type
//     of mapTypes with sizes that type allows, and the maps every program
//     has: "events" (RingBuf, a power of two of at least a page),
//     "map_errors" (PerCPUArray, u32 -> u64, len(Schema.Maps)+1 entries
//     at least), "config" (Array, u32 -> program.ConfigSize bytes, one
//     entry);
//   - Schema: JSON of program.Schema (unknown fields refused) whose
//     formats and maps lay their values out inside the records and BPF
//     maps they describe (see program.Map for the layouts).
//
// Whether the code is safe is not decided here: the kernel's verifier
// (or the interpreter's) and the gatekeeper do that.
func (g *Generated) RawProgram() (*program.Program, error) {
	if g.Output.Script != "" {
		return nil, errors.New("the plugin generated a script, not a raw program: compile Output.Script")
	}
	sp := g.Output.Program
	if sp == nil {
		return nil, errors.New("the plugin generated no program")
	}
	p, err := convert(sp)
	if err != nil {
		return nil, fmt.Errorf("raw program: %w", err)
	}
	p.Generator = g.Plugin.Name
	if p.Generator == "" {
		p.Generator = g.Info.Name
	}
	return p, nil
}

func convert(sp *sdk.Program) (*program.Program, error) {
	p := &program.Program{}
	if len(sp.Probes) == 0 {
		return nil, errors.New("no probes")
	}
	if len(sp.Probes) > maxProbes {
		return nil, fmt.Errorf("%d probes, at most %d", len(sp.Probes), maxProbes)
	}
	if len(sp.Maps) > maxMaps {
		return nil, fmt.Errorf("%d maps, at most %d", len(sp.Maps), maxMaps)
	}
	specs := map[string]*ebpf.MapSpec{}
	for i, m := range sp.Maps {
		spec, err := mapSpec(m)
		if err != nil {
			return nil, fmt.Errorf("map %d (%q): %w", i, m.Name, err)
		}
		if specs[m.Name] != nil {
			return nil, fmt.Errorf("map %q is declared twice", m.Name)
		}
		specs[m.Name] = spec
		p.Maps = append(p.Maps, spec)
	}
	schema, err := decodeSchema(sp.Schema)
	if err != nil {
		return nil, err
	}
	p.Schema = *schema
	if err := checkRequiredMaps(specs, len(schema.Maps)); err != nil {
		return nil, err
	}
	if err := checkSchema(schema, specs); err != nil {
		return nil, err
	}
	for i, pr := range sp.Probes {
		probe, err := convertProbe(pr, specs)
		if err != nil {
			return nil, fmt.Errorf("probe %d (%s): %w", i, pr.Name, err)
		}
		p.Probes = append(p.Probes, probe)
	}
	return p, nil
}

func convertProbe(pr sdk.Probe, specs map[string]*ebpf.MapSpec) (*program.Probe, error) {
	kind, ok := probeKinds[pr.Kind]
	if !ok {
		return nil, fmt.Errorf("unknown kind %q (%s)", pr.Kind, strings.Join(slices.Sorted(maps.Keys(probeKinds)), ", "))
	}
	if pr.Name == "" {
		return nil, errors.New("no name")
	}
	out := &program.Probe{
		Kind: kind, Name: pr.Name, Category: pr.Category, Event: pr.Event,
		PeriodNs: pr.PeriodNs, Path: pr.Path, Offset: pr.Offset,
	}
	switch kind {
	case program.Tracepoint:
		if pr.Category == "" || pr.Event == "" {
			return nil, errors.New("a tracepoint needs Category and Event")
		}
		if strings.ContainsAny(pr.Category+pr.Event, "/.*?[ ") || strings.HasPrefix(pr.Category, ".") {
			return nil, fmt.Errorf("tracepoint %s:%s: not a tracepoint name", pr.Category, pr.Event)
		}
	case program.RawTracepoint:
		if pr.Event == "" {
			return nil, errors.New("a raw tracepoint needs Event")
		}
	case program.Interval, program.Profile:
		if pr.PeriodNs == 0 {
			return nil, fmt.Errorf("%s needs PeriodNs", pr.Kind)
		}
	case program.Uprobe, program.Uretprobe:
		if !filepath.IsAbs(pr.Path) {
			return nil, fmt.Errorf("%s needs an absolute Path, not %q", pr.Kind, pr.Path)
		}
	}
	insns, err := decodeInsns(pr.Insns, pr.MapRefs, specs)
	if err != nil {
		return nil, err
	}
	out.Insns = insns
	return out, nil
}

// decodeInsns decodes the bytecode and attaches the map references.
func decodeInsns(code []byte, refs map[uint32]string, specs map[string]*ebpf.MapSpec) (asm.Instructions, error) {
	switch {
	case len(code) == 0:
		return nil, errors.New("no instructions")
	case len(code)%asm.InstructionSize != 0:
		return nil, fmt.Errorf("instructions are %d bytes, not a multiple of %d", len(code), asm.InstructionSize)
	case len(code)/asm.InstructionSize > maxInsnSlots:
		return nil, fmt.Errorf("%d instruction slots, at most %d", len(code)/asm.InstructionSize, maxInsnSlots)
	}
	var insns asm.Instructions
	r := bytes.NewReader(code)
	for slot := 0; ; {
		var ins asm.Instruction
		err := ins.Unmarshal(r, binary.LittleEndian, "linux")
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			// A truncated lddw at the end reads as an unexpected EOF.
			return nil, fmt.Errorf("instruction slot %d: %w", slot, err)
		}
		if ins.OpCode.IsDWordLoad() {
			switch ins.Src {
			case asm.R0:
			case asm.PseudoMapFD, asm.PseudoMapValue:
				name, ok := refs[uint32(slot)]
				if !ok {
					return nil, fmt.Errorf("instruction slot %d loads a map (lddw src %d) but MapRefs names none for it", slot, ins.Src)
				}
				spec := specs[name]
				if spec == nil {
					return nil, fmt.Errorf("instruction slot %d loads map %q, which is not declared", slot, name)
				}
				if ins.Src == asm.PseudoMapValue {
					if spec.Type != ebpf.Array || spec.MaxEntries != 1 {
						return nil, fmt.Errorf("instruction slot %d loads a value of map %q directly: only a one-element Array allows that", slot, name)
					}
					if off := uint64(ins.Constant) >> 32; off >= uint64(spec.ValueSize) {
						return nil, fmt.Errorf("instruction slot %d: offset %d is outside map %q's %d-byte value", slot, off, name, spec.ValueSize)
					}
				}
				ins = ins.WithReference(name)
			default:
				return nil, fmt.Errorf("instruction slot %d: lddw with pseudo source %d is not supported (0: a constant, 1: a map, 2: a map value)", slot, ins.Src)
			}
		} else if _, ok := refs[uint32(slot)]; ok {
			return nil, fmt.Errorf("MapRefs names map %q at instruction slot %d, which is not a map load (lddw)", refs[uint32(slot)], slot)
		}
		insns = append(insns, ins)
		slot += int(ins.Size() / asm.InstructionSize)
	}
	// A reference to the second slot of an lddw, or past the end.
	seen := map[uint32]bool{}
	iter := insns.Iterate()
	for iter.Next() {
		if iter.Ins.IsLoadFromMap() {
			seen[uint32(iter.Offset)] = true
		}
	}
	for _, slot := range slices.Sorted(maps.Keys(refs)) {
		if !seen[slot] {
			return nil, fmt.Errorf("MapRefs names map %q at instruction slot %d, which is not the first slot of a map load", refs[slot], slot)
		}
	}
	return insns, nil
}

var mapNameOK = func(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
}

func mapSpec(m sdk.Map) (*ebpf.MapSpec, error) {
	if m.Name == "" || len(m.Name) > 15 || strings.IndexFunc(m.Name, func(r rune) bool { return !mapNameOK(r) }) >= 0 {
		return nil, errors.New("a map name is 1 to 15 characters of A-Z a-z 0-9 _ .")
	}
	t, ok := mapTypes[m.Type]
	if !ok {
		return nil, fmt.Errorf("unknown or unsupported type %q (%s)", m.Type, strings.Join(slices.Sorted(maps.Keys(mapTypes)), ", "))
	}
	spec := &ebpf.MapSpec{Name: m.Name, Type: t, KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries}
	switch t {
	case ebpf.RingBuf:
		if m.Name != program.EventsMap {
			return nil, fmt.Errorf("the only ring buffer is %q, the one the executor reads", program.EventsMap)
		}
		ps := uint32(os.Getpagesize())
		if m.KeySize != 0 || m.ValueSize != 0 || m.MaxEntries < ps || m.MaxEntries&(m.MaxEntries-1) != 0 {
			return nil, fmt.Errorf("a RingBuf has no key or value size and a size (MaxEntries) that is a power of two of at least %d", ps)
		}
		return spec, nil
	case ebpf.Array, ebpf.PerCPUArray:
		if m.KeySize != 4 {
			return nil, errors.New("an array's key is 4 bytes (u32)")
		}
	case ebpf.StackTrace:
		if m.KeySize != 4 || m.ValueSize == 0 || m.ValueSize%8 != 0 {
			return nil, errors.New("a stack trace map has a 4-byte key and 8 bytes of value per frame")
		}
	default:
		if m.KeySize == 0 || m.KeySize > maxTypeSize {
			return nil, fmt.Errorf("key size %d is not in 1..%d", m.KeySize, maxTypeSize)
		}
	}
	if m.ValueSize == 0 || m.ValueSize > maxTypeSize {
		return nil, fmt.Errorf("value size %d is not in 1..%d", m.ValueSize, maxTypeSize)
	}
	if m.MaxEntries == 0 {
		return nil, errors.New("MaxEntries is 0")
	}
	return spec, nil
}

// checkRequiredMaps checks the maps the executor uses by name.
func checkRequiredMaps(specs map[string]*ebpf.MapSpec, userMaps int) error {
	if s := specs[program.EventsMap]; s == nil {
		return fmt.Errorf("no map %q: every program has the ring buffer its events go to (RingBuf)", program.EventsMap)
	}
	s := specs[program.ErrorsMap]
	if s == nil || s.Type != ebpf.PerCPUArray || s.KeySize != 4 || s.ValueSize != 8 || s.MaxEntries < uint32(userMaps+1) {
		return fmt.Errorf("no map %q as the executor reads it: PerCPUArray, key 4, value 8, MaxEntries at least %d (one per schema map and one for lost events)", program.ErrorsMap, userMaps+1)
	}
	s = specs[program.ConfigMap]
	if s == nil || s.Type != ebpf.Array || s.KeySize != 4 || s.ValueSize != program.ConfigSize || s.MaxEntries != 1 {
		return fmt.Errorf("no map %q as the executor fills it: Array, key 4, value %d, MaxEntries 1", program.ConfigMap, program.ConfigSize)
	}
	return nil
}

func decodeSchema(b []byte) (*program.Schema, error) {
	s := &program.Schema{}
	if len(bytes.TrimSpace(b)) == 0 {
		return s, nil
	}
	if len(b) > maxSchemaLen {
		return nil, fmt.Errorf("schema: %d bytes, at most %d", len(b), maxSchemaLen)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(s); err != nil {
		return nil, fmt.Errorf("schema: not the JSON of a program.Schema: %w", err)
	}
	if d.More() {
		return nil, errors.New("schema: trailing data after the JSON value")
	}
	return s, nil
}

// eventHeader is the event type tag and format id every record starts with.
const eventHeader = 16

func checkSchema(s *program.Schema, specs map[string]*ebpf.MapSpec) error {
	if len(s.HelperSites) > 0 {
		// Their text reaches the user as the script's own diagnostics.
		return errors.New("schema: helper sites: only the broker's compiler reports helper errors")
	}
	for i, f := range s.Formats {
		if f == nil {
			return fmt.Errorf("schema: format %d is null", i)
		}
		if f.Size < eventHeader || f.Size > maxTypeSize {
			return fmt.Errorf("schema: format %d: record size %d is not in %d..%d", i, f.Size, eventHeader, maxTypeSize)
		}
		if f.Action != "" {
			// cat() reads a file and system() runs a command, as the
			// broker: only what the broker compiled itself may ask.
			return fmt.Errorf("schema: format %d: action %q: a generator's own eBPF may not make the broker read files or run commands", i, f.Action)
		}
		for j, a := range f.Args {
			if err := checkType(a.Type, specs, 0); err != nil {
				return fmt.Errorf("schema: format %d argument %d: %w", i, j, err)
			}
			// Size is at most maxTypeSize (checkType), so f.Size-Size
			// cannot overflow where Offset+Size could.
			if a.Offset < eventHeader || a.Offset > f.Size-a.Type.Size {
				return fmt.Errorf("schema: format %d argument %d: bytes %d..%d are outside the record's %d..%d", i, j, a.Offset, a.Offset+a.Type.Size, eventHeader, f.Size)
			}
		}
		if v := f.Value; v != nil {
			if err := checkType(v.Type, specs, 0); err != nil {
				return fmt.Errorf("schema: format %d value: %w", i, err)
			}
			if v.Offset < 0 || v.Offset > f.Size-v.Type.Size {
				return fmt.Errorf("schema: format %d value: bytes %d..%d are outside the record's %d", i, v.Offset, v.Offset+v.Type.Size, f.Size)
			}
		}
	}
	reserved := map[string]bool{program.EventsMap: true, program.ErrorsMap: true, program.ConfigMap: true}
	used := map[string]int{}
	for i, m := range s.Maps {
		if m == nil {
			return fmt.Errorf("schema: map %d is null", i)
		}
		if err := checkSchemaMap(m, specs, reserved); err != nil {
			return fmt.Errorf("schema: map %d (%s): %w", i, m.Name, err)
		}
		if j, dup := used[m.BPF]; dup {
			return fmt.Errorf("schema: maps %d and %d are both BPF map %q", j, i, m.BPF)
		}
		used[m.BPF] = i
	}
	return nil
}

func checkSchemaMap(m *program.Map, specs map[string]*ebpf.MapSpec, reserved map[string]bool) error {
	if !strings.HasPrefix(m.Name, "@") {
		return errors.New(`a map's name starts with "@"`)
	}
	spec := specs[m.BPF]
	if spec == nil || reserved[m.BPF] {
		return fmt.Errorf("BPF map %q is not a declared user map", m.BPF)
	}
	keys := 0
	for i, k := range m.Keys {
		if err := checkType(k, specs, 0); err != nil {
			return fmt.Errorf("key %d: %w", i, err)
		}
		keys += k.Size
	}
	if err := checkType(m.Value, specs, 0); err != nil {
		return fmt.Errorf("value: %w", err)
	}
	// The layouts of program.Map, as bpf.Session.Snapshot reads them.
	var wantType ebpf.MapType
	wantKey, wantValue := keys, 0
	switch m.Agg {
	case program.Plain:
		if wantKey == 0 {
			wantKey = 8
		}
		wantValue = m.Value.Size
		switch spec.Type {
		case ebpf.Hash, ebpf.LRUHash, ebpf.Array:
			wantType = spec.Type
		default:
			wantType = ebpf.Hash
		}
	case program.Count, program.Sum:
		wantType, wantValue = ebpf.PerCPUHash, 8
	case program.Min, program.Max, program.Avg, program.Stats:
		wantType, wantValue = ebpf.PerCPUHash, 16
	case program.Hist, program.Lhist:
		wantType, wantKey, wantValue = ebpf.PerCPUHash, keys+8, 8
		if m.Agg == program.Lhist && (m.Step <= 0 || m.Max <= m.Min || (m.Max-m.Min)/m.Step > 1<<16) {
			return fmt.Errorf("lhist bounds min %d, max %d, step %d: want step > 0, max > min, at most %d buckets", m.Min, m.Max, m.Step, 1<<16)
		}
	default:
		return fmt.Errorf("unknown aggregation %d", m.Agg)
	}
	if m.Agg != program.Plain {
		if m.Value.Kind != program.Int || m.Value.Size != 8 {
			return errors.New("an aggregation's value type is an 8-byte Int")
		}
	}
	if wantKey == 0 {
		wantKey = 8
	}
	if spec.Type != wantType || int(spec.KeySize) != wantKey || int(spec.ValueSize) != wantValue {
		return fmt.Errorf("BPF map %q is %s key %d value %d; this schema map needs %s key %d value %d",
			m.BPF, spec.Type, spec.KeySize, spec.ValueSize, wantType, wantKey, wantValue)
	}
	return nil
}

// maxRecordElems bounds a record's or array's elements, as print() of
// one does.
const maxRecordElems = 64

// isFieldName reports whether s is a C identifier, as a record member's
// name is: printed as is, it must not carry what a terminal acts on.
func isFieldName(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i, c := range s {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && (i == 0 || !('0' <= c && c <= '9')) {
			return false
		}
	}
	return true
}

// checkElems checks a tuple's, record's or array's elements (what names
// it in errors): each a type of its own, within t's bytes.
func checkElems(t program.Type, specs map[string]*ebpf.MapSpec, depth int, what string) error {
	for i, e := range t.Elems {
		if err := checkType(e, specs, depth+1); err != nil {
			return fmt.Errorf("element %d: %w", i, err)
		}
		// As for a record's arguments: no Offs+Size, which a huge
		// offset overflows into passing.
		if t.Offs[i] < 0 || t.Offs[i] > t.Size-e.Size {
			return fmt.Errorf("element %d: bytes %d..%d are outside the %s's %d", i, t.Offs[i], t.Offs[i]+e.Size, what, t.Size)
		}
	}
	return nil
}

// checkType checks that a value of t can be decoded from t.Size bytes.
func checkType(t program.Type, specs map[string]*ebpf.MapSpec, depth int) error {
	if depth > maxTypeDepth {
		return fmt.Errorf("types nest deeper than %d", maxTypeDepth)
	}
	if t.Size <= 0 || t.Size > maxTypeSize {
		return fmt.Errorf("size %d is not in 1..%d", t.Size, maxTypeSize)
	}
	min := 0
	switch t.Kind {
	case program.Int:
		if t.Size != 1 && t.Size != 2 && t.Size != 4 && t.Size != 8 {
			return fmt.Errorf("an Int is 1, 2, 4 or 8 bytes, not %d", t.Size)
		}
		if t.Bits < 0 || t.BitOff < 0 || t.Bits > 64 || t.BitOff+t.Bits > 8*t.Size {
			return fmt.Errorf("bitfield of %d bits at bit %d of %d bytes", t.Bits, t.BitOff, t.Size)
		}
	case program.String:
	case program.Tuple:
		if len(t.Elems) == 0 || len(t.Elems) != len(t.Offs) {
			return errors.New("a Tuple has elements, one offset each")
		}
		if err := checkElems(t, specs, depth, "tuple"); err != nil {
			return err
		}
	case program.Record, program.Array:
		if len(t.Elems) == 0 || len(t.Elems) != len(t.Offs) || len(t.Elems) > maxRecordElems {
			return fmt.Errorf("a record or array has 1 to %d elements, one offset each", maxRecordElems)
		}
		if t.Kind == program.Record && len(t.Names) != len(t.Elems) {
			return errors.New("a record has a name for each member")
		}
		if err := checkElems(t, specs, depth, "record"); err != nil {
			return err
		}
		for i, e := range t.Elems {
			if e.Kind != program.Int && e.Kind != program.String && e.Kind != program.Record && e.Kind != program.Array {
				return fmt.Errorf("element %d: a record holds integers, strings, records and arrays", i)
			}
		}
		for _, n := range t.Names {
			if !isFieldName(n) {
				return fmt.Errorf("record member name %q is not a C identifier", n)
			}
		}
	case program.KStack, program.UStack:
		min = 8
		if s := specs[t.StackMap]; s == nil || s.Type != ebpf.StackTrace {
			return fmt.Errorf("stack map %q is not a declared StackTrace map", t.StackMap)
		}
		if t.Frames < 0 {
			return fmt.Errorf("%d frames", t.Frames)
		}
	case program.KSym, program.Username, program.Timestamp, program.Buffer, program.Strerror:
		min = 8
	case program.USym:
		min = 16
	case program.Inet:
		min = 24
	case program.MacAddr:
		min = 6
	case program.CgroupPath:
		min = 8
	default:
		return fmt.Errorf("unknown type kind %d", t.Kind)
	}
	if t.Size < min {
		return fmt.Errorf("a value of kind %d is at least %d bytes, not %d", t.Kind, min, t.Size)
	}
	return nil
}
