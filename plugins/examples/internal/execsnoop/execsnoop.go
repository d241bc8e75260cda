// Package execsnoop is the execsnoop generator: one line per program
// executed, with the pid and comm of the process executing it and its
// command line, as bpftrace's execsnoop prints them.
package execsnoop

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracebroker/tracebroker/plugins/examples/internal/script"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// Generator generates execsnoop scripts.
type Generator struct{}

// Describe implements sdk.Generator.
func (Generator) Describe() (sdk.Info, error) {
	return sdk.Info{
		Name:        "execsnoop",
		Version:     "1.0.0",
		Description: "trace execve() and execveat() calls: pid, comm and command line",
		Params: []sdk.Param{
			{Name: "comm", Type: sdk.String, Help: "only execs by processes with this name (at most 15 bytes), before the exec"},
			{Name: "args", Type: sdk.Bool, Default: "true", Help: "print the arguments; false prints the executed file's path"},
		},
	}, nil
}

// Generate implements sdk.Generator. The probes are on entry, where
// comm is still the caller's: a filter on the new program's name would
// need the exit, by which time argv is gone. The ppid column of other
// execsnoops is left out: the language has no curtask to find it.
func (Generator) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	pred := ""
	if comm, ok := p.String("comm"); ok {
		if err := script.CheckString("comm", comm, script.CommLen); err != nil {
			return sdk.Output{}, err
		}
		pred = "/comm == " + script.Quote(comm) + "/\n"
	}
	// The host fills in the default; a direct caller gets it here too.
	args := true
	if _, ok := p.String("args"); ok {
		var err error
		if args, err = p.Bool("args"); err != nil {
			return sdk.Output{}, err
		}
	}

	// join() prints argv as a line of its own (at most 16 arguments of
	// 1024 bytes), so the columns before it are printed without a
	// newline: both go through the same buffer in order.
	header, body := "ARGS", "\tprintf(\"%-6d %-16s \", pid, comm);\n\tjoin(args->argv);\n"
	if !args {
		header, body = "PATH", "\tprintf(\"%-6d %-16s %s\\n\", pid, comm, str(args->filename));\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, `BEGIN
{
	printf("%%-6s %%-16s %%s\n", "PID", "COMM", "%s");
}

tracepoint:syscalls:sys_enter_execve,
tracepoint:syscalls:sys_enter_execveat
%s{
%s}
`, header, pred, body)
	return sdk.Output{Script: b.String()}, nil
}
