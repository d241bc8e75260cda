package recording

import (
	"cmp"
	"fmt"
	"path"
	"slices"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// Funcs answers for the recorded kfunc/kretfunc probes: their functions
// and the prototypes they were recorded with.
func (h *Header) Funcs() compile.KernelFuncs { return recordedFuncs{h} }

type recordedFuncs struct{ h *Header }

func (recordedFuncs) Available() error { return nil }

func (f recordedFuncs) Match(module, fn string) ([][2]string, error) {
	var out [][2]string
	for _, p := range f.h.Probes {
		if !isFunc(p) {
			continue
		}
		okm, _ := path.Match(module, p.Category)
		okf, _ := path.Match(fn, p.Event)
		if okm && okf {
			out = append(out, [2]string{p.Category, p.Event})
		}
	}
	slices.SortFunc(out, func(a, b [2]string) int {
		if c := cmp.Compare(a[0], b[0]); c != 0 {
			return c
		}
		return cmp.Compare(a[1], b[1])
	})
	return slices.Compact(out), nil
}

func (f recordedFuncs) Proto(module, fn string) ([]compile.Field, *compile.Field, error) {
	for _, p := range f.h.Probes {
		if isFunc(p) && p.Category == module && p.Event == fn {
			return p.Fields, p.Ret, nil
		}
	}
	return nil, nil, fmt.Errorf("kfunc:%s:%s is not in the recording", module, fn)
}

func isFunc(p Probe) bool {
	return p.Kind == program.Fentry.String() || p.Kind == program.Fexit.String()
}
