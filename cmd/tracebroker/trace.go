//go:build !norpc

package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/daemon"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/internal/escape"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// daemonFlags say how to reach the daemon and who one is.
type daemonFlags struct {
	socket, server, ca, serverName string
	token, tokenFile               string
}

func (d *daemonFlags) register(f *pflag.FlagSet, withToken bool) {
	f.StringVar(&d.socket, "socket", DefaultSocket, "the daemon's unix socket `PATH`")
	f.StringVar(&d.server, "server", "", "reach the daemon over TLS at `HOST:PORT` instead of the socket")
	f.StringVar(&d.ca, "tls-ca", "", "CA certificates `PEM` for --server (default: the system's)")
	f.StringVar(&d.serverName, "tls-server-name", "", "the server name its certificate must have (default: from --server)")
	if withToken {
		f.StringVar(&d.tokenFile, "token-file", "", "read the access token from `FILE` (- for stdin; default: $"+daemon.TokenEnv+")")
		// Refused with the reason, rather than unknown: see ReadToken.
		f.StringVar(&d.token, "token", "", "refused: the token would be in the command line for every user to read")
		f.MarkHidden("token")
	}
}

func (d *daemonFlags) dial(stdin io.Reader) (*daemon.Client, error) {
	t := daemon.Target{Socket: d.socket}
	if d.server != "" {
		t.Socket, t.Addr = "", d.server
		t.TLS = &tls.Config{MinVersion: tls.VersionTLS13, ServerName: d.serverName}
		if d.ca != "" {
			pem, err := regfile.ReadFile(d.ca, 1<<20)
			if err != nil {
				return nil, fmt.Errorf("--tls-ca: %w", err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("--tls-ca %s: no certificate in it", d.ca)
			}
			t.TLS.RootCAs = pool
		}
	}
	if d.token != "" {
		return nil, daemon.ErrTokenInArgs
	}
	var err error
	if t.Token, err = daemon.ReadToken(d.tokenFile, stdin, os.Getenv); err != nil {
		return nil, err
	}
	return daemon.Dial(t)
}

// maxObjectSend bounds an object trace sends: the daemon takes requests
// of at most 2 MiB, the signature (well under a kilobyte) included.
const maxObjectSend = 2<<20 - 128<<10

func newTraceCmd() *cobra.Command {
	var (
		df       daemonFlags
		program  string
		duration string
		pf       pluginFlags
		req      pb.TraceRequest
		objSig   string
		objVars  []string
	)
	cmd := &cobra.Command{
		Use:   "trace [flags] [FILE | -e PROGRAM | --gen NAME | OBJECT.bpf.o]",
		Short: rpcShort["trace"],
		Long: `trace sends the script to the broker daemon (tracebroker serve), which
checks the token, compiles the script, asks the gatekeeper and runs it.
The output is run's, as it comes. Ctrl-C ends the trace as run's does (END
runs, the maps are printed); a second Ctrl-C leaves at once, and the daemon
detaches the probes. The exit status is the trace's.

The token is read from --token-file FILE, from stdin with --token-file -, or
from $TRACEBROKER_TOKEN: never from the command line, where ps and
/proc/PID/cmdline show it to every user of the host (--token is refused).`,
		Example: `  tracebroker trace --token-file ~/.tracebroker/token -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }'
  TRACEBROKER_TOKEN=$(cat token) tracebroker trace -d 10s script.bt
  tracebroker trace --token-file - -d 5s script.bt < token
  tracebroker trace --token-file token --gen opensnoop --param path=/etc
  tracebroker trace --token-file token opensnoop.bpf.o   # and opensnoop.bpf.o.sig, which the daemon verifies`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			var err error
			objPath, err := pf.object(program, args)
			if err != nil {
				return err
			}
			if objPath != "" {
				// An eBPF object and its signature, sent as they are:
				// the daemon verifies them against its own keys.
				req.Name = args[0]
				if req.Object, req.ObjectSignature, err = broker.ReadObjectFiles(args[0], objSig, maxObjectSend); err != nil {
					return err
				}
				if req.Params, err = keyValues("--set", objVars); err != nil {
					return err
				}
			} else if req.Name, req.Source, req.Args, err = pf.script(program, args); err != nil {
				return err
			} else if objSig != "" || len(objVars) > 0 {
				return errors.New("--sig and --set go with an eBPF object")
			}
			if pf.gen != "" {
				if req.Params, err = pf.params(); err != nil {
					return err
				}
				req.Generator = pf.gen
			}
			switch req.Format {
			case "text", "json":
			default:
				return fmt.Errorf("Invalid output format %q\nvalid formats: text, json", req.Format)
			}
			if duration != "" {
				d, err := parseDuration(duration)
				if err != nil {
					return err
				}
				req.DurationMs = max(1, d.Milliseconds())
			}
			c, err := df.dial(cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer c.Close()
			ctx, interrupt, stop := twoInterrupts(cmd.ErrOrStderr())
			defer stop()
			stdout, doneOut := terminalSafe(cmd.OutOrStdout())
			defer doneOut()
			stderr, doneErr := terminalSafe(cmd.ErrOrStderr())
			defer doneErr()
			res, err := c.Trace(ctx, interrupt, &req, stdout, stderr)
			if err != nil {
				return interrupted(ctx, err)
			}
			switch res.Reason {
			case "", "interrupted":
			case "max_duration":
				fmt.Fprintln(cmd.ErrOrStderr(), "tracebroker: the trace reached the token's max_duration")
			case "stopped":
				fmt.Fprintln(cmd.ErrOrStderr(), "tracebroker: an administrator stopped the trace")
			case "shutdown":
				fmt.Fprintln(cmd.ErrOrStderr(), "tracebroker: the broker daemon shut down")
			case "token_expired":
				fmt.Fprintln(cmd.ErrOrStderr(), "tracebroker: the token expired")
			case "token_revoked":
				fmt.Fprintln(cmd.ErrOrStderr(), "tracebroker: the token was revoked")
			default:
				fmt.Fprintf(cmd.ErrOrStderr(), "tracebroker: the trace ended: %s\n", escape.String(res.Reason))
			}
			return nil
		},
	}
	f := cmd.Flags()
	df.register(f, true)
	f.StringVarP(&program, "program", "e", "", "the script to run")
	f.StringVar(&objSig, "sig", "", "an eBPF object's signature (default: OBJECT.sig when there is one)")
	f.StringArrayVar(&objVars, "set", nil, "set an eBPF object's global variable before it is loaded, `NAME=VALUE` (repeatable)")
	f.VarP(pidValue[int32]{&req.Pid}, "pid", "p", "stop when process `PID` exits")
	f.StringVarP(&req.Format, "format", "f", "text", "output format: text or json")
	f.StringVarP(&duration, "duration", "d", "", "stop after `DURATION` (5s, 1m, or seconds)")
	f.BoolVarP(&req.Verbose, "verbose", "v", false, "show the gatekeeper's decision and what is loaded")
	f.BoolVarP(&req.Quiet, "quiet", "q", false, "do not print the \"Attaching N probes...\" line")
	f.StringVar(&pf.gen, "gen", "", "run the program that generator plugin `NAME` generates")
	f.StringArrayVar(&pf.param, "param", nil, "a generator parameter, `KEY=VALUE` (repeatable)")
	genHelp(cmd, &pf, hostStateTrust)
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func newSessionsCmd() *cobra.Command {
	var df daemonFlags
	cmd := &cobra.Command{
		Use:   "sessions",
		Short: rpcShort["sessions"],
	}
	df.register(cmd.PersistentFlags(), false)
	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the running sessions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := df.dial(cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer c.Close()
			ss, err := c.Sessions(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeSessionsJSON(cmd.OutOrStdout(), ss)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ID\tSUBJECT\tUID\tPID\tMODE\tSTARTED\tENDS\tPROGRAM\tPROBES")
			for _, s := range ss {
				ends := "-"
				if s.DeadlineUnixMs != 0 {
					ends = time.UnixMilli(s.DeadlineUnixMs).Format(time.TimeOnly)
				}
				// Subject and name are the token holder's: shown escaped.
				fmt.Fprintf(w, "%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\t%d\n", escape.String(s.Id), escape.String(s.Subject), s.Uid, s.ClientPid, escape.String(orDash(s.Mode)),
					time.UnixMilli(s.StartedUnixMs).Format(time.TimeOnly), ends, escape.String(s.Name), len(s.Probes))
			}
			return w.Flush()
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print a JSON array, one object per session (fields: README)")
	stop := &cobra.Command{
		Use:   "stop ID",
		Short: "End a session as -d would: its maps are printed to its client",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := df.dial(cmd.InOrStdin())
			if err != nil {
				return err
			}
			defer c.Close()
			if err := c.Stop(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "stopped %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(list, stop)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
