package recording

import (
	"slices"
	"testing"

	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// TestRecordedKprobes: a script compiles against a recording to the
// kprobes it was recorded with, by the same names, one by one or as a
// kprobe.multi probe as they were recorded.
func TestRecordedKprobes(t *testing.T) {
	for _, tt := range []struct {
		name   string
		probes []Probe
		script string
		want   []string
	}{
		{"one by one", []Probe{
			{Name: "kprobe:vfs_read", Kind: "kprobe", Event: "vfs_read"},
			{Name: "kprobe:vfs_write", Kind: "kprobe", Event: "vfs_write"},
			{Name: "kretprobe:ksys_read", Kind: "kretprobe", Event: "ksys_read"},
		}, `kprobe:vfs_* { @ = count(); } kretprobe:ksys_read { @r = count(); }`, []string{"kprobe:vfs_read", "kprobe:vfs_write", "kretprobe:ksys_read"}},
		{"multi", []Probe{
			{Name: "kprobe:vfs_*", Kind: "kprobe", Funcs: []string{"vfs_read", "vfs_write"}},
		}, `kprobe:vfs_* { @ = count(); }`, []string{"kprobe:vfs_*"}},
		{"module", []Probe{
			{Name: "kprobe:nf_tables:nft_trans_alloc_gfp", Kind: "kprobe", Category: "nf_tables", Event: "nft_trans_alloc_gfp"},
		}, `kprobe:nf_tables:nft_trans_alloc_gfp { @ = count(); }`, []string{"kprobe:nf_tables:nft_trans_alloc_gfp"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &Header{Probes: tt.probes}
			f, err := syntax.Parse("stdin", []byte(tt.script))
			if err != nil {
				t.Fatal(err)
			}
			prog, _, err := compile.Compile(f, compile.Options{Kprobes: h.Kprobes()})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range prog.Probes {
				got = append(got, p.Name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("probes %v, want %v", got, tt.want)
			}
		})
	}
	h := &Header{Version: 2, CPUs: 1, Probes: []Probe{{Name: "kprobe:f*", Kind: "kprobe", Funcs: make([]string, compile.MaxKprobeFuncs+1)}}}
	if err := h.check(2); err == nil {
		t.Error("a recorded probe of too many functions was accepted")
	}
}
