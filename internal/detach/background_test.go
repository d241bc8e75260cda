package detach

import (
	"errors"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) {
	// InBackground runs this binary again as its helper.
	RunHelper()
	os.Exit(m.Run())
}

// pipes makes n pipes, their read ends nonblocking: the write ends
// stand for attachments, which the read ends see closed (EOF) once no
// process holds them.
func pipes(t *testing.T, n int) (r, w []int) {
	t.Helper()
	for range n {
		var p [2]int
		if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
			t.Fatal(err)
		}
		if err := unix.SetNonblock(p[0], true); err != nil {
			t.Fatal(err)
		}
		r, w = append(r, p[0]), append(w, p[1])
	}
	t.Cleanup(func() {
		for _, fd := range r {
			unix.Close(fd)
		}
	})
	return r, w
}

// closed says whether every process has closed the write end of the
// pipe whose read end is fd.
func closed(fd int) bool {
	n, err := unix.Read(fd, make([]byte, 1))
	return n == 0 && err == nil
}

// TestInBackground: the helper — a forked copy for a few descriptors,
// this binary run again for more — holds its copies of the descriptors
// until it closes them, the caller's stay open until closeOwn closes
// them, and once both are closed nothing holds them.
func TestInBackground(t *testing.T) {
	for _, n := range []int{1, Workers, Workers + 1, 20} {
		r, w := pipes(t, n)
		owned := false
		err := InBackground(w, func() {
			owned = true
			for i, fd := range w {
				// Still the caller's, open.
				if _, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0); err != nil {
					t.Errorf("%d descriptors: descriptor %d of the caller: %v", n, i, err)
				}
				unix.Close(fd)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !owned {
			t.Fatalf("%d descriptors: closeOwn was not called", n)
		}
		deadline := time.Now().Add(10 * time.Second)
		for i, fd := range r {
			for !closed(fd) {
				if time.Now().After(deadline) {
					t.Fatalf("%d descriptors: pipe %d still open 10 s after the caller closed its end", n, i)
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
}

// TestInBackgroundNoHelper: a helper that cannot start is an error, and
// nothing was handed over: the caller's descriptors are the only ones.
func TestInBackgroundNoHelper(t *testing.T) {
	for name, exe := range map[string]func() (string, error){
		"no executable": func() (string, error) { return "", errors.New("no /proc") },
		"not a program": func() (string, error) { return "/nonexistent/tracebroker", nil },
	} {
		t.Run(name, func(t *testing.T) {
			defer func(e func() (string, error)) { Executable = e }(Executable)
			Executable = exe
			// More than a forked copy takes: the helper must be run.
			r, w := pipes(t, ForkUpTo+1)
			if err := InBackground(w, func() { t.Error("closeOwn called without a helper") }); err == nil {
				t.Fatal("InBackground succeeded without a helper")
			}
			for i, fd := range w {
				unix.Close(fd)
				if !closed(r[i]) {
					t.Errorf("pipe %d still open once the caller closed its end: a copy is held", i)
				}
			}
		})
	}
}

// TestInBackgroundNothing: no descriptors, no helper.
func TestInBackgroundNothing(t *testing.T) {
	defer func(e func() (string, error)) { Executable = e }(Executable)
	Executable = func() (string, error) { t.Fatal("a helper started for nothing"); return "", nil }
	if err := InBackground(nil, func() {}); err != nil {
		t.Fatal(err)
	}
}
