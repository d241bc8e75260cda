package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
)

// uprobeScope is where a caller's uprobes may open files. A token
// holder's may reach only files some probe: scope could allow: the path
// as written, every symlink on the way (each is read, and followed only
// if where it leads is allowed) and the opened file's real path. Every
// refusal is one message naming the path as written, so that it says
// nothing of what lies behind it. An administrator's open anything; for
// everyone, probes are named by the real path of the file they attach
// through, which is what the scope check, the gatekeeper, the
// attestation, the audit log and the session list see.
func uprobeScope(tok *token.Token) *uprobe.Scope {
	if tok == nil {
		return &uprobe.Scope{}
	}
	return &uprobe.Scope{
		Allows: func(path string) bool {
			return couldAllow(tok, "uprobe", path, "*") || couldAllow(tok, "uretprobe", path, "*")
		},
		Refusal: func(written string) error { return uprobeRefusal(tok, "uprobe", written) },
	}
}

// uprobeRefusal is the one refusal of a uprobe or uretprobe (kind) on a
// file the token's scopes do not reach.
func uprobeRefusal(tok *token.Token, kind, written string) error {
	return &scopeError{fmt.Sprintf("the token of %q does not allow %ss on %s (its probe scopes: %s)", tok.Subject, kind, written, probeScopes(tok))}
}

// checkUprobe refuses a uprobe whose file the broker did not open (and
// so did not check), or named by a relative path: the daemon's working
// directory is not the caller's.
func checkUprobe(pr *program.Probe) error {
	if pr.Kind != program.Uprobe && pr.Kind != program.Uretprobe {
		return nil
	}
	if !filepath.IsAbs(pr.Path) {
		return &scopeError{fmt.Sprintf("%s: the broker daemon needs an absolute path for a uprobe", pr.Name)}
	}
	if pr.Binary == nil {
		return &scopeError{fmt.Sprintf("%s: the broker did not open the file itself", pr.Name)}
	}
	return nil
}
