package broker

import (
	"errors"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// KernelTypes answers the compiler's questions about struct types from
// the running kernel's BTF, read once (btftp).
type KernelTypes struct{}

func (KernelTypes) Type(kind, name string) (btf.Type, error) { return btftp.Type(kind, name) }

// noRecordedTypes refuses struct access in a replay over a recording
// that holds no struct types: the recording host's layouts are not
// necessarily this host's, and its records hold no reads through them.
type noRecordedTypes struct{}

var errReplayStruct = errors.New("the recording holds no struct types: its script read no struct through BTF")

func (noRecordedTypes) Type(kind, name string) (btf.Type, error) { return nil, errReplayStruct }

// replayTypes are the struct types a recording holds (the ones its
// script read through), for scripts replayed over it.
func replayTypes(h *recording.Header) compile.Types {
	if t := h.StructTypes(); t != nil {
		return t
	}
	return noRecordedTypes{}
}

// EnumValue answers the compiler's look-up of a kernel enum constant.
func (KernelTypes) EnumValue(name string) (int64, bool) {
	v, ok, err := btftp.EnumValue(name)
	return v, ok && err == nil
}
