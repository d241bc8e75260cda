package bpf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/btftp"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// needFentry skips a test on a kernel that refuses fentry/fexit
// programs (this project's 6.18 hosts: EPERM), naming what was refused;
// the tests run under `make vmtest` (Debian 6.1 and 6.12).
func needFentry(t *testing.T) {
	t.Helper()
	needKernel(t)
	if err := bpf.HaveFentry(); err != nil {
		t.Skipf("skipping: fentry/fexit unavailable: %v", err)
	}
}

// fentryReadCount is the count of the workload's reads: no other read
// of this process asks for it.
const fentryReadCount = 4099

// fentryReads reads n times from fd, fentryReadCount bytes each time.
func fentryReads(fd, n int) {
	buf := make([]byte, fentryReadCount)
	for range n {
		unix.Read(fd, buf)
	}
}

// TestFentryAttach: kfunc and kretfunc probes load as tracing programs
// typed by the function's BTF and count exactly what the test's own
// reads make them see: arguments typed (the fd, an unsigned int, and the
// count), the return value signed (-EBADF of a closed fd's read).
func TestFentryAttach(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	f, err := os.Open("/dev/zero")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	// No file is open at this fd, whatever Load opens: reads of it
	// return -EBADF.
	const bad = 1<<31 - 1
	src := fmt.Sprintf(`kfunc:ksys_read /pid == %d && args->count == %d/ { @in[probe, args->fd] = count(); }
fexit:ksys_read /pid == %[1]d && args->count == %[2]d/ { @out[func, retval] = count(); }`, os.Getpid(), fentryReadCount)
	prog := compileScript(t, src, 0)
	objs := kerneltest.Track(t)
	s := loadTracing(t, prog)
	if err := s.Attach(context.Background()); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if n := s.Attached(); n != 2 {
		t.Errorf("Attached() = %d, want 2", n)
	}
	fentryReads(fd, 3)
	fentryReads(bad, 2)
	sorted := func(s []string) []string { slices.Sort(s); return s }
	want := sorted([]string{fmt.Sprintf("kfunc:vmlinux:ksys_read,%d=3", fd), fmt.Sprintf("kfunc:vmlinux:ksys_read,%d=2", bad)})
	if got := sorted(entries(t, s, mapID(t, prog, "@in"))); !reflect.DeepEqual(got, want) {
		t.Errorf("@in = %q, want %q", got, want)
	}
	// entries shows a key's raw bits: -EBADF is 2^64-9, which the
	// schema says to print signed.
	ebadf := -int64(unix.EBADF)
	want = sorted([]string{fmt.Sprintf("ksys_read,%d=2", uint64(ebadf)), fmt.Sprintf("ksys_read,%d=3", fentryReadCount)})
	out := mapID(t, prog, "@out")
	if got := sorted(entries(t, s, out)); !reflect.DeepEqual(got, want) {
		t.Errorf("@out = %q, want %q", got, want)
	}
	if k := prog.Schema.Maps[out].Keys; len(k) != 2 || !k[1].Signed {
		t.Errorf("@out's keys %+v: want (string, signed int): retval is an ssize_t", k)
	}
	closeAndCheckLinks(t, s, objs)
}

// loadTracing loads prog and checks that the kernel has its tp_btf,
// kfunc and kretfunc probes as tracing programs.
func loadTracing(t *testing.T, prog *program.Program) *bpf.Session {
	t.Helper()
	s, err := bpf.Load(prog, bpf.Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	t.Cleanup(s.Close)
	for i, p := range s.Programs() {
		switch prog.Probes[i].Kind {
		case program.TpBTF, program.Fentry, program.Fexit:
		default:
			continue
		}
		if info, err := p.Info(); err != nil || info.Type != ebpf.Tracing {
			t.Errorf("%s: %+v, %v; want a tracing program", prog.Probes[i].Name, info, err)
		}
	}
	return s
}

// TestFentryTargetGone: a function that is not in the kernel fails the
// load with the probe named, leaving nothing behind.
func TestFentryTargetGone(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	prog := compileScript(t, `kfunc:vfs_read { @ = count(); }`, 0)
	prog.Probes[0].Event, prog.Probes[0].Name = "no_such_function", "kfunc:vmlinux:no_such_function"
	objs := kerneltest.Track(t)
	s, err := bpf.Load(prog, bpf.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Load succeeded")
	}
	if !strings.HasPrefix(err.Error(), "kfunc:vmlinux:no_such_function: this kernel can not attach an fentry program to no_such_function") {
		t.Errorf("Load: %q", err)
	}
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after a failed load: %v", h)
	}
}

// TestFentryRefused: where the kernel refuses fentry programs (this
// project's hosts), a kfunc probe is refused at compile time with what
// the feature probe was refused, before anything is loaded.
func TestFentryRefused(t *testing.T) {
	needKernel(t)
	herr := bpf.HaveFentry()
	if herr == nil {
		t.Skip("skipping: this kernel loads fentry programs")
	}
	for _, spec := range []string{"kfunc:vfs_read", "fentry:vfs_read", "kretfunc:vfs_read", "fexit:vfs_read"} {
		_, _, err := broker.Compile(&broker.Request{Name: "stdin", Source: []byte(spec + " { @ = count(); }")})
		kind := "kfunc"
		if strings.Contains(spec, "ret") || strings.Contains(spec, "exit") {
			kind = "kretfunc"
		}
		want := fmt.Sprintf("ERROR: %s probes are not available: %v", kind, herr)
		if err == nil || !strings.Contains(broker.ErrorText(err), want) {
			t.Errorf("%s: %v, want %q", spec, err, want)
		}
	}
	if !strings.Contains(herr.Error(), "the kernel refuses fentry/fexit programs (loading an fentry program on vfs_read: operation not permitted)") && !strings.Contains(herr.Error(), "does not support") {
		t.Errorf("HaveFentry: %v", herr)
	}
}

// TestFentryModule: a kfunc probe of a module's function attaches to that
// module's function, found through its BTF: kretfunc:overlay:ovl_read_iter
// counts the test's own reads of a file on an overlayfs (the vmtest
// guest's root), picked out by the size they return.
func TestFentryModule(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	// /var/tmp, not $TMPDIR: the guest's /tmp is a tmpfs of its own.
	dir, err := os.MkdirTemp("/var/tmp", "tb-fentry")
	if err != nil {
		t.Skipf("skipping: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil || fs.Type != unix.OVERLAYFS_SUPER_MAGIC {
		t.Skipf("skipping: %s is not on an overlayfs (the vmtest guest's root is)", dir)
	}
	if funcs, err := btftp.Funcs("overlay", "ovl_read_iter"); err != nil || len(funcs) != 1 {
		t.Skipf("skipping: no kfunc overlay:ovl_read_iter here (%v, %v)", funcs, err)
	}
	file := filepath.Join(dir, "data")
	if err := os.WriteFile(file, make([]byte, 3*fentryReadCount), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	prog := compileScript(t, fmt.Sprintf(`kretfunc:overlay:ovl_read_iter /pid == %d && retval == %d/ { @[probe] = count(); }`, os.Getpid(), fentryReadCount), 0)
	objs := kerneltest.Track(t)
	s := loadTracing(t, prog)
	if err := s.Attach(context.Background()); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	fentryReads(int(f.Fd()), 3)
	want := []string{"kretfunc:overlay:ovl_read_iter=3"}
	if got := entries(t, s, mapID(t, prog, "@")); !reflect.DeepEqual(got, want) {
		t.Errorf("@ = %q, want %q", got, want)
	}
	closeAndCheckLinks(t, s, objs)
}
