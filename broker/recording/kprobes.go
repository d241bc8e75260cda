package recording

import (
	"path"
	"slices"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// Kprobes answers for the recorded kprobes and kretprobes: the functions
// recorded are the kernel's traceable functions, and the kernel had
// kprobe.multi links if a recorded probe was one, so that a script
// compiles to the probes, and the names, it was recorded with.
func (h *Header) Kprobes() compile.Kprobes { return recordedKprobes{h} }

type recordedKprobes struct{ h *Header }

func (recordedKprobes) Available() error           { return nil }
func (recordedKprobes) Size(string) (uint64, bool) { return 0, false }

func (k recordedKprobes) Multi() bool {
	for _, p := range k.h.Probes {
		if isKprobe(p) && len(p.Funcs) > 0 {
			return true
		}
	}
	return false
}

func (k recordedKprobes) Match(module, pattern string) ([]string, error) {
	var out []string
	for _, p := range k.h.Probes {
		if !isKprobe(p) || module != "" && p.Category != module {
			continue
		}
		fns := p.Funcs
		if len(fns) == 0 {
			fns = []string{p.Event}
		}
		for _, f := range fns {
			if ok, _ := path.Match(pattern, f); ok {
				out = append(out, f)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func isKprobe(p Probe) bool {
	return p.Kind == program.Kprobe.String() || p.Kind == program.Kretprobe.String()
}
