package plugins

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/regfile"
	"github.com/tracebroker/tracebroker/plugins/sdk"
	generatorpb "github.com/tracebroker/tracebroker/plugins/sdk/proto"
	"github.com/tracebroker/tracebroker/plugins/sdk/protocol"
)

// Defaults of Host's timeouts.
const (
	DefaultStartTimeout = 10 * time.Second
	DefaultCallTimeout  = 30 * time.Second
)

// maxResponseSize bounds what the host accepts from a plugin in one
// answer: a script or a raw program is kilobytes, rarely megabytes.
const maxResponseSize = 16 << 20

// Host runs the generator plugins of one directory. The zero value of
// every field but Dir is usable: no trusted keys verify nothing (every
// plugin is refused), the timeouts default to DefaultStartTimeout and
// DefaultCallTimeout, and the logger to slog.Default().
//
// A plugin runs only if Dir/NAME.sig is a manifest for the file's
// current digest, signed for role generator by a key in Trust. It is
// then started with a fresh go-plugin SecureConfig holding that digest
// (the binary is hashed again just before it is executed, and refused if
// it changed), a minimal environment (PATH, TMPDIR, TZ, LANG, LC_ALL,
// LC_CTYPE of the host: nothing else of the host's environment), its
// go-plugin socket in a private directory of the launch, and a
// parent-death signal (SIGKILL). Its stderr, and what it writes to
// os.Stdout and os.Stderr after the handshake, go to Logger, at most
// 64 KiB per launch.
//
// A Host is safe for concurrent use: each call starts its own process.
type Host struct {
	Dir   string
	Trust *attest.Trust
	// StartTimeout bounds the time from exec to go-plugin's handshake.
	StartTimeout time.Duration
	// CallTimeout bounds each call to the plugin (Describe, Generate).
	CallTimeout time.Duration
	Logger      *slog.Logger

	// beforeStart, when set (tests), runs between verification and
	// the start of the plugin.
	beforeStart func(path string)
}

// Plugin is one plugin file and what is known about it.
type Plugin struct {
	Name string // the file's name, what `--gen NAME` and `gen:NAME` use
	Path string
	// Identity is the binary's measured digest and, when its manifest
	// verified, who signed it; otherwise Verified is false and Reason
	// says why (attest.Reason*). An unverified plugin is never run.
	Identity attest.Identity
	// Info is what the plugin described itself as; nil when it was not
	// run or Describe failed.
	Info *sdk.Info
	// Err is why the plugin cannot be used: the verification's refusal
	// (an *attest.VerifyError in the chain), or the failure to start it
	// or to describe it.
	Err error
}

// Generated is what one Generate call produced.
type Generated struct {
	Plugin Plugin
	Info   sdk.Info
	// Params are the parameters the plugin was called with: the given
	// ones, checked against Info.Params, and the defaults.
	Params map[string]string
	// Output is the plugin's output as it sent it: a Script (compiled by
	// the broker like `run -e`) or a Program (see RawProgram).
	Output sdk.Output
}

func (h *Host) startTimeout() time.Duration {
	if h.StartTimeout > 0 {
		return h.StartTimeout
	}
	return DefaultStartTimeout
}

func (h *Host) callTimeout() time.Duration {
	if h.CallTimeout > 0 {
		return h.CallTimeout
	}
	return DefaultCallTimeout
}

func (h *Host) logger() *slog.Logger {
	if h.Logger != nil {
		return h.Logger
	}
	return slog.Default()
}

// List returns every plugin in Dir, sorted by name: each executable
// regular file (symbolic links followed) whose name does not end in .sig
// and does not start with a dot. Each is verified; the ones that verify
// are started to describe themselves (Info, or Err). The others have
// Identity.Reason and Err saying why, and are not run. The error is for
// a Dir that cannot be read.
func (h *Host) List() ([]Plugin, error) {
	names, err := h.executables()
	if err != nil {
		return nil, err
	}
	out := make([]Plugin, 0, len(names))
	for _, name := range names {
		p, err := h.verify(name)
		if err == nil {
			var info sdk.Info
			err = h.run(context.Background(), &p, func(ctx context.Context, c *call) error {
				var err error
				info, err = c.describe(ctx)
				return err
			})
			if err == nil {
				p.Info = &info
			}
		}
		p.Err = err
		out = append(out, p)
	}
	return out, nil
}

// executables lists the candidate plugin files of Dir.
func (h *Host) executables() ([]string, error) {
	if h.Dir == "" {
		return nil, errors.New("plugins: no plugin directory")
	}
	entries, err := os.ReadDir(h.Dir)
	if err != nil {
		return nil, fmt.Errorf("plugins: %w", err)
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, attest.SigSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		fi, err := os.Stat(filepath.Join(h.Dir, name))
		if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
			continue
		}
		names = append(names, name)
	}
	sort.Strings(names)
	return names, nil
}

// verify checks Dir/name's manifest. On refusal the Plugin has the
// Identity with the reason, and the error is the refusal.
func (h *Host) verify(name string) (Plugin, error) {
	p := Plugin{Name: name, Path: filepath.Join(h.Dir, name)}
	id, err := attest.VerifyArtifact(p.Path, "", h.Trust, attest.RoleGenerator)
	p.Identity = id
	if err != nil {
		return p, fmt.Errorf("plugin %s: refused, not started: %w", name, err)
	}
	return p, nil
}

// Generate runs plugin name of Dir: it verifies the binary's manifest
// (refusing, without running anything, a binary that does not verify),
// starts it, asks it to describe itself, checks params against the
// declared parameters (unknown names, types, required ones) and fills in
// the defaults, and asks it to generate. The plugin is stopped before
// Generate returns, whatever happened.
//
// A script comes back as the plugin wrote it: compiling it is the
// broker's job. A raw program is converted by Generated.RawProgram.
func (h *Host) Generate(ctx context.Context, name string, params map[string]string) (*Generated, error) {
	if err := h.checkName(name); err != nil {
		return nil, err
	}
	p, err := h.verify(name)
	if err != nil {
		return nil, err
	}
	g := &Generated{}
	err = h.run(ctx, &p, func(ctx context.Context, c *call) error {
		info, err := c.describe(ctx)
		if err != nil {
			return err
		}
		g.Info = info
		if g.Params, err = checkParams(name, info, params); err != nil {
			return err
		}
		g.Output, err = c.generate(ctx, g.Params)
		return err
	})
	if err != nil {
		return nil, err
	}
	p.Info = &g.Info
	g.Plugin = p
	return g, nil
}

// checkName refuses a name that is not a plugin file of Dir.
func (h *Host) checkName(name string) error {
	if h.Dir == "" {
		return errors.New("plugins: no plugin directory")
	}
	if name == "" || name == "." || name == ".." || strings.ContainsRune(name, '/') || strings.ContainsRune(name, 0) ||
		strings.HasPrefix(name, ".") || strings.HasSuffix(name, attest.SigSuffix) {
		return fmt.Errorf("plugin %q: not a plugin name (a file name in %s)", name, h.Dir)
	}
	fi, err := os.Stat(filepath.Join(h.Dir, name))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		msg := fmt.Sprintf("no generator plugin %q in %s", name, h.Dir)
		if names, err := h.executables(); err == nil {
			if len(names) == 0 {
				msg += " (it has none)"
			} else {
				msg += " (plugins: " + strings.Join(names, ", ") + ")"
			}
		}
		return errors.New(msg)
	case err != nil:
		return fmt.Errorf("plugin %s: %w", name, err)
	case !fi.Mode().IsRegular():
		return fmt.Errorf("plugin %s: %s is not a regular file", name, filepath.Join(h.Dir, name))
	case fi.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("plugin %s: %s is not executable", name, filepath.Join(h.Dir, name))
	}
	return nil
}

// call is one running plugin.
type call struct {
	name    string
	gen     generatorpb.GeneratorClient
	timeout time.Duration
	log     *pluginLog
}

// run starts the verified plugin p, calls fn with it and stops it. It
// always returns with the plugin process killed and reaped.
//
// The parent-death signal is delivered when the *thread* that forked the
// child exits, not the process (prctl(2) PR_SET_PDEATHSIG). The Go
// runtime ends a thread when a goroutine exits while locked to it, and
// otherwise runs goroutines on any thread, so the plugin is started from
// a goroutine locked to its thread until the plugin has been reaped:
// that thread cannot end while the plugin lives, and the signal fires
// only when the host process itself dies (SIGKILL included).
func (h *Host) run(ctx context.Context, p *Plugin, fn func(context.Context, *call) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("plugin %s: not started: %w", p.Name, err)
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread() // last: after the plugin is reaped
		errc <- h.runLocked(ctx, p, fn)
	}()
	return <-errc
}

func (h *Host) runLocked(ctx context.Context, p *Plugin, fn func(context.Context, *call) error) (err error) {
	sum, err := hex.DecodeString(p.Identity.Digest)
	if err != nil || len(sum) != sha256.Size || !p.Identity.Verified {
		return fmt.Errorf("plugin %s: not verified, not started", p.Name)
	}
	// The plugin's socket goes in a directory of this launch's own
	// (0700), removed afterwards even if the plugin could not remove it.
	sockDir, err := os.MkdirTemp("", "tracebroker-plugin-")
	if err != nil {
		return fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	defer os.RemoveAll(sockDir)
	if h.beforeStart != nil {
		h.beforeStart(p.Path)
	}
	// go-plugin hashes Cmd.Path (SecureConfig) and then executes
	// Cmd.Path: two lookups of one name, between which whoever can
	// write Dir could rename another binary over the verified one. Both
	// go through this one open file instead, by its /proc/self/fd name
	// (the forked child still has the descriptor when it executes; it is
	// close-on-exec, so the plugin does not keep it), so the file hashed
	// is the file executed. A #! script cannot be run this way; a
	// generator is a binary.
	exe, err := openExecutable(p.Path)
	if err != nil {
		return fmt.Errorf("plugin %s: not started: %w", p.Name, err)
	}
	defer exe.Close() // after client.Kill: go-plugin reads the path until then
	cmd := exec.Command(fmt.Sprintf("/proc/self/fd/%d", exe.Fd()))
	cmd.Args[0] = p.Path
	// go-plugin names the plugin's stderr logger after Cmd.Path.
	out := newPluginLog(h.logger(), p.Name, filepath.Base(cmd.Path))
	cmd.Env = append(pluginEnv(), plugin.EnvUnixSocketDir+"="+sockDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  protocol.Handshake,
		Plugins:          protocol.PluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     &plugin.SecureConfig{Checksum: sum, Hash: sha256.New()},
		StartTimeout:     h.startTimeout(),
		Managed:          false,
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		SkipHostEnv:      true,
		Logger:           out.hclog(),
		SyncStdout:       out.writer("stdout"),
		SyncStderr:       out.writer("stderr"),
		// Longer stderr lines are logged in pieces.
		PluginLogBufferSize: maxLineLen,
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxResponseSize)),
		},
	})
	defer func() {
		// A panic of the host's own (fn) must not leave the plugin
		// running either; it comes back as an error.
		if r := recover(); r != nil {
			client.Kill()
			err = fmt.Errorf("plugin %s: host panic: %v", p.Name, r)
		}
		out.close()
	}()
	err = h.start(ctx, client, p, out, fn)
	// Kill waits for the process and go-plugin's readers of its output,
	// so the stderr tail is complete for the error message.
	client.Kill()
	if err != nil {
		return out.decorate(err)
	}
	return nil
}

func (h *Host) start(ctx context.Context, client *plugin.Client, p *Plugin, out *pluginLog, fn func(context.Context, *call) error) error {
	rpc, err := client.Client()
	if err != nil {
		return startError(p.Name, h.startTimeout(), err)
	}
	raw, err := rpc.Dispense(protocol.PluginName)
	if err != nil {
		return fmt.Errorf("plugin %s: %w", p.Name, err)
	}
	gen, ok := raw.(generatorpb.GeneratorClient)
	if !ok {
		return fmt.Errorf("plugin %s: dispensed %T, not a generator client", p.Name, raw)
	}
	if pid := reattachPid(client); pid != 0 {
		h.logger().Debug("plugin started", "plugin", p.Name, "pid", pid)
	}
	return fn(ctx, &call{name: p.Name, gen: gen, timeout: h.callTimeout(), log: out})
}

func reattachPid(c *plugin.Client) int {
	if rc := c.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// openExecutable opens the plugin file to be executed through its
// descriptor, refusing a named pipe renamed over it without blocking.
func openExecutable(path string) (*os.File, error) {
	f, _, err := regfile.Open(path)
	return f, err
}

// envKept are the host's environment variables a plugin gets.
var envKept = []string{"PATH", "TMPDIR", "TZ", "LANG", "LC_ALL", "LC_CTYPE"}

func pluginEnv() []string {
	env := []string{}
	for _, k := range envKept {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// noiseLine bounds the part of a plugin's stray output quoted in errors.
const noiseLine = 200

// startError explains why go-plugin could not start the plugin. Its
// errors are plain text, so they are recognized by their words.
func startError(name string, timeout time.Duration, err error) error {
	msg := err.Error()
	const unrecognized = "Unrecognized remote plugin message: "
	switch {
	case errors.Is(err, plugin.ErrChecksumsDoNotMatch):
		return fmt.Errorf("plugin %s: refused at start, not run: the binary's sha256 is no longer the verified digest (checksum mismatch: replaced after verification?)", name)
	case strings.HasPrefix(msg, unrecognized):
		line, _, _ := strings.Cut(msg[len(unrecognized):], "\n")
		if line == "" {
			return crashed{fmt.Errorf("plugin %s exited before the go-plugin handshake, without writing anything to stdout (is it a generator built with sdk.Serve?)", name)}
		}
		return fmt.Errorf("plugin %s wrote to stdout something that is not the go-plugin handshake (a generator must not print to stdout before sdk.Serve): %q", name, bound(line, noiseLine))
	case strings.HasPrefix(msg, "error parsing core protocol version"),
		strings.HasPrefix(msg, "Error parsing protocol version"),
		strings.HasPrefix(msg, "incompatible core API version"):
		return fmt.Errorf("plugin %s wrote to stdout something that is not the go-plugin handshake (a generator must not print to stdout before sdk.Serve): %s", name, bound(firstLine(msg), noiseLine))
	case strings.HasPrefix(msg, "incompatible API version with plugin"):
		return fmt.Errorf("plugin %s speaks another version of the generator protocol than this host (%d): rebuild it against this tracebroker's plugins/sdk (%s)", name, protocol.ProtocolVersion, msg)
	case strings.HasPrefix(msg, "unsupported plugin protocol"):
		return fmt.Errorf("plugin %s does not speak gRPC: generator plugins are served by sdk.Serve (%s)", name, msg)
	case strings.HasPrefix(msg, "timeout while waiting for plugin to start"):
		return crashed{fmt.Errorf("plugin %s did not complete the go-plugin handshake within %s", name, timeout)}
	case strings.HasPrefix(msg, "plugin exited before we could connect"):
		return crashed{fmt.Errorf("plugin %s exited before the go-plugin handshake", name)}
	}
	return fmt.Errorf("plugin %s: start: %w", name, err)
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// bound shortens s to at most n bytes (plus an ellipsis).
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "…"
}

// crashed marks errors after which the plugin's stderr tail helps.
type crashed struct{ error }

func (e crashed) Unwrap() error { return e.error }

// describe calls Describe and checks what came back.
func (c *call) describe(ctx context.Context) (sdk.Info, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.gen.Describe(cctx, &generatorpb.Empty{})
	if err != nil {
		return sdk.Info{}, c.callError(ctx, "Describe", err)
	}
	info := infoFromProto(resp)
	if err := checkInfo(c.name, info); err != nil {
		return sdk.Info{}, err
	}
	return info, nil
}

// generate calls Generate with params (already checked and completed).
func (c *call) generate(ctx context.Context, params map[string]string) (sdk.Output, error) {
	cctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.gen.Generate(cctx, &generatorpb.GenerateRequest{Params: params})
	if err != nil {
		return sdk.Output{}, c.callError(ctx, "Generate", err)
	}
	return outputFromProto(c.name, resp)
}

// callError explains a failed call; ctx is the caller's (without the
// call's timeout), to tell the two deadlines apart.
func (c *call) callError(ctx context.Context, method string, err error) error {
	if ctxErr := callerDone(ctx); ctxErr != nil {
		return fmt.Errorf("plugin %s: %s: %w", c.name, method, ctxErr)
	}
	st, ok := status.FromError(err)
	if !ok {
		return fmt.Errorf("plugin %s: %s: %w", c.name, method, err)
	}
	msg := bound(st.Message(), 4096)
	switch st.Code() {
	case codes.DeadlineExceeded:
		return fmt.Errorf("plugin %s: %s did not return within %s (timed out; the plugin was killed)", c.name, method, c.timeout)
	case codes.Internal:
		if strings.HasPrefix(msg, sdkPanicPrefix) {
			c.logStack(st)
			return panicked(c.name, method, msg)
		}
		return fmt.Errorf("plugin %s: %s", c.name, msg)
	case codes.Unknown, codes.InvalidArgument:
		// The generator's error, a recovered panic ("generator panicked
		// in Generate: ..."), or an output the SDK could not send.
		return fmt.Errorf("plugin %s: %s", c.name, msg)
	case codes.Unavailable, codes.Canceled:
		return crashed{fmt.Errorf("plugin %s: exited or closed the connection during %s (%s)", c.name, method, msg)}
	case codes.Unimplemented:
		return fmt.Errorf("plugin %s does not implement %s: rebuild it against this tracebroker's plugins/sdk (%s)", c.name, method, msg)
	case codes.ResourceExhausted:
		return fmt.Errorf("plugin %s: %s: answer too large (at most %d bytes): %s", c.name, method, maxResponseSize, msg)
	}
	return fmt.Errorf("plugin %s: %s: %s: %s", c.name, method, st.Code(), msg)
}

// callerDone is ctx.Err(), or DeadlineExceeded once ctx's deadline has
// passed: gRPC notices a deadline by its own clock, and can fail a call
// before the context's timer has marked the context done.
func callerDone(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
		return context.DeadlineExceeded
	}
	return nil
}

func infoFromProto(i *generatorpb.Info) sdk.Info {
	out := sdk.Info{Name: i.GetName(), Version: i.GetVersion(), Description: i.GetDescription(), Fixed: i.GetFixed()}
	for _, p := range i.GetParams() {
		out.Params = append(out.Params, sdk.Param{
			Name: p.GetName(), Type: sdk.ParamType(p.GetType()), Default: p.GetDefault(),
			Help: p.GetHelp(), Required: p.GetRequired(),
		})
	}
	return out
}

func outputFromProto(name string, r *generatorpb.GenerateResponse) (sdk.Output, error) {
	switch o := r.GetOutput().(type) {
	case *generatorpb.GenerateResponse_Script:
		if o.Script == "" {
			return sdk.Output{}, fmt.Errorf("plugin %s: generated an empty script", name)
		}
		return sdk.Output{Script: o.Script}, nil
	case *generatorpb.GenerateResponse_Program:
		if o.Program == nil {
			break
		}
		p := &sdk.Program{Schema: o.Program.GetSchemaJson()}
		for _, pr := range o.Program.GetProbes() {
			p.Probes = append(p.Probes, sdk.Probe{
				Kind: pr.GetKind(), Name: pr.GetName(), Category: pr.GetCategory(), Event: pr.GetEvent(),
				PeriodNs: pr.GetPeriodNs(), Path: pr.GetPath(), Offset: pr.GetOffset(),
				Insns: pr.GetInsns(), MapRefs: pr.GetMapRefs(),
			})
		}
		for _, m := range o.Program.GetMaps() {
			p.Maps = append(p.Maps, sdk.Map{
				Name: m.GetName(), Type: m.GetType(), KeySize: m.GetKeySize(),
				ValueSize: m.GetValueSize(), MaxEntries: m.GetMaxEntries(),
			})
		}
		return sdk.Output{Program: p}, nil
	}
	return sdk.Output{}, fmt.Errorf("plugin %s: generated neither a script nor a program", name)
}

// knownParams lists the declared parameter names for messages.
func knownParams(info sdk.Info) string {
	if len(info.Params) == 0 {
		return "it takes no parameters"
	}
	names := make([]string, len(info.Params))
	for i, p := range info.Params {
		names[i] = p.Name
	}
	slices.Sort(names)
	return "its parameters: " + strings.Join(names, ", ")
}
