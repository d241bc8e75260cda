// Command execsnoop is a tracebroker generator plugin that prints one line
// per program executed: pid, comm and command line. The broker starts it
// and talks to it over the plugin protocol; the generator itself is
// package internal/execsnoop, where it is tested without that protocol.
package main

import (
	"github.com/tracebroker/tracebroker/plugins/examples/internal/execsnoop"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func main() { sdk.Serve(execsnoop.Generator{}) }
