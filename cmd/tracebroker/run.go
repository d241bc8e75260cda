package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
)

func newRunCmd() *cobra.Command {
	var (
		req       broker.Request
		program   string
		duration  string
		mode      string
		attestDir string
		state     string
		gatePins  string
		outFile   string
		gf        gateFlags
		pf        pluginFlags

		unsignedCollectors bool
		objSig             string
		pkgPath            string
		objVars            []string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] [FILE | -e PROGRAM | --gen NAME | OBJECT.bpf.o | --package PKG [MEMBER]] [ARG...]",
		Short: "Compile a script to eBPF and trace the kernel (embedded, no daemon)",
		Example: `  tracebroker run -e 'tracepoint:syscalls:sys_enter_openat { @[comm] = count(); }'
  tracebroker run -d 5s -e 'tracepoint:raw_syscalls:sys_enter { @[pid, comm] = count(); }'
  tracebroker run -c 'ls /' -e 'tracepoint:syscalls:sys_enter_openat /pid == cpid/ { printf("%s\n", str(args->filename)); }'
  tracebroker run -f json script.bt
  tracebroker run -e 'BEGIN { printf("%s %d\n", str($1), $2); exit(); }' hello 42
  tracebroker run --gen opensnoop --param path=/etc --plugin-dir ./plugins --trust release.pub
  tracebroker run --default strict --trust release.pub opensnoop.bpf.o   # signed: opensnoop.bpf.o.sig
  tracebroker run --package tools.tar opensnoop.bpf.o                     # signed: tools.tar.sig`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := mapKeysFromEnv(cmd, &req.MaxMapKeys); err != nil {
				return err
			}
			var err error
			objPath := ""
			if pkgPath != "" {
				// A signed bundle's member: the package's only object,
				// or the one named.
				if program != "" || pf.gen != "" || len(args) > 1 {
					return errors.New("--package PKG runs one of its objects: give at most its name, and no script")
				}
			} else if objPath, err = pf.object(program, args); err != nil {
				return err
			} else if objPath == "" {
				// A script; an object runs as it is, if its signature
				// and the gatekeeper allow.
				if req.Name, req.Source, req.Args, err = pf.script(program, args); err != nil {
					return err
				}
				if objSig != "" {
					return errors.New("--sig goes with an eBPF object (run OBJECT.bpf.o)")
				}
			}
			if duration != "" {
				d, err := parseDuration(duration)
				if err != nil {
					return err
				}
				req.Duration = d
			}
			req.Mode = broker.Mode(mode)
			if v := os.Getenv("BPFTRACE_PERF_RB_PAGES"); v != "" {
				// As bpftrace: what a printing script's events may
				// queue, in pages per CPU.
				pages, err := strconv.Atoi(v)
				if err == nil {
					req.EventBufferSize, err = broker.EventBufferForPages(pages)
				}
				if err != nil {
					return fmt.Errorf("BPFTRACE_PERF_RB_PAGES=%s: %w", v, err)
				}
			}
			// The user's own headers, read with the user's rights.
			req.HostHeaders = true
			req.DetachInBackground = true
			if outFile != "" {
				f, err := os.OpenFile(outFile, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				req.Stdout = f
				var done func()
				req.Console, done = terminalSafe(cmd.OutOrStdout())
				defer done()
			} else {
				var done func()
				req.Stdout, done = terminalSafe(cmd.OutOrStdout())
				defer done()
			}
			var done func()
			req.Stderr, done = terminalSafe(cmd.ErrOrStderr())
			defer done()
			// The gatekeeper is ready before any plugin runs: a policy that
			// does not load stops everything, plugins included.
			trust, k, err := gf.ready(state)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			switch {
			case pkgPath != "":
				member := ""
				if len(args) == 1 {
					member = args[0]
				}
				if req.Object, err = broker.OpenPackageObject(pkgPath, objSig, member, trust); err != nil {
					return err
				}
			case objPath != "":
				if req.Object, err = broker.OpenObject(objPath, objSig, trust); err != nil {
					return err
				}
			}
			if len(objVars) > 0 {
				if req.Object == nil {
					return errors.New("--set NAME=VALUE sets an eBPF object's global variables: it goes with an object")
				}
				if req.Object.Vars, err = keyValues("--set", objVars); err != nil {
					return err
				}
			}
			if pf.gen != "" {
				if err := pf.generate(ctx, &req, state, trust); err != nil {
					return interrupted(ctx, err)
				}
			}
			// The broker's identity is measured (its binary hashed) only
			// when something will judge or record it.
			var id attest.Identity
			if gf.policy != "" || gf.def == gatekeeper.DefaultStrict || attestDir != "" {
				id, err = attest.Measure(0, attest.MeasureOptions{Trust: trust, ManifestDir: attest.StateManifestDir(state), Role: attest.RoleBroker})
				if err != nil {
					return fmt.Errorf("measuring this broker: %w", err)
				}
			}
			req.Gate = &broker.Gate{Keeper: k, Request: broker.RequesterRequest(id)}
			if req.Verbose || attestDir != "" {
				// Only what is shown or recorded is looked up: a run
				// that says nothing of the gate does not ask.
				req.Gate.Kernel = lsmgate.Describe(gatePins)
			}
			req.Collectors = collectorTrust(trust, state, unsignedCollectors)
			if attestDir != "" {
				a, err := attestConfig(attestDir, state, id)
				if err != nil {
					return err
				}
				req.Attest = a
			}
			notifyAttached(&req)
			// SIGUSR1 prints every map, as it does to bpftrace.
			usr1 := make(chan os.Signal, 1)
			printMaps := make(chan struct{}, 1)
			signal.Notify(usr1, syscall.SIGUSR1)
			defer func() { signal.Stop(usr1); close(usr1) }()
			go func() {
				for range usr1 {
					select {
					case printMaps <- struct{}{}:
					default:
					}
				}
			}()
			req.PrintMaps = printMaps
			return interrupted(ctx, broker.Run(ctx, req))
		},
	}
	f := cmd.Flags()
	f.StringVarP(&program, "program", "e", "", "the script to run")
	f.StringVar(&objSig, "sig", "", "an eBPF object's or a package's signature (default: OBJECT.sig, PKG.sig or PKGDIR/package.sig)")
	f.StringArrayVar(&objVars, "set", nil, "set an eBPF object's global variable before it is loaded, `NAME=VALUE` (its const volatile parameters; repeatable)")
	f.StringVar(&pkgPath, "package", "", "run an eBPF object of the signed package `PKG` (a tar file or a directory; attest sign --role package)")
	f.StringVarP(&req.Command, "command", "c", "", "run `CMD` (with its args), trace it (cpid is its pid) and stop when it exits")
	f.VarP(pidValue[int]{&req.PID}, "pid", "p", "stop when process `PID` exits")
	f.StringVarP(&req.Format, "format", "f", "text", "output format: text or json")
	f.StringVarP(&duration, "duration", "d", "", "stop after `DURATION` (5s, 1m, or seconds)")
	f.BoolVarP(&req.Verbose, "verbose", "v", false, "show what is loaded and attached")
	f.BoolVarP(&req.Quiet, "quiet", "q", false, "do not print the \"Attaching N probes...\" line")
	f.Bool("usdt-file-activation", false, "accepted as bpftrace accepts it: a USDT probe's semaphore is activated by the kernel in every process that maps its file")
	f.StringArrayVar(&req.Includes, "include", nil, "include `FILE` before the script, as clang's -include (errno.h and sys/socket.h are built in; kernel headers come from BTF)")
	f.CountVarP(&req.HelperErrors, "helper-errors", "k", "report failed helper calls as they happen, as bpftrace's -k: -k map updates and deletes, -kk also reads and lookups that read as 0")
	f.BoolVar(&req.Unsafe, "unsafe", false, "allow builtins that change the traced system: signal()")
	f.StringVarP(&outFile, "output", "o", "", "write the output to `FILE` instead of standard output")
	f.StringVar(&mode, "mode", "auto", "execution mode: auto (the gatekeeper's choice), jit, or interp (static collectors in the kernel, the program in the interpreter)")
	f.IntVar(&req.MaxMapKeys, "max-map-keys", 4096, "maximum number of keys per map (default: BPFTRACE_MAP_KEYS_MAX, or 4096)")
	f.StringVar(&attestDir, "attest-dir", "", "write a signed attestation of every generated program to `DIR`")
	f.StringVar(&gatePins, "gate-pin-dir", lsmgate.DefaultPinDir, "where the kernel gate is pinned (`DIR`): -v and attestations say whether it enforces")
	f.StringVar(&state, "state", attest.DefaultStateDir, "state `DIR` holding the host attestation key and trusted keys (tracebroker init)")
	f.BoolVar(&unsignedCollectors, "unsigned-collectors", false, "interpreter mode: load the static collectors without checking their signatures (development)")
	gf.register(f)
	pf.register(f, true)
	genHelp(cmd, &pf, func() (*attest.Trust, string, error) {
		gf.state = state
		t, err := gf.trustSet()
		return t, state, err
	})
	cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp))
	cmd.RegisterFlagCompletionFunc("mode", cobra.FixedCompletions([]string{"auto", "jit", "interp"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// attestConfig gathers what --attest-dir needs: the host key, and this
// broker's identity measured from the file it runs.
func attestConfig(dir, state string, id attest.Identity) (*broker.Attest, error) {
	key, err := attest.LoadHostKey(state)
	if err != nil {
		return nil, err
	}
	return &broker.Attest{Dir: dir, Key: key, Broker: id, Requester: attest.Requester{UID: os.Getuid()}}, nil
}

// maxScriptSize bounds what we read from a script file.
const maxScriptSize = 1 << 20

// readScript reads the script FILE, or standard input for "-", and
// says what is wrong as bpftrace does ("failed to open file 'x.bt': No
// such file or directory").
func readScript(path string) ([]byte, error) {
	if path == "-" {
		b, err := io.ReadAll(io.LimitReader(os.Stdin, maxScriptSize+1))
		if err == nil && len(b) > maxScriptSize {
			err = fmt.Errorf("the script on standard input is larger than %d bytes", maxScriptSize)
		}
		return b, err
	}
	b, err := readBounded(path, "script", maxScriptSize)
	var errno syscall.Errno
	if errors.As(err, &errno) {
		msg := errno.Error()
		return nil, fmt.Errorf("failed to open file '%s': %s", path, strings.ToUpper(msg[:1])+msg[1:])
	}
	return b, err
}

func parseDuration(s string) (time.Duration, error) {
	if n, err := strconv.ParseFloat(s, 64); err == nil {
		if n <= 0 {
			return 0, fmt.Errorf("duration must be positive: %q", s)
		}
		return time.Duration(n * float64(time.Second)), nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid duration %q: use e.g. 5s, 500ms, 1m or a number of seconds", s)
	}
	return d, nil
}

// notifyAttached prints what bpftrace prints on standard error once its
// probes are attached and its child runs, when its test engine asks
// with __BPFTRACE_NOTIFY_PROBES_ATTACHED: bpftrace's own test suite
// (internal/btsuite) starts the test's clock and its AFTER command then.
func notifyAttached(req *broker.Request) {
	if os.Getenv("__BPFTRACE_NOTIFY_PROBES_ATTACHED") == "" {
		return
	}
	stderr := req.Stderr
	req.Attached = func(*broker.Admission) { fmt.Fprintln(stderr, "__BPFTRACE_NOTIFY_PROBES_ATTACHED") }
}
