package uprobe

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/internal/racetest"
)

// under is a Scope allowing the files below dir (and dir itself).
func under(dirs ...string) *Scope {
	return &Scope{Allows: func(p string) bool {
		for _, d := range dirs {
			if p == d || strings.HasPrefix(p, d+"/") {
				return true
			}
		}
		return false
	}}
}

// scopeDirs makes a directory a scope allows (under(allowed)) and one
// beside it that it does not.
func scopeDirs(t testing.TB) (allowed, private string) {
	t.Helper()
	root := t.TempDir()
	allowed, private = filepath.Join(root, "allowed"), filepath.Join(root, "private")
	for _, d := range []string{allowed, private} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return allowed, private
}

// TestTargetAttach: a probe attached through a Target's descriptor lands
// on the inode that was opened, even after another file took its name.
func TestTargetAttach(t *testing.T) {
	needRoot(t)
	kerneltest.Lock(t)
	dir := t.TempDir()
	bin := buildC(t, dir, "prog")
	other := buildC(t, t.TempDir(), "prog")
	tg, err := OpenTarget(bin, under(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer tg.Close()
	if tg.Path() != bin || tg.RealPath() != bin {
		t.Errorf("Path %q, RealPath %q, want %q", tg.Path(), tg.RealPath(), bin)
	}
	syms, err := tg.Match("add_one")
	if err != nil {
		t.Fatal(err)
	}
	// The name now belongs to another copy of the program: the probe
	// is on the first.
	moved := bin + ".opened"
	if err := os.Rename(bin, moved); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(other, bin); err != nil {
		t.Fatal(err)
	}
	m := newCounts(t)
	attach(t, tg.AttachPath(), syms[0].Offset, false, -1, counter(t, m, entryCount, entrySum, -1))
	if err := exec.Command(bin, "5").Run(); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, m)[entryCount]; got != 0 {
		t.Errorf("the file now named %s was probed: %d calls", bin, got)
	}
	if err := exec.Command(moved, "7").Run(); err != nil {
		t.Fatal(err)
	}
	if got := counts(t, m)[entryCount]; got != 7 {
		t.Errorf("the opened file was called 7 times, the probe counted %d", got)
	}
}

// TestTargetScope: what a scoped open follows, refuses and says.
func TestTargetScope(t *testing.T) {
	needGCC(t)
	allowed, private := scopeDirs(t)
	if err := os.Mkdir(filepath.Join(allowed, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	bin := buildC(t, allowed, "prog")
	secret := buildC(t, private, "elf")
	os.WriteFile(filepath.Join(private, "text"), []byte("not ELF\n"), 0o600)
	link := func(target, name string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(allowed, name)); err != nil {
			t.Fatal(err)
		}
	}
	link(secret, "to-elf")
	link(filepath.Join(private, "text"), "to-text")
	link(filepath.Join(private, "nosuch"), "to-nothing")
	link("../private/elf", "relative-out")
	link("prog", "relative-in")
	link(bin, "absolute-in")
	link("sub/../prog", "dotdot-in")
	link(private, "dir-out")
	link("loop", "loop")
	link("/", "to-root")
	if out, err := exec.Command("strip", "-o", filepath.Join(private, "stripped"), secret).CombinedOutput(); err == nil {
		link(filepath.Join(private, "stripped"), "to-stripped")
	} else {
		t.Logf("strip: %v %s", err, out)
	}
	scope := under(allowed)
	const refused = "not allowed"
	for _, tc := range []struct {
		path, want string // want: the real path, or an error's text
	}{
		{bin, bin},
		{filepath.Join(allowed, "relative-in"), bin},
		{filepath.Join(allowed, "absolute-in"), bin},
		{filepath.Join(allowed, "dotdot-in"), bin},
		{filepath.Join(allowed, "sub", "..", "prog"), bin},
		// Out of scope: one refusal, whatever is there.
		{filepath.Join(allowed, "to-elf"), refused},
		{filepath.Join(allowed, "to-text"), refused},
		{filepath.Join(allowed, "to-nothing"), refused},
		{filepath.Join(allowed, "to-stripped"), refused},
		{filepath.Join(allowed, "relative-out"), refused},
		{filepath.Join(allowed, "dir-out", "elf"), refused},
		{filepath.Join(allowed, "dir-out", "nosuch"), refused},
		{filepath.Join(allowed, "..", "private", "elf"), refused},
		{filepath.Join(allowed, "to-root"), refused},
		{secret, refused},
		// In scope: errors may say what is wrong.
		{filepath.Join(allowed, "nosuch"), "does not exist"},
		{filepath.Join(allowed, "sub"), "not a regular file (a directory)"},
		{filepath.Join(allowed, "prog", "x"), "not a directory"},
		{filepath.Join(allowed, "loop"), "too many levels of symbolic links"},
		{"relative/path", "must be absolute"},
	} {
		tg, err := OpenTarget(tc.path, scope)
		if err == nil {
			if tg.RealPath() != tc.want || tg.Path() != tc.want {
				t.Errorf("OpenTarget(%s): opened %s (named %s), want %s", tc.path, tg.RealPath(), tg.Path(), tc.want)
			}
			tg.Close()
			continue
		}
		switch {
		case tc.want == refused:
			if want := `uprobe target file "` + tc.path + `": not allowed`; err.Error() != want || !errors.Is(err, ErrNotAllowed) {
				t.Errorf("OpenTarget(%s): %v, want exactly %q", tc.path, err, want)
			}
		case !strings.Contains(err.Error(), tc.want):
			t.Errorf("OpenTarget(%s): %v, want %q", tc.path, err, tc.want)
		}
	}
	// Without a scope, symlinks are followed and probes keep the name
	// as written, as bpftrace's do.
	tg, err := OpenTarget(filepath.Join(allowed, "to-elf"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Path() != filepath.Join(allowed, "to-elf") || tg.RealPath() != secret {
		t.Errorf("unscoped: Path %q, RealPath %q", tg.Path(), tg.RealPath())
	}
	tg.Close()
	// A FIFO is refused, at once.
	fifo := filepath.Join(allowed, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*Scope{nil, scope} {
		if _, err := OpenTarget(fifo, s); err == nil || !strings.Contains(err.Error(), "not a regular file (a named pipe)") {
			t.Errorf("FIFO: %v", err)
		}
	}
}

// TestTargetRenameRace: while a file and a symlink to a file outside the
// scope trade places (renameat2 RENAME_EXCHANGE) in an allowed
// directory, every scoped open either is refused or opens the allowed
// file; never the other one. The errors are clear words, never a bare
// errno (a readlink by name in such a race fails with EINVAL).
func TestTargetRenameRace(t *testing.T) {
	needGCC(t)
	allowed, private := scopeDirs(t)
	bin := buildC(t, allowed, "prog")
	secret := buildC(t, private, "prog")
	var want unix.Stat_t
	if err := unix.Stat(bin, &want); err != nil {
		t.Fatal(err)
	}
	swap := filepath.Join(allowed, "swap")
	if err := os.Symlink(secret, swap); err != nil {
		t.Fatal(err)
	}
	stop := racetest.Exchange(t, bin, swap)
	opened, refusedN := 0, 0
	for i := 0; i < 3000; i++ {
		for _, p := range []string{bin, swap} {
			tg, err := OpenTarget(p, under(allowed))
			if err != nil {
				if errors.Is(err, ErrNotAllowed) {
					refusedN++
					continue
				}
				if strings.HasSuffix(err.Error(), ": invalid argument") {
					t.Errorf("raw errno: %v", err)
				}
				continue
			}
			var st unix.Stat_t
			unix.Stat(tg.AttachPath(), &st)
			if !tg.SameFile(&st) || st.Ino != want.Ino || st.Dev != want.Dev {
				t.Errorf("opened inode %d (%s), not the allowed file's %d", st.Ino, tg.RealPath(), want.Ino)
			}
			opened++
			tg.Close()
		}
	}
	stop()
	t.Logf("%d opens of the allowed file, %d refusals", opened, refusedN)
	if opened == 0 || refusedN == 0 {
		t.Errorf("the race was not exercised: %d opens, %d refusals", opened, refusedN)
	}
}

// FuzzOpenTarget: whatever symlinks a token holder plants in its allowed
// directory and whatever path it asks for, a scoped open either opens a
// file of that directory or is refused, and no error names what lies
// outside unless the path asked for did.
func FuzzOpenTarget(f *testing.F) {
	allowed, private := scopeDirs(f)
	if err := os.Mkdir(filepath.Join(allowed, "sub"), 0o755); err != nil {
		f.Fatal(err)
	}
	root := filepath.Dir(allowed)
	os.WriteFile(filepath.Join(allowed, "file"), []byte("in"), 0o644)
	os.WriteFile(filepath.Join(private, "file"), []byte("out"), 0o644)
	var in unix.Stat_t
	if err := unix.Stat(filepath.Join(allowed, "file"), &in); err != nil {
		f.Fatal(err)
	}
	f.Add("../private/file", "sub/../file", "l1")
	f.Add(private, "l2", "l1/file")
	f.Add("l2", "l1", "l1")
	f.Add("/", "..", "l2/"+filepath.Base(root)+"/private/file")
	f.Fuzz(func(t *testing.T, target1, target2, path string) {
		l1, l2 := filepath.Join(allowed, "l1"), filepath.Join(allowed, "l2")
		os.Remove(l1)
		os.Remove(l2)
		if os.Symlink(target1, l1) != nil || os.Symlink(target2, l2) != nil {
			return
		}
		written := filepath.Join(allowed, path)
		tg, err := OpenTarget(written, under(allowed))
		if err != nil {
			if strings.Contains(err.Error(), "private") && !strings.Contains(written, "private") {
				t.Fatalf("OpenTarget(%q) with l1 -> %q, l2 -> %q: %v", written, target1, target2, err)
			}
			return
		}
		defer tg.Close()
		var st unix.Stat_t
		if err := unix.Stat(tg.AttachPath(), &st); err != nil || st.Ino != in.Ino || st.Dev != in.Dev {
			t.Fatalf("OpenTarget(%q) with l1 -> %q, l2 -> %q opened %s", written, target1, target2, tg.RealPath())
		}
	})
}

// BenchmarkOpenTarget: what opening a uprobe's file once costs, with a
// scope (a walk of every component, the real path read back) and
// without, through a symlinked directory as /bin is on merged-/usr
// systems; and a function's offset from the target, read once.
func BenchmarkOpenTarget(b *testing.B) {
	root := b.TempDir()
	bin := buildC(b, root, "prog")
	link := filepath.Join(root, "link")
	os.Symlink(root, link)
	written := filepath.Join(link, "prog")
	for _, bc := range []struct {
		name  string
		scope *Scope
	}{{"unscoped", nil}, {"scoped", under(root)}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				tg, err := OpenTarget(written, bc.scope)
				if err != nil {
					b.Fatal(err)
				}
				tg.Close()
			}
		})
	}
	tg, err := OpenTarget(bin, under(root))
	if err != nil {
		b.Fatal(err)
	}
	defer tg.Close()
	b.Run("FuncOffset", func(b *testing.B) {
		for b.Loop() {
			if _, err := tg.FuncOffset("add_one"); err != nil {
				b.Fatal(err)
			}
		}
	})
}
