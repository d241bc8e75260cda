// Package syscount is the syscount generator: system calls counted by
// number, printed at the end or every interval, optionally only the most
// frequent.
package syscount

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/plugins/examples/internal/script"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// Generator generates syscount scripts.
type Generator struct{}

// Describe implements sdk.Generator.
func (Generator) Describe() (sdk.Info, error) {
	return sdk.Info{
		Name:        "syscount",
		Version:     "1.0.0",
		Description: "count system calls by number",
		Params: []sdk.Param{
			{Name: "pid", Type: sdk.Int, Help: "only this process; -1: the command started with -c"},
			{Name: "interval", Type: sdk.Duration, Help: "print and clear the counts every interval (whole milliseconds)"},
			{Name: "top", Type: sdk.Int, Help: "print only the N most frequent system calls"},
		},
	}, nil
}

// Generate implements sdk.Generator. Calls are keyed by number, as
// bpftrace's syscount keys them: the language has no table of names.
// pid -1 stands for the -c command, whose pid is known only once it has
// started: the script says cpid, so it compiles only with -c.
func (Generator) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	pred := ""
	if pid, ok, err := p.Int("pid"); err != nil {
		return sdk.Output{}, err
	} else if ok && pid == -1 {
		pred = "/pid == cpid/\n"
	} else if ok {
		if err := script.CheckPID("pid", pid); err != nil {
			return sdk.Output{}, fmt.Errorf("%w, or -1 for the -c command", err)
		}
		pred = fmt.Sprintf("/pid == %d/\n", pid)
	}
	show := "print(@syscalls);"
	if top, ok, err := p.Int("top"); err != nil {
		return sdk.Output{}, err
	} else if ok {
		// print()'s top of 0 means all: a 0 here is a mistake.
		if top <= 0 {
			return sdk.Output{}, fmt.Errorf("parameter top: %d is not a positive count", top)
		}
		show = fmt.Sprintf("print(@syscalls, %d);", top)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "tracepoint:raw_syscalls:sys_enter\n%s{\n\t@syscalls[args->id] = count();\n}\n", pred)
	if d, ok, err := p.Duration("interval"); err != nil {
		return sdk.Output{}, err
	} else if ok {
		// interval:ms is the finest period the language has; rounding
		// would silently trace at another rate than asked.
		if d < time.Millisecond || d%time.Millisecond != 0 {
			return sdk.Output{}, fmt.Errorf("parameter interval: %v is not a whole number of milliseconds (at least 1ms)", d)
		}
		fmt.Fprintf(&b, "\ninterval:ms:%d\n{\n\t%s\n\tclear(@syscalls);\n}\n", d.Milliseconds(), show)
	}
	// Printing in END rather than leaving the map to the exit dump
	// applies top to the last counts as well.
	fmt.Fprintf(&b, "\nEND\n{\n\t%s\n\tclear(@syscalls);\n}\n", show)
	return sdk.Output{Script: b.String()}, nil
}
