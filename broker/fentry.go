package broker

import (
	"fmt"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/program"
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

// refuseInterpFentry refuses, before anything is loaded, a program with
// kfunc/kretfunc probes in interpreter mode. A static collector serves
// each probe kind with one signed program attached many times, its
// probe told apart by the attach cookie; an fentry program's target is
// fixed when it is loaded, so a static fentry collector would need one
// load per function and the probe's index in its data (see the README's
// design note), which is not built yet.
func refuseInterpFentry(prog *program.Program) error {
	return refuseCollectorFentry(prog, "interpreter mode", "run it in JIT mode (--mode jit)")
}

// refuseCollectorFentry is refuseInterpFentry for whatever runs on the
// static collectors (interpreter mode, record).
func refuseCollectorFentry(prog *program.Program, what, instead string) error {
	for _, p := range prog.Probes {
		if p.Kind == program.Fentry || p.Kind == program.Fexit {
			return fmt.Errorf("%s: %s has no collector for kfunc/kretfunc (fentry/fexit) probes yet: %s", p.Name, what, instead)
		}
	}
	return nil
}
