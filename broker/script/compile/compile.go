// Package compile turns a parsed script into a program.Program: it expands
// probe specs into attach points, checks types with bpftrace's rules, and
// generates eBPF with cilium/ebpf's asm package. No LLVM is involved.
package compile

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// FieldKind classifies a tracepoint field for args->FIELD.
type FieldKind uint8

const (
	FieldInt       FieldKind = iota + 1 // an integer of Size bytes
	FieldPtr                            // a pointer; str() can read what it points to
	FieldCharArray                      // char NAME[Size]: a string
	FieldDataLoc                        // __data_loc char[]: a string elsewhere in the record
	FieldArray                          // another fixed array: not readable as a value
)

// Field is one tracepoint field as the format file describes it.
type Field struct {
	Name   string
	Type   string // C type as written, for messages
	Offset int
	Size   int
	Signed bool
	Kind   FieldKind
	// User marks a pointer into the traced process (a BTF tracepoint's
	// __user argument): str() and * read it with probe_read_user.
	User bool
}

// Tracepoints is what the compiler needs to know about the running kernel.
type Tracepoints interface {
	// Match returns the category:name pairs matching a glob pattern in each part.
	Match(category, name string) ([][2]string, error)
	// Fields returns the non-common fields of a tracepoint.
	Fields(category, name string) ([]Field, error)
}

// BTFTracepoints is what the compiler needs to know about the kernel's
// BTF tracepoints (tp_btf:NAME).
type BTFTracepoints interface {
	// Match returns the names matching a glob pattern, sorted.
	Match(pattern string) ([]string, error)
	// Args returns a tracepoint's arguments as fields: the context is
	// an array of u64, one per argument, so argument i is at Offset 8*i;
	// Size and Signed are its C type's. FieldInt and FieldPtr arguments
	// can be read; any other kind (a struct by value) can not.
	Args(name string) ([]Field, error)
}

// UprobeTarget is one function a uprobe attaches to.
type UprobeTarget struct {
	Path   string // the ELF file, resolved (absolute)
	Func   string // symbol name, or the address as written
	Offset uint64 // file offset
	// Binary, when set, is the file opened, which the probe attaches to.
	Binary program.Binary
}

// Uprobes resolves uprobe attach points: PATH as written (a path, or a
// name found through $PATH) and FUNC, a symbol, a wildcard pattern or an
// address (0x...).
type Uprobes interface {
	Resolve(path, fn string) ([]UprobeTarget, error)
}

// Options tune code generation.
type Options struct {
	// HelperErrors is bpftrace's -k (1) or -kk (2): failed helper
	// calls are reported at run time (helpererr.go).
	HelperErrors int
	Tracepoints  Tracepoints
	Uprobes      Uprobes
	// USDT answers for usdt probes; nil makes them an error.
	USDT USDT
	// BTFTracepoints answers for tp_btf probes; nil makes them an error.
	BTFTracepoints BTFTracepoints
	// Funcs answers for kfunc/kretfunc (fentry/fexit) probes; nil
	// makes them an error.
	Funcs KernelFuncs
	// Kprobes answers for kprobe and kretprobe probes; nil makes them
	// an error.
	Kprobes Kprobes
	// MaxMapKeys bounds every user map (bpftrace's default is 4096).
	MaxMapKeys int
	// HaveChild is set when -c starts a command, so that cpid is defined.
	HaveChild bool
	// Symbols resolves kaddr() and uaddr() (nil: both are errors).
	Symbols Symbols
	// Unsafe allows builtins that change the traced system: signal().
	Unsafe bool
	// HidePID, when not 0, is a process whose events the probes ignore:
	// the broker daemon hides its own from token holders (hide.go).
	HidePID uint32
	// NoV4 generates no instruction of the v4 ISA (sign-extending
	// loads, signed division): kernels before 6.6 refuse them ("BPF_LDX
	// uses reserved fields"). Set it from bpf.HaveV4ISA for programs the
	// kernel loads; the interpreter runs both forms.
	NoV4 bool
	// Types is the kernel's BTF, for struct access (curtask, casts to
	// struct pointers, ->): nil makes them an error.
	Types Types
	// Debug reads uprobes' binaries' DWARF, for args and the types
	// they define (uprobeargs.go): nil makes uprobe args an error.
	Debug DebugInfo
	// UprobeMulti says the kernel attaches one program to many
	// functions of a file with one uprobe.multi link (Linux 6.6): a
	// uprobe wildcard is then one probe (uprobemulti.go).
	UprobeMulti bool
	// MaxUprobes bounds the functions the program's uprobes attach to,
	// one by one and on uprobe.multi links together (0:
	// program.MaxUprobeFuncs; the daemon gives a token holder
	// program.MaxTokenUprobes).
	MaxUprobes int
}

// Compile checks f and generates its program. Errors and warnings are
// syntax.ErrorLists whose positions point into f.Src; warnings come back
// with a program, errors without one.
func Compile(f *syntax.File, opts Options) (*program.Program, syntax.ErrorList, error) {
	if opts.MaxMapKeys <= 0 {
		opts.MaxMapKeys = 4096
	}
	c := &compiler{file: f, opts: opts, maps: map[string]*mapInfo{}}
	c.defineTypes()
	for _, p := range f.Probes {
		lowerIncDec(p.Body)
	}
	c.expand()
	c.uprobeTypes()
	if errs := c.errs.errorsOnly(); len(errs) > 0 {
		return nil, nil, errs
	}
	if !c.checkWork() {
		return nil, nil, syntax.ErrorList(c.errs)
	}
	expandWarns := c.errs
	// Map types flow between probes (END prints what a tracepoint filled),
	// so infer them over all probes first, tolerating maps not yet seen,
	// then check for real.
	c.lenient = true
	for pass := 0; pass < 8; pass++ {
		before := c.knownMaps()
		for _, in := range c.instances {
			c.check(in)
		}
		if c.knownMaps() == before {
			if c.guessInt {
				break
			}
			// What is left reads itself before any type is known
			// (@n = @n + 1): such maps are integers, as in bpftrace.
			c.guessInt = true
		}
	}
	c.lenient, c.guessInt = false, false
	// The lenient passes' notes go; expand's warnings (a list's
	// places skipped as naming nothing here) stay.
	c.errs = expandWarns
	for _, in := range c.instances {
		c.check(in)
	}
	for _, name := range c.mapOrder {
		if m := c.maps[name]; !m.assigned {
			c.errorf(m.pos, m.end, "Undefined map: %s", name)
		}
	}
	if errs := c.errs.errorsOnly(); len(errs) > 0 {
		return nil, nil, errs
	}
	if !c.checkMaps() {
		return nil, nil, c.errs.errorsOnly()
	}
	prog := &program.Program{Source: string(f.Src), Generator: "script"}
	c.declareMaps(prog)
	for _, in := range c.instances {
		p, ok := c.generateBounded(in)
		if !ok {
			break
		}
		prog.Probes = append(prog.Probes, p)
	}
	if errs := c.errs.errorsOnly(); len(errs) > 0 {
		return nil, nil, errs
	}
	c.sizeEvents(prog)
	c.declareNames(prog)
	c.savedFlows(prog)
	prog.Schema.Formats = c.formats
	prog.Schema.HelperSites = c.helperSites
	prog.Types = c.types
	var warnings syntax.ErrorList
	for _, e := range c.errs.unique() {
		if e.Warning {
			warnings = append(warnings, e)
		}
	}
	return prog, warnings, nil
}

type errList syntax.ErrorList

// errorsOnly drops warnings, and repeats: a block with several probes is
// checked once per probe, but each mistake is reported once, as bpftrace
// does.
func (l errList) errorsOnly() syntax.ErrorList {
	var out syntax.ErrorList
	for _, e := range l.unique() {
		if !e.Warning {
			out = append(out, e)
		}
	}
	return out
}

// errors counts the errors noted so far, warnings left out.
func (l errList) errors() int {
	n := 0
	for _, e := range l {
		if !e.Warning {
			n++
		}
	}
	return n
}

func (l errList) unique() errList {
	type key struct {
		from, to syntax.Pos
		msg      string
		warn     bool
	}
	seen := map[key]bool{}
	var out errList
	for _, e := range l {
		k := key{e.From, e.To, e.Msg, e.Warning}
		if !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}

// instance is one attach point of one probe block, checked and generated
// on its own because args and `probe` differ between attach points.
type instance struct {
	probe  *syntax.Probe
	spec   *syntax.ProbeSpec
	kind   program.ProbeKind
	name   string
	cat    string
	event  string
	period uint64
	freq   uint64 // profile:hz
	sample uint64 // software: events per sample
	fields []Field
	path   string   // uprobes
	fn     string   // uprobes: the function (UprobeTarget.Func)
	funcs  []string // a kprobe.multi or uprobe.multi probe's functions
	// offsets are a uprobe.multi probe's functions' file offsets.
	offsets []uint64
	// nameBase is where a uprobe.multi probe's functions' names start
	// in the probe names map, once its code asked for one (uprobemulti.go).
	nameBase int
	named    bool
	offset   uint64
	binary   program.Binary
	// usdt is the USDT probe site a usdt probe is (usdt.go): its uprobe
	// is named by address, the probe builtin says display.
	usdt    *USDTTarget
	display string
	// block counts the script's probe specs: a wildcard's probes share
	// one (program.Probe.Block).
	block int

	types map[syntax.Expr]ty
	vars  map[string]ty
	// members are the fields read through BTF (btfstruct.go).
	members map[syntax.Expr]member
	// params are a uprobe's parameters' types, fields theirs as
	// context fields (uprobeargs.go).
	params []btf.Type
}

type mapInfo struct {
	name     string
	id       int
	keys     []ty // nil: no subscript
	keyed    bool
	known    bool // key/value types established
	assigned bool
	val      ty
	pos, end syntax.Pos
}

type compiler struct {
	// types are the struct, union and enum types the script reads
	// fields or sizes of, in the order first met (program.Types).
	types []btf.Type
	file  *syntax.File
	opts  Options
	// skipped is the first of a probe's places skipped as naming
	// nothing here (unresolved), for the error when all of them are.
	skipped   string
	instances []*instance
	maps      map[string]*mapInfo
	mapOrder  []string
	formats   []*program.Format
	// helperSites are the helper calls -k reports (helpererr.go).
	helperSites []program.HelperSite
	errs        errList
	lenient     bool
	guessInt    bool
	// stacks are the frame counts of the stack maps in use.
	stacks map[int]bool
	// consts are compile-time values of calls: kaddr(), sizeof(), ...
	consts map[*syntax.Call]uint64
	// enumConsts are the enum constants identifiers name (enums.go).
	enumConsts map[*syntax.Ident]int64
	// incdecs are the assignments that ++ and -- inside expressions make.
	incdecs map[*syntax.IncDec]*syntax.AssignStmt
	// prints are the printf calls print(VALUE) is compiled as, per
	// instance: the value's type may differ between a block's probes
	// (printvalue.go).
	prints map[printKey]*syntax.Call
	// typesErr is why the kernel's types are not there, for the error
	// of a struct access that needed them.
	typesErr error
	// names counts the probe names map's entries, namedProbes the
	// uprobe.multi probes whose code reads them (uprobemulti.go).
	names       int
	namedProbes []*instance
	// emits says whether a probe writes records to the events ring
	// buffer other than exit()'s (sizeEvents).
	emits  bool
	budget // limits.go
}

func (c *compiler) knownMaps() int {
	n := 0
	for _, m := range c.maps {
		if m.known {
			n++
		}
	}
	return n
}

func (c *compiler) errorf(from, to syntax.Pos, format string, args ...any) {
	c.note(&syntax.Error{From: from, To: to, Msg: fmt.Sprintf(format, args...)})
}

func (c *compiler) warnf(from, to syntax.Pos, format string, args ...any) {
	if c.lenient {
		return
	}
	c.note(&syntax.Error{From: from, To: to, Msg: fmt.Sprintf(format, args...), Warning: true})
}

// expand resolves every probe spec to its attach points.
func (c *compiler) expand() {
	seen := map[string]bool{}
	block := 0
	for _, p := range c.file.Probes {
		errs, found := c.errs.errors(), 0
		c.skipped = ""
		for _, s := range p.Specs {
			ins := c.expandSpec(p, s)
			found += len(ins)
			for _, in := range ins {
				in.block = block
			}
			block++
			if !c.roomFor(s, len(ins)) || c.full {
				return
			}
			for _, in := range ins {
				if seen[in.name] && (in.kind == program.Begin || in.kind == program.End) {
					c.errorf(s.From, s.To, "More than one %s probe defined", in.name)
					continue
				}
				seen[in.name] = true
				c.instances = append(c.instances, in)
			}
		}
		if found == 0 && c.errs.errors() == errs && len(p.Specs) > 0 {
			// Every place skipped: bpftrace 0.17 goes on without the
			// probe, tracing nothing for it and saying nothing.
			first, last := p.Specs[0], p.Specs[len(p.Specs)-1]
			c.errorf(first.From, last.To, "none of the probe's %d attach points resolved; the first: %v", len(p.Specs), c.skipped)
		}
	}
	if len(c.instances) == 0 && len(c.errs) == 0 {
		c.errs = append(c.errs, &syntax.Error{Msg: "No probes to attach"})
	}
}

func (c *compiler) expandSpec(p *syntax.Probe, s *syntax.ProbeSpec) []*instance {
	mk := func(kind program.ProbeKind, name string) *instance {
		return &instance{probe: p, spec: s, kind: kind, name: name}
	}
	switch s.Provider {
	case "BEGIN", "END":
		if len(s.Parts) != 0 {
			c.errorf(s.From, s.To, "%s probe takes no arguments", s.Provider)
			return nil
		}
		kind := program.Begin
		if s.Provider == "END" {
			kind = program.End
		}
		return []*instance{mk(kind, s.Provider)}
	case "interval", "profile":
		if len(s.Parts) != 2 {
			c.errorf(s.From, s.To, "%s probe must have unit and period, e.g. %s:s:1", s.Provider, s.Provider)
			return nil
		}
		kind := program.Interval
		if s.Provider == "profile" {
			kind = program.Profile
		}
		// The name's period is the probe's, in one function that the
		// broker checks every probe's name with (Probe.CheckName).
		period, freq, err := program.Period(kind, s.Parts[0], s.Parts[1])
		if err != nil {
			c.errorf(s.From, s.To, "%v", err)
			return nil
		}
		in := mk(kind, s.Provider+":"+s.Parts[0]+":"+s.Parts[1])
		in.period, in.freq = period, freq
		return []*instance{in}
	case "software":
		return c.softwareSpec(s, mk)
	case "tracepoint":
		if len(s.Parts) != 2 || s.Parts[0] == "" || s.Parts[1] == "" {
			c.errorf(s.From, s.To, "tracepoint probe must be tracepoint:CATEGORY:NAME")
			return nil
		}
		if c.opts.Tracepoints == nil {
			c.errorf(s.From, s.To, "tracepoints are not available")
			return nil
		}
		matches, err := c.opts.Tracepoints.Match(s.Parts[0], s.Parts[1])
		if err != nil {
			c.errorf(s.From, s.To, "%v", err)
			return nil
		}
		if len(matches) == 0 {
			if hasWildcard(s.Parts[0]) || hasWildcard(s.Parts[1]) {
				c.errorf(s.From, s.To, "No probes matched %s", s.Raw)
			} else {
				c.errorf(s.From, s.To, "tracepoint not found: %s:%s", s.Parts[0], s.Parts[1])
			}
			return nil
		}
		if !c.roomFor(s, len(matches)) {
			return nil
		}
		var out []*instance
		for _, m := range matches {
			in := mk(program.Tracepoint, "tracepoint:"+m[0]+":"+m[1])
			in.cat, in.event = m[0], m[1]
			fields, err := c.opts.Tracepoints.Fields(m[0], m[1])
			if err != nil {
				c.errorf(s.From, s.To, "%v", err)
				return nil
			}
			fields = slices.Clone(fields)
			for i := range fields {
				fields[i] = asDeclared(fields[i])
			}
			in.fields = fields
			out = append(out, in)
		}
		return out
	case "rawtracepoint":
		if len(s.Parts) != 1 || s.Parts[0] == "" || hasWildcard(s.Parts[0]) {
			c.errorf(s.From, s.To, "rawtracepoint probe must be rawtracepoint:NAME (no wildcards)")
			return nil
		}
		if c.opts.Tracepoints == nil {
			c.errorf(s.From, s.To, "tracepoints are not available")
			return nil
		}
		matches, err := c.opts.Tracepoints.Match("*", s.Parts[0])
		if err != nil {
			c.errorf(s.From, s.To, "%v", err)
			return nil
		}
		if len(matches) == 0 {
			c.errorf(s.From, s.To, "tracepoint not found: %s", s.Parts[0])
			return nil
		}
		in := mk(program.RawTracepoint, "rawtracepoint:"+s.Parts[0])
		in.event = s.Parts[0]
		return []*instance{in}
	case "uprobe", "uretprobe":
		if len(s.Parts) != 2 || s.Parts[0] == "" || s.Parts[1] == "" {
			c.errorf(s.From, s.To, "%s probe must be %s:PATH:FUNCTION", s.Provider, s.Provider)
			return nil
		}
		if c.opts.Uprobes == nil {
			c.errorf(s.From, s.To, "uprobes are not available")
			return nil
		}
		targets, err := c.opts.Uprobes.Resolve(s.Parts[0], s.Parts[1])
		if ns := (*uprobe.NoSymbolError)(nil); errors.As(err, &ns) {
			c.unresolved(p, s, err.Error())
			return nil
		}
		if err == nil && len(targets) == 0 {
			c.unresolved(p, s, "No probes matched "+s.Raw)
			return nil
		}
		multi := err == nil && c.uprobeMulti(p, s)
		n := len(targets)
		if multi {
			n = 1 // one probe, one program: its functions are bounded on their own
		}
		if !c.matched(s, n, err) {
			return nil
		}
		kind := program.Uprobe
		if s.Provider == "uretprobe" {
			kind = program.Uretprobe
		}
		if !c.roomForUprobes(s, len(targets)) {
			return nil
		}
		if multi {
			return []*instance{c.uprobeMultiInstance(s, kind, targets, mk)}
		}
		var out []*instance
		for _, t := range targets {
			in := mk(kind, s.Provider+":"+t.Path+":"+t.Func)
			in.path, in.fn, in.offset, in.binary = t.Path, t.Func, t.Offset, t.Binary
			out = append(out, in)
		}
		return out
	case "kprobe", "kretprobe":
		return c.expandKprobe(p, s)
	case "tp_btf":
		return c.expandTpBTF(p, s)
	case "usdt":
		return c.expandUSDT(s, mk)
	case "hardware", "watchpoint":
		c.errorf(s.From, s.To, "%s probes are not supported yet", s.Provider)
	case "kfunc", "kretfunc":
		return c.expandFentry(p, s)
	case "gatekeeper":
		c.errorf(s.From, s.To, "a gatekeeper block is an admission policy, not a probe: compile it with `tracebroker gatekeeper compile`")
	default:
		c.errorf(s.From, s.To, "Invalid probe type: %s", s.Provider)
	}
	return nil
}

// unresolved reports that s, a place of p, names nothing on this host (a
// function this kernel or this build of a library lacks). In a list the
// others may still attach, so it is skipped with a warning: stock tools
// list the names different kernels and builds use (biolatency.bt's
// blk_account_io_start and __blk_account_io_start), and bpftrace goes on
// without the missing ones. Alone it is an error, and expand refuses a
// probe none of whose places resolved.
func (c *compiler) unresolved(p *syntax.Probe, s *syntax.ProbeSpec, msg string) {
	if len(p.Specs) < 2 {
		c.errorf(s.From, s.To, "%s", msg)
		return
	}
	c.warnf(s.From, s.To, "%s: skipped", msg)
	if c.skipped == "" {
		c.skipped = msg
	}
}

// matched says whether resolving s found n probes there is room for,
// or, at s, why not: the resolver's error, none matched, too many.
func (c *compiler) matched(s *syntax.ProbeSpec, n int, err error) bool {
	switch {
	case err != nil:
		c.errorf(s.From, s.To, "%v", err)
		return false
	case n == 0:
		c.errorf(s.From, s.To, "No probes matched %s", s.Raw)
		return false
	}
	return c.roomFor(s, n)
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[") }

// declareMaps creates the BPF map specs: one per user map, the ring buffer
// and the map error counters.
func (c *compiler) declareMaps(prog *program.Program) {
	names := append([]string(nil), c.mapOrder...)
	sort.Strings(names)
	prog.Maps = append(prog.Maps,
		&ebpf.MapSpec{Name: program.EventsMap, Type: ebpf.RingBuf, MaxEntries: program.EventBuffer},
	)
	for _, name := range c.mapOrder {
		m := c.maps[name]
		m.id = len(prog.Schema.Maps)
		pm := &program.Map{Name: name, BPF: bpfMapName(m.id), Agg: m.val.agg}
		if m.keyed {
			for _, k := range m.keys {
				pm.Keys = append(pm.Keys, k.runtime())
			}
		}
		if m.val.k == kAgg {
			pm.Value = program.Type{Kind: program.Int, Size: 8, Signed: m.val.signed}
			pm.Min, pm.Max, pm.Step = m.val.lmin, m.val.lmax, m.val.lstep
		} else {
			pm.Value = m.val.runtime()
		}
		spec := &ebpf.MapSpec{
			Name:       pm.BPF,
			Type:       ebpf.Hash,
			KeySize:    uint32(m.keySize()),
			ValueSize:  uint32(m.valueSize()),
			MaxEntries: uint32(c.opts.MaxMapKeys),
		}
		if m.val.k == kAgg {
			spec.Type = ebpf.PerCPUHash
		}
		prog.Maps = append(prog.Maps, spec)
		prog.Schema.Maps = append(prog.Schema.Maps, pm)
	}
	n := len(c.mapOrder) + 1 // and the lost-events counter
	prog.Maps = append(prog.Maps, &ebpf.MapSpec{
		Name: program.ErrorsMap, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(n),
	})
	prog.Maps = append(prog.Maps, &ebpf.MapSpec{
		Name: program.ConfigMap, Type: ebpf.Array, KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1,
	})
	frames := make([]int, 0, len(c.stacks))
	for n := range c.stacks {
		frames = append(frames, n)
	}
	sort.Ints(frames)
	for _, n := range frames {
		prog.Maps = append(prog.Maps, &ebpf.MapSpec{
			Name: stackMapName(n), Type: ebpf.StackTrace, KeySize: 4, ValueSize: uint32(8 * n), MaxEntries: stackMapEntries,
		})
	}
}

// sizeEvents sizes the events ring buffer, once the code is generated,
// to what the probes write to it. Its data pages are mapped twice into
// the broker and are all resident: 4 MiB costs 8 MiB of the broker's
// memory, more than the rest of a one-liner's, so a script that prints
// nothing (it only updates maps, printed at the end from the maps
// themselves) gets one page, room for exit()'s records: a handful, each
// written once the trace is stopped. A script that prints keeps
// program.EventBuffer: a printf storm outruns the reader, and must not
// lose lines that bpftrace, whose reader slows its writers down, prints.
func (c *compiler) sizeEvents(prog *program.Program) {
	if c.emits {
		return
	}
	for _, m := range prog.Maps {
		if m.Name == program.EventsMap {
			m.MaxEntries = program.QuietEventBuffer
		}
	}
}

func bpfMapName(id int) string { return fmt.Sprintf("m%d", id) }

func (m *mapInfo) keySize() int {
	n := 0
	for _, k := range m.keys {
		n += k.storage()
	}
	if m.val.agg == program.Hist || m.val.agg == program.Lhist {
		n += 8
	}
	if n == 0 {
		n = 8
	}
	return n
}

func (m *mapInfo) valueSize() int {
	if m.val.k != kAgg {
		return m.val.storage()
	}
	switch m.val.agg {
	case program.Min, program.Max, program.Avg, program.Stats:
		return 16
	}
	return 8
}

// lowerIncDec rewrites the statement forms `x++` and `x--` as the
// compound assignments `x += 1` and `x -= 1`, which bpftrace makes them
// mean; the rest of the compiler then knows one form.
func lowerIncDec(b *syntax.Block) {
	if b == nil {
		return
	}
	for i, st := range b.Stmts {
		switch st := st.(type) {
		case *syntax.ExprStmt:
			if e, ok := st.X.(*syntax.IncDec); ok {
				op := syntax.ADD
				if e.Op == syntax.DEC {
					op = syntax.SUB
				}
				b.Stmts[i] = &syntax.AssignStmt{Lhs: e.X, Op: op, OpPos: e.OpPos, Rhs: &syntax.IntLit{From: e.OpPos, To: e.End(), Raw: "1", Value: 1}}
			}
		case *syntax.Block:
			lowerIncDec(st)
		case *syntax.IfStmt:
			lowerIncDec(st.Then)
			for els := st.Else; els != nil; {
				switch e := els.(type) {
				case *syntax.Block:
					lowerIncDec(e)
					els = nil
				case *syntax.IfStmt:
					lowerIncDec(e.Then)
					els = e.Else
				default:
					els = nil
				}
			}
		case *syntax.WhileStmt:
			lowerIncDec(st.Body)
		case *syntax.UnrollStmt:
			lowerIncDec(st.Body)
		}
	}
}
