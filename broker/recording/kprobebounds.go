package recording

import (
	"fmt"

	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// checkKprobeFuncs bounds the functions of the recorded kprobe.multi
// probes all together, as the compiler bounds a program's: a header
// of many probes, each of MaxKprobeFuncs short names, would make every
// probe spec a script is compiled with against it match that many.
func checkKprobeFuncs(probes []Probe) error {
	n := 0
	for _, p := range probes {
		n += len(p.Funcs)
	}
	if n > compile.MaxKprobeFuncs {
		return fmt.Errorf("recording of kprobe.multi probes on %d functions in all, at most %d", n, compile.MaxKprobeFuncs)
	}
	return nil
}
