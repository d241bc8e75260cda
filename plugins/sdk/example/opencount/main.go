// Command opencount is a tracebroker generator plugin: it counts openat()
// calls per process name, for the paths under a prefix. It is the
// README's template of a plugin built in a module of its own.
package main

import (
	"context"
	"fmt"
	"strings"
	"unicode"

	"github.com/tracebroker/tracebroker/plugins/sdk"
)

type opencount struct{}

func (opencount) Describe() (sdk.Info, error) {
	return sdk.Info{
		Name:        "opencount", // the binary's file name: --gen opencount
		Version:     "1.0.0",
		Description: "count openat() calls per process name, for paths under a prefix",
		Params: []sdk.Param{
			{Name: "prefix", Type: sdk.String, Required: true, Help: "count only paths that start with this prefix"},
		},
	}, nil
}

func (opencount) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	prefix, _ := p.String("prefix") // required: the host has checked it is there
	// It goes into a string literal of the script: refuse what could
	// end the literal, rather than escape it.
	if prefix == "" || len(prefix) > 63 || strings.ContainsAny(prefix, `"\`) || strings.ContainsFunc(prefix, unicode.IsControl) {
		return sdk.Output{}, fmt.Errorf("prefix %q: 1 to 63 bytes, without quotes, backslashes or control characters", prefix)
	}
	return sdk.Output{Script: fmt.Sprintf(`tracepoint:syscalls:sys_enter_openat
/strncmp(str(args->filename), "%s", %d) == 0/
{
	@[comm] = count();
}
`, prefix, len(prefix))}, nil
}

func main() { sdk.Serve(opencount{}) }
