// Command uprobes is a test generator whose script counts the calls of
// the functions of the file its path parameter names that its pattern
// parameter matches: a plugin author's way to ask for a wildcard, and
// with times, for the same wildcard written that many times, which the
// broker must bound and judge as it would the script of a token holder.
package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type uprobes struct{}

func (uprobes) Describe() (sdk.Info, error) {
	return sdk.Info{Name: "uprobes", Version: "0", Params: []sdk.Param{
		{Name: "path", Type: sdk.String, Required: true, Help: "the file"},
		{Name: "pattern", Type: sdk.String, Default: "*", Help: "its functions"},
		{Name: "times", Type: sdk.Int, Default: "1", Help: "how many times the wildcard is written"},
	}}, nil
}

func (uprobes) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	path, _ := p.String("path")
	pattern, _ := p.String("pattern")
	times, _, err := p.Int("times")
	if err != nil {
		return sdk.Output{}, err
	}
	specs := make([]string, max(times, 1))
	for i := range specs {
		specs[i] = fmt.Sprintf("uprobe:%s:%s", path, pattern)
	}
	return sdk.Output{Script: strings.Join(specs, ", ") + " { @[probe] = count(); }\n"}, nil
}

func main() {
	mark.Started()
	sdk.Serve(uprobes{})
}
