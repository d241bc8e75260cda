// Package plugins is the host side of tracebroker's generator plugins:
// it finds them in a directory, checks each binary's signed manifest
// (NAME.sig, role generator) before it may run, starts it with
// hashicorp/go-plugin over gRPC, asks it to describe itself and to
// generate a program, and stops it again.
//
// The pieces:
//   - plugins/sdk is what a plugin's author imports (Generator, sdk.Serve),
//     a Go module of its own (plugins/sdk/go.mod) that needs only
//     go-plugin, gRPC, protobuf and hclog; in it,
//   - plugins/sdk/proto is the versioned gRPC protocol (generator.proto),
//   - plugins/sdk/protocol is the go-plugin handshake both sides share,
//   - plugins/sdk/schema is the layout of a program's output, which the
//     broker shares with generators that return their own eBPF;
//   - plugins/examples are real generators.
//
// A plugin process lives only for one Describe or one Describe+Generate:
// it is started with a fresh go-plugin SecureConfig holding the digest
// that was just verified, so a binary replaced after verification is
// refused; it gets SIGKILL when the thread that started it (and so the
// host) dies; and it is killed and reaped before Generate or List
// returns, on every path.
package plugins
