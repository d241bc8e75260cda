// Command vmtest runs the project's kernel tests on other kernels than
// the host's: Debian's 6.1 and 6.12, fetched with apt-get download (never
// installed), booted under qemu (TCG) with the host's root shared
// read-only over 9p and a tmpfs overlay on top, so the test binaries
// built here and the tools they start (bpftrace, gcc) run there
// unchanged. One VM per kernel, in parallel; a summary table at the end.
// It is run by `make vmtest`; see README, "Other kernels".
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const defaultPkgs = "./bpf ./bpf/collector ./bpf/kprobe ./bpf/btftp ./bpf/tracefs ./bpf/uprobe ./broker ./interp"

func main() {
	var (
		kernels     = flag.String("kernels", "6.1,6.12", "kernels to boot, comma-separated (6.1, 6.12)")
		pkgs        = flag.String("pkgs", defaultPkgs, "packages whose tests run in each guest, space-separated")
		run         = flag.String("run", "", "-test.run of each test binary (default: all tests)")
		out         = flag.String("out", "vmtest-out", "results: OUT/KERNEL/{console.log,PKG.log}, OUT/summary.md")
		cache       = flag.String("cache", cacheDir(), "where kernel packages are downloaded and unpacked ($VMTEST_CACHE)")
		testTimeout = flag.Duration("test-timeout", 40*time.Minute, "-test.timeout of each test binary (the verifier is slow under TCG)")
		vmTimeout   = flag.Duration("vm-timeout", 90*time.Minute, "the longest a guest may run before it is a failure")
		command     = flag.String("cmd", "", "run this shell command in each guest instead of the tests")
		busyboxPath = flag.String("busybox", "/bin/busybox", "a statically linked busybox (apt-get install busybox-static)")
		report      = flag.Bool("report", false, "boot nothing: summarise the results already in -out")
		ci          = flag.Bool("ci", false, "run what CI runs (ci.go's selection: packages and their tests) instead of -pkgs and -run")
		tails       = flag.Int("tails", 0, "after a failure, print the last N lines of each failing package's log and of a failed guest's console")
	)
	flag.Parse()
	pkgList := strings.Fields(*pkgs)
	runs := map[string]string{}
	for _, p := range pkgList {
		runs[p] = *run
	}
	if *ci {
		if *run != "" || *pkgs != defaultPkgs {
			fmt.Fprintln(os.Stderr, "vmtest: -ci is its own selection: no -pkgs or -run with it")
			os.Exit(2)
		}
		pkgList, runs = ciPackages()
	}
	if *report {
		if err := reportOnly(*kernels, pkgList, *out, *cache, *tails); err != nil {
			fmt.Fprintln(os.Stderr, "vmtest:", err)
			os.Exit(1)
		}
		return
	}
	if err := vmtest(*kernels, pkgList, runs, *out, *cache, *testTimeout, *vmTimeout, *command, *busyboxPath, *tails); err != nil {
		fmt.Fprintln(os.Stderr, "vmtest:", err)
		os.Exit(1)
	}
}

func cacheDir() string {
	if d := os.Getenv("VMTEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "tracebroker-vmtest")
	}
	return filepath.Join(d, "tracebroker-vmtest")
}

func vmtest(kernelList string, pkgs []string, runs map[string]string, out, cache string, testTimeout, vmTimeout time.Duration, command, busyboxPath string, tails int) error {
	ctx := context.Background()
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		return fmt.Errorf("no qemu-system-x86_64: apt-get install qemu-system-x86")
	}
	busybox, err := os.ReadFile(busyboxPath)
	if err != nil {
		return fmt.Errorf("%w: apt-get install busybox-static", err)
	}
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	out, err = filepath.Abs(out)
	if err != nil {
		return err
	}
	var ks []*kernel
	for _, name := range strings.Split(kernelList, ",") {
		k, err := fetchKernel(cache, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		slog.Info("kernel", "name", k.name, "package", k.pkg, "release", k.release)
		ks = append(ks, k)
	}
	binDir := filepath.Join(out, "bin")
	shown := []string{repo} // what the guest's /tmp must not hide
	if command == "" {
		shown = append(shown, binDir)
		start := time.Now()
		if err := buildTests(ctx, repo, binDir, pkgs); err != nil {
			return err
		}
		slog.Info("test binaries built", "packages", len(pkgs), "took", time.Since(start).Round(time.Second))
	}
	vms := make([]*vmResult, len(ks))
	var wg sync.WaitGroup
	for i, k := range ks {
		resDir := filepath.Join(out, k.name)
		if err := os.RemoveAll(resDir); err != nil {
			return err
		}
		if err := os.MkdirAll(resDir, 0o755); err != nil {
			return err
		}
		cmd := command
		if cmd == "" {
			script := guestScript(repo, binDir, resDir, pkgs, runs, testTimeout, os.Getenv("PATH"))
			if err := os.WriteFile(filepath.Join(resDir, "run.sh"), []byte(script), 0o644); err != nil {
				return err
			}
			cmd = "/bin/sh " + filepath.Join(resDir, "run.sh")
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			rc, err := bootAndRun(ctx, k, busybox, resDir, cmd, shown, vmTimeout)
			v := &vmResult{kernel: k, status: rc, elapsed: time.Since(start)}
			if err != nil {
				v.guest = firstLine(err.Error())
				slog.Error("guest", "kernel", k.name, "err", err)
			} else if command != "" && rc != 0 {
				v.guest = fmt.Sprintf("command exited %d", rc)
			}
			if command == "" {
				v.pkgs = collect(ctx, resDir, pkgs)
			}
			slog.Info("guest done", "kernel", k.name, "took", v.elapsed.Round(time.Second), "console", filepath.Join(resDir, "console.log"))
			vms[i] = v
		}()
	}
	wg.Wait()
	if command != "" {
		pkgs = nil
	}
	return writeSummary(out, pkgs, vms, tails)
}

// reportOnly summarises a finished run again (after a change to the
// summary, or for another set of packages) without booting anything. A
// guest's time is from its initramfs to the last write of its console.
func reportOnly(kernelList string, pkgs []string, out, cache string, tails int) error {
	out, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	var vms []*vmResult
	for _, name := range strings.Split(kernelList, ",") {
		k, err := fetchKernel(cache, strings.TrimSpace(name))
		if err != nil {
			return err
		}
		resDir := filepath.Join(out, k.name)
		v := &vmResult{kernel: k, pkgs: collect(context.Background(), resDir, pkgs)}
		if _, err := os.Stat(filepath.Join(resDir, "status")); err != nil {
			v.guest = "no exit status"
		}
		a, errA := os.Stat(filepath.Join(resDir, "initrd.gz"))
		c, errC := os.Stat(filepath.Join(resDir, "console.log"))
		if errA == nil && errC == nil {
			v.elapsed = c.ModTime().Sub(a.ModTime())
		}
		vms = append(vms, v)
	}
	return writeSummary(out, pkgs, vms, tails)
}

func writeSummary(out string, pkgs []string, vms []*vmResult, tails int) error {
	var b strings.Builder
	ok := summary(&b, pkgs, vms)
	os.WriteFile(filepath.Join(out, "summary.md"), []byte(b.String()), 0o644)
	fmt.Print(b.String())
	if !ok && tails > 0 {
		printTails(os.Stdout, out, pkgs, vms, tails)
	}
	if !ok {
		return fmt.Errorf("failures: see %s and the logs beside it", filepath.Join(out, "summary.md"))
	}
	return nil
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}
