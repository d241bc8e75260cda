package bpf

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/features"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
)

// Supported reports why this process cannot trace, or nil when it can:
// it needs root (or CAP_BPF+CAP_PERFMON), the bpf syscall with ring
// buffers, and tracefs.
func Supported() error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	if err := features.HaveMapType(ebpf.RingBuf); err != nil {
		return fmt.Errorf("BPF ring buffers: %w", err)
	}
	if err := features.HaveProgramType(ebpf.TracePoint); err != nil {
		return fmt.Errorf("BPF tracepoint programs: %w", err)
	}
	if _, err := tracefs.Root(); err != nil {
		return err
	}
	return nil
}
