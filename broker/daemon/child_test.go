package daemon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// Other users, for the attacks a local user makes: SO_PEERCRED gives the
// daemon their uids, so they must be other processes. They share a group
// that may reach the socket (startDaemon's shared option).
const (
	otherGID    = 65534
	flooderUID  = 65534 // nobody
	flooder2UID = 65532
	holderUID   = 65533 // a valid token holder
)

// childEnv makes TestChildProcess, run as a child process, act out the
// part it names.
const childEnv = "TRACEBROKER_DAEMON_TEST_CHILD"

// child is this test binary run as another uid, acting out a part.
type child struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // its stdout, line by line
	stderr strings.Builder
	done   chan error
}

// startChild runs part as uid; env adds to its environment. The test
// binary is copied where uid can run it.
func startChild(t *testing.T, dir string, uid int, part string, env ...string) *child {
	t.Helper()
	bin := filepath.Join(dir, "daemon.test")
	if _, err := os.Stat(bin); err != nil {
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		if err := kerneltest.CopyFile(self, bin, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, "-test.run=^TestChildProcess$", "-test.count=1")
	cmd.Env = append([]string{childEnv + "=" + part, "PATH=/usr/bin:/bin"}, env...)
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: otherGID}}
	c := &child{cmd: cmd, lines: make(chan string, 1024), done: make(chan error, 1)}
	var err error
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &syncWriter{b: &c.stderr}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close()
		cmd.Process.Kill()
		<-c.done
		c.done <- nil
	})
	return c
}

// line waits for the child's next line of output.
func (c *child) line(t *testing.T) string {
	t.Helper()
	select {
	case l, ok := <-c.lines:
		if !ok {
			t.Fatalf("the child ended: %s", c.stderr.String())
		}
		return l
	case <-time.After(60 * time.Second):
		t.Fatalf("no line from the child: %s", c.stderr.String())
	}
	return ""
}

// wait closes the child's stdin (its cue to finish) and returns all
// that it printed from then on, and how it exited.
func (c *child) wait(t *testing.T) (string, error) {
	t.Helper()
	c.stdin.Close()
	var out []string
	for {
		select {
		case l, ok := <-c.lines:
			if !ok {
				err := <-c.done
				c.done <- err
				return strings.Join(out, "\n"), err
			}
			out = append(out, l)
		case <-time.After(60 * time.Second):
			t.Fatalf("the child does not end: %s", c.stderr.String())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	b  *strings.Builder
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// TestChildProcess is no test: it is the body of the child processes
// that the attack tests start as other users. Its part comes from the
// environment:
//
//	idle:  dial TB_N connections to TB_SOCKET, print "dialed", then for
//	       each that the daemon closes, print "closed I MS" (its index, ms
//	       after dialing); end on stdin's end.
//	flood: make TB_N trace requests to TB_SOCKET with a name of
//	       TB_NAME_SIZE bytes and no token, then print "CODE COUNT" for
//	       each gRPC code the daemon answered with.
//	trace: trace TB_SCRIPT with the token in TRACEBROKER_TOKEN, print
//	       "started", then the output; stdin's end interrupts it.
//	tcpflood: as flood, to TB_ADDR over TLS trusting the PEM file TB_CA
//	       (heldout_test.go).
func TestChildProcess(t *testing.T) {
	part := os.Getenv(childEnv)
	if part == "" {
		t.Skip("the body of the attack tests' child processes")
	}
	socket := os.Getenv("TB_SOCKET")
	n, _ := strconv.Atoi(os.Getenv("TB_N"))
	var err error
	switch part {
	case "idle":
		err = childIdle(socket, n)
	case "flood":
		size, _ := strconv.Atoi(os.Getenv("TB_NAME_SIZE"))
		err = childFlood(socket, n, size)
	case "trace":
		err = childTrace(socket, os.Getenv("TB_SCRIPT"))
	case "storm":
		// getcwd calls until stdin closes, a line per thousand.
		go func() {
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
		for {
			kerneltest.Syscalls(1000, 0)
			fmt.Println("1000")
		}
	case "getcwd":
		// n getcwd calls, once stdin closes: a workload the daemon's
		// interpreter mode collects, which skips the daemon's own.
		fmt.Println("ready")
		io.Copy(io.Discard, os.Stdin)
		kerneltest.Syscalls(n, 0)
	case "tcpflood":
		size, _ := strconv.Atoi(os.Getenv("TB_NAME_SIZE"))
		err = childTCPFlood(os.Getenv("TB_ADDR"), os.Getenv("TB_CA"), n, size)
	default:
		err = fmt.Errorf("no part %q", part)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// Not through the testing package: it would print to stdout.
	os.Exit(0)
}

func childIdle(socket string, n int) error {
	type dialed struct {
		c  net.Conn
		t0 time.Time
	}
	var cs []dialed
	for i := 0; i < n; i++ {
		// Before the dial: the daemon may admit the connection, and
		// start its clock, before Dial returns.
		t0 := time.Now()
		c, err := net.Dial("unix", socket)
		if err != nil {
			return fmt.Errorf("dial %d: %w", i, err)
		}
		defer c.Close()
		cs = append(cs, dialed{c, t0})
	}
	fmt.Println("dialed")
	var mu sync.Mutex
	for i, d := range cs {
		go func() {
			// Nothing is ever sent: a read ends when the daemon closes.
			io.Copy(io.Discard, d.c)
			mu.Lock()
			fmt.Printf("closed %d %d\n", i, time.Since(d.t0).Milliseconds())
			mu.Unlock()
		}()
	}
	io.Copy(io.Discard, os.Stdin)
	return nil
}

func childFlood(socket string, n, nameSize int) error {
	c, err := Dial(Target{Socket: socket})
	if err != nil {
		return err
	}
	defer c.Close()
	return flood(c, n, nameSize)
}

// flood makes n trace requests with a name of nameSize bytes and no
// token, then prints "CODE COUNT" for each gRPC code answered.
func flood(c *Client, n, nameSize int) error {
	req := &pb.TraceRequest{Name: strings.Repeat("N", nameSize), Source: []byte("BEGIN { exit(); }")}
	codes := map[string]int{}
	for i := 0; i < n; i++ {
		_, err := c.Trace(context.Background(), nil, req, io.Discard, io.Discard)
		var ce *CallError
		if !errors.As(err, &ce) {
			return fmt.Errorf("request %d: %v", i, err)
		}
		codes[ce.Code]++
	}
	for code, k := range codes {
		fmt.Printf("%s %d\n", code, k)
	}
	return nil
}

func childTrace(socket, script string) error {
	tok, err := ReadToken("", nil, os.Getenv)
	if err != nil {
		return err
	}
	c, err := Dial(Target{Socket: socket, Token: tok})
	if err != nil {
		return err
	}
	defer c.Close()
	interrupt := make(chan struct{})
	go func() {
		io.Copy(io.Discard, os.Stdin)
		close(interrupt)
	}()
	fmt.Println("started")
	_, err = c.Trace(context.Background(), interrupt, &pb.TraceRequest{Source: []byte(script)}, os.Stdout, os.Stderr)
	return err
}
