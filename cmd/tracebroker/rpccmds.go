package main

import (
	"os"
	"path/filepath"
)

// The commands that speak RPC: the daemon and its clients (gRPC) and
// the generator plugins (go-plugin, gRPC too). Their packages' start-up
// is most of a command's: linked in, they take the one-liner's peak RSS
// from 9.6 to 17.7 MiB, gRPC and protobuf alone 4.3 MiB of it. So the
// tracebroker that make builds has none of them (-tags norpc) and hands
// them to tracebroker-rpc, this same source built whole, which it finds
// beside itself (norpc.go). Built without the tag, as go install does,
// tracebroker is whole and needs nothing beside it.

// rpcName is the whole build's file name, beside the lean one.
const rpcName = "tracebroker-rpc"

// rpcShort is each RPC command's line of help: both builds list them.
var rpcShort = map[string]string{
	"serve":    "Run the broker daemon: traces for token holders, without root",
	"trace":    "Run a trace through the broker daemon, with a token instead of root",
	"sessions": "List or stop the daemon's sessions (root on the daemon's socket)",
	"plugins":  "Generator plugins: signed programs that generate traces",
}

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/tracebroker/broker.sock"

// serveConfigName is the daemon's config file in the state directory:
// flag values by flag name, for the flags not given on the command line.
const serveConfigName = "broker.json"

// otherBuilds are the broker's builds beside this executable, itself
// left out: the kernel gate makes them owners too, for the lean build
// hands the daemon, which drains the gate's refusals, to tracebroker-rpc.
func otherBuilds() ([]string, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	me, err := os.Stat(self)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, name := range []string{"tracebroker", rpcName} {
		p := filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(p); err == nil && !os.SameFile(fi, me) {
			out = append(out, p)
		}
	}
	return out, nil
}
