// Package brokerpb is the generated Go code of broker.proto, the daemon's
// API (package tracebroker.broker.v1). The generated files are committed,
// so building needs no protoc; regenerate them after editing broker.proto
// with `go generate` (protoc 3.21, protoc-gen-go v1.36.12,
// protoc-gen-go-grpc v1.6.2 on PATH).
package brokerpb

//go:generate protoc --proto_path=. --go_out=. --go_opt=paths=source_relative --go-grpc_out=. --go-grpc_opt=paths=source_relative broker.proto
