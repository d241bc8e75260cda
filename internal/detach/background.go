package detach

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"
)

// Closing the last descriptor of an attachment waits for the kernel's
// RCU grace periods: 50-100 ms a tracepoint on these machines, 40 ms an
// uprobe, one at a time under the kernel's event mutex; seconds for a
// wildcard. Once the probes are stopped (they return at once and deliver
// nothing), that wait need not hold up the command: a helper process
// that outlives it can close the attachments instead.

// helperEnv, in a helper's environment, is how many attachments it
// inherited, as descriptors 3, 4, ...
const helperEnv = "TRACEBROKER_RELEASE_FDS"

// RunHelper must be called first thing in main (and in the TestMain of
// tests whose runs detach in the background): in a helper process
// started by InBackground it closes the inherited attachments and exits;
// anywhere else it returns at once.
func RunHelper() {
	n, err := strconv.Atoi(os.Getenv(helperEnv))
	if err != nil {
		return
	}
	All(n, func(i int) { unix.Close(3 + i) })
	os.Exit(0)
}

// ForkUpTo is the most attachments a forked copy releases; more go to
// the executable run again. Tests set it to 0 to see that helper.
var ForkUpTo = Workers

// Executable is the helper's program: this one, whose main calls
// RunHelper. Tests set it to see what a helper that cannot start does.
var Executable = os.Executable

// InBackground hands each of fds to a helper process that closes them
// and exits, then calls closeOwn, which must close the caller's copies
// (quick while the helper holds the attachments: the helper's last
// close is the detach). A few (up to Workers, a one-liner's) go to a
// copy of this process that runs no Go code (inFork, up to ForkUpTo) and closes them
// one after another once closeOwn has returned; more to this executable
// run again (RunHelper), which closes Workers at once but first spends
// the 20-50 ms of CPU a Go program of this size takes to initialise, on
// a host where the next command may be starting. If no helper can
// start, InBackground returns an error, closeOwn is not called and
// nothing was handed over: the caller detaches in place.
//
// The helper is in a session of its own, so that a terminal's Ctrl-C
// does not kill it half-way (a helper killed still releases everything:
// the kernel closes a dead process's descriptors); nothing waits for it
// but a goroutine of this process that reaps it, should this process
// live longer than it.
func InBackground(fds []int, closeOwn func()) error {
	if len(fds) == 0 {
		closeOwn()
		return nil
	}
	if len(fds) <= ForkUpTo && inFork(fds, closeOwn) == nil {
		return nil
	}
	self, err := Executable()
	if err != nil {
		return fmt.Errorf("detach in background: %w", err)
	}
	// exec.Cmd closes what it is given to pass on once the child has
	// it; the caller's descriptors are not ours to close, so it gets
	// duplicates.
	files := make([]*os.File, 0, len(fds))
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, fd := range fds {
		dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("detach in background: duplicating descriptor %d: %w", fd, err)
		}
		files = append(files, os.NewFile(uintptr(dup), "attachment"))
	}
	cmd := exec.Command(self)
	cmd.Env = []string{fmt.Sprintf("%s=%d", helperEnv, len(files))}
	cmd.ExtraFiles = files
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("detach in background: %w", err)
	}
	go cmd.Wait()
	closeOwn()
	return nil
}
