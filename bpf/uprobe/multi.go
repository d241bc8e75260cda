package uprobe

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"sync"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// NoMultiEnv, set to 1, makes HaveMulti say no on any kernel, so that
// uprobe wildcards attach one uprobe per function, as on kernels before
// 6.6: how the fallback is tested on a kernel that has the links.
const NoMultiEnv = "TRACEBROKER_NO_UPROBE_MULTI"

// HaveMulti reports whether the kernel attaches one program to many
// functions of a file with one uprobe.multi link (BPF_TRACE_UPROBE_MULTI,
// Linux 6.6) that filters by process as -p needs (pidFilterFixed), and
// NoMultiEnv does not say otherwise. The kernel is asked once.
func HaveMulti() bool {
	if os.Getenv(NoMultiEnv) == "1" {
		return false
	}
	return haveMulti()
}

var haveMulti = sync.OnceValue(func() bool {
	return features.HaveBPFLinkUprobeMulti() == nil && pidFilterFixed()
})

// pidFilterFixed reports whether the kernel's uprobe.multi links fire in
// every thread of the process they are for (Linux 6.10, and the stable
// kernels the fix went to): before, a link for -p PID fired in one
// thread of it only, and libbpf takes such a kernel for one without the
// links, as this does. A fixed kernel refuses a negative pid before it
// looks at the path (EINVAL); an older one first finds that "/" is not a
// regular file (EBADF).
func pidFilterFixed() bool {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.Kprobe, AttachType: ebpf.AttachTraceUprobeMulti, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}})
	if err != nil {
		return false
	}
	defer prog.Close()
	path, offsets := []byte("/\x00"), []uint64{1}
	// union bpf_attr's link_create, with its uprobe_multi member.
	attr := struct {
		progFD, targetFD, attachType, flags   uint32
		path, offsets, refCtrOffsets, cookies uint64
		count, multiFlags, pid, _             uint32
	}{progFD: uint32(prog.FD()), attachType: uint32(ebpf.AttachTraceUprobeMulti),
		path: uint64(uintptr(unsafe.Pointer(&path[0]))), offsets: uint64(uintptr(unsafe.Pointer(&offsets[0]))),
		count: 1, pid: math.MaxUint32}
	const bpfLinkCreate = 28
	fd, _, errno := unix.Syscall(unix.SYS_BPF, bpfLinkCreate, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(path)
	runtime.KeepAlive(offsets)
	if errno == 0 {
		unix.Close(int(fd))
		return false
	}
	return errno == unix.EINVAL
}

// errNotSupp is the kernel's ENOTSUPP (524), which has no name in
// x/sys/unix: what a uprobe on an instruction the kernel cannot
// single-step out of line fails with, when the file is mapped.
const errNotSupp = unix.Errno(524)

// Multi is a uprobe.multi link to make: one program on many functions
// of one file.
type Multi struct {
	// Path is the file as the kernel opens it (/proc/self/fd/N of a
	// Target), Name as probes name it (Target.Path), for errors.
	Path, Name string
	// Funcs name the functions, at Offsets in the file, each attached
	// with its attach cookie in Cookies (parallel slices).
	Funcs            []string
	Offsets, Cookies []uint64
	// Ret makes them uretprobes; PID > 0 fires them in that process only.
	Ret bool
	PID int
}

// Attach attaches prog, loaded with the expected attach type
// ebpf.AttachTraceUprobeMulti, with one uprobe.multi link (Linux 6.6).
// The link is all or nothing: if one function cannot take a uprobe,
// nothing is attached, and the error names the first that cannot as
// bpftrace names a probe it cannot attach ("Error attaching probe:
// uprobe:PATH:FUNC"), found by attaching halves of the functions until
// one is left, which costs a few attaches more.
func (m Multi) Attach(prog *ebpf.Program) (link.Link, error) {
	n := len(m.Offsets)
	if n == 0 || len(m.Funcs) != n || len(m.Cookies) != n {
		return nil, fmt.Errorf("uprobe.multi on %s: %d functions, %d offsets, %d cookies", m.Name, len(m.Funcs), n, len(m.Cookies))
	}
	for i, off := range m.Offsets {
		if off == 0 {
			// cilium/ebpf would look a symbol up for an address of 0.
			return nil, fmt.Errorf("uprobe.multi on %s: %s at offset 0", m.Name, m.Funcs[i])
		}
	}
	pid := uint32(max(m.PID, 0))
	attach := func(offsets, cookies []uint64) (link.Link, error) {
		ex, err := link.OpenExecutable(m.Path)
		if err != nil {
			return nil, err
		}
		// Addresses are file offsets here: with them, no symbol is
		// looked up.
		opts := &link.UprobeMultiOptions{Addresses: offsets, Cookies: cookies, PID: pid}
		if m.Ret {
			return ex.UretprobeMulti(nil, prog, opts)
		}
		return ex.UprobeMulti(nil, prog, opts)
	}
	l, err := attach(m.Offsets, m.Cookies)
	if err == nil {
		return l, nil
	}
	kind := "uprobe"
	if m.Ret {
		kind = "uretprobe"
	}
	switch {
	case errors.Is(err, link.ErrNotSupported), errors.Is(err, ebpf.ErrNotSupported):
		if !errors.Is(err, errNotSupp) {
			return nil, fmt.Errorf("this kernel has no uprobe.multi links (Linux 6.6): %w", err)
		}
	case errors.Is(err, os.ErrNotExist) && m.PID > 0:
		return nil, fmt.Errorf("no process %d: %w", m.PID, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		return nil, fmt.Errorf("%s.multi on %d functions of %s: needs root (CAP_PERFMON or CAP_SYS_ADMIN): %w", kind, n, m.Name, err)
	case errors.Is(err, unix.EMFILE), errors.Is(err, unix.ENFILE), errors.Is(err, unix.ENOMEM):
		return nil, fmt.Errorf("%s.multi on %d functions of %s: %w", kind, n, m.Name, err)
	}
	i := 0
	if n > 1 {
		var ferr error
		try := func(offsets, cookies []uint64) (io.Closer, error) { return attach(offsets, cookies) }
		if i, ferr = firstFailing(m.Offsets, m.Cookies, try); i < 0 {
			return nil, fmt.Errorf("%s.multi on %d functions of %s: %s: %w", kind, n, m.Name, WhyNot(err), err)
		}
		err = ferr
	}
	return nil, fmt.Errorf("Error attaching probe: %s:%s:%s (offset %#x): %s (%w); the %s.multi link on %d functions attached none of them",
		kind, m.Name, m.Funcs[i], m.Offsets[i], WhyNot(err), err, kind, n)
}

// firstFailing finds the first function that cannot take the link by
// attaching halves of the functions: the first half that fails has it,
// else the second does, down to one. It returns that function's index
// and its own error, or -1 when it attaches after all (the failure came
// and went, or needed the functions together).
func firstFailing(offsets, cookies []uint64, attach func(offsets, cookies []uint64) (io.Closer, error)) (int, error) {
	lo, hi := 0, len(offsets)
	var err error
	exact := false // err is the error of [lo, hi) alone
	for hi-lo > 1 {
		mid := lo + (hi-lo)/2
		l, e := attach(offsets[lo:mid], cookies[lo:mid])
		if e == nil {
			l.Close()
			lo, exact = mid, false
			continue
		}
		hi, err, exact = mid, e, true
	}
	if !exact {
		l, e := attach(offsets[lo:hi], cookies[lo:hi])
		if e == nil {
			l.Close()
			return -1, nil
		}
		err = e
	}
	return lo, err
}

// WhyNot says in words why the kernel refused a uprobe (err, the
// attach's error).
func WhyNot(err error) string {
	switch {
	case errors.Is(err, errNotSupp):
		return "the kernel cannot put a uprobe on its first instruction (it cannot single-step it out of line: glibc's AVX2 and EVEX string functions start with such instructions)"
	case errors.Is(err, unix.EINVAL):
		return "offset beyond the end of the file, not at an instruction the kernel can probe, or not a regular file"
	case errors.Is(err, unix.ENOENT):
		return "file not found"
	}
	return "the kernel refused it"
}
