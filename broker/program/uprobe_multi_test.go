package program

import (
	"slices"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

func TestUprobeMultiCheckName(t *testing.T) {
	const bin = "/usr/bin/work"
	multi := func(kind ProbeKind, pattern string, funcs []string, offs ...uint64) Probe {
		return Probe{Kind: kind, Name: kind.String() + ":" + bin + ":" + pattern, Path: bin, Funcs: funcs, Offsets: offs}
	}
	for _, tt := range []struct {
		name string
		p    Probe
		ok   bool
	}{
		{"two functions", multi(Uprobe, "add_*", []string{"add_one", "add_two"}, 0x1100, 0x1120), true},
		{"uretprobe", multi(Uretprobe, "*one", []string{"add_one"}, 0x1100), true},
		{"a function the pattern does not match", multi(Uprobe, "add_*", []string{"add_one", "system"}, 0x1100, 0x1200), false},
		{"as bpftrace matches: *et does not match etet (the first et is taken)", multi(Uprobe, "*et", []string{"etet"}, 0x1100), false},
		{"no wildcard", multi(Uprobe, "add_one", []string{"add_one"}, 0x1100), false},
		{"a function that is a pattern", multi(Uprobe, "*", []string{"add_*"}, 0x1100), false},
		{"a function twice", multi(Uprobe, "add_*", []string{"add_one", "add_one"}, 0x1100, 0x1100), false},
		{"an offset of 0", multi(Uprobe, "add_*", []string{"add_one"}, 0), false},
		{"fewer offsets", multi(Uprobe, "add_*", []string{"add_one", "add_two"}, 0x1100), false},
		{"offsets without functions", multi(Uprobe, "add_*", nil, 0x1100), false},
		{"another kind's name", Probe{Kind: Uprobe, Name: "uretprobe:" + bin + ":add_*", Path: bin, Funcs: []string{"add_one"}, Offsets: []uint64{0x1100}}, false},
		{"another file's name", Probe{Kind: Uprobe, Name: "uprobe:/bin/sh:add_*", Path: bin, Funcs: []string{"add_one"}, Offsets: []uint64{0x1100}}, false},
		{"an offset of its own", func() Probe { p := multi(Uprobe, "add_*", []string{"add_one"}, 0x1100); p.Offset = 0x1100; return p }(), false},
		{"a USDT semaphore", func() Probe { p := multi(Uprobe, "add_*", []string{"add_one"}, 0x1100); p.RefCtrOffset = 8; return p }(), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.CheckName(); (err == nil) != tt.ok {
				t.Errorf("%+v: CheckName %v, want ok %v", tt.p, err, tt.ok)
			}
		})
	}
}

func TestUprobeMultiAttachNames(t *testing.T) {
	p := Probe{Kind: Uretprobe, Name: "uretprobe:/bin/w:a*", Path: "/bin/w", Funcs: []string{"a1", "a2"}, Offsets: []uint64{1, 2}}
	if got, want := p.AttachNames(), []string{"uretprobe:/bin/w:a1", "uretprobe:/bin/w:a2"}; !slices.Equal(got, want) {
		t.Errorf("AttachNames %q, want %q", got, want)
	}
	if !p.UprobeMulti() || p.AttachPoints() != 2 {
		t.Errorf("UprobeMulti %v, AttachPoints %d; want true, 2", p.UprobeMulti(), p.AttachPoints())
	}
	k := Probe{Kind: Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "vfs_write"}}
	if k.UprobeMulti() || k.AttachPoints() != 1 {
		t.Errorf("a kprobe.multi probe: UprobeMulti %v, AttachPoints %d; want false, 1 (bpftrace counts it once)", k.UprobeMulti(), k.AttachPoints())
	}
}

// TestCheckUprobes: the bound counts every place a uprobe attaches,
// one by one or on a uprobe.multi link, and nothing else.
func TestCheckUprobes(t *testing.T) {
	funcs := func(n int) ([]string, []uint64) {
		names, offs := make([]string, n), make([]uint64, n)
		for i := range names {
			names[i], offs[i] = "f"+strings.Repeat("x", i), uint64(0x1000+i)
		}
		return names, offs
	}
	f1000, o1000 := funcs(1000)
	f24, o24 := funcs(24)
	prog := &Program{Probes: []*Probe{
		{Kind: Begin, Name: "BEGIN"},
		{Kind: Uprobe, Name: "uprobe:/b:f*", Path: "/b", Funcs: f1000, Offsets: o1000},
		{Kind: Uretprobe, Name: "uretprobe:/b:f*", Path: "/b", Funcs: f24, Offsets: o24},
		{Kind: Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "vfs_write"}},
		{Kind: Tracepoint, Name: "tracepoint:syscalls:sys_enter_read", Category: "syscalls", Event: "sys_enter_read"},
	}}
	if n := prog.Uprobes(); n != 1024 {
		t.Fatalf("Uprobes %d, want 1024", n)
	}
	if n := prog.AttachPoints(); n != 1+1000+24+1+1 {
		t.Fatalf("AttachPoints %d, want %d", n, 1+1000+24+1+1)
	}
	if err := prog.CheckUprobes(MaxTokenUprobes); err != nil {
		t.Errorf("1024 uprobes refused for a token: %v", err)
	}
	prog.Probes = append(prog.Probes, &Probe{Kind: Uprobe, Name: "uprobe:/b:main", Path: "/b", Offset: 0x2000})
	if err := prog.CheckUprobes(MaxTokenUprobes); err == nil || !strings.Contains(err.Error(), "attach to 1025 functions; at most 1024") {
		t.Errorf("1025 uprobes, one of them one by one, for a token: %v", err)
	}
	if err := prog.CheckUprobes(MaxUprobeFuncs); err != nil {
		t.Errorf("1025 uprobes refused without a token: %v", err)
	}
}

// FuzzUprobeMultiName: a uprobe.multi probe whose name checks attaches
// only where its names say: every name it is judged by (AttachNames) is
// KIND:PATH:FUNC of one function without a wildcard, which its pattern
// matches as the uprobe resolver lists functions (uprobe.MatchName).
func FuzzUprobeMultiName(f *testing.F) {
	f.Add(uint8(Uprobe), "uprobe:/b:add_*", "/b", "add_one,add_two")
	f.Add(uint8(Uretprobe), "uretprobe:/b:*x*y", "/b", "axy,xy,xyy")
	f.Fuzz(func(t *testing.T, kind uint8, name, path, funcs string) {
		p := Probe{Kind: ProbeKind(kind), Name: name, Path: path, Funcs: strings.Split(funcs, ",")}
		if p.Kind != Uprobe && p.Kind != Uretprobe {
			return
		}
		for i := range p.Funcs {
			p.Offsets = append(p.Offsets, uint64(i+1))
		}
		if p.CheckName() != nil {
			return
		}
		pattern := strings.TrimPrefix(name, p.Kind.String()+":"+path+":")
		for i, n := range p.AttachNames() {
			fn, ok := strings.CutPrefix(n, p.Kind.String()+":"+path+":")
			if !ok || fn != p.Funcs[i] || strings.Contains(fn, "*") {
				t.Fatalf("%+v: judged as %q", p, n)
			}
			if !uprobe.MatchName(pattern, fn) {
				t.Fatalf("%+v: %s is not matched by %q", p, fn, pattern)
			}
		}
	})
}
