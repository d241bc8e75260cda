package kerneltest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// helperEnv runs the test binary as one of helpers' processes, which
// hold what their parent leaks into them.
const helperEnv = "KERNELTEST_HELPER"

var helpers = map[string]func() int{
	// hold keeps its inherited descriptor 3 until stdin closes.
	"hold": func() int {
		os.Stdin.Read(make([]byte, 1))
		return 0
	},
	// orphan starts a hold process with its descriptor 3, prints its
	// pid and exits, leaving it to the subreaper.
	"orphan": func() int {
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=hold")
		cmd.ExtraFiles = []*os.File{os.NewFile(3, "inherited")}
		cmd.Stdin = os.Stdin
		if err := cmd.Start(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(cmd.Process.Pid)
		return 0
	},
}

func TestMain(m *testing.M) {
	if h := os.Getenv(helperEnv); h != "" {
		os.Exit(helpers[h]())
	}
	os.Exit(m.Run())
}

// needBPF skips unless this process may load BPF programs.
func needBPF(t testing.TB) {
	t.Helper()
	p, err := loadProg("kt_probe")
	if err != nil {
		t.Skipf("cannot load BPF programs: %v", err)
	}
	p.Close()
}

func loadProg(name string) (*ebpf.Program, error) {
	return ebpf.NewProgram(&ebpf.ProgramSpec{Name: name, Type: ebpf.SocketFilter, License: "GPL",
		Instructions: asm.Instructions{asm.LoadImm(asm.R0, 0, asm.DWord), asm.Return()}})
}

func mustProg(t testing.TB, name string) *ebpf.Program {
	t.Helper()
	p, err := loadProg(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func progID(t testing.TB, p *ebpf.Program) uint32 {
	t.Helper()
	info, err := p.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, ok := info.ID()
	if !ok {
		t.Fatal("no program id")
	}
	return uint32(id)
}

// TestTrackClean: what a test loads and closes is not left, and the
// sampler saw it while it was held.
func TestTrackClean(t *testing.T) {
	needBPF(t)
	o := Track(t)
	p := mustProg(t, "kt_clean")
	m, err := ebpf.NewMap(&ebpf.MapSpec{Name: "kt_clean", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	o.Observe()
	id := progID(t, p)
	p.Close()
	m.Close()
	if left := o.Left(t, 5*time.Second); len(left) > 0 {
		t.Errorf("left after closing everything: %v", left)
	}
	found := false
	for _, s := range o.Seen() {
		found = found || s.Kind == KindProgram && s.ID == id
	}
	if !found {
		t.Errorf("program %d not among the seen %v", id, o.Seen())
	}
}

// TestTrackFindsLeaks leaks on purpose, each way an object can be left,
// and wants the checker to name it.
func TestTrackFindsLeaks(t *testing.T) {
	needBPF(t)
	// How long a check that must fail waits: these leaks never go.
	const wait = 300 * time.Millisecond
	for _, tc := range []struct {
		name string
		// leak leaks into o and returns what Left must report, and how
		// to end the leak.
		leak func(t *testing.T, o *Objects) (want Object, end func())
	}{
		{"descriptor_kept", func(t *testing.T, o *Objects) (Object, func()) {
			p := mustProg(t, "kt_kept")
			return Object{Kind: KindProgram, ID: progID(t, p), Name: "kt_kept", PID: os.Getpid()}, func() { p.Close() }
		}},
		{"perf_event_kept", func(t *testing.T, o *Objects) (Object, func()) {
			attr := unix.PerfEventAttr{Type: unix.PERF_TYPE_SOFTWARE, Config: unix.PERF_COUNT_SW_DUMMY, Size: uint32(unsafe.Sizeof(unix.PerfEventAttr{}))}
			fd, err := unix.PerfEventOpen(&attr, 0, -1, -1, unix.PERF_FLAG_FD_CLOEXEC)
			if err != nil {
				t.Skipf("perf_event_open: %v", err)
			}
			return Object{Kind: KindPerfEvent, PID: os.Getpid()}, func() { unix.Close(fd) }
		}},
		{"held_by_a_child", func(t *testing.T, o *Objects) (Object, func()) {
			p := mustProg(t, "kt_child")
			id := progID(t, p)
			cmd, stdin := startHelper(t, "hold", p)
			p.Close()
			return Object{Kind: KindProgram, ID: id, Name: "kt_child", PID: cmd.Process.Pid}, func() {
				stdin.Close()
				cmd.Wait()
			}
		}},
		{
			// A child hands the program to a process of its own and
			// exits, as the CLI leaves its release helper behind.
			"held_by_an_orphan", func(t *testing.T, o *Objects) (Object, func()) {
				p := mustProg(t, "kt_orphan")
				id := progID(t, p)
				cmd, stdin := startHelper(t, "orphan", p)
				p.Close()
				if err := cmd.Wait(); err != nil {
					t.Fatal(err)
				}
				pid := orphanPID(t, cmd)
				return Object{Kind: KindProgram, ID: id, Name: "kt_orphan", PID: pid}, func() {
					stdin.Close()
					// Adopted: reap it.
					var ws unix.WaitStatus
					unix.Wait4(pid, &ws, 0, nil)
				}
			},
		},
		{"pinned", func(t *testing.T, o *Objects) (Object, func()) {
			pin := filepath.Join(bpffs(t), "kt_pinned")
			p := mustProg(t, "kt_pinned")
			id := progID(t, p)
			o.Observe() // the sampler's timing aside: it was held
			if err := p.Pin(pin); err != nil {
				t.Fatal(err)
			}
			p.Close()
			return Object{Kind: KindProgram, ID: id, Name: "kt_pinned"}, func() { os.Remove(pin) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := Track(t)
			want, end := tc.leak(t, o)
			left := o.Left(t, wait)
			end()
			if len(left) == 1 {
				left[0].Cmd = "" // the helper's, or the test binary's
			}
			if len(left) != 1 || left[0] != want {
				t.Errorf("left %v, want exactly %v", left, want)
			}
			if left := o.Left(t, 5*time.Second); len(left) > 0 {
				t.Errorf("left once the leak ended: %v", left)
			}
		})
	}
}

// TestLeftLoaded: the snapshot API finds a program of the name left by
// the test, and only those.
func TestLeftLoaded(t *testing.T) {
	needBPF(t)
	before, _ := LoadedIDs(t)
	kept := mustProg(t, "kt_left")
	defer kept.Close()
	other := mustProg(t, "kt_other")
	defer other.Close()
	closed := mustProg(t, "kt_left")
	closed.Close()
	got := LeftLoaded(t, before, "kt_left", 100*time.Millisecond)
	if want := progID(t, kept); len(got) != 1 || got[0] != want {
		t.Errorf("LeftLoaded = %v, want [%d]", got, want)
	}
}

// TestTrackIgnoresOthers: a test's check passes while another process
// holds a program of the same name the whole time, which a check of
// every program loaded would take for a leak.
func TestTrackIgnoresOthers(t *testing.T) {
	needBPF(t)
	p := mustProg(t, "kt_same") // the other process's, for the helper
	defer p.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^TestTrackIgnoresOthersHelper$", "-test.v")
	cmd.Env = append(os.Environ(), othersEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestTrackIgnoresOthersHelper") {
		t.Fatalf("the helper's check: %v\n%s", err, out)
	}
}

// othersEnv runs TestTrackIgnoresOthersHelper, as TestTrackIgnoresOthers'
// helper process.
const othersEnv = "KERNELTEST_OTHERS"

func TestTrackIgnoresOthersHelper(t *testing.T) {
	if os.Getenv(othersEnv) == "" {
		t.Skip("the helper of TestTrackIgnoresOthers")
	}
	var before []ebpf.ProgramID
	EachLoaded(t, func(id ebpf.ProgramID) { before = append(before, id) }, func(ebpf.MapID) {})
	o := Track(t)
	p := mustProg(t, "kt_same")
	o.Observe()
	p.Close()
	if left := o.Left(t, 5*time.Second); len(left) > 0 {
		t.Errorf("left: %v", left)
	}
	others := 0
	for _, id := range before {
		probeMu.Lock()
		if objectName(KindProgram, uint32(id)) == "kt_same" {
			others++
		}
		probeMu.Unlock()
	}
	if others == 0 {
		t.Fatal("no other process's kt_same was loaded: the test shows nothing")
	}
	t.Logf("nothing left, while %d kt_same of another process stayed loaded", others)
}

func startHelper(t *testing.T, mode string, p *ebpf.Program) (*exec.Cmd, *os.File) {
	t.Helper()
	fd, err := unix.FcntlInt(uintptr(p.FD()), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	f := os.NewFile(uintptr(fd), "prog")
	defer f.Close()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.ExtraFiles = []*os.File{f}
	cmd.Stdin = r
	var out strings.Builder
	cmd.Stdout = &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r.Close()
	return cmd, w
}

func orphanPID(t *testing.T, cmd *exec.Cmd) int {
	t.Helper()
	var pid int
	if _, err := fmt.Sscan(cmd.Stdout.(*strings.Builder).String(), &pid); err != nil {
		t.Fatalf("orphan's pid: %v", err)
	}
	return pid
}

// bpffs returns a BPF file system to pin in: /sys/fs/bpf, or one
// mounted for the test.
func bpffs(t *testing.T) string {
	t.Helper()
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/bpf", &st) == nil && st.Type == unix.BPF_FS_MAGIC {
		dir, err := os.MkdirTemp("/sys/fs/bpf", "kt")
		if err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	dir := t.TempDir()
	if err := unix.Mount("bpf", dir, "bpf", 0, ""); err != nil {
		t.Skipf("no BPF file system to pin in: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	return dir
}
