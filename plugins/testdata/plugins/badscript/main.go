// Command badscript is a test generator whose script does not compile.
package main

import (
	"context"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

// Script is what it generates.
const Script = "tracepoint:syscalls:sys_enter_openat { @[comm] = count( }\n"

type badscript struct{}

func (badscript) Describe() (sdk.Info, error) { return sdk.Info{Name: "badscript", Version: "0"}, nil }

func (badscript) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	return sdk.Output{Script: Script}, nil
}

func main() {
	mark.Started()
	sdk.Serve(badscript{})
}
