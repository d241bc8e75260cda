module github.com/tracebroker/tracebroker

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/in-toto/attestation v1.2.0
	github.com/secure-systems-lab/go-securesystemslib v0.11.1
	github.com/spf13/cobra v1.10.2
	google.golang.org/protobuf v1.36.11
)

require golang.org/x/crypto v0.55.0 // indirect

require (
	github.com/inconshreveable/mousetrap v1.1.0 // indirect
	github.com/spf13/pflag v1.0.10
	golang.org/x/sys v0.47.0
)
