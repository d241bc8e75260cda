// Package generatorpb is the generated Go code of generator.proto, the
// protocol between tracebroker and its generator plugins (package
// tracebroker.generator.v1). Plugin authors never import it: they use
// plugins/sdk. The generated files are committed, so building needs no
// protoc; regenerate them after editing generator.proto with `go generate`
// (protoc 3.21, protoc-gen-go v1.36.12, protoc-gen-go-grpc v1.6.2 on PATH).
package generatorpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative generator.proto
