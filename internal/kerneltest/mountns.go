package kerneltest

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// NSProcess is a process InMountNS started.
type NSProcess struct {
	Pid int
	// Seen is the path the process runs its program at: one that names
	// nothing in our mount namespace.
	Seen string
	// Stdin is the process's stdin, for the test to drive it.
	Stdin io.WriteCloser
	// Done is closed once the process has exited and been reaped, so
	// that it is gone from /proc (a -p run's end).
	Done <-chan struct{}
}

// InMountNS runs the program bin in a new mount namespace in which bin's
// directory is bind-mounted on a directory that is empty in ours, as
// bpftrace's mountns_wrapper does: the process runs a file at a path
// that names nothing here, a container's program in miniature. It is
// killed after t. Skips without root, unshare(1) or mount(1).
func InMountNS(t testing.TB, bin string) *NSProcess {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("skipping: a mount namespace with a bind mount needs root")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skip("skipping: unshare(1) is not installed")
	}
	if _, err := exec.LookPath("mount"); err != nil {
		t.Skip("skipping: mount(1) is not installed")
	}
	if chrooted() {
		// The kernel names a file in another mount namespace from that
		// namespace's root, which a chroot does not move: a vmtest
		// guest chroots into the host's root, so the paths it reads
		// there carry the chroot's own prefix.
		t.Skip("skipping: the tests run chrooted (a vmtest guest), where paths in another mount namespace are named from outside the chroot")
	}
	priv, err := os.MkdirTemp("", "tbmountns")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(priv) })
	seen := filepath.Join(priv, filepath.Base(bin))
	// unshare(1) execs the shell, which execs the program: one pid.
	cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" "$2" && exec "$3"`, "sh", filepath.Dir(bin), priv, seen)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		cmd.Wait()
		close(done)
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})
	p := &NSProcess{Pid: cmd.Process.Pid, Seen: seen, Stdin: stdin, Done: done}
	exe := "/proc/" + strconv.Itoa(p.Pid) + "/exe"
	for deadline := time.Now().Add(Slow(10 * time.Second)); ; time.Sleep(10 * time.Millisecond) {
		if l, _ := os.Readlink(exe); l == seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the process in a new mount namespace did not start %s", seen)
		}
	}
	if _, err := os.Lstat(seen); err == nil {
		t.Fatalf("%s is visible outside the process's mount namespace", seen)
	}
	return p
}

// chrooted says whether this process's root is not its mount namespace's
// (pid 1's, as far as /proc tells).
func chrooted() bool {
	var a, b syscall.Stat_t
	if syscall.Stat("/", &a) != nil || syscall.Stat("/proc/1/root/", &b) != nil {
		return false
	}
	return a.Dev != b.Dev || a.Ino != b.Ino
}
