package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// binName is a package's test binary name: ./bpf/collector -> bpf_collector.
func binName(pkg string) string {
	p := strings.Trim(strings.TrimPrefix(pkg, "./"), "/")
	if p == "" || p == "." {
		return "root"
	}
	return strings.ReplaceAll(p, "/", "_")
}

// buildTests builds each package's test binary on the host, once for
// every kernel: the guest runs the host's toolchain-free binaries.
func buildTests(ctx context.Context, repo, binDir string, pkgs []string) error {
	if err := os.MkdirAll(binDir, 0o755); err != nil {
		return err
	}
	for _, p := range pkgs {
		cmd := exec.CommandContext(ctx, "go", "test", "-c", "-o", filepath.Join(binDir, binName(p)+".test"), p)
		cmd.Dir = repo
		cmd.Env = staticEnv
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go test -c %s: %w\n%s", p, err, b)
		}
	}
	// Tests that run the command itself (the suite's) would build it
	// in the guest, which TCG makes minutes long: it is built here once
	// and named by testBinEnv.
	// It is the pair make builds: the lean tracebroker, and the whole
	// tracebroker-rpc beside it.
	for _, b := range []struct{ name, tags string }{{"tracebroker", "norpc"}, {"tracebroker-rpc", ""}} {
		cmd := exec.CommandContext(ctx, "go", "build", "-tags="+b.tags, "-o", filepath.Join(binDir, b.name), "./cmd/tracebroker")
		cmd.Dir = repo
		cmd.Env = staticEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build -tags=%s ./cmd/tracebroker: %w\n%s", b.tags, err, out)
		}
	}
	return nil
}

// staticEnv builds static binaries, as make build does: the kernel gate
// allows no dynamically linked loader (LD_PRELOAD would be anyone's).
var staticEnv = append(os.Environ(), "CGO_ENABLED=0")

// testBinEnv is kerneltest.BinaryEnv (TestCISelection checks it; the
// tool does not import the tests' helpers): in the guest, the
// tracebroker command built on the host.
const testBinEnv = "TRACEBROKER_TEST_BIN"

// guestSlow is TRACEBROKER_SLOW in the guest.
const guestSlow = 10

// guestScript is what the guest runs: each test binary in its package's
// directory (as go test does, for testdata/), output framed for
// test2json into RES/NAME.json.raw, then "rc seconds" into RES/NAME.rc.
// The binaries run one after another: a guest has one host core.
// runs[pkg] is the package's -test.run ("" or none: every test).
func guestScript(repo, binDir, resDir string, pkgs []string, runs map[string]string, timeout time.Duration, path string) string {
	var b strings.Builder
	// TRACEBROKER_SLOW stretches the tests' time bounds that are
	// promises (kerneltest.Slow): TCG runs the guest 5 to 20 times
	// slower than the host.
	fmt.Fprintf(&b, "export PATH=%s HOME=/root TRACEBROKER_SLOW=%d\n", shQuote(path), guestSlow)
	fmt.Fprintf(&b, "export %s=%s\n", testBinEnv, shQuote(filepath.Join(binDir, "tracebroker")))
	for _, p := range pkgs {
		n := binName(p)
		args := []string{filepath.Join(binDir, n+".test"), "-test.v=test2json", "-test.timeout=" + timeout.String(), "-test.count=1"}
		if run := runs[p]; run != "" {
			args = append(args, "-test.run="+run)
		}
		for i := range args {
			args[i] = shQuote(args[i])
		}
		fmt.Fprintf(&b, "cd %s && s=$(date +%%s) && { %s >%s 2>&1; echo \"$? $(( $(date +%%s) - s ))\" >%s; }\n",
			shQuote(filepath.Join(repo, p)), strings.Join(args, " "),
			shQuote(filepath.Join(resDir, n+".json.raw")), shQuote(filepath.Join(resDir, n+".rc")))
	}
	return b.String()
}

func shQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// guestLSM names the guests' LSMs as a host that enforces the kernel
// gate would (gatekeeper/lsmgate): Debian's default list, with bpf.
const guestLSM = "lsm=landlock,lockdown,yama,integrity,apparmor,bpf"

// qemuArgs boots k with initrd, the host's / read-only as "hostroot" and
// resDir writable as "results". Single-threaded TCG: multi-threaded TCG
// hangs 6.1 and panics 6.12 while the kernel patches its own text
// (KERNEL.md). A panic, a soft lockup or a hung task reboots, which
// -no-reboot turns into qemu's exit without a status.
func qemuArgs(k *kernel, initrd, resDir string) []string {
	return []string{
		"-accel", "tcg,thread=single", "-m", "2G", "-smp", "2",
		"-nographic", "-no-reboot", "-nic", "none",
		"-kernel", k.vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 softlockup_panic=1 hung_task_panic=1 rdinit=/init " + guestLSM,
		"-virtfs", "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
		"-virtfs", "local,path=" + resDir + ",mount_tag=results,security_model=none,multidevs=remap",
	}
}

// bootAndRun builds k's initramfs, boots it with command and waits for
// the guest to power off, at most timeout. The console goes to
// resDir/console.log. The result is the command's exit status, or an
// error saying why the guest did not give one (with the console's tail).
func bootAndRun(ctx context.Context, k *kernel, busybox []byte, resDir, command string, shown []string, timeout time.Duration) (int, error) {
	order, bodies, err := resolveModules(k.modDir, guestModules)
	if err != nil {
		return 0, err
	}
	init, err := initScript(initConfig{Modules: order, ResultsDir: resDir, Command: command, Shown: shown})
	if err != nil {
		return 0, err
	}
	files, err := initramfsFiles(busybox, init, order, bodies)
	if err != nil {
		return 0, err
	}
	initrd := filepath.Join(resDir, "initrd.gz")
	f, err := os.Create(initrd)
	if err != nil {
		return 0, err
	}
	if err := writeCpio(f, files); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, err
	}
	os.Remove(filepath.Join(resDir, "status"))
	console, err := os.Create(filepath.Join(resDir, "console.log"))
	if err != nil {
		return 0, err
	}
	defer console.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", qemuArgs(k, initrd, resDir)...)
	cmd.Stdout, cmd.Stderr = console, console
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	log := readTail(filepath.Join(resDir, "console.log"), 60)
	if ctx.Err() == context.DeadlineExceeded {
		return 0, fmt.Errorf("timeout: the guest ran past %s\n%s", timeout, log)
	}
	if runErr != nil {
		return 0, fmt.Errorf("qemu: %w\n%s", runErr, log)
	}
	if b, err := os.ReadFile(filepath.Join(resDir, "status")); err == nil {
		if rc, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil {
			return rc, nil
		}
	}
	if rc, ok := consoleStatus(log); ok {
		if rc == 99 {
			return 0, fmt.Errorf("the guest's init failed\n%s", log)
		}
		return rc, nil
	}
	return 0, fmt.Errorf("the guest stopped without an exit status (panic, lockup or crash)\n%s", log)
}

// consoleStatus finds the init's exit marker on the console.
func consoleStatus(console string) (int, bool) {
	i := strings.LastIndex(console, exitMarker)
	if i < 0 {
		return 0, false
	}
	rest := console[i+len(exitMarker):]
	if j := strings.IndexAny(rest, "\r\n"); j >= 0 {
		rest = rest[:j]
	}
	rc, err := strconv.Atoi(strings.TrimSpace(rest))
	return rc, err == nil
}

func readTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "console (last lines):\n" + strings.Join(lines, "\n")
}

// collect reads each package's result from the guest's results dir,
// turning the framed output into test2json events on the host.
func collect(ctx context.Context, resDir string, pkgs []string) map[string]pkgResult {
	out := map[string]pkgResult{}
	for _, p := range pkgs {
		n := binName(p)
		rcb, err := os.ReadFile(filepath.Join(resDir, n+".rc"))
		if err != nil {
			out[p] = pkgResult{Status: "no result"}
			continue
		}
		var rc, secs int
		if _, err := fmt.Sscan(string(rcb), &rc, &secs); err != nil {
			out[p] = pkgResult{Status: "no result"}
			continue
		}
		raw, _ := os.ReadFile(filepath.Join(resDir, n+".json.raw"))
		cmd := exec.CommandContext(ctx, "go", "tool", "test2json", "-t", "-p", p)
		cmd.Stdin = bytes.NewReader(raw)
		js, err := cmd.Output()
		var r pkgResult
		if err == nil {
			r, err = parseEvents(bytes.NewReader(js), rc)
		}
		if err != nil {
			r = pkgResult{Status: "FAIL", Failures: []failure{{Test: "(output)", First: err.Error()}}, Text: string(raw)}
		}
		r.Elapsed = time.Duration(secs) * time.Second
		os.WriteFile(filepath.Join(resDir, n+".log"), []byte(r.Text), 0o644)
		out[p] = r
	}
	return out
}
