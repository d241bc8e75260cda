package gatekeeper

import (
	"fmt"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// Verdict is what a policy allows. It is not yet a mode: Decide turns it
// into one with what the platform permits.
type Verdict uint8

const (
	Deny        Verdict = abi.Deny
	Interpreter Verdict = abi.Interpreter
	JIT         Verdict = abi.JIT
	Any         Verdict = abi.Any
)

// The modes a Decision runs a program in.
const (
	ModeJIT         = "jit"
	ModeInterpreter = "interpreter"
)

var verdictNames = [...]string{Deny: "deny", Interpreter: "interpreter", JIT: "jit", Any: "any"}

// String is the verdict as policies write it (return jit;).
func (v Verdict) String() string {
	if int(v) < len(verdictNames) {
		return verdictNames[v]
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

// MarshalText makes a Decision's JSON say "any", not 3, for the audit
// log's readers.
func (v Verdict) MarshalText() ([]byte, error) {
	if int(v) >= len(verdictNames) {
		return nil, fmt.Errorf("gatekeeper: %d is not a verdict", uint8(v))
	}
	return []byte(verdictNames[v]), nil
}

// UnmarshalText reads what MarshalText writes.
func (v *Verdict) UnmarshalText(b []byte) error {
	n, ok := abi.VerdictNames[string(b)]
	if !ok {
		return fmt.Errorf("gatekeeper: %q is not a verdict (deny, interpreter, jit, any)", b)
	}
	*v = Verdict(n)
	return nil
}

// Decision is the gatekeeper's answer for one request, as the executor
// acts on it and the audit log records it.
type Decision struct {
	// Verdict is what was decided: the policy's (or default's) verdict,
	// or Deny when mode selection found no mode the platform permits.
	Verdict Verdict `json:"verdict"`
	// Mode is ModeJIT or ModeInterpreter, "" when denied.
	Mode string `json:"mode"`
	// Reason says why, always; for a denial, which condition failed.
	Reason string `json:"reason"`
	// PolicyDigest is "sha256:HEX" of the policy file (or, for a policy
	// given as instructions, of its bytecode); "" for a default.
	PolicyDigest string `json:"policy_digest"`
	// Policy names what decided: "strict default", "loose default" or
	// the policy's path or name.
	Policy string `json:"policy"`
}

// Admitted reports whether the program may run (in Mode).
func (d Decision) Admitted() bool { return d.Verdict != Deny && d.Mode != "" }

// Reasons mode selection gives for a denial, fixed so callers and tests
// can match them.
const (
	reasonHVCIForbidsJIT = "HVCI forbids JIT-compiled code"
	reasonNoJIT          = "the kernel JIT is not available"
)

// selectMode turns a verdict into a mode on this platform. HVCI forbids
// new native code, so under it JIT is never chosen; without it, any
// prefers the JIT (native speed) when the kernel has it enabled. The
// interpreter needs nothing from the kernel beyond the static collector,
// so it is always possible. why is "" only for Deny in, Deny out.
func selectMode(v Verdict, p Platform) (final Verdict, mode, why string) {
	switch v {
	case Interpreter:
		return Interpreter, ModeInterpreter, "interpreter"
	case JIT:
		switch {
		case p.HVCI:
			return Deny, "", reasonHVCIForbidsJIT
		case !p.JITAvailable:
			return Deny, "", reasonNoJIT
		}
		return JIT, ModeJIT, "JIT available"
	case Any:
		switch {
		case p.HVCI:
			return Any, ModeInterpreter, "HVCI on: interpreter"
		case !p.JITAvailable:
			return Any, ModeInterpreter, reasonNoJIT + ": interpreter"
		}
		return Any, ModeJIT, "JIT available"
	}
	return Deny, "", ""
}
