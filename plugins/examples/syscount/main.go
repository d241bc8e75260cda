// Command syscount is a tracebroker generator plugin that counts system
// calls by number. The broker starts it and talks to it over the plugin
// protocol; the generator itself is package internal/syscount, where it is
// tested without that protocol.
package main

import (
	"github.com/tracebroker/tracebroker/plugins/examples/internal/syscount"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

func main() { sdk.Serve(syscount.Generator{}) }
