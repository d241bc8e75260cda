package plugins

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// TestRawProgram runs the raw test plugin and converts its output.
func TestRawProgram(t *testing.T) {
	f := newFixture(t)
	f.add("raw")
	g, err := f.host.Generate(context.Background(), "raw", nil)
	if err != nil {
		t.Fatal(err)
	}
	f.ranAndGone("raw")
	if g.Output.Script != "" || g.Output.Program == nil {
		t.Fatalf("output %+v, want a program", g.Output)
	}
	p, err := g.RawProgram()
	if err != nil {
		t.Fatal(err)
	}
	if p.Generator != "raw" || len(p.Probes) != 1 || len(p.Maps) != 4 || len(p.Schema.Maps) != 1 || len(p.Schema.Formats) != 1 {
		t.Fatalf("program %+v", p)
	}
	pr := p.Probes[0]
	if pr.Kind != program.Begin || pr.Name != "BEGIN" || len(pr.Insns) != 5 {
		t.Fatalf("probe %+v", pr)
	}
	if pr.Insns[0].Reference() != program.ConfigMap || pr.Insns[2].Reference() != "m0" || pr.Insns[0].Constant>>32 != program.ConfigStopped {
		t.Errorf("map references: %v", pr.Insns)
	}
	if m := p.Schema.Maps[0]; m.Name != "@calls" || m.BPF != "m0" || m.Agg != program.Count {
		t.Errorf("schema map %+v", m)
	}
	if os.Geteuid() != 0 {
		t.Skip("loading the program needs root")
	}
	// The kernel's verifier and cilium/ebpf take it as the executor
	// would give it to them.
	s, err := bpf.Load(p, bpf.Options{})
	if err != nil {
		t.Skipf("cannot load BPF programs here: %v", err)
	}
	s.Close()
}

// rawProgram is a valid raw program to break in TestRawProgramRefusals.
func rawProgram(t *testing.T) *sdk.Program {
	t.Helper()
	insns := asm.Instructions{
		asm.LoadMapValue(asm.R1, 0, program.ConfigStopped),
		asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0),
		asm.Mov.Imm(asm.R0, 0),
		asm.Return(),
	}
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		t.Fatal(err)
	}
	schema, err := json.Marshal(program.Schema{
		Formats: []*program.Format{{Fmt: "%s %d\n", Args: []program.Arg{
			{Type: program.Type{Kind: program.String, Size: 16}, Offset: 16},
			{Type: program.Type{Kind: program.Int, Size: 8}, Offset: 32},
		}, Size: 40}},
		Maps: []*program.Map{
			{Name: "@calls", BPF: "m0", Keys: []program.Type{{Kind: program.String, Size: 16}}, Value: program.Type{Kind: program.Int, Size: 8}, Agg: program.Count},
			{Name: "@h", BPF: "m1", Value: program.Type{Kind: program.Int, Size: 8}, Agg: program.Hist},
			{Name: "@last", BPF: "m2", Value: program.Type{Kind: program.Tuple, Size: 24,
				Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return &sdk.Program{
		Probes: []sdk.Probe{
			{Kind: "tracepoint", Name: "tracepoint:syscalls:sys_enter_openat", Category: "syscalls", Event: "sys_enter_openat",
				Insns: code.Bytes(), MapRefs: map[uint32]string{0: "config", 3: "m0"}},
			{Kind: "interval", Name: "interval:s:1", PeriodNs: 1e9, Insns: code.Bytes()[2*8:], MapRefs: map[uint32]string{1: "m1"}},
		},
		Maps: []sdk.Map{
			{Name: "events", Type: "RingBuf", MaxEntries: 1 << 22},
			{Name: "m0", Type: "PerCPUHash", KeySize: 16, ValueSize: 8, MaxEntries: 1024},
			{Name: "m1", Type: "PerCPUHash", KeySize: 8, ValueSize: 8, MaxEntries: 1024},
			{Name: "m2", Type: "Hash", KeySize: 8, ValueSize: 24, MaxEntries: 1024},
			{Name: "map_errors", Type: "PerCPUArray", KeySize: 4, ValueSize: 8, MaxEntries: 4},
			{Name: "config", Type: "Array", KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1},
		},
		Schema: schema,
	}
}

func TestRawProgramRefusals(t *testing.T) {
	if _, err := (&Generated{Output: sdk.Output{Program: rawProgram(t)}}).RawProgram(); err != nil {
		t.Fatalf("the valid program: %v", err)
	}
	schemaWith := func(edit func(s *program.Schema)) func(p *sdk.Program) {
		return func(p *sdk.Program) {
			var s program.Schema
			if err := json.Unmarshal(p.Schema, &s); err != nil {
				t.Fatal(err)
			}
			edit(&s)
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			p.Schema = b
		}
	}
	mapNamed := func(p *sdk.Program, name string) *sdk.Map {
		for i := range p.Maps {
			if p.Maps[i].Name == name {
				return &p.Maps[i]
			}
		}
		t.Fatalf("no map %s", name)
		return nil
	}
	for _, tc := range []struct {
		name string
		edit func(p *sdk.Program)
		want string
	}{
		{"no probes", func(p *sdk.Program) { p.Probes = nil }, "no probes"},
		{"kind", func(p *sdk.Program) { p.Probes[0].Kind = "kprobe" }, `probe 0 (tracepoint:syscalls:sys_enter_openat): unknown kind "kprobe"`},
		{"gatekeeper kind", func(p *sdk.Program) { p.Probes[0].Kind = "gatekeeper" }, `unknown kind "gatekeeper"`},
		{"tracepoint fields", func(p *sdk.Program) { p.Probes[0].Event = "" }, "a tracepoint needs Category and Event"},
		{"tracepoint path", func(p *sdk.Program) { p.Probes[0].Category = "../x" }, "not a tracepoint name"},
		{"interval period", func(p *sdk.Program) { p.Probes[1].PeriodNs = 0 }, "interval needs PeriodNs"},
		{"uprobe path", func(p *sdk.Program) { p.Probes[1].Kind, p.Probes[1].Path = "uprobe", "bin/sh" }, "uprobe needs an absolute Path"},
		{"no name", func(p *sdk.Program) { p.Probes[1].Name = "" }, "no name"},
		{"no insns", func(p *sdk.Program) { p.Probes[0].Insns = nil }, "no instructions"},
		{"odd length", func(p *sdk.Program) { p.Probes[0].Insns = p.Probes[0].Insns[:len(p.Probes[0].Insns)-3] }, "not a multiple of 8"},
		{"cut lddw", func(p *sdk.Program) { p.Probes[0].Insns = p.Probes[0].Insns[:8] }, "instruction slot 0"},
		{"missing ref", func(p *sdk.Program) { delete(p.Probes[0].MapRefs, 3) }, "instruction slot 3 loads a map (lddw src 1) but MapRefs names none"},
		{"undeclared map", func(p *sdk.Program) { p.Probes[0].MapRefs[3] = "nope" }, `instruction slot 3 loads map "nope", which is not declared`},
		{"ref not a load", func(p *sdk.Program) { p.Probes[0].MapRefs[2] = "m0" }, "instruction slot 2, which is not a map load"},
		{"ref to second slot", func(p *sdk.Program) { p.Probes[0].MapRefs[4] = "m0" }, "not the first slot of a map load"},
		{"ref past the end", func(p *sdk.Program) { p.Probes[0].MapRefs[99] = "m0" }, "not the first slot of a map load"},
		{"direct value of a hash", func(p *sdk.Program) { p.Probes[0].MapRefs[0] = "m0" }, "only a one-element Array allows that"},
		{"pseudo func", func(p *sdk.Program) { p.Probes[0].Insns[3*8+1] = 0x41 }, "lddw with pseudo source 4 is not supported"},
		{"map type", func(p *sdk.Program) { mapNamed(p, "m2").Type = "ProgramArray" }, `unknown or unsupported type "ProgramArray"`},
		{"map name", func(p *sdk.Program) { mapNamed(p, "m2").Name = "a map with a long name" }, "a map name is 1 to 15 characters"},
		{"duplicate map", func(p *sdk.Program) { mapNamed(p, "m2").Name = "m1" }, `map "m1" is declared twice`},
		{"no events", func(p *sdk.Program) { mapNamed(p, "events").Name = "other" }, `the only ring buffer is "events"`},
		{"events size", func(p *sdk.Program) { mapNamed(p, "events").MaxEntries = 5000 }, "power of two"},
		{"events missing", func(p *sdk.Program) { p.Maps = p.Maps[1:] }, `no map "events"`},
		{"map_errors small", func(p *sdk.Program) { mapNamed(p, "map_errors").MaxEntries = 3 }, `no map "map_errors" as the executor reads it`},
		{"config size", func(p *sdk.Program) { mapNamed(p, "config").ValueSize = 8 }, `no map "config" as the executor fills it`},
		{"array key", func(p *sdk.Program) { mapNamed(p, "config").KeySize = 8 }, "an array's key is 4 bytes"},
		{"schema json", func(p *sdk.Program) { p.Schema = []byte(`{"Formats": 3}`) }, "schema: not the JSON of a program.Schema"},
		{"schema unknown field", func(p *sdk.Program) { p.Schema = []byte(`{"Maps": [], "Extra": 1}`) }, `unknown field "Extra"`},
		{"schema trailing", func(p *sdk.Program) { p.Schema = append(p.Schema, "{}"...) }, "trailing data"},
		{"schema map bpf", schemaWith(func(s *program.Schema) { s.Maps[0].BPF = "events" }), `BPF map "events" is not a declared user map`},
		{"schema map name", schemaWith(func(s *program.Schema) { s.Maps[0].Name = "calls" }), `a map's name starts with "@"`},
		{"schema map layout", schemaWith(func(s *program.Schema) { s.Maps[0].Keys[0].Size = 8 }), `BPF map "m0" is PerCPUHash key 16 value 8; this schema map needs PerCPUHash key 8 value 8`},
		{"keyless sum in a keyless hist's map", schemaWith(func(s *program.Schema) { s.Maps[1].Agg = program.Sum }), ""},
		{"schema avg value", schemaWith(func(s *program.Schema) { s.Maps[0].Agg = program.Avg }), "this schema map needs PerCPUHash key 16 value 16"},
		{"schema plain value", schemaWith(func(s *program.Schema) { s.Maps[2].Value.Offs[1] = 16 }), "element 1: bytes 16..32 are outside the tuple's 24"},
		{"schema int size", schemaWith(func(s *program.Schema) { s.Formats[0].Args[1].Type.Size = 3 }), "an Int is 1, 2, 4 or 8 bytes"},
		{"schema arg outside", schemaWith(func(s *program.Schema) { s.Formats[0].Args[1].Offset = 36 }), "bytes 36..44 are outside the record's 16..40"},
		{"schema arg in header", schemaWith(func(s *program.Schema) { s.Formats[0].Args[0].Offset = 8 }), "outside the record's 16..40"},
		{"schema kind", schemaWith(func(s *program.Schema) { s.Formats[0].Args[0].Type.Kind = 99 }), "unknown type kind 99"},
		// cat() and system() are the broker's own doing at the event:
		// a plugin's eBPF may not ask for them (issue 18).
		{"schema cat action", schemaWith(func(s *program.Schema) { s.Formats[0].Action = "cat" }), `action "cat": a generator's own eBPF may not make the broker read files or run commands`},
		{"schema system action", schemaWith(func(s *program.Schema) { s.Formats[0].Action = "system" }), `action "system"`},
		{"schema stack map", schemaWith(func(s *program.Schema) { s.Formats[0].Args[1].Type.Kind = program.KStack }), `stack map "" is not a declared StackTrace map`},
		{"schema dup bpf", schemaWith(func(s *program.Schema) { s.Maps[1] = s.Maps[0] }), `are both BPF map "m0"`},
		{"lhist bounds", schemaWith(func(s *program.Schema) { s.Maps[1].Agg = program.Lhist }), "lhist bounds"},
		// A record value (a struct stored whole), and what a plugin
		// might put in one.
		{"record value", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
		}), ""},
		{"record names", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
			s.Maps[2].Value.Names = s.Maps[2].Value.Names[:1]
		}), "a record has a name for each member"},
		{"record name escape", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
			s.Maps[2].Value.Names[1] = "b\x1b[2J"
		}), "is not a C identifier"},
		{"record offset", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
			s.Maps[2].Value.Offs[1] = 9
		}), "element 1: bytes 9..25 are outside the record's 24"},
		{"record holds a stack", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
			s.Maps[2].Value.Elems[0] = program.Type{Kind: program.KSym, Size: 8}
		}), "a record holds integers, strings, records and arrays"},
		{"record bitfield", schemaWith(func(s *program.Schema) {
			s.Maps[2].Value = program.Type{Kind: program.Record, Size: 24, Names: []string{"a", "b"}, Elems: []program.Type{{Kind: program.Int, Size: 8}, {Kind: program.String, Size: 16}}, Offs: []int{0, 8}}
			s.Maps[2].Value.Elems[0].BitOff, s.Maps[2].Value.Elems[0].Bits = 60, 8
		}), "bitfield of 8 bits at bit 60 of 8 bytes"},
		{"printed value", schemaWith(func(s *program.Schema) { s.Formats[0].Value = &s.Formats[0].Args[1] }), ""},
		{"printed value outside", schemaWith(func(s *program.Schema) {
			s.Formats[0].Value = &program.Arg{Type: program.Type{Kind: program.Int, Size: 8}, Offset: 36}
		}), "format 0 value: bytes 36..44 are outside the record's 40"},
		{"empty array", schemaWith(func(s *program.Schema) { s.Maps[2].Value = program.Type{Kind: program.Array, Size: 24} }), "a record or array has 1 to 64 elements"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rawProgram(t)
			tc.edit(p)
			_, err := (&Generated{Output: sdk.Output{Program: p}}).RawProgram()
			if tc.want == "" {
				// Sum over a hist's key layout: the key is 8 bytes
				// either way, so it converts.
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// mapTypes names must be cilium/ebpf's: plugin authors use MapType.String().
func TestMapTypeNames(t *testing.T) {
	for name, mt := range mapTypes {
		if mt.String() != name {
			t.Errorf("%s is %v", name, mt)
		}
	}
	if _, ok := mapTypes[ebpf.Hash.String()]; !ok {
		t.Error("Hash is not accepted")
	}
}

// TestRawProgramOffsetOverflow: an offset near the top of int must not
// pass the bounds checks by overflowing offset+size to a negative
// number; the broker slices records and values at these offsets
// (rec[a.Offset:], b[t.Offs[i]:]) and would panic.
func TestRawProgramOffsetOverflow(t *testing.T) {
	const huge = math.MaxInt - 2
	for _, tc := range []struct {
		name string
		edit func(s *program.Schema)
		want string
	}{
		{"arg offset", func(s *program.Schema) { s.Formats[0].Args[1].Offset = huge }, "outside the record"},
		{"tuple offset", func(s *program.Schema) { s.Maps[2].Value.Offs[1] = huge }, "outside the tuple"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := rawProgram(t)
			var s program.Schema
			if err := json.Unmarshal(p.Schema, &s); err != nil {
				t.Fatal(err)
			}
			tc.edit(&s)
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			p.Schema = b
			_, err = (&Generated{Output: sdk.Output{Program: p}}).RawProgram()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}
