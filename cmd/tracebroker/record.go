package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// collectorTrust is how run and record verify the static collectors of
// interpreter mode: manifests for role collector, signed by a trusted
// key, in the state directory's manifests/.
func collectorTrust(trust *attest.Trust, state string, unsigned bool) collector.Trust {
	return collector.Trust{Keys: trust, ManifestDir: attest.StateManifestDir(state), Unsigned: unsigned}
}

func newRecordCmd() *cobra.Command {
	var (
		rr       broker.RecordRequest
		program  string
		duration string
		state    string
		trust    []string
		unsigned bool
		pf       pluginFlags
	)
	cmd := &cobra.Command{
		Use:   "record -o FILE [flags] [SCRIPT | -e PROGRAM] [ARG...]",
		Short: "Record the events of a script's probes to a file, for tracebroker replay",
		Long: `record attaches interpreter mode's static collectors (signed, role collector) to
the script's probes and writes every event they copy to FILE: the context of
each event, the strings the script reads through str(), and what a replay
needs to compile scripts against them. The script itself does not run.
tracebroker replay runs scripts over the file later, anywhere, without
privilege. The format is versioned and documented (broker/recording).

FILE is written as the recording goes, at least every second: a recorder
killed leaves a file that replays up to its last whole chunk. FILE is made
0600; an existing file of yours is truncated (as bpftrace -o does), and a
symbolic link, device, FIFO, another user's file or a file with other hard
links is refused.

Words after the script are its positional parameters ($1, $2, ...), as for
run; the recording keeps them, and replay compiles the recorded script with
them.`,
		Example: `  tracebroker record -o opens.tbrec -d 10s -e 'tracepoint:syscalls:sys_enter_openat { printf("%s\n", str(args->filename)); }'
  tracebroker replay opens.tbrec
  tracebroker replay opens.tbrec -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }'`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := mapKeysFromEnv(cmd, &rr.MaxMapKeys); err != nil {
				return err
			}
			if rr.Output == "" {
				return fmt.Errorf("no output file: use -o FILE")
			}
			var err error
			if rr.Name, rr.Source, rr.Args, err = pf.script(program, args); err != nil {
				return err
			}
			if duration != "" {
				if rr.Duration, err = parseDuration(duration); err != nil {
					return err
				}
			}
			gf := gateFlags{trust: trust, state: state}
			t, err := gf.trustSet()
			if err != nil {
				return err
			}
			rr.Collectors = collectorTrust(t, state, unsigned)
			// As run's: the kernel's grace periods are waited out in a
			// helper process, after the recording is closed.
			rr.DetachInBackground = true
			var done func()
			rr.Stderr, done = terminalSafe(cmd.ErrOrStderr())
			defer done()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return broker.Record(ctx, rr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&rr.Output, "output", "o", "", "write the recording to `FILE`")
	f.StringVarP(&program, "program", "e", "", "the script whose probes to record")
	f.StringVarP(&rr.Command, "command", "c", "", "run `CMD`, record while it runs (cpid is its pid)")
	f.VarP(pidValue[int]{&rr.PID}, "pid", "p", "stop when process `PID` exits")
	f.StringVarP(&duration, "duration", "d", "", "stop after `DURATION`")
	f.Int64Var(&rr.MaxSize, "max-size", 1<<30, "stop recording at `BYTES`")
	f.BoolVarP(&rr.Quiet, "quiet", "q", false, "do not print the \"Recording N probes...\" line")
	f.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR`: trusted keys, and the collectors' manifests in manifests/")
	f.StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	f.BoolVar(&unsigned, "unsigned-collectors", false, "load the collectors without checking their signatures (development)")
	return cmd
}

func newReplayCmd() *cobra.Command {
	var (
		rr           broker.ReplayRequest
		program      string
		info, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "replay FILE [-e PROGRAM | SCRIPT] [ARG...]",
		Short: "Run a script over a recording, in the interpreter, without privilege",
		Long: `replay runs a script over the events tracebroker record wrote, in the
interpreter, and prints what the live trace would have printed. Without a
script it runs the one the recording was made for, with the positional
parameters it was recorded with. Words after a script given here are its
own ($1, $2, ...). The script's probes must be among the recorded ones. No
kernel support, no privilege.

A recording cut short (its recorder killed) replays up to its last whole
chunk, and a warning on stderr says after which event and when it ends; the
exit status is 0, as for a whole one. replay --info says what a recording
holds, and whether it was cut short.`,
		Example: `  tracebroker replay opens.tbrec
  tracebroker replay opens.tbrec -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }'
  tracebroker replay opens.tbrec -e 'tracepoint:syscalls:sys_enter_openat /pid == $1/ { @[comm] = count(); }' 1234
  tracebroker replay -f json opens.tbrec script.bt
  tracebroker replay --info opens.tbrec`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if info || asJSON {
				if !info {
					return fmt.Errorf("--json goes with --info; a replay's output is -f json")
				}
				if program != "" {
					// Not a script to ignore: --info runs nothing.
					return errors.New("replay --info takes the recording alone: no script")
				}
				return replayInfo(cmd, args, asJSON)
			}
			rr.Recording = args[0]
			switch {
			case program != "":
				rr.Name, rr.Source, rr.Args = "stdin", []byte(program), args[1:]
			case len(args) >= 2:
				src, err := readScript(args[1])
				if err != nil {
					return err
				}
				rr.Name, rr.Source, rr.Args = args[1], src, args[2:]
			default:
				rd, c, err := recording.Open(rr.Recording)
				if err != nil {
					return err
				}
				h := rd.Header()
				c.Close()
				rr.Name, rr.Source, rr.Args = h.Script.Name, []byte(h.Script.Source), h.Script.Args
			}
			var doneOut, doneErr func()
			rr.Stdout, doneOut = terminalSafe(cmd.OutOrStdout())
			defer doneOut()
			rr.Stderr, doneErr = terminalSafe(cmd.ErrOrStderr())
			defer doneErr()
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return broker.Replay(ctx, rr)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&program, "program", "e", "", "the script to run over the recording")
	f.StringVarP(&rr.Format, "format", "f", "text", "output format: text or json")
	f.BoolVarP(&rr.Quiet, "quiet", "q", false, "do not print the \"Attaching N probes...\" line")
	f.IntVar(&rr.MaxMapKeys, "max-map-keys", 4096, "maximum number of keys per map (default: BPFTRACE_MAP_KEYS_MAX, or 4096)")
	f.BoolVar(&info, "info", false, "print what the recording holds — its script, probes, times, events, and whether it was cut short — instead of replaying it")
	f.BoolVar(&asJSON, "json", false, "with --info, print it as JSON")
	return cmd
}

func newCollectorsCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "collectors",
		Short: "Interpreter mode's static collectors: list them, export them for signing",
	}
	var (
		state  string
		trust  []string
		asJSON bool
	)
	list := &cobra.Command{
		Use:   "list",
		Short: "List the collectors, their digests and whether they verify",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			gf := gateFlags{trust: trust, state: state}
			t, err := gf.trustSet()
			if err != nil {
				return err
			}
			ct := collectorTrust(t, state, false)
			if asJSON {
				return writeCollectorsJSON(cmd.OutOrStdout(), ct)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tTYPE\tSHA256\tSTATUS")
			for _, s := range collector.Programs() {
				status := "refused: "
				if ids, err := ct.Verify(s); err != nil {
					status += err.Error()
				} else {
					status = "verified: signed by " + ids[0].Signer
				}
				fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", s.Name, s.Type, s.Digest(), escape.String(status))
			}
			return w.Flush()
		},
	}
	list.Flags().StringVar(&state, "state", attest.DefaultStateDir, "state `DIR`: trusted keys, and the collectors' manifests in manifests/")
	list.Flags().StringSliceVar(&trust, "trust", nil, "trusted public keys (`PUB`[,PUB...]; default: the state directory's trust/*.pub)")
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per collector")
	export := &cobra.Command{
		Use:   "export DIR",
		Short: "Write each collector's object (NAME.bpf, the bytes its digest covers) to DIR (made if missing), for signing",
		Example: `  tracebroker collectors export out/
  for f in out/*.bpf; do tracebroker attest sign --key release.key --role collector "$f"; done
  cp out/*.bpf.sig /var/lib/tracebroker/manifests/`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return err
			}
			for _, s := range collector.Programs() {
				var b bytes.Buffer
				if err := collector.WriteObject(&b, s.Name); err != nil {
					return err
				}
				path := filepath.Join(args[0], collector.ObjectFile(s.Name))
				if err := regfile.WriteAtomic(path, b.Bytes(), 0o644, false); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s sha256:%s\n", path, s.Digest())
			}
			return nil
		},
	}
	cmd.AddCommand(list, export)
	return cmd
}

// mapKeysFromEnv sets *n from BPFTRACE_MAP_KEYS_MAX when --max-map-keys
// was not given, as bpftrace's users size its maps.
func mapKeysFromEnv(cmd *cobra.Command, n *int) error {
	if cmd.Flags().Changed("max-map-keys") {
		return nil
	}
	keys, ok, err := broker.MapKeysEnv()
	if ok {
		*n = keys
	}
	return err
}
