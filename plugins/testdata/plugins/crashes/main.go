// Command crashes is a test generator that dies during Generate: a panic
// in a goroutine of its own, which no recover in the SDK can catch.
package main

import (
	"context"
	"time"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type crashes struct{}

func (crashes) Describe() (sdk.Info, error) { return sdk.Info{Name: "crashes", Version: "0"}, nil }

func (crashes) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	go func() { panic("crashed in a goroutine") }()
	time.Sleep(time.Minute)
	return sdk.Output{}, nil
}

func main() {
	mark.Started()
	sdk.Serve(crashes{})
}
