package recording

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// TestAttacksKernelFuncs: a recording's header claims the
// functions of its kprobe.multi probes; together they are bounded as a
// program's are, and a header within the bound is read.
func TestAttacksKernelFuncs(t *testing.T) {
	half := compile.MaxKprobeFuncs/2 + 1
	for _, tt := range []struct {
		name  string
		funcs []int // each probe's number of functions
		err   string
	}{
		{"item6/multi_within_bound", []int{half - 2, half - 2}, ""},
		{"item6/multi_functions_together", []int{half, half}, "kprobe.multi probes on 16386 functions in all, at most 16384"},
		{"item6/many_small_multi", []int{4096, 4096, 4096, 4096, 1}, "on 16385 functions in all"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &Header{Version: Version, CPUs: 1}
			for _, n := range tt.funcs {
				h.Probes = append(h.Probes, Probe{Name: "kprobe:f*", Kind: "kprobe", Funcs: make([]string, n)})
			}
			err := h.check(Version)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Fatalf("check: %v, want %q", err, tt.err)
			}
		})
	}
}
