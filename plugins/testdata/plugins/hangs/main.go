// Command hangs is a test generator whose Generate never returns, and
// does not look at its context either.
package main

import (
	"context"
	"time"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type hangs struct{}

func (hangs) Describe() (sdk.Info, error) { return sdk.Info{Name: "hangs", Version: "0"}, nil }

func (hangs) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	mark.Note("generating")
	for {
		time.Sleep(time.Hour)
	}
}

func main() {
	mark.Started()
	sdk.Serve(hangs{})
}
