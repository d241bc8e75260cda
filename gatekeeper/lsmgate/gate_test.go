package lsmgate

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// The kernel tests run where BPF LSM programs load: Debian's 6.1 and
// 6.12 under qemu (make vmtest). This host refuses them, and they skip
// with the reason Probe gives.
func needGate(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if err := Probe(); err != nil {
		t.Skipf("no BPF LSM here: %v", err)
	}
}

// rawLoad loads a two-instruction program of type typ with one bpf(2)
// call (cilium retries a failed load to fetch the verifier's log, and
// the gate counts every attempt) and closes it.
func rawLoad(typ uint32) error { return rawLoadN(typ, 2) }

// rawLoadN loads a program of n instructions: n-1 times r0 = 0, exit.
func rawLoadN(typ uint32, n int) error {
	insns := make([]uint64, n)
	for i := range insns {
		insns[i] = 0xb7 // r0 = 0
	}
	insns[n-1] = 0x95 // exit
	license := []byte("GPL\x00")
	attr := struct {
		Type, InsnCnt  uint32
		Insns, License uint64
	}{typ, uint32(n), uint64(uintptr(unsafe.Pointer(&insns[0]))), uint64(uintptr(unsafe.Pointer(&license[0])))}
	// attr holds their addresses as integers, which keep nothing alive.
	defer runtime.KeepAlive(license)
	defer runtime.KeepAlive(insns)
	for {
		fd, _, errno := unix.Syscall(unix.SYS_BPF, cmdProgLoad, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
		if errno == unix.EAGAIN {
			// The verifier gives up when a signal is pending (Go's
			// preemption sends them); cilium retries too. The gate ran
			// before the verifier: a refusal is never retried.
			continue
		}
		if errno != 0 {
			return errno
		}
		unix.Close(int(fd))
		return nil
	}
}

const (
	progSocketFilter = 1
	progKprobe       = 2
	progTracepoint   = 5
	progCgroupSKB    = 8
)

// The helper process: LSMGATE_ROLE says which part it plays.
//
//	owner:  enforces the gate in LSMGATE_PIN with LSMGATE_LOADERS
//	        allowed, says "enforcing", then obeys lines on stdin:
//	        load, status, release, events, quit.
//	        With LSMGATE_POLICY (a compiled policy, or "unverifiable")
//	        and LSMGATE_TRUST (a public key), the policy decides.
//	loader: loads a tracepoint program (LSMGATE_TYPE, of LSMGATE_INSNS
//	        instructions: 2 if unset) and exits 0, or 3 on EPERM.
func TestHelperProcess(t *testing.T) {
	switch os.Getenv("LSMGATE_ROLE") {
	case "":
		t.Skip("a helper process of the kernel tests")
	case "loader":
		typ, n := uint32(progTracepoint), 2
		if v, err := strconv.Atoi(os.Getenv("LSMGATE_TYPE")); err == nil {
			typ = uint32(v)
		}
		if v, err := strconv.Atoi(os.Getenv("LSMGATE_INSNS")); err == nil {
			n = v
		}
		if err := rawLoadN(typ, n); err != nil {
			fmt.Println(err)
			if errors.Is(err, unix.EPERM) {
				os.Exit(3)
			}
			os.Exit(4)
		}
		os.Exit(0)
	case "owner":
		owner()
	case "getcwd":
		kerneltest.Syscalls(7, 0)
		os.Exit(0)
	case "open":
		for i := 0; i < 3; i++ {
			f, err := os.Open(os.Getenv("LSMGATE_FILE"))
			if err != nil {
				os.Exit(5)
			}
			f.Close()
		}
		os.Exit(0)
	}
}

func owner() {
	var loaders []string
	if l := os.Getenv("LSMGATE_LOADERS"); l != "" {
		loaders = strings.Split(l, ",")
	}
	opts := Options{PinDir: os.Getenv("LSMGATE_PIN"), UnsignedGate: true, AllowUnverified: true, Loaders: loaders}
	if err := ownerPolicy(&opts); err != nil {
		fmt.Println("error:", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	info, err := Enforce(opts)
	if err != nil {
		fmt.Println("error:", strings.ReplaceAll(err.Error(), "\n", " "))
		os.Exit(1)
	}
	b, _ := json.Marshal(info)
	fmt.Println("enforcing", string(b))
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch strings.Fields(sc.Text() + " x")[0] {
		case "load":
			fmt.Println("load", errString(rawLoad(progTracepoint)))
		case "status":
			st, err := ReadStatus(os.Getenv("LSMGATE_PIN"))
			if err == nil && st.Err != nil {
				err = st.Err
			}
			b, _ := json.Marshal(st)
			fmt.Println("status", errString(err), string(b))
		case "bench":
			// bench N: N loads as an allowed loader; the reply is
			// the time they took.
			var n int
			fmt.Sscan(sc.Text()[len("bench"):], &n)
			start := time.Now()
			var err error
			for i := 0; i < n && err == nil; i++ {
				err = rawLoad(progTracepoint)
			}
			fmt.Println("bench", errString(err), time.Since(start).Nanoseconds())
		case "release":
			_, err := Release(os.Getenv("LSMGATE_PIN"))
			fmt.Println("release", errString(err))
		case "events":
			recs, err := drainEvents(os.Getenv("LSMGATE_PIN"))
			b, _ := json.Marshal(recs)
			fmt.Println("events", errString(err), string(b))
		case "quit":
			os.Exit(0)
		}
	}
	os.Exit(0)
}

func errString(err error) string {
	if err == nil {
		return "ok"
	}
	return strings.ReplaceAll(err.Error(), " ", "_")
}

// helper drives the owner process.
type helper struct {
	t   testing.TB
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	// Set by launchOwner: what the owner said when it enforced (Info as
	// JSON), and release, which asks it to release the gate.
	first   string
	release func() string
}

// startOwner copies this test binary to exe and starts it as the gate's
// owner, enforcing the gate in pin with loaders allowed; the gate is
// released when the test ends, if the test did not.
func startOwner(t testing.TB, exe, pin string, loaders ...string) (*helper, Info) {
	t.Helper()
	copyExe(t, exe)
	h, said := launchOwner(t, exe, "LSMGATE_PIN="+pin, "LSMGATE_LOADERS="+strings.Join(loaders, ","))
	if h == nil {
		t.Fatalf("owner: %s", said)
	}
	var info Info
	if err := json.Unmarshal([]byte(h.first), &info); err != nil {
		t.Fatal(err)
	}
	return h, info
}

func (h *helper) ask(cmd string) string {
	h.t.Helper()
	if _, err := fmt.Fprintln(h.in, cmd); err != nil {
		h.t.Fatal(err)
	}
	l, err := h.out.ReadString('\n')
	if err != nil {
		h.t.Fatalf("%s: %v", cmd, err)
	}
	return strings.TrimSpace(l)
}

// testBpffs mounts a bpffs of the test's own in dir, unmounted when the
// test ends, and returns its path: the gate's pins go there, apart from
// the host's.
func testBpffs(t testing.TB, dir string) string {
	t.Helper()
	bpffs := filepath.Join(dir, "bpffs")
	if err := os.Mkdir(bpffs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", bpffs, "bpf", 0, ""); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	return bpffs
}

// copyExe copies this test binary to path, executable: the gate knows
// loaders by their file, and this binary's own is on the guest's
// overlayfs, which the gate refuses to name.
func copyExe(t testing.TB, path string) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/exe")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o755); err != nil {
		t.Fatal(err)
	}
}

func runLoader(t *testing.T, path string) int {
	t.Helper()
	cmd := exec.Command(path, "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), "LSMGATE_ROLE=loader")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("%s: %v\n%s", path, err, out)
	}
	return 0
}

// TestGateEnforced enforces the gate with a copy of this binary as its
// owner and another as an allowed loader, then does what a root process
// that is neither would do to load a tracing program or undo the gate,
// and checks each is refused, and counted, exactly.
func TestGateEnforced(t *testing.T) {
	needGate(t)
	kerneltest.Exclusive(t)
	dir := t.TempDir()
	bpffs := testBpffs(t, dir)
	pin := filepath.Join(bpffs, "gate")
	ownerExe, loaderExe := filepath.Join(dir, "owner.test"), filepath.Join(dir, "loader.test")
	copyExe(t, loaderExe)

	// Before the gate, this process loads tracing programs.
	if err := rawLoad(progTracepoint); err != nil {
		t.Fatalf("before the gate: %v", err)
	}

	h, info := startOwner(t, ownerExe, pin, loaderExe)
	if len(info.Loaders) != 2 || !info.Loaders[0].Owner || info.Loaders[1].Path != loaderExe || !info.Unsigned {
		t.Errorf("info: %+v", info)
	}

	want := map[uint32]uint64{}
	refused := func(reason uint32, what string, err error) {
		t.Helper()
		if !errors.Is(err, unix.EPERM) {
			t.Errorf("%s: got %v, want EPERM from the gate", what, err)
			return
		}
		want[reason]++
	}

	// Loads: tracing refused, other types not; the allowed loader and
	// the owner load.
	refused(ReasonLoad, "tracepoint load by a root process", rawLoad(progTracepoint))
	if err := rawLoad(progSocketFilter); err != nil {
		t.Errorf("socket filter: %v", err)
	}
	if err := rawLoad(progCgroupSKB); err != nil {
		t.Errorf("cgroup skb (what systemd loads): %v", err)
	}
	if got := h.ask("load"); got != "load ok" {
		t.Errorf("owner: %s", got)
	}
	if rc := runLoader(t, loaderExe); rc != 0 {
		t.Errorf("allowed loader: exit %d, want 0", rc)
	}
	// An exact copy of an allowed loader is another file.
	copyPath := filepath.Join(dir, "copy.test")
	copyExe(t, copyPath)
	if rc := runLoader(t, copyPath); rc != 3 {
		t.Errorf("copy of the loader: exit %d, want 3 (EPERM)", rc)
	}
	want[ReasonLoad]++

	// The pins.
	linkPinPath := filepath.Join(pin, linkPin("bpf"))
	refused(ReasonPin, "unlink the bpf hook's link", os.Remove(linkPinPath))
	refused(ReasonPin, "rename the link", os.Rename(linkPinPath, filepath.Join(pin, "moved")))
	refused(ReasonPin, "unlink the allow map", os.Remove(filepath.Join(pin, mapPin(mapAllow))))
	refused(ReasonUmount, "umount the bpffs", unix.Unmount(bpffs, 0))
	refused(ReasonUmount, "lazy umount", unix.Unmount(bpffs, unix.MNT_DETACH))

	// The maps: from a pin, and by id.
	_, err := ebpf.LoadPinnedMap(filepath.Join(pin, mapPin(mapAllow)), nil)
	refused(ReasonGateObject, "open the pinned allow map", err)
	if m, err := ebpf.LoadPinnedMap(filepath.Join(pin, mapPin(mapAllow)), &ebpf.LoadPinOptions{ReadOnly: true}); err != nil {
		t.Errorf("a read-only descriptor of the allow map: %v", err)
	} else {
		if err := m.Put(allowKey{Ino: 1}, allowValue{Flags: AllowLoad}); err == nil {
			t.Error("a read-only descriptor wrote the allow map")
		}
		m.Close()
	}
	gateMaps := 0
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			break
		}
		id = next
		m, err := ebpf.NewMapFromID(id)
		if err == nil {
			m.Close()
			continue
		}
		if errors.Is(err, unix.EPERM) {
			gateMaps++
			want[ReasonGateObject]++
		}
	}
	if gateMaps != len(mapSpecs()) {
		t.Errorf("maps refused by id: %d, want the gate's %d", gateMaps, len(mapSpecs()))
	}

	// The links: by id, and detached or updated from the pin.
	gateLinks := 0
	for id := link.ID(0); ; {
		next, err := linkNextID(id)
		if err != nil {
			break
		}
		id = next
		l, err := link.NewFromID(id)
		if err == nil {
			l.Close()
			continue
		}
		if errors.Is(err, unix.EPERM) {
			gateLinks++
			want[ReasonGateObject]++
		}
	}
	if gateLinks != len(hooks) {
		t.Errorf("links refused by id: %d, want the gate's %d", gateLinks, len(hooks))
	}
	lfd, err := objGet(linkPinPath)
	if err != nil {
		t.Fatalf("a link's pin opens (no hook sees it): %v", err)
	}
	refused(ReasonGateObject, "BPF_LINK_DETACH", linkDetach(lfd))
	refused(ReasonGateObject, "BPF_LINK_UPDATE", linkUpdate(lfd))
	unix.Close(lfd)

	// The loaders' processes and files.
	pid := h.cmd.Process.Pid
	refused(ReasonPtrace, "ptrace the owner", unix.PtraceAttach(pid))
	// proc turns the hook's EPERM into EACCES.
	if _, err = os.OpenFile(fmt.Sprintf("/proc/%d/mem", pid), os.O_RDWR, 0); errors.Is(err, unix.EACCES) {
		want[ReasonPtrace]++
	} else {
		t.Errorf("write the owner's memory: got %v, want EACCES from the gate", err)
	}
	exe, err := os.Open(copyPath)
	if err != nil {
		t.Fatal(err)
	}
	_, _, errno := unix.Syscall6(unix.SYS_PRCTL, prSetMM, prSetMMExeFile, exe.Fd(), 0, 0, 0)
	exe.Close()
	refused(ReasonExeChange, "prctl(PR_SET_MM_EXE_FILE)", errnoErr(errno))

	// A loader changed in place: chmod moves its ctime.
	if err := os.Chmod(loaderExe, 0o750); err != nil {
		t.Fatal(err)
	}
	if rc := runLoader(t, loaderExe); rc != 3 {
		t.Errorf("modified loader: exit %d, want 3", rc)
	}
	want[ReasonModified]++

	// Anyone may read the gate's status.
	mine, err := ReadStatus(pin)
	if err != nil || mine.Err != nil || mine.Info == nil || mine.Info.Default != "strict" {
		t.Errorf("status read by a root process: %+v %v", mine, err)
	}
	if d := Describe(pin); !strings.HasPrefix(d, "enforcing, strict, tb_gate sha256:"+Digest()) {
		t.Errorf("Describe: %s", d)
	}

	st := h.ask("status")
	f := strings.SplitN(st, " ", 3)
	if len(f) != 3 || f[1] != "ok" {
		t.Fatalf("status: %s", st)
	}
	var status Status
	if err := json.Unmarshal([]byte(f[2]), &status); err != nil {
		t.Fatal(err)
	}
	if !status.Enforcing || len(status.Hooks) != len(hooks) || len(status.Missing) != 0 {
		t.Errorf("status: %+v", status)
	}
	if fmt.Sprint(status.Counts) != fmt.Sprint(want) {
		t.Errorf("refusals counted by the gate: %v, want %v", status.Counts, want)
	}

	if got := h.release(); got != "release ok" {
		t.Fatalf("release: %s", got)
	}
	if _, err := os.Stat(pin); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after release, %s: %v", pin, err)
	}
	if err := rawLoad(progTracepoint); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func linkNextID(id link.ID) (link.ID, error) {
	attr := struct{ Start, Next, OpenFlags uint32 }{Start: uint32(id)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, 31 /* BPF_LINK_GET_NEXT_ID */, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return 0, errno
	}
	return link.ID(attr.Next), nil
}

func linkDetach(fd int) error {
	attr := struct{ LinkFD uint32 }{uint32(fd)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, cmdLinkDetach, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	return errnoErr(errno)
}

func linkUpdate(fd int) error {
	attr := struct{ LinkFD, NewProgFD, Flags, OldProgFD uint32 }{LinkFD: uint32(fd)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, cmdLinkUpdate, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	return errnoErr(errno)
}

func objGet(path string) (int, error) {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	attr := struct {
		Path          uint64
		FD, FileFlags uint32
	}{Path: uint64(uintptr(unsafe.Pointer(p)))}
	fd, _, errno := unix.Syscall(unix.SYS_BPF, 7 /* BPF_OBJ_GET */, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	runtime.KeepAlive(p)
	if errno != 0 {
		return -1, errno
	}
	return int(fd), nil
}
