package btsuite

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestSettleWaitsForTracer: an alone test starts only once what runs
// the tracer's executable has gone, here a copy of sleep reached, as
// the tests reach the tracer, through a link named bpftrace.
func TestSettleWaitsForTracer(t *testing.T) {
	src, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("skipping: no sleep to stand in for the tracer")
	}
	dir := t.TempDir()
	exe := filepath.Join(dir, "tracer")
	copyFile(t, src, exe)
	link := filepath.Join(dir, "bpftrace")
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	e := &Env{Bpftrace: link}

	cmd := exec.Command(exe, "0.5")
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	if got := running(exe); len(got) != 1 || got[0] != cmd.Process.Pid {
		t.Fatalf("running(%s) = %v, want [%d]", exe, got, cmd.Process.Pid)
	}
	e.settle(context.Background(), time.Minute)
	if got := running(exe); len(got) != 0 {
		t.Fatalf("settle returned with %v still running %s", got, exe)
	}
	select {
	case <-exited:
	case <-time.After(time.Minute):
		t.Fatal("the stand-in tracer never exited")
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}
