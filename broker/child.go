package broker

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The -c child must not run before the probes are attached, or its first
// events are lost; and its pid (cpid) must be known before that. Go cannot
// pause between fork and exec, and a paused copy of this binary would show
// up in the trace as several threads. So, as bpftrace's forked child does,
// a single-threaded process waits: a POSIX shell that stops itself and,
// once continued, execs the command in place, keeping its pid. Its own
// start-up happens before the probes are attached, and after it is
// continued it makes no system call but execve.
const childShell = "/bin/sh"

const childScript = `kill -STOP $$; exec "$@"`

// cldStopped is siginfo's si_code for a stopped child (CLD_STOPPED in
// <signal.h>), which x/sys/unix does not name.
const cldStopped = 5

// child is a command started paused.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// splitCommand splits -c's argument into words, honouring quotes.
func splitCommand(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord, quote := false, byte(0)
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case quote != 0:
			if ch == quote {
				quote = 0
			} else if ch == '\\' && quote == '"' && i+1 < len(s) {
				i++
				cur.WriteByte(s[i])
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote, inWord = ch, true
		case ch == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
			inWord = true
		case ch == ' ' || ch == '\t' || ch == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in command %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return words, nil
}

func startChild(command string) (*child, error) {
	args, err := splitCommand(command)
	if err != nil {
		return nil, err
	}
	if _, err := exec.LookPath(args[0]); err != nil {
		return nil, fmt.Errorf("failed to find executable %s: %w", args[0], err)
	}
	noStopSignals.Do(setNoCldStop)
	cmd := exec.Command(childShell, append([]string{"-c", childScript, "sh"}, args...)...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// If the tracer dies, the child must not outlive it: a stopped
	// process ignores SIGTERM until continued, so it is SIGKILL.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	// Wait for the stop without reaping (WNOWAIT), before the goroutine
	// that reaps the child starts.
	var info unix.Siginfo
	if err := unix.Waitid(unix.P_PID, cmd.Process.Pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil); err != nil || info.Code != cldStopped {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("start %s: the child exited before it was ready", args[0])
	}
	// The stop is reported before the child's last context switch; that
	// switch belongs to the child's start-up, not to the trace.
	waitOffCPU(cmd.Process.Pid)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// Continuing the stopped child would raise a SIGCHLD (CLD_CONTINUED) for
// this process, generated in the child's context, where a trace of the
// child's signals would see it and bpftrace's would not. SA_NOCLDSTOP on
// SIGCHLD keeps the kernel from sending it; waitid still sees the stop.
// Go's os/signal cannot set the flag, so the handler the runtime installed
// is read and written back with only that flag added.
var noStopSignals sync.Once

func setNoCldStop() {
	// struct kernel_sigaction on Linux: handler, flags, restorer, mask.
	var act struct {
		handler, flags, restorer, mask uint64
	}
	const saNoCldStop = 1
	size := unsafe.Sizeof(act.mask)
	if _, _, e := unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), 0, uintptr(unsafe.Pointer(&act)), size, 0, 0); e != 0 {
		return
	}
	act.flags |= saNoCldStop
	unix.RawSyscall6(unix.SYS_RT_SIGACTION, uintptr(unix.SIGCHLD), uintptr(unsafe.Pointer(&act)), 0, size, 0, 0)
}

// waitOffCPU waits (briefly) until pid is not on a CPU: the kernel
// answers "running" in /proc/PID/syscall while it is.
func waitOffCPU(pid int) {
	path := fmt.Sprintf("/proc/%d/syscall", pid)
	for deadline := time.Now().Add(100 * time.Millisecond); time.Now().Before(deadline); {
		b, err := os.ReadFile(path)
		if err != nil || !strings.HasPrefix(string(b), "running") {
			return
		}
		time.Sleep(20 * time.Microsecond)
	}
}

// start lets the command run.
func (c *child) start() error {
	return c.cmd.Process.Signal(syscall.SIGCONT)
}

// kill stops a child that never ran or is still running.
func (c *child) kill() {
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	c.cmd.Process.Signal(syscall.SIGCONT) // a child never released is still stopped
	select {
	case <-c.done:
	case <-time.After(time.Second):
		// A command that ignores SIGTERM must not keep the tracer alive.
		c.cmd.Process.Kill()
		<-c.done
	}
}
