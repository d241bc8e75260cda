package broker

import (
	"fmt"
	"os"
	"strings"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

// Gate is the admission step: Run asks Keeper about every probe's
// program before anything is loaded, and runs the trace in the mode it
// picks or not at all.
type Gate struct {
	Keeper *gatekeeper.Gatekeeper
	// Request holds the facts about the requester and the broker (uid,
	// gid, broker and generator identity, token); Run fills in what
	// describes each program.
	Request gatekeeper.Request
	// Kernel is the kernel gate's state (lsmgate.Describe): whether
	// anything but a signed broker could load tracing programs here.
	// -v and every attestation say it; "" leaves it unsaid.
	Kernel string
}

// RequesterRequest is the part of a gatekeeper Request that describes
// who asks: this process's user, and this broker as both the broker and
// the generator (the script compiler is built in). A zero identity (not
// measured) leaves the broker fields empty and unverified.
func RequesterRequest(broker attest.Identity) gatekeeper.Request {
	r := gatekeeper.Request{
		UID:    uint32(os.Getuid()),
		GID:    uint32(os.Getgid()),
		Form:   abi.FormSource,
		Covers: abi.CoversSourceOfProgram,
	}
	if broker.Digest != "" {
		r.BrokerDigest = "sha256:" + broker.Digest
		r.BrokerSigner = broker.Signer
		r.BrokerVerified = broker.Verified
		r.GeneratorDigest, r.GeneratorSigner, r.GeneratorVerified = r.BrokerDigest, r.BrokerSigner, r.BrokerVerified
	}
	return r
}

// defaultGate is the loose default on this platform, for a Run without
// a Gate: root may trace, as with bpftrace, and nobody else.
func defaultGate() (*Gate, error) {
	pf, err := gatekeeper.DetectPlatform("auto")
	if err != nil {
		return nil, err
	}
	k, err := gatekeeper.New(gatekeeper.Config{Default: gatekeeper.DefaultLoose, Platform: pf})
	if err != nil {
		return nil, err
	}
	return &Gate{Keeper: k, Request: RequesterRequest(attest.Identity{})}, nil
}

// Generator is a plugin that generated the program of a Request.
type Generator struct {
	Name, Version string
	// Identity is the plugin binary's, verified before it was started.
	Identity attest.Identity
	// Params are the parameters it was called with, defaults filled in.
	Params map[string]string
	// Program is its raw eBPF output; nil when it returned a script
	// (Request.Source).
	Program *program.Program
	// Fixed says the plugin ships Program as fixed bytecode (sdk.Info):
	// its signature covers it as a package's covers its members.
	Fixed bool
}

// Admission is the gatekeeper's outcome for a whole trace.
type Admission struct {
	Mode string // gatekeeper.ModeJIT or gatekeeper.ModeInterpreter
	// Form, Covers and Signer are what the trace's programs are and what
	// signs them, as the gatekeeper saw them (the Request's form,
	// covers and program_signer): the same for every probe of a trace.
	Form, Covers uint8
	Signer       string
	// KernelGate is Gate.Kernel: the kernel gate's state.
	KernelGate string
	// Decisions and Probes are one per probe, in the program's order.
	Decisions []gatekeeper.Decision
	Probes    []string
}

// DeniedError is a trace the gatekeeper refused: the first probe denied
// and the decision, whose Reason says why.
type DeniedError struct {
	Probe    string
	Decision gatekeeper.Decision
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("the gatekeeper denied %s: %s", e.Probe, e.Decision.Reason)
}

// admit decides every probe. One denial refuses the trace; the probes of
// one trace run in one mode, so a trace whose probes need different modes
// runs in the interpreter if all of them allow it, else not at all.
func admit(g *Gate, req *Request, prog *program.Program) (*Admission, error) {
	if len(prog.Probes) == 0 {
		return nil, fmt.Errorf("no probes to attach")
	}
	a := &Admission{}
	for _, p := range prog.Probes {
		r := g.Request
		r.Generator = ScriptGenerator
		if req.Name != "stdin" {
			r.Artifact = req.Name
		}
		if gen := req.Generator; gen != nil {
			// A plugin is the source: its measured binary is judged.
			r.Generator, r.Artifact = gen.Name, gen.Identity.Path
			r.GeneratorDigest, r.GeneratorSigner, r.GeneratorVerified = "", gen.Identity.Signer, gen.Identity.Verified
			if gen.Identity.Digest != "" {
				r.GeneratorDigest = "sha256:" + gen.Identity.Digest
			}
			if gen.Program != nil {
				r.Form = abi.FormBytecode
			}
			if gen.Program != nil && gen.Fixed {
				// Fixed bytecode inside a signed binary: a package,
				// signed by the plugin's signer.
				r.Covers, r.ProgramSigned, r.ProgramSigner = abi.CoversPackage, gen.Identity.Verified, ""
				if gen.Identity.Verified {
					r.ProgramSigner = gen.Identity.Signer
				}
			}
		}
		if o := req.Object; o != nil {
			o.signedFacts(&r)
		}
		r.ProgramType = strings.ToLower(p.Kind.String()) // begin, tracepoint, ...
		r.InsnCount = uint32(len(p.Insns))
		r.Helpers0, r.Helpers1, r.Helpers2, r.Helpers3 = helpersUsed(p.Insns)
		r.Reads = requestReads(p.Reads)
		a.Form, a.Covers, a.Signer = r.Form, r.Covers, r.ProgramSigner
		d, err := decideEach(g, r, p)
		if err != nil {
			return nil, err
		}
		a.Decisions = append(a.Decisions, d)
		a.Probes = append(a.Probes, p.Name)
	}
	for i, d := range a.Decisions {
		switch {
		case i == 0:
			a.Mode = d.Mode
		case d.Mode != a.Mode:
			a.Mode = gatekeeper.ModeInterpreter
		}
	}
	if a.Mode == gatekeeper.ModeInterpreter {
		for i, d := range a.Decisions {
			if d.Verdict == gatekeeper.JIT {
				return nil, fmt.Errorf("the gatekeeper allows %s only JIT-compiled and another probe only interpreted: one trace runs in one mode", prog.Probes[i].Name)
			}
		}
	}
	return a, nil
}

// helpersUsed is the bitmap of helper ids the program calls.
func helpersUsed(insns asm.Instructions) (h0, h1, h2, h3 uint64) {
	var words [4]uint64
	for _, ins := range insns {
		if ins.IsBuiltinCall() && ins.Constant >= 0 && ins.Constant < 256 {
			words[ins.Constant/64] |= 1 << (ins.Constant % 64)
		}
	}
	return words[0], words[1], words[2], words[3]
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}

// describe is the -v line for an admission.
func (a *Admission) describe() string {
	d := a.Decisions[0]
	var b strings.Builder
	fmt.Fprintf(&b, "Gatekeeper: %s mode", a.Mode)
	if d.PolicyDigest != "" {
		fmt.Fprintf(&b, " (policy %s, %s)", d.Policy, d.PolicyDigest)
	}
	fmt.Fprintf(&b, ": %s", d.Reason)
	return b.String()
}
