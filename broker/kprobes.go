package broker

import (
	"sync"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
)

// kernelKprobes answers the compiler about the running kernel's kprobes.
// The function list is read once per compilation, when a kprobe needs it.
type kernelKprobes struct {
	once  sync.Once
	funcs []kprobe.Func
	err   error
}

func (k *kernelKprobes) Available() error { return kprobe.Supported() }

func (k *kernelKprobes) Match(module, pattern string) ([]string, error) {
	k.once.Do(func() { k.funcs, k.err = kprobe.Functions() })
	if k.err != nil {
		return nil, k.err
	}
	return kprobe.Match(k.funcs, module, pattern)
}

func (k *kernelKprobes) Size(fn string) (uint64, bool) { return kprobe.Size(fn) }

func (k *kernelKprobes) Multi() bool { return kprobe.HaveMulti() }
