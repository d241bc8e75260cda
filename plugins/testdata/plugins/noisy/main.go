// Command noisy is a test generator that prints to stdout before
// sdk.Serve, where the host expects go-plugin's handshake.
package main

import (
	"context"
	"fmt"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type noisy struct{}

func (noisy) Describe() (sdk.Info, error) { return sdk.Info{Name: "noisy", Version: "0"}, nil }

func (noisy) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	return sdk.Output{Script: "BEGIN { exit(); }"}, nil
}

func main() {
	mark.Started()
	fmt.Println("noisy: starting up, version 0")
	sdk.Serve(noisy{})
}
