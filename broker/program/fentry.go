package program

import (
	"fmt"
	"strings"
)

// checkFuncName refuses an fentry/fexit probe whose module or function
// could name more than one place: the name is the only thing a token's
// probe: scope and the gatekeeper see, so it must say exactly which
// function the trampoline patches (kfunc:MODULE:FUNC, bpftrace 0.17's
// spelling of every kfunc probe, module always written out).
func (p *Probe) checkFuncName() error {
	for _, s := range []string{p.Category, p.Event} {
		if s == "" || strings.ContainsAny(s, ":*?[]\\ \t\n") {
			return &NameError{p.Name, fmt.Sprintf("%s of module %q, function %q", p.Kind, p.Category, p.Event)}
		}
	}
	return nil
}
