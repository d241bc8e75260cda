package program

import (
	"path"
	"strings"
	"testing"
)

func TestKprobeCheckName(t *testing.T) {
	for _, tt := range []struct {
		p  Probe
		ok bool
	}{
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_read", Event: "vfs_read"}, true},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_read+16", Event: "vfs_read", Offset: 16}, true},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_read", Event: "vfs_read", Offset: 16}, false},
		{Probe{Kind: Kretprobe, Name: "kretprobe:vfs_read+16", Event: "vfs_read", Offset: 16}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:nf_tables:nft_x", Category: "nf_tables", Event: "nft_x"}, true},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_read", Event: "commit_creds"}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_*", Event: "vfs_*"}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "vfs_write"}}, true},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read", "commit_creds"}}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:*", Funcs: []string{"vfs_*"}}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:*", Funcs: []string{"a:b"}}, false},
		{Probe{Kind: Kretprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read"}}, false},
		{Probe{Kind: Kprobe, Name: "kprobe:m:vfs_*", Category: "m", Funcs: []string{"vfs_read"}}, true},
		{Probe{Kind: Kprobe, Name: "kprobe:vfs_*", Funcs: []string{"vfs_read"}, Offset: 8}, false},
	} {
		if err := tt.p.CheckName(); (err == nil) != tt.ok {
			t.Errorf("%+v: CheckName %v, want ok %v", tt.p, err, tt.ok)
		}
	}
}

// FuzzKprobeName: a kprobe whose name checks attaches only where its
// names say: every name it is judged by (AttachNames) is KIND:[MODULE:]FUNC
// of one function, without wildcards, and a pattern's functions are
// what the pattern matches.
func FuzzKprobeName(f *testing.F) {
	f.Add(uint8(Kprobe), "kprobe:vfs_*", "", "", uint64(0), "vfs_read,vfs_write")
	f.Add(uint8(Kprobe), "kprobe:vfs_read+16", "", "vfs_read", uint64(16), "")
	f.Add(uint8(Kretprobe), "kretprobe:m:f", "m", "f", uint64(0), "")
	f.Fuzz(func(t *testing.T, kind uint8, name, module, event string, offset uint64, funcs string) {
		p := Probe{Kind: ProbeKind(kind), Name: name, Category: module, Event: event, Offset: offset}
		if p.Kind != Kprobe && p.Kind != Kretprobe {
			return
		}
		if funcs != "" {
			p.Funcs = strings.Split(funcs, ",")
		}
		if p.CheckName() != nil {
			return
		}
		pattern := strings.TrimPrefix(strings.TrimPrefix(name, p.Kind.String()+":"), module+":")
		for i, n := range p.AttachNames() {
			fn, ok := strings.CutPrefix(n, p.Kind.String()+":")
			if module != "" {
				fn, ok = strings.CutPrefix(fn, module+":")
			}
			if !ok || strings.ContainsAny(fn, "*?[]:") {
				t.Fatalf("%+v: judged as %q", p, n)
			}
			if len(p.Funcs) > 0 {
				if m, _ := path.Match(pattern, p.Funcs[i]); !m {
					t.Fatalf("%+v: %s is not matched by %q", p, p.Funcs[i], pattern)
				}
			}
		}
	})
}
