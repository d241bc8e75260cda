package btsuite

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
)

// haveSDT says whether gcc finds systemtap's sys/sdt.h (Debian keeps it
// under the multiarch include directory): with it the test programs
// have USDT probes (upstream defines HAVE_SYSTEMTAP_SYS_SDT_H), without
// it they answer `should_not_skip` with failure and the usdt tests skip.
func haveSDT(cc string) bool {
	cmd := exec.Command(cc, "-E", "-x", "c", "-o", os.DevNull, "-")
	cmd.Stdin = strings.NewReader("#include <sys/sdt.h>\n")
	return cmd.Run() == nil
}

// Build compiles the suite's C programs as upstream's CMake does
// (tests/CMakeLists.txt): each testlibs/NAME.c into
// dst/testlibs/libNAME.so, each testprogs/NAME.c into dst/testprogs/NAME,
// with gcc -g -O0 (programs -no-pie, usdt_lib linked with libusdt_tp),
// and links dst/runtime to src/runtime so that the tests' relative
// paths (./testprogs/..., runtime/scripts/...) hold in dst.
func Build(src, dst string) error {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		return fmt.Errorf("the suite's test programs need gcc: %w", err)
	}
	src, err = filepath.Abs(src)
	if err != nil {
		return err
	}
	libs, progs := filepath.Join(dst, "testlibs"), filepath.Join(dst, "testprogs")
	for _, d := range []string{libs, progs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	link := filepath.Join(dst, "runtime")
	os.Remove(link)
	if err := os.Symlink(filepath.Join(src, "runtime"), link); err != nil {
		return err
	}
	var defs []string
	if haveSDT(cc) {
		defs = []string{"-DHAVE_SYSTEMTAP_SYS_SDT_H"}
	}
	libSrcs, _ := filepath.Glob(filepath.Join(src, "testlibs", "*.c"))
	progSrcs, _ := filepath.Glob(filepath.Join(src, "testprogs", "*.c"))
	var jobs [][]string
	for _, c := range libSrcs {
		name := strings.TrimSuffix(filepath.Base(c), ".c")
		jobs = append(jobs, append([]string{"-g", "-O0", "-fPIC", "-shared", "-o", filepath.Join(libs, "lib"+name+".so"), c}, defs...))
	}
	// The libraries first: usdt_lib links with one.
	if err := run(cc, jobs); err != nil {
		return err
	}
	for _, c := range libSrcs {
		name := strings.TrimSuffix(filepath.Base(c), ".c")
		// Upstream clears the executable bit: a library is not a
		// program (uprobe listings tell them apart by it).
		if err := os.Chmod(filepath.Join(libs, "lib"+name+".so"), 0o644); err != nil {
			return err
		}
	}
	jobs = nil
	for _, c := range progSrcs {
		name := strings.TrimSuffix(filepath.Base(c), ".c")
		args := append([]string{"-g", "-O0", "-no-pie", "-o", filepath.Join(progs, name), c}, defs...)
		if name == "usdt_lib" {
			args = append(args, "-fPIC", "-I", filepath.Join(src, "testlibs"), "-L", libs, "-lusdt_tp", "-Wl,-rpath,"+libs)
		}
		jobs = append(jobs, args)
	}
	return run(cc, jobs)
}

// run runs the compiler once per job, a few at a time.
func run(cc string, jobs [][]string) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []string
		sem  = make(chan struct{}, runtime.NumCPU()+1)
	)
	for _, args := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func(args []string) {
			defer wg.Done()
			defer func() { <-sem }()
			if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Sprintf("gcc %s: %v\n%s", strings.Join(args, " "), err, out))
				mu.Unlock()
			}
		}(args)
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("building the suite's programs: %s", strings.Join(errs, "\n"))
	}
	return nil
}
