package bpf

import (
	"errors"
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker/program"
)

// fentry/fexit programs (kfunc/kretfunc) are tracing programs whose
// attach target, a kernel function's BTF, is fixed when they are loaded;
// attaching (BPF_RAW_TRACEPOINT_OPEN with no name) puts a trampoline on
// the function. Kernels may refuse them even to root (EPERM: lockdown,
// an LSM), which HaveFentry finds out by loading one.

var fentryProbe struct {
	once sync.Once
	err  error
}

// probeFentryTarget is a function every kernel with BTF has whose
// fentry program the probe loads (loading attaches nothing).
const probeFentryTarget = "vfs_read"

// HaveFentry reports why this kernel would refuse fentry/fexit programs,
// or nil: it loads a two-instruction fentry program once.
func HaveFentry() error {
	fentryProbe.once.Do(func() {
		prog, err := ebpf.NewProgramWithOptions(&ebpf.ProgramSpec{
			Type:         ebpf.Tracing,
			AttachType:   ebpf.AttachTraceFEntry,
			AttachTo:     probeFentryTarget,
			License:      "GPL",
			Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()},
		}, ebpf.ProgramOptions{LogDisabled: true})
		if err == nil {
			prog.Close()
		}
		fentryProbe.err = fentryError(err)
	})
	return fentryProbe.err
}

// fentryError says in the user's terms why loading an fentry program
// failed: refused, unsupported, or the kernel's own error.
func fentryError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("the kernel refuses fentry/fexit programs (loading an fentry program on %s: %w)", probeFentryTarget, unix.EPERM)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, btf.ErrNotFound), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("this kernel does not support fentry/fexit programs (they need Linux 5.5 and the kernel's BTF): %v", err)
	}
	return fmt.Errorf("loading an fentry program: %w", err)
}

// fentryAttachType is the load-time attach type of a kfunc/kretfunc
// probe.
func fentryAttachType(k program.ProbeKind) (ebpf.AttachType, bool) {
	switch k {
	case program.Fentry:
		return ebpf.AttachTraceFEntry, true
	case program.Fexit:
		return ebpf.AttachTraceFExit, true
	}
	return 0, false
}

// FentryTarget refuses a module's function that cilium/ebpf would look
// up elsewhere than in its module: it searches vmlinux first, then the
// modules in load order, so a module's function that shares its name
// with vmlinux's (or another module's) would attach to the wrong one.
// The JIT loader and interpreter mode's kfunc collectors both ask it.
func FentryTarget(module, fn string) error {
	if module == btftp.Vmlinux {
		return nil
	}
	funcs, err := btftp.Funcs("*", fn)
	if err != nil {
		return err
	}
	if len(funcs) == 1 && funcs[0].Module == module {
		return nil
	}
	return fmt.Errorf("the function %s is not only in module %s (%d kernel functions have the name): a kfunc probe can not tell them apart", fn, module, len(funcs))
}

// checkFentryTarget is FentryTarget for one of a program's probes.
func checkFentryTarget(pr *program.Probe) error {
	if err := FentryTarget(pr.Category, pr.Event); err != nil {
		return fmt.Errorf("%s: %w", pr.Name, err)
	}
	return nil
}

// fentryLoadError names the probe and what the kernel refused.
func fentryLoadError(pr *program.Probe, err error) error {
	if _, ok := fentryAttachType(pr.Kind); !ok {
		return nil
	}
	what := "fentry"
	if pr.Kind == program.Fexit {
		what = "fexit"
	}
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%s: the kernel refuses %s programs (%v)", pr.Name, what, unix.EPERM)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("%s: this kernel can not attach an %s program to %s: %v", pr.Name, what, pr.Event, err)
	}
	return nil
}

// FentryAttachError explains the errors of putting a trampoline on a
// function, for the JIT loader and the kfunc collectors alike.
func FentryAttachError(err error) error {
	switch {
	case errors.Is(err, unix.EPERM):
		return fmt.Errorf("the kernel refuses to attach the program (%w)", err)
	case errors.Is(err, unix.EBUSY), errors.Is(err, unix.E2BIG):
		// A trampoline holds a bounded number of programs (38 on x86).
		return fmt.Errorf("the function's BPF trampoline is full or busy (%w)", err)
	case errors.Is(err, unix.Errno(524)), errors.Is(err, unix.EINVAL): // 524: the kernel's ENOTSUPP
		return fmt.Errorf("ftrace can not patch this function (%w)", err)
	}
	return err
}
