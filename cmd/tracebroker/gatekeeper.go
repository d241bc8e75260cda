package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/attest"

	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/policyelf"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

func newGatekeeperCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "gatekeeper",
		Short: "Compile admission policies, evaluate requests, and enforce the kernel gate",
		Long: `The gatekeeper decides, for every program, deny, interpreter or JIT. Its
policy is itself an eBPF program, written as a gatekeeper { … } block in the
script language (or in C, built by clang into a "gatekeeper" section), that
reads the Request (gatekeeper/ABI.md) and returns a verdict.

The kernel gate (enforce, status, release) makes it the only way in: a BPF
LSM program that refuses tracing programs to every loader but the signed
broker.`,
	}
	cmd.AddCommand(newGatekeeperCompileCmd(), newGatekeeperEvalCmd())
	cmd.AddCommand(newKernelGateCmds()...)
	return cmd
}

func newGatekeeperCompileCmd() *cobra.Command {
	var out string
	cmd := &cobra.Command{
		Use:   "compile POLICY.bt -o POLICY.o",
		Short: "Compile a gatekeeper policy to an eBPF object",
		Example: `  tracebroker gatekeeper compile policy.bt -o policy.o
  tracebroker attest sign --key release.key --role policy policy.o`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if out == "" {
				return errors.New("no output file: use -o POLICY.o")
			}
			src, err := readScript(args[0])
			if err != nil {
				return err
			}
			p, err := compilePolicy(args[0], src)
			if err != nil {
				return err
			}
			var buf bytes.Buffer
			if err := policyelf.Write(&buf, "gatekeeper", p.Probes[0].Insns, p.Maps); err != nil {
				return err
			}
			// Whole or not at all, replacing what was there, as a compiler's -o.
			return regfile.WriteAtomic(out, buf.Bytes(), 0o644, false)
		},
	}
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the object to `FILE`")
	return cmd
}

// compilePolicy compiles a policy's source; script errors come back ready
// to print with their caret.
func compilePolicy(name string, src []byte) (*program.Program, error) {
	f, err := syntax.Parse(name, src)
	if err == nil {
		var p *program.Program
		if p, err = compile.Policy(f); err == nil {
			return p, nil
		}
	}
	var l syntax.ErrorList
	if errors.As(err, &l) {
		return nil, &broker.ScriptError{Name: name, Src: src, List: l}
	}
	return nil, err
}

// gateFlags are the gatekeeper's settings, shared by run and eval.
type gateFlags struct {
	policy   string
	unsigned bool
	trust    []string
	def      string
	hvci     string
	state    string
}

func (g *gateFlags) register(f *pflag.FlagSet) {
	f.StringVar(&g.policy, "policy", "", "admission policy `POLICY.o` (signed with role policy: POLICY.o.sig)")
	f.BoolVar(&g.unsigned, "unsigned-policy", false, "load the policy without checking its signature (development; recorded in every decision)")
	f.StringSliceVar(&g.trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	f.StringVar(&g.def, "default", gatekeeper.DefaultLoose, "decision without a policy: strict (signed or verified-broker programs) or loose (uid 0)")
	f.StringVar(&g.hvci, "hvci", "auto", "code integrity: on forbids JIT-compiled code; auto is off on Linux")
}

// trustSet is --trust, or the state directory's keys (none when it has
// none or does not exist: an empty set trusts nothing).
func (g *gateFlags) trustSet() (*attest.Trust, error) {
	if len(g.trust) > 0 {
		return attest.LoadTrust(g.trust...)
	}
	t, err := attest.StateTrust(g.state)
	if err != nil {
		return attest.NewTrust(), nil
	}
	return t, nil
}

// ready is the gatekeeper of a command that runs traces, with the trust
// it was built with; a policy that does not load stops the command, and
// nothing runs.
func (g *gateFlags) ready(state string) (*attest.Trust, *gatekeeper.Gatekeeper, error) {
	g.state = state
	trust, err := g.trustSet()
	if err != nil {
		return nil, nil, err
	}
	k, policyErr, err := g.keeper(trust)
	if err != nil {
		return nil, nil, err
	}
	if policyErr != nil {
		return nil, nil, fmt.Errorf("the gatekeeper refuses policy %s (nothing runs): %w", g.policy, policyErr)
	}
	return trust, k, nil
}

// keeper builds the gatekeeper. A policy that cannot be loaded (bad
// signature, verifier refusal) is returned as policyErr with a
// gatekeeper that has none, so that the caller can deny with the reason.
func (g *gateFlags) keeper(trust *attest.Trust) (k *gatekeeper.Gatekeeper, policyErr, err error) {
	pf, err := gatekeeper.DetectPlatform(g.hvci)
	if err != nil {
		return nil, nil, err
	}
	k, err = gatekeeper.New(gatekeeper.Config{Default: g.def, Platform: pf, Trust: trust, PolicyConfigured: g.policy != ""})
	if err != nil {
		return nil, nil, err
	}
	if g.policy == "" {
		return k, nil, nil
	}
	p, err := gatekeeper.LoadPolicyFile(g.policy, gatekeeper.PolicyOptions{Trust: trust, Unsigned: g.unsigned})
	if err != nil {
		return k, err, nil
	}
	k.Load(p)
	return k, nil, nil
}

func newGatekeeperEvalCmd() *cobra.Command {
	var (
		gf      gateFlags
		reqPath string
	)
	cmd := &cobra.Command{
		Use:   "eval [--policy POLICY.o] --request REQ.json",
		Short: "Decide one request and print the decision as JSON",
		Long: `eval decides the request in REQ.json (the Request's fields by name, absent
fields zero; see gatekeeper/ABI.md) as tracebroker would, and prints
{"verdict", "mode", "reason", "policy_digest", "policy"}. It exits 0 whatever
the verdict, and non-zero only when it cannot decide (an unreadable request,
bad flags). A policy that fails to load denies: the gatekeeper fails closed.`,
		Example: `  tracebroker gatekeeper eval --default strict --request req.json
  tracebroker gatekeeper eval --policy policy.o --trust release.pub --request req.json
  echo '{"uid": 1000, "attach": "tracepoint:sched:sched_switch"}' | tracebroker gatekeeper eval --request /dev/stdin`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if reqPath == "" {
				return errors.New("no request: use --request REQ.json")
			}
			data, err := readBounded(reqPath, "request", gatekeeper.MaxRequestSize)
			if err != nil {
				return err
			}
			req, err := gatekeeper.ParseRequest(data)
			if err != nil {
				return err
			}
			trust, err := gf.trustSet()
			if err != nil {
				return err
			}
			k, policyErr, err := gf.keeper(trust)
			if err != nil {
				return err
			}
			// A policy that does not load denies: fail closed.
			d := gatekeeper.Decision{Verdict: gatekeeper.Deny, Policy: gf.policy}
			if policyErr != nil {
				d.Reason = "policy refused: " + policyErr.Error()
			} else {
				d = k.Decide(req)
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return enc.Encode(d)
		},
	}
	gf.register(cmd.Flags())
	cmd.Flags().StringVar(&gf.state, "state", attest.DefaultStateDir, "state `DIR` whose trust/*.pub are trusted when --trust is not given")
	cmd.Flags().StringVar(&reqPath, "request", "", "the request as JSON (`REQ.json`; /dev/stdin reads standard input)")
	return cmd
}
