// Command panics is a test generator whose Generate panics.
package main

import (
	"context"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type panics struct{}

func (panics) Describe() (sdk.Info, error) { return sdk.Info{Name: "panics", Version: "0"}, nil }

func (panics) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	var m map[string]int
	m["boom"]++ // assignment to entry in nil map
	return sdk.Output{}, nil
}

func main() {
	mark.Started()
	sdk.Serve(panics{})
}
