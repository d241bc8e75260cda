// Package kerneltest holds what the tests that load BPF objects share.
package kerneltest

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// Lock serialises the tests that load BPF objects across the test binaries
// of `go test ./...`, which run in parallel: some of them check the
// kernel's global lists of programs and maps for leaks. The lock is
// released when the test ends.
func Lock(t testing.TB) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "tracebroker-kernel-tests.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
}

// EachLoaded calls prog with the id of each BPF program loaded in the
// kernel, then m with the id of each map, as BPF_PROG_GET_NEXT_ID and
// BPF_MAP_GET_NEXT_ID list them (in ascending order). It is how a test
// finds what a run left loaded: the kernel allocates ids cyclically, so
// an id that was not listed before the run is an object created since.
// Loading and unloading by anything else on the machine goes on
// meanwhile; an id may be gone by the time prog or m looks at it.
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

// LoadedIDs returns the ids of the BPF programs and of the maps loaded in
// the kernel (see EachLoaded): the snapshot a test takes before a run to
// compare with what is loaded after it.
func LoadedIDs(t testing.TB) (progs, maps map[uint32]bool) {
	t.Helper()
	progs, maps = map[uint32]bool{}, map[uint32]bool{}
	EachLoaded(t, func(id ebpf.ProgramID) { progs[uint32(id)] = true }, func(id ebpf.MapID) { maps[uint32(id)] = true })
	return progs, maps
}

// LeftLoaded returns the programs named name (as the kernel shortens
// names, to 15 bytes) loaded now that were not in before, once they have
// had wait to go: the kernel frees a closed program's id a little after
// its last descriptor closes, and test binaries of other packages may be
// loading programs of other names meanwhile.
func LeftLoaded(t testing.TB, before map[uint32]bool, name string, wait time.Duration) []uint32 {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		var left []uint32
		EachLoaded(t, func(id ebpf.ProgramID) {
			if before[uint32(id)] {
				return
			}
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				return // gone meanwhile
			}
			defer p.Close()
			if info, err := p.Info(); err == nil && info.Name == name {
				left = append(left, uint32(id))
			}
		}, func(ebpf.MapID) {})
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
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
