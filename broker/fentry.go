package broker

import (
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// KernelFuncs answers the compiler's questions about kfunc/kretfunc
// (fentry/fexit) probes from the running kernel: whether it loads such
// programs at all, its traceable functions, their BTF signatures.
type KernelFuncs struct{}

func (KernelFuncs) Available() error { return bpf.HaveFentry() }

func (KernelFuncs) Match(module, fn string) ([][2]string, error) {
	funcs, err := btftp.Funcs(module, fn)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, len(funcs))
	for i, f := range funcs {
		out[i] = [2]string{f.Module, f.Name}
	}
	return out, nil
}

func (KernelFuncs) Proto(module, fn string) ([]compile.Field, *compile.Field, error) {
	p, err := btftp.FuncProto(module, fn)
	if err != nil {
		return nil, nil, err
	}
	args := make([]compile.Field, len(p.Args))
	for i, a := range p.Args {
		args[i] = btfArgField(a)
	}
	var ret *compile.Field
	if p.Ret != nil {
		r := btfArgField(*p.Ret)
		ret = &r
	}
	return args, ret, nil
}
