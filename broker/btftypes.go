package broker

import (
	"errors"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
)

// KernelTypes answers the compiler's questions about struct types from
// the running kernel's BTF, read once (btftp).
type KernelTypes struct{}

func (KernelTypes) Type(kind, name string) (btf.Type, error) { return btftp.Type(kind, name) }

// replayTypes refuses struct access in a replay: a recording holds each
// event's context and the strings it names, not the kernel memory a
// struct pointer reaches (and the recording host's layouts are not this
// host's).
type replayTypes struct{}

var errReplayStruct = errors.New("struct access through BTF cannot be replayed: a recording holds the events' contexts, not the kernel memory their pointers reach")

func (replayTypes) Type(kind, name string) (btf.Type, error) { return nil, errReplayStruct }
