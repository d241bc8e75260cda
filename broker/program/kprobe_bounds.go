package program

import "fmt"

// MaxKprobeFuncs bounds the functions a program's kprobe.multi probes
// attach to, all together: every traceable function of a kernel
// (kprobe:*) is 50,000 to 80,000, which a tracer should not be able to
// slow all at once by mistake, nor by writing many patterns.
const MaxKprobeFuncs = 1 << 14

// CheckKprobeFuncs refuses a program whose kprobe.multi probes name
// more than MaxKprobeFuncs functions in all: what the compiler bounds a
// script to, held for a program handed over whole (a plugin's).
func (p *Program) CheckKprobeFuncs() error {
	n := 0
	for _, pr := range p.Probes {
		if pr.Kind == Kprobe || pr.Kind == Kretprobe {
			n += len(pr.Funcs)
		}
	}
	if n > MaxKprobeFuncs {
		return fmt.Errorf("the program's kprobe.multi probes attach to %d functions; at most %d may attach", n, MaxKprobeFuncs)
	}
	return nil
}
