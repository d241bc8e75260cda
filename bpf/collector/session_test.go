package collector_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// getcwdNR is __NR_getcwd on x86-64.
const getcwdNR = 79

// needKernel skips unless this process can trace, then keeps out of the
// way of tests that flood tracepoints (kerneltest.Lock): what else runs
// meanwhile reaches the collectors too, and they filter nothing.
func needKernel(t testing.TB) {
	t.Helper()
	needTracing(t)
	kerneltest.Lock(t)
}

// needKernelAlone is needKernel for a test that floods a tracepoint, or
// measures: no other kernel test runs meanwhile.
func needKernelAlone(t testing.TB) {
	t.Helper()
	needTracing(t)
	kerneltest.Exclusive(t)
}

func needTracing(t testing.TB) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
}

// open opens and attaches a session of unsigned collectors (the
// verification has its own tests) and closes it when the test ends. The
// session has one probe more than probes, last: drain's sentinel.
func open(t testing.TB, size int, probes ...collector.Probe) *collector.Session {
	t.Helper()
	_, ctxLen := recordSize(t, "syscalls", sentinelEvent)
	probes = append(slices.Clone(probes), collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: sentinelEvent, CtxLen: ctxLen})
	s, err := collector.Open(collector.Options{Probes: probes, BufferSize: size, Trust: collector.Trust{Unsigned: true}})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(s.Close)
	if err := s.Attach(context.Background()); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	sentinels.Store(s, len(probes)-1)
	t.Cleanup(func() { sentinels.Delete(s) })
	return s
}

// The sentinel is a system call that no program but this test makes
// (nothing asks for a scheduling policy's lowest priority), whose
// argument, the policy, is a number no real policy has: drain's nonce.
const sentinelEvent = "sys_enter_sched_get_priority_min"

var (
	sentinels sync.Map // *collector.Session -> the sentinel probe's index
	nonce     atomic.Uint64
)

// sentinel makes the sentinel call, and returns its nonce.
func sentinel() uint64 {
	n := 1<<40 + nonce.Add(1)
	unix.Syscall(unix.SYS_SCHED_GET_PRIORITY_MIN, uintptr(n), 0, 0) // EINVAL
	return n
}

// drain reads the records of an attached session (drainStopped reads a
// stopped one), until this process's sentinel record, decodes each into a copy (the sample is reused by the
// next Read), and keeps those keep accepts. A probe's record is written
// before the traced event returns, and the ring buffer is read in the
// order its records were written: the sentinel's comes after everything
// this process's workloads did before, whatever other processes write
// meanwhile (a busy machine never stops opening files). A sentinel the
// ring buffer had no room for is made again once what is there was read.
func drain(t testing.TB, s *collector.Session, keep func(*collector.Record) bool) []collector.Record {
	t.Helper()
	v, ok := sentinels.Load(s)
	if !ok {
		t.Fatal("drain: a session opened by open, with its sentinel probe, is needed")
	}
	probe := v.(int)
	first := sentinel()
	var out []collector.Record
	deadline := time.Now().Add(time.Minute)
	for n := 1; ; n++ {
		r, ok := read(t, s, time.Now())
		if !ok {
			if time.Now().After(deadline) {
				t.Fatalf("drain: no sentinel record in a minute (%d records lost)", s.Lost())
			}
			// Read to the end: the sentinels made so far were lost.
			sentinel()
			continue
		}
		if n%10000 == 0 {
			// Other processes' records may overfill the ring buffer
			// faster than it is read: one more, behind them.
			sentinel()
		}
		switch {
		case r.Probe != probe:
			if keep(r) {
				out = append(out, *r)
			}
		case r.TGID == uint32(os.Getpid()) && len(r.Context) >= 24 && binary.LittleEndian.Uint64(r.Context[16:]) >= first:
			return out
		}
	}
}

// drainStopped reads every record of a session that writes no more (it
// was stopped, or nothing of it is attached) until none has come for a
// while: a probe that was running as it stopped may still be writing.
// It keeps those keep accepts, the sentinel's left out.
func drainStopped(t testing.TB, s *collector.Session, keep func(*collector.Record) bool) []collector.Record {
	t.Helper()
	probe := -1
	if v, ok := sentinels.Load(s); ok {
		probe = v.(int)
	}
	var out []collector.Record
	for n := 0; ; n++ {
		if n == 1e6 {
			t.Fatal("a million records and still more from a session that writes no more")
		}
		r, ok := read(t, s, time.Now().Add(100*time.Millisecond))
		if !ok {
			return out
		}
		if r.Probe != probe && keep(r) {
			out = append(out, *r)
		}
	}
}

// read reads one record, false if none comes by deadline, and checks its
// layout.
func read(t testing.TB, s *collector.Session, deadline time.Time) (*collector.Record, bool) {
	t.Helper()
	var rec ringbuf.Record
	err := s.Read(deadline, &rec)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, false
	}
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var r collector.Record
	if err := collector.Decode(bytes.Clone(rec.RawSample), &r); err != nil {
		t.Fatalf("Decode: %v", err)
	}
	if len(rec.RawSample) != int(binary.LittleEndian.Uint32(rec.RawSample)) {
		t.Fatalf("a sample of %d bytes holds a record of %d", len(rec.RawSample), binary.LittleEndian.Uint32(rec.RawSample))
	}
	// Encode writes zeros where the layout pads: a record equal to its
	// re-encoding has the layout, and no stale bytes in it.
	if enc := collector.Encode(nil, &r); !bytes.Equal(enc, rec.RawSample) {
		t.Fatalf("record and its re-encoding differ:\n% x\n% x", rec.RawSample, enc)
	}
	return &r, true
}

func mine(r *collector.Record) bool { return r.TGID == uint32(os.Getpid()) }

// recordSize is a tracepoint's record size: the end of its last field.
func recordSize(t testing.TB, category, event string) (*tracefs.Format, int) {
	t.Helper()
	f, err := tracefs.ReadFormat(category, event)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, fl := range append(f.Common, f.Fields...) {
		n = max(n, fl.Offset+fl.Size)
	}
	return f, n
}

func comm(r *collector.Record) string {
	c, _, _ := bytes.Cut(r.Comm[:], []byte{0})
	return string(c)
}

// ownComm is this process's comm, as the kernel cuts it.
func ownComm(t testing.TB) string {
	b, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// TestTracepoint traces two tracepoints and checks that each record
// carries its probe's index (the cookie), the process, and the
// tracepoint's record.
func TestTracepoint(t *testing.T) {
	needKernel(t)
	_, cpuLen := recordSize(t, "syscalls", "sys_enter_getcpu")
	f, cwdLen := recordSize(t, "syscalls", "sys_enter_getcwd")
	nr, ok := f.Field("__syscall_nr")
	if !ok {
		t.Fatal("sys_enter_getcwd has no __syscall_nr")
	}
	s := open(t, 0,
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: cpuLen},
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: cwdLen},
	)
	kerneltest.Syscalls(5, 3)
	recs := drain(t, s, mine)
	var cwd, cpu int
	for _, r := range recs {
		switch r.Probe {
		case 0:
			cpu++
		case 1:
			cwd++
			if len(r.Context) != cwdLen {
				t.Errorf("context of %d bytes, want %d", len(r.Context), cwdLen)
			}
			if got := binary.LittleEndian.Uint32(r.Context[nr.Offset:]); got != getcwdNR {
				t.Errorf("__syscall_nr %d, want %d", got, getcwdNR)
			}
		default:
			t.Errorf("record of probe %d", r.Probe)
		}
		if c := comm(&r); c != ownComm(t) {
			t.Errorf("comm %q, want %q", c, ownComm(t))
		}
		if r.UID != uint32(os.Getuid()) || r.GID != uint32(os.Getgid()) || r.Ktime == 0 || r.Cgroup == 0 || len(r.Strings) != 0 {
			t.Errorf("record %+v", r)
		}
	}
	if cwd != 5 || cpu != 3 {
		t.Errorf("%d getcwd and %d getcpu records, want 5 and 3", cwd, cpu)
	}
}

// TestTracepointString captures openat's filename: the string behind
// the pointer in the tracepoint's record, from user memory.
func TestTracepointString(t *testing.T) {
	needKernel(t)
	f, size := recordSize(t, "syscalls", "sys_enter_openat")
	fn, ok := f.Field("filename")
	if !ok {
		t.Fatal("sys_enter_openat has no filename")
	}
	path := filepath.Join(t.TempDir(), "collector-string-test")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s := open(t, 0, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_openat", CtxLen: size,
		Strings: []collector.StringSpec{{CtxOff: fn.Offset, User: true}}})
	for range 3 {
		fd, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		fd.Close()
	}
	n := 0
	for _, r := range drain(t, s, mine) {
		if len(r.Strings) != 1 {
			t.Fatalf("%d strings", len(r.Strings))
		}
		str := r.Strings[0]
		if string(str.Data) != path+"\x00" {
			continue // the runtime's own opens
		}
		n++
		if ptr := binary.LittleEndian.Uint64(r.Context[fn.Offset:]); str.Addr != ptr {
			t.Errorf("string read from %#x, the context's pointer is %#x", str.Addr, ptr)
		}
	}
	if n != 3 {
		t.Errorf("%d records of %s, want 3", n, path)
	}
}

// TestStringSlots fills every string slot: strings cut at MaxString,
// reads that fail (a user pointer read as kernel memory, a pointer that
// is no pointer), and a context whose length is not a multiple of 8, so
// that the padding is checked too (drain compares each record with its
// re-encoding). A context longer than MaxContext is cut.
func TestStringSlots(t *testing.T) {
	needKernel(t)
	f, _ := recordSize(t, "syscalls", "sys_enter_openat")
	fn, _ := f.Field("filename")
	dfd, _ := f.Field("dfd")
	user := collector.StringSpec{CtxOff: fn.Offset, User: true}
	strs := []collector.StringSpec{user, {CtxOff: fn.Offset}, {CtxOff: dfd.Offset, User: true}}
	for len(strs) < collector.MaxStrings {
		strs = append(strs, user)
	}
	s := open(t, 0,
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_openat", CtxLen: fn.Offset + 12, Strings: strs},
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 1000},
	)
	// In this order, each record may find the bytes of the one before
	// in the scratch space where the collector builds it (the same CPU,
	// usually), where padding must be zeros: a whole context of
	// getcwd, then a long string, then a short one of odd length.
	kerneltest.Syscalls(1, 0)
	dir := t.TempDir()
	long := filepath.Join(dir, strings.Repeat("x", 300))
	os.Open(long) // fails: the tracepoint fires before
	short := filepath.Join(dir, "odd")
	if len(short)%8 == 6 { // with the NUL, a multiple of 8
		short += "d"
	}
	os.Open(short)
	var opens, shorts, cwds int
	for _, r := range drain(t, s, mine) {
		if r.Probe == 1 {
			cwds++
			if len(r.Context) != collector.MaxContext {
				t.Errorf("a context of %d bytes, want it cut to %d", len(r.Context), collector.MaxContext)
			}
			continue
		}
		if len(r.Strings) != collector.MaxStrings || len(r.Context) != fn.Offset+12 {
			t.Fatalf("%d strings, %d bytes of context", len(r.Strings), len(r.Context))
		}
		if string(r.Strings[0].Data) == short+"\x00" {
			shorts++
			continue
		}
		if !strings.HasPrefix(string(r.Strings[0].Data), long[:100]) {
			continue // the runtime's own opens
		}
		opens++
		ptr := binary.LittleEndian.Uint64(r.Context[fn.Offset:])
		want := long[:collector.MaxString-1] + "\x00"
		for i, str := range r.Strings {
			switch i {
			case 1:
				if str.Addr != ptr || str.Data != nil {
					t.Errorf("string 1, user memory read as kernel memory: %#x %q", str.Addr, str.Data)
				}
			case 2:
				if int64(str.Addr) != unix.AT_FDCWD || str.Data != nil {
					t.Errorf("string 2, behind dfd: %#x %q", str.Addr, str.Data)
				}
			default:
				if str.Addr != ptr || string(str.Data) != want {
					t.Errorf("string %d: %#x %q", i, str.Addr, str.Data)
				}
			}
		}
	}
	if opens != 1 || shorts != 1 || cwds != 1 {
		t.Errorf("%d long and %d short opens and %d getcwds, want 1 each", opens, shorts, cwds)
	}
}

// TestKernelString captures strings from kernel memory: the path of
// cgroup_mkdir's raw tracepoint (its second argument). A long path, then
// a short one of odd length, so that the short one's padding would show
// what the long one left, were it not zeroed.
func TestKernelString(t *testing.T) {
	needKernel(t)
	root := cgroup2(t)
	s := open(t, 0, collector.Probe{Kind: program.RawTracepoint, Name: "cgroup_mkdir", CtxLen: 16,
		Strings: []collector.StringSpec{{CtxOff: 8}}})
	names := []string{"tb-collector-test-" + strings.Repeat("l", 60), "tb-collector-odd"}
	for _, n := range names {
		dir := filepath.Join(root, n)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Skipf("cannot make a cgroup: %v", err)
		}
		os.Remove(dir)
	}
	var got []string
	for _, r := range drain(t, s, mine) {
		if len(r.Strings) != 1 || r.Strings[0].Addr != binary.LittleEndian.Uint64(r.Context[8:]) {
			t.Fatalf("strings %+v", r.Strings)
		}
		got = append(got, string(r.Strings[0].Data))
	}
	want := []string{"/" + names[0] + "\x00", "/" + names[1] + "\x00"}
	if !slices.Equal(got, want) {
		t.Errorf("paths %q, want %q", got, want)
	}
}

// execveRec is the record of an execve, with the pointers in its context.
type execveRec struct {
	collector.Record
	filename, argv uint64
}

// execve traces sys_enter_execve with strs (given the offsets of the
// filename and argv fields in its record) while this process starts
// /bin/true with args (argv[0] included), and returns the child's
// record: that of its one execve, made by the child, whose TGID it is
// already.
func execve(t *testing.T, strs func(filename, argv int) []collector.StringSpec, args ...string) execveRec {
	t.Helper()
	const bin = "/bin/true"
	if _, err := os.Stat(bin); err != nil {
		t.Skipf("no %s to run: %v", bin, err)
	}
	f, size := recordSize(t, "syscalls", "sys_enter_execve")
	fn, ok1 := f.Field("filename")
	argv, ok2 := f.Field("argv")
	if !ok1 || !ok2 {
		t.Fatal("sys_enter_execve has no filename or argv")
	}
	s := open(t, 0, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_execve", CtxLen: size,
		Strings: strs(fn.Offset, argv.Offset)})
	cmd := &exec.Cmd{Path: bin, Args: args}
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	pid := uint32(cmd.Process.Pid)
	recs := drain(t, s, func(r *collector.Record) bool { return r.TGID == pid })
	if len(recs) != 1 {
		t.Fatalf("%d records of the child's execve, want 1", len(recs))
	}
	r := recs[0]
	le := binary.LittleEndian
	return execveRec{r, le.Uint64(r.Context[fn.Offset:]), le.Uint64(r.Context[argv.Offset:])}
}

// pointers are an array entry's pointers.
func pointers(t *testing.T, s collector.String) []uint64 {
	t.Helper()
	if len(s.Data) != 8*collector.ArrayLen {
		t.Fatalf("array entry of %d bytes at %#x, want %d", len(s.Data), s.Addr, 8*collector.ArrayLen)
	}
	ptrs := make([]uint64, collector.ArrayLen)
	for i := range ptrs {
		ptrs[i] = binary.LittleEndian.Uint64(s.Data[8*i:])
	}
	return ptrs
}

// checkArgs checks that entries are the strings behind ptrs, args, each
// read from the pointer the array holds for it.
func checkArgs(t *testing.T, entries []collector.String, ptrs []uint64, args []string) {
	t.Helper()
	if len(entries) < len(args) {
		t.Fatalf("%d entries for %d arguments", len(entries), len(args))
	}
	for i, a := range args {
		want := a + "\x00"
		if len(want) > collector.MaxString {
			want = a[:collector.MaxString-1] + "\x00"
		}
		if e := entries[i]; e.Addr != ptrs[i] || string(e.Data) != want {
			t.Errorf("argument %d: %q read from %#x, want %q from %#x", i, e.Data, e.Addr, want, ptrs[i])
		}
	}
}

// TestArrayString captures execve's argv: the array of pointers, raw, as
// bpftrace's args->argv[i] and join(args->argv) read it, then the
// string behind each pointer up to the NULL, then the next spec's string.
func TestArrayString(t *testing.T) {
	needKernel(t)
	args := []string{"/bin/true", "one", "two-is-longer", "", "five, the last"}
	r := execve(t, func(fn, argv int) []collector.StringSpec {
		return []collector.StringSpec{{CtxOff: argv, User: true, Array: true}, {CtxOff: fn, User: true}}
	}, args...)
	if len(r.Strings) != 1+len(args)+1 {
		t.Fatalf("%d entries, want the array, its %d strings and filename", len(r.Strings), len(args))
	}
	argv := r.Strings[0]
	if argv.Addr != r.argv {
		t.Errorf("array read from %#x, argv is %#x", argv.Addr, r.argv)
	}
	ptrs := pointers(t, argv)
	for i, p := range ptrs[:len(args)] {
		if p == 0 {
			t.Errorf("pointer %d is NULL", i)
		}
	}
	if ptrs[len(args)] != 0 {
		t.Errorf("pointer %d is %#x, want the NULL that ends argv", len(args), ptrs[len(args)])
	}
	checkArgs(t, r.Strings[1:], ptrs, args)
	fn := r.Strings[len(args)+1]
	if string(fn.Data) != "/bin/true\x00" || fn.Addr != r.filename {
		t.Errorf("filename %q from %#x", fn.Data, fn.Addr)
	}
}

// TestArrayCut captures arrays of more strings than the record has
// entries for: an array's strings stop at ArrayLen, then at the entries
// left, and the record, MaxStrings entries, decodes and re-encodes to
// its very bytes (drain checks every record so). An array read that
// fails (user memory read as kernel memory) is an entry of length 0,
// with no strings after it.
func TestArrayCut(t *testing.T) {
	needKernel(t)
	args := []string{"/bin/true"}
	for i := 1; len(args) < 24; i++ {
		args = append(args, strings.Repeat("ab", i)+strconv.Itoa(i)) // odd and even lengths
	}
	args[5] = strings.Repeat("long", 80) // cut at MaxString

	t.Run("ArrayLen", func(t *testing.T) {
		// The array, its first ArrayLen strings (there is no NULL
		// among its pointers), then filename.
		r := execve(t, func(fn, argv int) []collector.StringSpec {
			return []collector.StringSpec{{CtxOff: argv, User: true, Array: true}, {CtxOff: fn, User: true}}
		}, args...)
		if len(r.Strings) != 1+collector.ArrayLen+1 {
			t.Fatalf("%d entries, want %d", len(r.Strings), 1+collector.ArrayLen+1)
		}
		ptrs := pointers(t, r.Strings[0])
		checkArgs(t, r.Strings[1:], ptrs, args[:collector.ArrayLen])
		if fn := r.Strings[collector.ArrayLen+1]; string(fn.Data) != "/bin/true\x00" || fn.Addr != r.filename {
			t.Errorf("filename %q", fn.Data)
		}
	})

	t.Run("entries", func(t *testing.T) {
		// A failed array, 7 filenames, the array, and a filename: the
		// array gets the 15 entries left, the last filename none.
		r := execve(t, func(fn, argv int) []collector.StringSpec {
			strs := []collector.StringSpec{{CtxOff: argv, Array: true}}
			for range 7 {
				strs = append(strs, collector.StringSpec{CtxOff: fn, User: true})
			}
			return append(strs, collector.StringSpec{CtxOff: argv, User: true, Array: true}, collector.StringSpec{CtxOff: fn, User: true})
		}, args...)
		if len(r.Strings) != collector.MaxStrings {
			t.Fatalf("%d entries, want %d", len(r.Strings), collector.MaxStrings)
		}
		if e := r.Strings[0]; e.Addr != r.argv || e.Data != nil {
			t.Errorf("array read as kernel memory: %#x, %d bytes", e.Addr, len(e.Data))
		}
		for i, e := range r.Strings[1:8] {
			if string(e.Data) != "/bin/true\x00" || e.Addr != r.filename {
				t.Errorf("entry %d: %q", i+1, e.Data)
			}
		}
		if r.Strings[8].Addr != r.argv {
			t.Errorf("array read from %#x, argv is %#x", r.Strings[8].Addr, r.argv)
		}
		ptrs := pointers(t, r.Strings[8])
		left := collector.MaxStrings - 9
		checkArgs(t, r.Strings[9:], ptrs, args[:left])
	})
}

// cgroup2 is where the cgroup v2 hierarchy is mounted, or skips.
func cgroup2(t *testing.T) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 2 && f[2] == "cgroup2" {
			return f[1]
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

// TestRawTracepoint counts getcwd's sys_enter with its arguments (regs,
// id) as context.
func TestRawTracepoint(t *testing.T) { rawCollectors(t, testRawTracepoint) }

func testRawTracepoint(t *testing.T) {
	needKernel(t)
	s := open(t, 0,
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: 8},
		collector.Probe{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16},
	)
	kerneltest.Syscalls(5, 2)
	// Reading makes system calls too, each a record of sys_enter.
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	var cwd, cpu int
	for _, r := range drainStopped(t, s, mine) {
		switch r.Probe {
		case 0:
			cpu++
		case 1:
			if len(r.Context) != 16 {
				t.Fatalf("context of %d bytes, want 16", len(r.Context))
			}
			if binary.LittleEndian.Uint64(r.Context[8:]) == getcwdNR {
				cwd++
			}
		}
	}
	if cwd != 5 || cpu != 2 {
		t.Errorf("%d getcwd records of sys_enter and %d of getcpu, want 5 and 2", cwd, cpu)
	}
}

// workloadC calls mark(argv[2]) argv[1] times once it reads a line, so
// that the test can attach first.
const workloadC = `#include <stdio.h>
#include <stdlib.h>
__attribute__((noinline)) int mark(const char *s) { __asm__ volatile("" :: "r"(s) : "memory"); return 7; }
int main(int argc, char **argv) {
	char line[8];
	if (!fgets(line, sizeof line, stdin))
		return 1;
	int n = atoi(argv[1]);
	for (int i = 0; i < n; i++)
		mark(argv[2]);
	return 0;
}
`

func buildWorkload(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the uprobe workload", "work", workloadC, "-O1")
}

// waiting is a started workload, blocked until go is called.
type waiting struct {
	cmd *exec.Cmd
	in  *bufio.Writer
	f   io.WriteCloser
}

func startWorkload(t *testing.T, bin string, args ...string) *waiting {
	t.Helper()
	cmd := exec.Command(bin, args...)
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return &waiting{cmd: cmd, in: bufio.NewWriter(in), f: in}
}

func (w *waiting) run(t *testing.T) {
	t.Helper()
	w.in.WriteString("go\n")
	w.in.Flush()
	w.f.Close()
	if err := w.cmd.Wait(); err != nil {
		t.Fatalf("workload: %v", err)
	}
}

// TestUprobe traces a C function's entry, with its string argument, and
// its return, in one of two processes running the same binary (-p).
func TestUprobe(t *testing.T) {
	needKernel(t)
	bin := buildWorkload(t)
	syms, err := uprobe.Match(bin, "mark")
	if err != nil {
		t.Fatal(err)
	}
	const n, arg = 7, "a string argument"
	traced := startWorkload(t, bin, strconv.Itoa(n), arg)
	other := startWorkload(t, bin, strconv.Itoa(n), "not traced")
	pid := traced.cmd.Process.Pid
	const di, ax = 112, 80 // offsets in pt_regs
	s := open(t, 0,
		collector.Probe{Kind: program.Uprobe, Path: bin, Offset: syms[0].Offset, PID: pid, Strings: []collector.StringSpec{{CtxOff: di, User: true}}},
		collector.Probe{Kind: program.Uretprobe, Path: bin, Offset: syms[0].Offset, PID: pid},
	)
	traced.run(t)
	other.run(t)
	var entries, returns int
	for _, r := range drain(t, s, func(*collector.Record) bool { return true }) {
		if r.TGID != uint32(pid) {
			if r.TGID == uint32(other.cmd.Process.Pid) {
				t.Errorf("a record of the process not traced: %+v", r)
			}
			continue
		}
		if len(r.Context) != collector.PtRegsSize || comm(&r) != "work" {
			t.Fatalf("record of %d bytes of context, comm %q", len(r.Context), comm(&r))
		}
		switch r.Probe {
		case 0:
			entries++
			if len(r.Strings) != 1 || string(r.Strings[0].Data) != arg+"\x00" || r.Strings[0].Addr != binary.LittleEndian.Uint64(r.Context[di:]) {
				t.Errorf("uprobe strings %+v", r.Strings)
			}
		case 1:
			returns++
			if rv := binary.LittleEndian.Uint64(r.Context[ax:]); rv != 7 || len(r.Strings) != 0 {
				t.Errorf("uretprobe: ax %d, %d strings", rv, len(r.Strings))
			}
		}
	}
	if entries != n || returns != n {
		t.Errorf("%d entries and %d returns, want %d each", entries, returns, n)
	}
}

// TestPerf runs an interval and a profile probe until each has fired
// (at least two intervals, a profile sample in the kernel): their counts
// are timing, so the bound checked is the one the kernel promises, that
// an interval never fires more often than its period. The profile takes
// kernel stacks: empty where the sample interrupted user code, else
// kernel addresses; this process's system calls meanwhile make sure
// some samples are in the kernel.
func TestPerf(t *testing.T) {
	needKernel(t)
	const period = 50 * time.Millisecond
	start := time.Now()
	s := open(t, 0,
		collector.Probe{Kind: program.Interval, PeriodNs: uint64(period)},
		collector.Probe{Kind: program.Profile, Freq: 49, KStack: true},
	)
	counts := map[int]int{}
	kstacks := 0
	take := func(r *collector.Record) {
		if r.Probe > 1 {
			// drain's sentinel, which other tests' processes call
			// (the session ignores no process).
			return
		}
		counts[r.Probe]++
		if len(r.Context) != collector.PerfEventDataSize {
			t.Fatalf("context of %d bytes, want %d", len(r.Context), collector.PerfEventDataSize)
		}
		if r.Probe == 1 {
			if len(r.Strings) != 1 {
				t.Fatalf("profile record of %d entries, want the kernel stack", len(r.Strings))
			}
			if len(kernelFrames(t, r.Strings[0], 0)) > 0 {
				kstacks++
			}
		} else if len(r.Strings) != 0 {
			t.Errorf("interval record of %d entries", len(r.Strings))
		}
		if r.Probe == 0 {
			if sp := binary.LittleEndian.Uint64(r.Context[collector.PtRegsSize:]); sp != uint64(period) {
				t.Errorf("interval's sample_period %d, want %d", sp, period)
			}
			if r.CPU != 0 {
				t.Errorf("interval fired on CPU %d", r.CPU)
			}
		}
	}
	// Busy in system calls rather than asleep, so that some samples
	// interrupt the kernel whatever else the machine runs; until both
	// probes have shown what they do, for at most a bound that only a
	// broken probe reaches.
	limit := kerneltest.Slow(30 * time.Second)
	for counts[0] < 2 || kstacks == 0 {
		if time.Since(start) > limit {
			t.Fatalf("after %v: %d interval records of a %v interval, %d profile records, %d with a kernel stack", limit, counts[0], period, counts[1], kstacks)
		}
		kerneltest.Syscalls(1000, 0)
		for {
			r, ok := read(t, s, time.Now())
			if !ok {
				break
			}
			take(r)
		}
	}
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	for _, r := range drainStopped(t, s, func(*collector.Record) bool { return true }) {
		take(&r)
	}
	// A busy machine delays the timer, never hastens it.
	if most := int(elapsed/period) + 1; counts[0] > most {
		t.Errorf("%d interval records in %v of a %v interval", counts[0], elapsed, period)
	}
	if len(counts) > 2 {
		t.Errorf("records of unknown probes: %v", counts)
	}
}

// TestLost overfills a one-page ring buffer: the records it had no room
// for are counted, and never more records arrive than events happened.
// The events are getcpu calls, which no other process makes as system
// calls (the vDSO's getcpu is none): another's storm of getcwd calls on a
// busy machine filled the page before the test's first one (0 read, 40991
// lost of 20000).
func TestLost(t *testing.T) {
	needKernelAlone(t)
	_, size := recordSize(t, "syscalls", "sys_enter_getcpu")
	s := open(t, os.Getpagesize(), collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: size})
	const n = 20000
	kerneltest.Syscalls(0, n)
	lost := s.Lost()
	if lost == 0 {
		t.Fatalf("nothing lost of %d records in a ring buffer of %d bytes", n, os.Getpagesize())
	}
	got := len(drain(t, s, mine))
	if got >= n || got == 0 {
		t.Errorf("%d records read of %d", got, n)
	}
	if uint64(got)+lost < n {
		t.Errorf("%d read and %d lost of %d", got, lost, n)
	}
	t.Logf("%d read, %d lost", got, lost)
}

// TestStop checks that a stopped session writes nothing more.
func TestStop(t *testing.T) {
	needKernel(t)
	s := open(t, 0, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16})
	kerneltest.Syscalls(3, 0)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	kerneltest.Syscalls(4, 0)
	// Lost would count other processes' records too: the 3 are ours.
	if got := len(drainStopped(t, s, mine)); got != 3 {
		t.Errorf("%d records, want the 3 before Stop (%d records lost)", got, s.Lost())
	}
}

// TestNothingLeft checks that Close leaves nothing loaded or open, also
// after an attach that fails halfway, and that a failed Attach leaves
// nothing attached.
func TestNothingLeft(t *testing.T) { rawCollectors(t, testNothingLeft) }

func testNothingLeft(t *testing.T) {
	needKernel(t)
	// A function's entry, safe to probe in whatever process runs it.
	bash, err := uprobe.FindBinary("bash")
	if err != nil {
		t.Skipf("no bash to place a uprobe in: %v", err)
	}
	syms, err := uprobe.Match(bash, "readline")
	if err != nil {
		t.Skipf("no readline in bash to place a uprobe at: %v", err)
	}
	objs := kerneltest.Track(t)
	probes := []collector.Probe{
		{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16},
		{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16},
		{Kind: program.Uprobe, Path: bash, Offset: syms[0].Offset},
		{Kind: program.Profile, Freq: 10},
	}
	s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Attach(context.Background()); err != nil {
		t.Fatal(err)
	}
	objs.Observe() // the collectors' programs and maps, for the check below
	if s.Attached() < len(probes) {
		t.Errorf("%d attachments for %d probes", s.Attached(), len(probes))
	}
	if err := s.Attach(context.Background()); err == nil {
		t.Error("a second Attach succeeded")
	}
	s.Close()
	s.Close()

	// The last probe fails: the others must be detached again.
	bad := append(slices.Clone(probes), collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_nosuch", CtxLen: 8})
	s, err = collector.Open(collector.Options{Probes: bad, Trust: collector.Trust{Unsigned: true}})
	if err != nil {
		t.Fatal(err)
	}
	err = s.Attach(context.Background())
	if err == nil || !strings.Contains(err.Error(), "collector: attach probe 4 (tracepoint:syscalls:sys_enter_nosuch):") {
		t.Errorf("Attach = %v", err)
	}
	if s.Attached() != 0 {
		t.Errorf("%d attachments left after a failed Attach", s.Attached())
	}
	// Records of the moments the probes were attached may be there;
	// none may come after.
	drainStopped(t, s, mine)
	kerneltest.Syscalls(2, 0)
	if n := len(drainStopped(t, s, mine)); n != 0 {
		t.Errorf("%d records after a failed Attach", n)
	}
	s.Close()

	// At once, before the garbage collector would close what leaked;
	// then nothing stays loaded.
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after Close: %v", h)
	}
	if len(objs.Seen()) == 0 {
		t.Error("the check saw no program or map of the sessions: it cannot fail")
	}
	objs.ExpectReleased(t, 10*time.Second)
}

// BenchmarkGetcwd measures records through the tracepoint collector,
// the ring buffer and Decode: b.N getcwd calls, read in batches that
// fit the ring buffer.
func BenchmarkGetcwd(b *testing.B) {
	benchGetcwd(b, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16})
}

// BenchmarkGetcwdStructReads: the same, with what curtask->pid,
// curtask->real_parent->tgid and curtask->comm read at each event (the
// task and four read steps).
func BenchmarkGetcwdStructReads(b *testing.B) {
	reads := []program.KRead{
		{Task: true, Offs: []int{2000}, Size: 4},
		{Task: true, Offs: []int{2008, 2004}, Size: 4},
		{Task: true, Offs: []int{3000}, Size: 16},
	}
	benchGetcwd(b, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16, Task: true, Reads: reads})
}

func benchGetcwd(b *testing.B, p collector.Probe) {
	needKernelAlone(b)
	s := open(b, 0, p)
	var rec ringbuf.Record
	var r collector.Record
	read := 0
	b.ResetTimer()
	for done := 0; done < b.N; {
		batch := min(b.N-done, 10000)
		kerneltest.Syscalls(batch, 0)
		done += batch
		for s.Pending() > 0 {
			if err := s.Read(time.Now().Add(time.Second), &rec); err != nil {
				b.Fatal(err)
			}
			if err := collector.Decode(rec.RawSample, &r); err != nil {
				b.Fatal(err)
			}
			read++
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(read)/b.Elapsed().Seconds(), "records/s")
	if lost := s.Lost(); lost > 0 {
		b.Errorf("%d lost", lost)
	}
}

// BenchmarkGetcwdUntraced is BenchmarkGetcwd's workload alone, for the
// difference the collector makes.
func BenchmarkGetcwdUntraced(b *testing.B) {
	for b.Loop() {
		kerneltest.Syscalls(1, 0)
	}
}

// TestWake: a Read that would wait for ever returns ErrWoken once
// another goroutine calls Wake, after the records already there; the
// next Read waits again.
func TestWake(t *testing.T) {
	needKernel(t)
	s := open(t, 0, collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16})
	kerneltest.Syscalls(3, 0)
	time.AfterFunc(100*time.Millisecond, s.Wake)
	var rec ringbuf.Record
	mineGetcwd := 0
	for {
		err := s.Read(time.Time{}, &rec)
		if errors.Is(err, collector.ErrWoken) {
			break
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
		var r collector.Record
		if err := collector.Decode(rec.RawSample, &r); err != nil {
			t.Fatal(err)
		}
		if mine(&r) && r.Probe == 0 {
			mineGetcwd++
		}
	}
	if mineGetcwd != 3 {
		t.Errorf("%d getcwd records before ErrWoken, want 3", mineGetcwd)
	}
	if err := s.Read(time.Now().Add(200*time.Millisecond), &rec); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the Read after ErrWoken: %v", err)
	}
}

// TestOmit: a probe's omitted header fields are zero in its records, a
// record of another probe made just before on the same CPU fills them
// all, and the ids and CPU are there either way. The calls are made as
// another user, on a thread of their own, so that the uid and gid are
// not zero where they are filled; the thread's id is in both.
func TestOmit(t *testing.T) {
	needKernel(t)
	_, cpuLen := recordSize(t, "syscalls", "sys_enter_getcpu")
	_, cwdLen := recordSize(t, "syscalls", "sys_enter_getcwd")
	s := open(t, 0,
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: cwdLen},
		collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcpu", CtxLen: cpuLen,
			Omit: collector.OmitKtime | collector.OmitIDs | collector.OmitCgroup | collector.OmitComm},
	)
	const uid, gid = 4321, 5432
	tid := make(chan int)
	go func() {
		// This thread only, for good: it is not given back to the
		// runtime with other credentials.
		runtime.LockOSThread()
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESGID, gid, gid, 0); e != 0 {
			t.Errorf("setresgid: %v", e)
		}
		if _, _, e := unix.RawSyscall(unix.SYS_SETRESUID, uid, uid, 0); e != 0 {
			t.Errorf("setresuid: %v", e)
		}
		for range 3 {
			kerneltest.Syscalls(1, 1) // getcwd, getcpu, getcwd, ...
		}
		tid <- unix.Gettid()
	}()
	thread := <-tid
	var cwd, cpu int
	for _, r := range drain(t, s, mine) {
		if r.PID != uint32(thread) {
			continue
		}
		switch r.Probe {
		case 0:
			cwd++
			if comm(&r) != ownComm(t) || r.UID != uid || r.GID != gid || r.Ktime == 0 || r.Cgroup == 0 {
				t.Errorf("a record of a probe that omits nothing: %+v", r)
			}
		case 1:
			cpu++
			if r.Comm != [16]byte{} || r.UID != 0 || r.GID != 0 || r.Ktime != 0 || r.Cgroup != 0 {
				t.Errorf("a record of a probe that omits every field it can: %+v", r)
			}
		}
		if r.TGID != uint32(os.Getpid()) {
			t.Errorf("record %+v: tgid %d", r, r.TGID)
		}
	}
	if cwd != 3 || cpu != 3 {
		t.Errorf("%d getcwd and %d getcpu records of the thread, want 3 and 3", cwd, cpu)
	}
}
