// Command opensnoop is a tracebroker generator plugin that prints one line
// per file opened: pid, comm, fd, errno and path. The broker starts it and
// talks to it over the plugin protocol; the generator itself is package
// internal/opensnoop, where it is tested without that protocol.
package main

import (
	"github.com/tracebroker/tracebroker/plugins/examples/internal/opensnoop"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func main() { sdk.Serve(opensnoop.Generator{}) }
