// Command good is a well-behaved test generator: its script starts with a
// comment listing the parameters it was called with.
package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type good struct{}

func (good) Describe() (sdk.Info, error) {
	return sdk.Info{
		Name: "good", Version: "1.2.3", Description: "counts opens",
		Params: []sdk.Param{
			{Name: "pid", Type: sdk.Int, Help: "only this process"},
			{Name: "comm", Type: sdk.String, Default: "bash", Help: "only this command"},
			{Name: "interval", Type: sdk.Duration, Default: "5s"},
			{Name: "verbose", Type: sdk.Bool},
		},
	}, nil
}

func (good) Generate(ctx context.Context, p sdk.Params) (sdk.Output, error) {
	var kv []string
	for k, v := range p {
		kv = append(kv, k+"="+v)
	}
	slices.Sort(kv)
	filter := ""
	if pid, ok, err := p.Int("pid"); err != nil {
		return sdk.Output{}, err
	} else if ok {
		filter = fmt.Sprintf("/pid == %d/ ", pid)
	}
	return sdk.Output{Script: "// " + strings.Join(kv, " ") + "\ntracepoint:syscalls:sys_enter_openat " + filter + "{ @[comm] = count(); }\n"}, nil
}

func main() {
	mark.Started()
	sdk.Serve(good{})
}
