// Package kerneltest holds what the tests that load BPF objects share.
package kerneltest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Lock keeps a test that loads BPF objects out of the way of the tests
// that flood the machine's tracepoints (Exclusive), across the test
// binaries of `go test ./...` (which run in parallel) and of every
// checkout on the machine. Leak checks need no lock (Track sees only the
// test's own objects), and kernel tests run side by side: Lock is a
// shared lock. What they do share is the tracepoints. A storm of events
// from one process reaches every probe on the same tracepoint, and where
// nothing filters them in the kernel (the collectors of interpreter mode,
// the collector tests) it fills the ring buffer, and another test loses
// its own events. The lock is released when the test ends. A test takes
// Lock or Exclusive, not both: the one would wait for the other.
func Lock(t testing.TB) { lock(t, unix.LOCK_SH) }

// Exclusive is Lock for a test that floods tracepoints with events (tens
// of thousands of system calls as fast as they go) or measures speed: no
// other test that locks runs meanwhile.
func Exclusive(t testing.TB) { lock(t, unix.LOCK_EX) }

var (
	lockMu   sync.Mutex
	lockHeld = map[int]int{} // this process's locks by mode
)

func lock(t testing.TB, mode int) {
	t.Helper()
	lockMu.Lock()
	if lockHeld[unix.LOCK_EX] > 0 || mode == unix.LOCK_EX && lockHeld[unix.LOCK_SH] > 0 {
		lockMu.Unlock()
		t.Fatal("kerneltest: a test takes Lock or Exclusive once: this process holds the lock already, and would wait for itself")
	}
	lockHeld[mode]++
	lockMu.Unlock()
	release := func() {
		lockMu.Lock()
		lockHeld[mode]--
		lockMu.Unlock()
	}
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tracebroker-kernel-tests.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		release()
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), mode); err != nil {
		f.Close()
		release()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.Close()
		release()
	})
}

// EachLoaded calls prog with the id of each BPF program loaded in the
// kernel, then m with the id of each map, as BPF_PROG_GET_NEXT_ID and
// BPF_MAP_GET_NEXT_ID list them (in ascending order). That is the whole
// machine's: every other tracer's objects are there too, and come and go
// meanwhile (an id may be gone by the time prog or m looks at it). A leak
// check must not use it: Track sees only what the test's own processes
// hold.
func EachLoaded(t testing.TB, prog func(ebpf.ProgramID), m func(ebpf.MapID)) {
	t.Helper()
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("BPF_PROG_GET_NEXT_ID: %v", err)
		}
		prog(next)
		id = next
	}
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			break
		}
		if err != nil {
			t.Fatalf("BPF_MAP_GET_NEXT_ID: %v", err)
		}
		m(next)
		id = next
	}
}

// Syscalls makes cwd getcwd and cpu getcpu system calls: a workload whose
// events are exact, since the Go runtime makes neither call itself (and
// getcpu goes by number, as the vDSO's is no system call).
func Syscalls(cwd, cpu int) {
	buf := make([]byte, 4096)
	for i := 0; i < cwd; i++ {
		unix.Getcwd(buf)
	}
	var c, node uint32
	for i := 0; i < cpu; i++ {
		unix.Syscall(unix.SYS_GETCPU, uintptr(unsafe.Pointer(&c)), uintptr(unsafe.Pointer(&node)), 0)
	}
}

// Bpftrace017 returns the path of the reference bpftrace, or skips the
// test saying why. The reference is 0.17 (Debian's): later releases list
// and print differently, so they are no reference.
func Bpftrace017(t testing.TB) string {
	t.Helper()
	bt, err := exec.LookPath("bpftrace")
	if err != nil {
		t.Skip("skipping: bpftrace is not installed")
	}
	out, err := exec.Command(bt, "--version").Output()
	if err != nil {
		t.Skipf("skipping: bpftrace --version: %v", err)
	}
	if !strings.HasPrefix(strings.TrimSpace(string(out)), "bpftrace v0.17.") {
		t.Skipf("skipping: comparison is against bpftrace 0.17, found %s", bytes.TrimSpace(out))
	}
	return bt
}

// NoSuchPID is pid_max: the kernel hands out pids below it, so no
// process has it.
func NoSuchPID(t testing.TB) int {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/kernel/pid_max")
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ListDiff says how two listings differ, briefly: a kernel has tens of
// thousands of functions.
func ListDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	only := func(a, b []string) []string {
		in := map[string]bool{}
		for _, l := range b {
			in[l] = true
		}
		var out []string
		for _, l := range a {
			if !in[l] {
				out = append(out, l)
			}
		}
		return out
	}
	og, ow := only(g, w), only(w, g)
	msg := fmt.Sprintf("%d lines, bpftrace %d; only here (%d): %q; only in bpftrace's (%d): %q", len(g), len(w), len(og), og[:min(20, len(og))], len(ow), ow[:min(20, len(ow))])
	if len(og) == 0 && len(ow) == 0 {
		msg += " (the same lines in another order)"
	}
	return msg
}
