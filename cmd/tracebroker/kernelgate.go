package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/audit"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
	"github.com/tracebroker/tracebroker/internal/regfile"
	"github.com/tracebroker/tracebroker/internal/version"
)

// The kernel gate's commands: enforce, status, release, events, export.
// What they do is lsmgate's; here are flags, the gate's audit log and
// the operator's text.

// gateLogName is the kernel gate's own audit log in the state
// directory: enforce and release are recorded there (the daemon's log
// is locked by the daemon, and the gate is enforced before it starts).
const gateLogName = "gate.log"

type kernelGateFlags struct {
	state, pins, auditLog string
	trust                 []string
}

func (g *kernelGateFlags) register(cmd *cobra.Command, withTrust bool) {
	f := cmd.Flags()
	f.StringVar(&g.state, "state", attest.DefaultStateDir, "state `DIR`: trusted keys, manifests (tb_gate.bpf.sig), the gate's audit log")
	f.StringVar(&g.pins, "pin-dir", lsmgate.DefaultPinDir, "where the gate is pinned (`DIR`, on a bpffs)")
	f.StringVar(&g.auditLog, "audit-log", "", "the gate's audit log `FILE` (default: STATE/"+gateLogName+")")
	if withTrust {
		f.StringSliceVar(&g.trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	}
}

// record appends one record to the gate's audit log.
func (g *kernelGateFlags) record(event string, data map[string]any) error {
	path := g.auditLog
	if path == "" {
		path = filepath.Join(g.state, gateLogName)
	}
	l, err := audit.Open(path, audit.Options{})
	if err != nil {
		return fmt.Errorf("the gate's audit log: %w", err)
	}
	data["uid"], data["pid"] = os.Getuid(), os.Getpid()
	if exe, err := os.Executable(); err == nil {
		data["executable"] = exe
	}
	if _, err := l.Append(event, data); err != nil {
		l.Close()
		return fmt.Errorf("the gate's audit log: %w", err)
	}
	return l.Close()
}

func newKernelGateCmds() []*cobra.Command {
	return []*cobra.Command{newGateEnforceCmd(), newGateStatusCmd(), newGateReleaseCmd(), newGateEventsCmd(), newGateExportCmd()}
}

func newGateEnforceCmd() *cobra.Command {
	var (
		g                               kernelGateFlags
		loaders                         []string
		policy                          string
		unsignedPolicy                  bool
		loose, denyOthers, unsignedGate bool
		allowUnverified, asJSON         bool
	)
	cmd := &cobra.Command{
		Use:   "enforce [--loader PATH]... [--loose] [--deny-others]",
		Short: "Load the kernel gate: only signed loaders may load tracing programs",
		Long: `Loads the kernel gate, a BPF LSM program (signed for role gate: STATE/manifests/
tb_gate.bpf.sig), and pins it so that it outlives this command. From then on
the kernel refuses a tracing program (kprobe, tracepoint, perf_event, raw
tracepoint, tracing, LSM, extension, syscall) to any process whose executable
is not an allowed loader: this tracebroker binary and tracebroker-rpc beside
it (which runs serve, trace, plugins and --gen), each of which must verify as
a signed broker, and each --loader. Other program types (cgroup, socket
filters, XDP: what systemd and networking load) are allowed unless
--deny-others. The gate refuses anyone but those two executables its maps,
its links and its pins, and ptrace of its loaders; every refusal is counted
(status) and sent to the daemon, which writes it to its audit log.

It needs a kernel with BPF LSM active (lsm=...,bpf on the kernel command
line; CONFIG_BPF_LSM=y); where it is not, it says what to change. Run it at
boot, before other BPF users (dist/systemd/tracebroker-gate.service).`,
		Example: `  tracebroker gatekeeper enforce
  tracebroker gatekeeper enforce --policy /etc/tracebroker/policy.o   # the policy runs in the kernel
  tracebroker gatekeeper enforce --loader /usr/local/bin/other-signed-loader
  tracebroker gatekeeper enforce --loose     # root keeps loading as before; others need a loader`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			trust, err := (&gateFlags{trust: g.trust, state: g.state}).trustSet()
			if err != nil {
				return err
			}
			var pol *gatekeeper.Policy
			if policy != "" {
				// Verified as every policy is, then run by the kernel
				// on every guarded load.
				if pol, err = gatekeeper.LoadPolicyFile(policy, gatekeeper.PolicyOptions{Trust: trust, Unsigned: unsignedPolicy}); err != nil {
					return fmt.Errorf("policy %s: %w", policy, err)
				}
			}
			owners, err := otherBuilds()
			if err != nil {
				return err
			}
			info, err := lsmgate.Enforce(lsmgate.Options{
				Policy: pol,
				PinDir: g.pins, Trust: trust, ManifestDir: attest.StateManifestDir(g.state),
				UnsignedGate: unsignedGate, Loaders: loaders, Owners: owners, AllowUnverified: allowUnverified,
				Loose: loose, DenyOthers: denyOthers, Version: version.String(),
			})
			if err != nil {
				return err
			}
			if err := g.record(audit.EventGateEnforced, map[string]any{"gate": info}); err != nil {
				// Enforced but not recorded: say so, and leave the
				// gate on (failing open would be worse).
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", err)
			}
			if asJSON {
				return json.NewEncoder(cmd.OutOrStdout()).Encode(info)
			}
			writeGateInfo(cmd.OutOrStdout(), info)
			return nil
		},
	}
	g.register(cmd, true)
	f := cmd.Flags()
	f.StringArrayVar(&loaders, "loader", nil, "another executable allowed to load tracing programs (`PATH`, signed for role broker)")
	f.BoolVar(&loose, "loose", false, "let root load tracing programs with any loader (the loose default); only other users need an allowed loader")
	f.BoolVar(&denyOthers, "deny-others", false, "refuse the other program types (cgroup, socket, XDP) to loaders that are not allowed too")
	f.BoolVar(&unsignedGate, "unsigned-gate", false, "load the gate without its manifest (development only; status says so)")
	f.BoolVar(&allowUnverified, "allow-unverified", false, "allow loaders whose manifest does not verify (development builds; status says so)")
	f.StringVar(&policy, "policy", "", "run this gatekeeper policy (`POLICY.o`, signed for role policy) in the kernel on every guarded load, instead of the default")
	f.BoolVar(&unsignedPolicy, "unsigned-policy", false, "load the policy without checking its signature (development; status says so)")
	f.BoolVar(&asJSON, "json", false, "print the gate as JSON")
	return cmd
}

func writeGateInfo(w io.Writer, info *lsmgate.Info) {
	signed := "signed by " + info.Signer
	if info.Unsigned {
		signed = "UNSIGNED (development)"
	}
	fmt.Fprintf(w, "Kernel gate: enforcing since %s, %s default\n", info.Enforced.Local().Format(time.RFC3339), info.Default)
	fmt.Fprintf(w, "  tb_gate sha256:%s, %s\n", info.Digest, signed)
	fmt.Fprintf(w, "  hooks: %s\n", strings.Join(info.Hooks, " "))
	others := "allowed"
	if info.DenyOthers {
		others = "allowed loaders only"
	}
	fmt.Fprintf(w, "  guarded: %s; other program types: %s\n", strings.Join(info.Guarded, " "), others)
	for _, l := range info.Loaders {
		who := "signed by " + l.Signer
		if !l.Verified {
			who = "UNVERIFIED: " + l.Reason
		}
		owner := ""
		if l.Owner {
			owner = ", owner"
		}
		fmt.Fprintf(w, "  loader: %s (sha256:%s, %s%s)\n", l.Path, l.Digest, who, owner)
	}
	if p := info.Policy; p != nil {
		where := "in the kernel, on every guarded load"
		if !p.InKernel {
			where = "NOT in the kernel (" + p.Why + "): the " + info.Default + " default by loader applies"
		}
		who := "signed by " + p.Signer
		if p.Unsigned {
			who = "UNSIGNED (development)"
		}
		fmt.Fprintf(w, "  policy: %s (%s, %s), %s\n", p.Name, p.Digest, who, where)
	}
	fmt.Fprintf(w, "  pinned in %s, kernel %s\n", info.PinDir, info.Kernel)
}

func newGateStatusCmd() *cobra.Command {
	var (
		g      kernelGateFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Say whether the kernel gate enforces, with what, and what it refused",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := lsmgate.ReadStatus(g.pins)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if asJSON {
				out := map[string]any{"enforcing": st.Enforcing, "gate": st.Info, "hooks": st.Hooks, "missing": st.Missing}
				counts := map[string]uint64{}
				for r, c := range st.Counts {
					counts[lsmgate.ReasonText(r)] = c
				}
				out["refused"] = counts
				if !st.Enforcing {
					out["why"] = lsmgate.Describe(g.pins)
				}
				if st.Err != nil {
					out["error"] = st.Err.Error()
				}
				return json.NewEncoder(w).Encode(out)
			}
			if !st.Enforcing {
				fmt.Fprintf(w, "Kernel gate: %s\n", lsmgate.Describe(g.pins))
				if err := lsmgate.Probe(); err != nil {
					fmt.Fprintf(w, "  %v\n", err)
				}
				return nil
			}
			if st.Info == nil {
				fmt.Fprintf(w, "Kernel gate: enforcing (pinned in %s)\n  %v\n", g.pins, st.Err)
				return nil
			}
			writeGateInfo(w, st.Info)
			if len(st.Missing) > 0 {
				fmt.Fprintf(w, "  MISSING hooks (not enforced): %s\n", strings.Join(st.Missing, " "))
			}
			reasons := make([]uint32, 0, len(st.Counts))
			for r := range st.Counts {
				reasons = append(reasons, r)
			}
			sort.Slice(reasons, func(i, j int) bool { return reasons[i] < reasons[j] })
			if len(reasons) == 0 {
				fmt.Fprintln(w, "  refused: nothing")
			}
			for _, r := range reasons {
				fmt.Fprintf(w, "  refused %d: %s\n", st.Counts[r], lsmgate.ReasonText(r))
			}
			return nil
		},
	}
	g.register(cmd, false)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	return cmd
}

func newGateReleaseCmd() *cobra.Command {
	var g kernelGateFlags
	cmd := &cobra.Command{
		Use:   "release",
		Short: "Unload the kernel gate (only its owners may: the executable that enforced it and the broker build beside it; recorded in the gate's audit log)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			// A refused release is the gate's to record (a refused
			// unlink, drained into the daemon's audit log); a release
			// is recorded here.
			st, err := lsmgate.Release(g.pins)
			if err != nil {
				return err
			}
			if rerr := g.record(audit.EventGateReleased, map[string]any{"pin_dir": g.pins, "gate": st.Info, "refused": st.Counts}); rerr != nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "warning: %v\n", rerr)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Kernel gate: released (was pinned in %s)\n", g.pins)
			return nil
		},
	}
	g.register(cmd, false)
	return cmd
}

func newGateEventsCmd() *cobra.Command {
	var (
		g      kernelGateFlags
		follow bool
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "events [--follow]",
		Short: "Print (and consume) the kernel gate's refusals, when no daemon drains them into its audit log",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ev, err := lsmgate.OpenEvents(g.pins)
			if err != nil {
				return err
			}
			defer ev.Close()
			ctx := cmd.Context()
			enc := json.NewEncoder(cmd.OutOrStdout())
			for ctx.Err() == nil {
				wait := 100 * time.Millisecond
				if follow {
					wait = time.Second
				}
				ev.SetDeadline(time.Now().Add(wait))
				rec, err := ev.Read()
				if errors.Is(err, os.ErrDeadlineExceeded) {
					if follow {
						continue
					}
					return nil
				}
				if err != nil {
					return err
				}
				d := rec.Data()
				if asJSON {
					if err := enc.Encode(d); err != nil {
						return err
					}
					continue
				}
				fmt.Fprintf(cmd.OutOrStdout(), "refused %s: pid %d (%s) uid %d, exe %s ino %d: %s\n", d["op"], rec.PID, d["comm"], rec.UID, d["exe_dev"], rec.Ino, d["reason"])
			}
			return nil
		},
	}
	g.register(cmd, false)
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing refusals as they come")
	cmd.Flags().BoolVar(&asJSON, "json", false, "one JSON object per refusal")
	return cmd
}

func newGateExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "export DIR",
		Short: "Write the kernel gate's object (" + lsmgate.ObjectFile + ", the bytes its manifest signs) to DIR, for signing",
		Example: `  tracebroker gatekeeper export out/
  tracebroker attest sign --key release.key --role gate out/` + lsmgate.ObjectFile + `
  cp out/` + lsmgate.ObjectFile + `.sig /var/lib/tracebroker/manifests/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			obj, err := lsmgate.Object()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			path := filepath.Join(args[0], lsmgate.ObjectFile)
			if err := regfile.WriteAtomic(path, obj, 0o644, false); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s sha256:%s\n", path, lsmgate.Digest())
			return nil
		},
	}
}
