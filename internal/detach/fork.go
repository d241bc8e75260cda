package detach

import (
	"runtime"
	"slices"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ReleaseName is the name (comm) of the copy inFork makes.
const ReleaseName = "tb-release"

// forkName is ReleaseName as prctl(PR_SET_NAME) takes it.
var forkName = [16]byte{'t', 'b', '-', 'r', 'e', 'l', 'e', 'a', 's', 'e'}

// inFork makes a copy of this process (fork, no exec) that
// closes every file but fds, waits until this process has closed its own
// copies of fds (closeOwn, then the pipe that lets the copy go on),
// closes fds and exits: the last close of an attachment is the one that
// waits for the kernel, and it must be the copy's. Whatever the copy
// runs is prepared here: it starts with one thread, this one, in a copy
// of a Go runtime whose other threads it does not have, so it runs only
// forkChild, which makes system calls and nothing else. Signals stay
// blocked in it: a terminal's Ctrl-C must not stop it half-way, and it is
// in a session of its own as soon as it runs.
func inFork(fds []int, closeOwn func()) error {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return err
	}
	keep := append(slices.Clone(fds), p[0])
	slices.Sort(keep)
	// Between the clone and forkChild, the copy reads only these
	// locals: no heap, which the race detector would instrument.
	wait, name := p[0], &forkName
	runtime.LockOSThread()
	all, old := ^uint64(0), uint64(0)
	_, _, e := syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&all)), uintptr(unsafe.Pointer(&old)), 8, 0, 0)
	var pid uintptr
	if e == 0 {
		pid, _, e = syscall.RawSyscall6(unix.SYS_CLONE, uintptr(unix.SIGCHLD), 0, 0, 0, 0, 0)
		if e == 0 && pid == 0 {
			forkChild(keep, wait, name)
		}
		syscall.RawSyscall6(unix.SYS_RT_SIGPROCMASK, unix.SIG_SETMASK, uintptr(unsafe.Pointer(&old)), 0, 8, 0, 0)
	}
	runtime.UnlockOSThread()
	if e != 0 {
		unix.Close(p[0])
		unix.Close(p[1])
		return e
	}
	closeOwn()
	unix.Close(p[1]) // the copy's read sees the end: it may close
	unix.Close(p[0])
	go unix.Wait4(int(pid), nil, 0, nil) // no zombie in a process that lives on
	return nil
}

// forkChild is the copy's whole life. It must not grow its stack,
// allocate or call into the runtime: only raw system calls. It closes
// every file but keep (sorted) first, with close_range over the gaps (on
// kernels without it, files below 1024), so that a pipe the command
// writes to ends when the command does, not when the waits do; then
// waits for the end of the pipe whose read end is wait.
//
//go:nosplit
//go:norace
func forkChild(keep []int, wait int, name *[16]byte) {
	syscall.RawSyscall(unix.SYS_SETSID, 0, 0, 0)
	syscall.RawSyscall(unix.SYS_PRCTL, unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0)
	lo := uintptr(0)
	for i := 0; i <= len(keep); i++ {
		hi := uintptr(^uint32(0))
		if i < len(keep) {
			hi = uintptr(keep[i]) - 1
		}
		if hi != ^uintptr(0) && lo <= hi {
			if _, _, e := syscall.RawSyscall(unix.SYS_CLOSE_RANGE, lo, hi, 0); e != 0 {
				for fd := lo; fd <= hi && fd < 1024; fd++ {
					syscall.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
				}
			}
		}
		if i < len(keep) {
			lo = uintptr(keep[i]) + 1
		}
	}
	var b [1]byte
	for {
		_, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(wait), uintptr(unsafe.Pointer(&b[0])), 1)
		if e != unix.EINTR {
			break
		}
	}
	for i := 0; i < len(keep); i++ {
		syscall.RawSyscall(unix.SYS_CLOSE, uintptr(keep[i]), 0, 0)
	}
	syscall.RawSyscall(unix.SYS_EXIT_GROUP, 0, 0, 0)
}
