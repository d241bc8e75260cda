package broker

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// The -c child must not run before the probes are attached, or its first
// events are lost; and its pid (cpid) must be known before that. Go cannot
// pause between fork and exec, so the child starts as a copy of this binary
// that waits on a pipe and then execs the command in place, keeping its pid.
const childShimEnv = "TRACEBROKER_CHILD_SHIM"

// RunChildShim must be called first thing in main. In the shim process it
// does not return.
func RunChildShim() {
	if os.Getenv(childShimEnv) != "1" {
		return
	}
	os.Unsetenv(childShimEnv)
	// Tell the tracer the Go runtime is up (its own file opens are done, so
	// they do not show up in the trace), then wait to be released.
	ready := os.NewFile(4, "ready")
	ready.Write([]byte{1})
	ready.Close()
	go_ := os.NewFile(3, "go")
	buf := make([]byte, 1)
	if n, _ := go_.Read(buf); n != 1 {
		// The tracer went away without releasing us: never run the command.
		os.Exit(127)
	}
	go_.Close()
	args := os.Args[1:]
	path, err := exec.LookPath(args[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "ERROR: failed to exec %s: %v\n", args[0], err)
		os.Exit(127)
	}
	err = syscall.Exec(path, args, os.Environ())
	fmt.Fprintf(os.Stderr, "ERROR: failed to exec %s: %v\n", path, err)
	os.Exit(127)
}

// child is a command started paused.
type child struct {
	cmd     *exec.Cmd
	release *os.File
	done    chan struct{}
	err     error
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
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, err
	}
	defer readyR.Close()
	cmd := exec.Command(self, args...)
	cmd.Args[0] = args[0]
	cmd.Env = append(os.Environ(), childShimEnv+"=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	cmd.ExtraFiles = []*os.File{r, readyW}
	// If the tracer dies, the child must not outlive it unreleased.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	err = cmd.Start()
	r.Close()
	readyW.Close()
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("start %s: %w", args[0], err)
	}
	c := &child{cmd: cmd, release: w, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	if n, _ := readyR.Read(make([]byte, 1)); n != 1 {
		c.kill()
		return nil, fmt.Errorf("start %s: the child exited before it was ready", args[0])
	}
	return c, nil
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// start lets the command run.
func (c *child) start() error {
	_, err := c.release.Write([]byte{1})
	c.release.Close()
	return err
}

// kill stops a child that never ran or is still running.
func (c *child) kill() {
	c.release.Close()
	select {
	case <-c.done:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(time.Second):
		// A command that ignores SIGTERM must not keep the tracer alive.
		c.cmd.Process.Kill()
		<-c.done
	}
}
