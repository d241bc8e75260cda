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
// pause between fork and exec, and a paused copy of this binary would show
// up in the trace as several threads. So, as bpftrace's forked child does,
// a single-threaded process waits: a POSIX shell that says it is ready on
// fd 4, blocks reading fd 3, and then execs the command in place, keeping
// its pid. Its own start-up happens before the probes are attached.
const childShell = "/bin/sh"

const childScript = `printf x >&4; exec 4>&-; read -r _ <&3 || exit 127; exec "$@" 3<&-`

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
	cmd := exec.Command(childShell, append([]string{"-c", childScript, "sh"}, args...)...)
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
	_, err := c.release.Write([]byte{'\n'})
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
