package compile

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/dwarfargs"
)

// libUprobes is a library /lib/libx.so of n functions f0000, f0001, ...
// at offsets 0x1000, 0x1010, ..., matched as bpf/uprobe matches names.
type libUprobes struct{ n int }

const libPath = "/lib/libx.so"

func (l libUprobes) Resolve(path, fn string) ([]UprobeTarget, error) {
	if path != libPath {
		return nil, fmt.Errorf("uprobe target file '%s' does not exist", path)
	}
	var out []UprobeTarget
	for i := range l.n {
		name := fmt.Sprintf("f%04d", i)
		if uprobe.MatchName(fn, name) {
			out = append(out, UprobeTarget{Path: path, Func: name, Offset: 0x1000 + 0x10*uint64(i)})
		}
	}
	if len(out) == 0 && !strings.Contains(fn, "*") {
		return nil, &uprobe.NoSymbolError{Path: path, Func: fn}
	}
	return out, nil
}

func compileUprobes(t *testing.T, src string, opts Options) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", src, err)
	}
	prog, _, err := Compile(f, opts)
	if err != nil {
		var l syntax.ErrorList
		if errors.As(err, &l) {
			return nil, errors.New(l.Format("stdin", []byte(src)))
		}
		return nil, err
	}
	return prog, nil
}

// TestUprobeMultiProbes: a uprobe wildcard makes one probe on all its
// functions where the kernel has uprobe.multi links, named by the
// pattern and carrying every function's offset; elsewhere, and where
// its block reads the functions' parameters by name, one per function,
// as before.
func TestUprobeMultiProbes(t *testing.T) {
	type probe struct {
		kind  program.ProbeKind
		name  string
		funcs int // 0: a probe on one function
	}
	u, ur := program.Uprobe, program.Uretprobe
	for _, tt := range []struct {
		name, src string
		multi     bool
		want      []probe
	}{
		{"wildcard", `uprobe:/lib/libx.so:f000* { @ = count(); }`, true, []probe{{u, "uprobe:/lib/libx.so:f000*", 10}}},
		{"wildcard, probe and func", `uprobe:/lib/libx.so:f000* { @[probe, func] = count(); }`, true, []probe{{u, "uprobe:/lib/libx.so:f000*", 10}}},
		{"uretprobe", `ur:/lib/libx.so:f001* { @ = sum(retval); }`, true, []probe{{ur, "uretprobe:/lib/libx.so:f001*", 2}}},
		// bpftrace's wildcard takes each piece's first place: *1 is
		// f0001, and not f0011, whose first 1 is not its end.
		{"bpftrace's matching", `ur:/lib/libx.so:*1 { @ = sum(retval); }`, true, []probe{{ur, "uretprobe:/lib/libx.so:*1", 1}}},
		{"one match", `uprobe:/lib/libx.so:f0011* { @ = count(); }`, true, []probe{{u, "uprobe:/lib/libx.so:f0011*", 1}}},
		{"no links", `uprobe:/lib/libx.so:f000* { @ = count(); }`, false, nil},
		{"a function, not a wildcard", `uprobe:/lib/libx.so:f0001 { @ = count(); }`, true, []probe{{u, "uprobe:/lib/libx.so:f0001", 0}}},
		{"a list", `uprobe:/lib/libx.so:f0001,uprobe:/lib/libx.so:f001* { @ = count(); }`, true,
			[]probe{{u, "uprobe:/lib/libx.so:f0001", 0}, {u, "uprobe:/lib/libx.so:f001*", 2}}},
		{"args: each function's own parameters", `uprobe:/lib/libx.so:f000* { @ = sum(args.n); }`, true, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			prog, err := compileUprobes(t, tt.src, Options{Uprobes: libUprobes{12}, UprobeMulti: tt.multi, Debug: libDebug{}})
			if err != nil {
				t.Fatal(err)
			}
			want := tt.want
			if want == nil {
				// One probe per function, as bpftrace 0.17 attaches them.
				for i := range 10 {
					want = append(want, probe{u, fmt.Sprintf("uprobe:/lib/libx.so:f%04d", i), 0})
				}
			}
			if len(prog.Probes) != len(want) {
				t.Fatalf("%d probes, want %d: %+v", len(prog.Probes), len(want), prog.Probes)
			}
			for i, p := range prog.Probes {
				w := want[i]
				if p.Kind != w.kind || p.Name != w.name || len(p.Funcs) != w.funcs || len(p.Offsets) != w.funcs {
					t.Errorf("probe %d: %s %s, %d functions, %d offsets; want %s %s, %d functions", i, p.Kind, p.Name, len(p.Funcs), len(p.Offsets), w.kind, w.name, w.funcs)
				}
				if err := p.CheckName(); err != nil {
					t.Errorf("probe %d: %v", i, err)
				}
				for k, f := range p.Funcs {
					var n int
					fmt.Sscanf(f, "f%04d", &n)
					if p.Offsets[k] != 0x1000+0x10*uint64(n) {
						t.Errorf("probe %d: %s at %#x", i, f, p.Offsets[k])
					}
				}
			}
		})
	}
}

// libDebug gives every function of the library one int parameter, n.
type libDebug struct{}

func (libDebug) Params(path, fn string) ([]dwarfargs.Param, error) {
	return []dwarfargs.Param{{Name: "n", CType: "int", Type: dwInt}}, nil
}

func (libDebug) Type(path, kind, name string) (btf.Type, error) {
	return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
}

// TestUprobeMultiNames: what `probe` and `func` say in a uprobe.multi
// probe comes from the probe names map at the function's cookie plus
// the probe's first entry: each function's name and probe name, for
// every probe whose code reads them, and no map for a program that
// reads none.
func TestUprobeMultiNames(t *testing.T) {
	src := `uprobe:/lib/libx.so:f000* { @[probe] = count(); } uretprobe:/lib/libx.so:f001* { @c = count(); } uretprobe:/lib/libx.so:f0*1* { printf("%s\n", func); }`
	prog, err := compileUprobes(t, src, Options{Uprobes: libUprobes{12}, UprobeMulti: true})
	if err != nil {
		t.Fatal(err)
	}
	var names *ebpf.MapSpec
	for _, m := range prog.Maps {
		if m.Name == program.NamesMap {
			names = m
		}
	}
	if names == nil {
		t.Fatal("no probe names map")
	}
	// The first probe's 10 functions, then the third's 3: the second
	// reads no names.
	if names.Type != ebpf.Array || names.KeySize != 4 || names.ValueSize != 128 || names.MaxEntries != 13 || len(names.Contents) != 13 {
		t.Fatalf("names map %+v, %d entries", names, len(names.Contents))
	}
	want := func(i int) (probe, fn string) {
		if i < 10 {
			return fmt.Sprintf("uprobe:/lib/libx.so:f%04d", i), fmt.Sprintf("f%04d", i)
		}
		fn = []string{"f0001", "f0010", "f0011"}[i-10]
		return "uretprobe:/lib/libx.so:" + fn, fn
	}
	for i, kv := range names.Contents {
		v := kv.Value.([]byte)
		wp, wf := want(i)
		if kv.Key != uint32(i) || strings.TrimRight(string(v[:64]), "\x00") != wp || strings.TrimRight(string(v[64:]), "\x00") != wf {
			t.Errorf("entry %v: %q, %q; want %d: %q, %q", kv.Key, v[:64], v[64:], i, wp, wf)
		}
	}
	// Each probe that reads a name reads the cookie, and only those.
	for i, p := range prog.Probes {
		reads := false
		for _, ins := range p.Insns {
			if ins.IsBuiltinCall() && asm.BuiltinFunc(ins.Constant) == asm.FnGetAttachCookie {
				reads = true
			}
		}
		if reads != (i != 1) {
			t.Errorf("probe %d (%s): reads the cookie %v", i, p.Name, reads)
		}
	}
	prog, err = compileUprobes(t, `uprobe:/lib/libx.so:f000* { @ = count(); }`, Options{Uprobes: libUprobes{12}, UprobeMulti: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range prog.Maps {
		if m.Name == program.NamesMap {
			t.Errorf("a probe names map for a program that reads no name")
		}
	}
}

// TestUprobeMultiBounds: the functions under uprobes are bounded all
// together, one by one and on links, by Options.MaxUprobes (4096 unless
// set; the daemon gives a token 1024), whichever way a script spells
// them, and each bound is an error at the spec that passes it.
func TestUprobeMultiBounds(t *testing.T) {
	rep := func(spec string, n int) string {
		s := make([]string, n)
		for i := range s {
			s[i] = spec
		}
		return strings.Join(s, ",")
	}
	for _, tt := range []struct {
		name, src string
		lib       int
		max       int
		multi     bool
		err       string // "" : compiles
	}{
		{"4096 on one link", `uprobe:/lib/libx.so:* { @ = count(); }`, 4096, 0, true, ""},
		{"4097 on one link", `uprobe:/lib/libx.so:* { @ = count(); }`, 4097, 0, true, "uprobe:/lib/libx.so:* matches 4097 functions; at most 4096 uprobes may attach"},
		{"links past it", `uprobe:/lib/libx.so:f0*, uprobe:/lib/libx.so:f1*, uprobe:/lib/libx.so:f2*, uprobe:/lib/libx.so:f3*, uprobe:/lib/libx.so:f4* { @ = count(); }`, 5000, 0, true,
			"uprobe:/lib/libx.so:f4* matches 1000 functions, which makes 5000 uprobes in all; at most 4096 may attach"},
		{"one pattern many times", `` + rep("uprobe:/lib/libx.so:f0*", 5) + ` { @ = count(); }`, 1000, 0, true,
			"matches 1000 functions, which makes 5000 uprobes in all; at most 4096 may attach"},
		{"token: 1024 on one link", `uprobe:/lib/libx.so:* { @ = count(); }`, 1024, 1024, true, ""},
		{"token: 1025 on one link", `uprobe:/lib/libx.so:* { @ = count(); }`, 1025, 1024, true, "matches 1025 functions; at most 1024 uprobes may attach"},
		{"token: a link and functions one by one", `uprobe:/lib/libx.so:f0001, uprobe:/lib/libx.so:f0002, uprobe:/lib/libx.so:* { @ = count(); }`, 1023, 1024, true,
			"uprobe:/lib/libx.so:* matches 1023 functions, which makes 1025 uprobes in all; at most 1024 may attach"},
		{"token: uprobes and uretprobes", `uprobe:/lib/libx.so:f0* { @ = count(); } uretprobe:/lib/libx.so:f0* { @ = count(); }`, 600, 1024, true,
			"uretprobe:/lib/libx.so:f0* matches 600 functions, which makes 1200 uprobes in all; at most 1024 may attach"},
		{"one by one: the probes' bound", `uprobe:/lib/libx.so:* { @ = count(); }`, 1025, 0, false, "matches 1025 probes, which makes 1025 in all; at most 1024 may attach"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := compileUprobes(t, tt.src, Options{Uprobes: libUprobes{tt.lib}, UprobeMulti: tt.multi, MaxUprobes: tt.max})
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("error %v, want one saying %q", err, tt.err)
			}
		})
	}
}
