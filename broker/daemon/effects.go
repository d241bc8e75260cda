package daemon

import (
	"fmt"
	"strings"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
)

// authorizeEffects refuses a token holder's program that may do more
// than read: a helper that changes the traced system (bpf_send_signal
// kills any process its probe fires in, root's included) or a call
// nobody here knows. No scope grants them: the script compiler calls
// one only for signal() under --unsafe, which the daemon never sets, so
// it is a plugin's raw eBPF that gets here. Root on the socket is not
// held back, as with run.
func authorizeEffects(tok *token.Token) func(*program.Program) error {
	return func(p *program.Program) error {
		if tok == nil {
			return nil
		}
		for _, pr := range p.Probes {
			if e := program.Effects(pr.Insns); len(e) > 0 {
				return &scopeError{fmt.Sprintf("probe %s calls %s, which may change the traced system: no scope grants that to the token of %q", pr.Name, strings.Join(e, ", "), tok.Subject)}
			}
		}
		return nil
	}
}
