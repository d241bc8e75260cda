package sdk

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	generatorpb "github.com/tracebroker/tracebroker/plugins/sdk/proto"
	"github.com/tracebroker/tracebroker/plugins/sdk/protocol"
)

// Serve runs g as a generator plugin: it answers the host's Describe and
// Generate calls over go-plugin's gRPC transport until the host is done
// with it, then returns (main should simply return too). It is all a
// plugin's main does.
//
// Nothing may be written to standard output before Serve: the host reads
// go-plugin's handshake from the plugin's first line of output and
// refuses a plugin whose first line is anything else. Once Serve runs,
// os.Stdout and os.Stderr are forwarded to the host's log.
//
// A panic in Describe or Generate is recovered: the host gets an error
// naming the panic and where it happened, and the stack goes to the
// host's log. A panic in a goroutine of the generator's own still ends
// the process; the host reports that too.
//
// Started by hand instead of by tracebroker, the binary prints go-plugin's
// "This binary is a plugin" message and exits with status 1.
func Serve(g Generator) {
	if g == nil {
		fmt.Fprintln(os.Stderr, "sdk.Serve: nil Generator")
		os.Exit(1)
	}
	plugin.Serve(&plugin.ServeConfig{
		HandshakeConfig: protocol.Handshake,
		Plugins:         protocol.PluginSet(&server{g: g}),
		GRPCServer: func(opts []grpc.ServerOption) *grpc.Server {
			return grpc.NewServer(append(opts, grpc.MaxRecvMsgSize(maxRequestSize))...)
		},
		// go-plugin's own messages go to the host's log as JSON lines
		// on stderr; below Info they are noise.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:       "sdk",
			Output:     os.Stderr,
			Level:      hclog.Info,
			JSONFormat: true,
		}),
	})
}

// maxRequestSize bounds what a plugin accepts from the host: a
// GenerateRequest is a handful of parameters.
const maxRequestSize = 1 << 20

// server is the gRPC service over a Generator.
type server struct {
	generatorpb.UnimplementedGeneratorServer
	g Generator
}

func (s *server) Describe(_ context.Context, _ *generatorpb.Empty) (resp *generatorpb.Info, err error) {
	defer recoverPanic("Describe", &err)
	info, err := s.g.Describe()
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	return infoToProto(info), nil
}

func (s *server) Generate(ctx context.Context, req *generatorpb.GenerateRequest) (resp *generatorpb.GenerateResponse, err error) {
	defer recoverPanic("Generate", &err)
	p := make(Params, len(req.GetParams()))
	for k, v := range req.GetParams() {
		p[k] = v
	}
	out, err := s.g.Generate(ctx, p)
	if err != nil {
		return nil, status.Error(codes.Unknown, err.Error())
	}
	resp, err = outputToProto(out)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return resp, nil
}

// recoverPanic turns a panic in method into an INTERNAL status naming
// the panic's value and the function it happened in. The whole stack
// travels in the status too (a DebugInfo detail), for the host to log at
// debug level: written to stderr instead, it raced the host's kill of
// the plugin after the failed call and was often lost.
func recoverPanic(method string, err *error) {
	r := recover()
	if r == nil {
		return
	}
	where := panicSite()
	msg := fmt.Sprintf("generator panicked in %s: %v", method, r)
	if where != "" {
		msg += " (at " + where + ")"
	}
	st := status.New(codes.Internal, msg)
	stack := strings.Split(strings.TrimRight(string(debug.Stack()), "\n"), "\n")
	if withStack, derr := st.WithDetails(&errdetails.DebugInfo{StackEntries: stack}); derr == nil {
		st = withStack
	}
	*err = st.Err()
}

// panicSite is the first frame outside the runtime below the deferred
// call: the function that panicked.
func panicSite() string {
	pcs := make([]uintptr, 32)
	n := runtime.Callers(3, pcs) // runtime.Callers, panicSite, recoverPanic
	frames := runtime.CallersFrames(pcs[:n])
	for {
		f, more := frames.Next()
		if f.Function != "" && !strings.HasPrefix(f.Function, "runtime.") {
			return fmt.Sprintf("%s %s:%d", f.Function, f.File, f.Line)
		}
		if !more {
			return ""
		}
	}
}

func infoToProto(i Info) *generatorpb.Info {
	out := &generatorpb.Info{Name: i.Name, Version: i.Version, Description: i.Description, Fixed: i.Fixed}
	for _, p := range i.Params {
		out.Params = append(out.Params, &generatorpb.Param{
			Name: p.Name, Type: string(p.Type), Default: p.Default, Help: p.Help, Required: p.Required,
		})
	}
	return out
}

func outputToProto(o Output) (*generatorpb.GenerateResponse, error) {
	switch {
	case o.Script != "" && o.Program != nil:
		return nil, errors.New("the generator's Output has both a Script and a Program: return one")
	case o.Script != "":
		return &generatorpb.GenerateResponse{Output: &generatorpb.GenerateResponse_Script{Script: o.Script}}, nil
	case o.Program == nil:
		return nil, errors.New("the generator's Output is empty: return a Script or a Program")
	}
	p := &generatorpb.Program{SchemaJson: o.Program.Schema}
	for _, pr := range o.Program.Probes {
		p.Probes = append(p.Probes, &generatorpb.Probe{
			Kind: pr.Kind, Name: pr.Name, Category: pr.Category, Event: pr.Event,
			PeriodNs: pr.PeriodNs, Path: pr.Path, Offset: pr.Offset,
			Insns: pr.Insns, MapRefs: pr.MapRefs,
		})
	}
	for _, m := range o.Program.Maps {
		p.Maps = append(p.Maps, &generatorpb.Map{
			Name: m.Name, Type: m.Type, KeySize: m.KeySize, ValueSize: m.ValueSize, MaxEntries: m.MaxEntries,
		})
	}
	return &generatorpb.GenerateResponse{Output: &generatorpb.GenerateResponse_Program{Program: p}}, nil
}
