// Command btsuite runs bpftrace 0.17's runtime test suite against a
// tracebroker binary and reports each test: pass, fail or skip, with
// why. make test runs the tests expected to pass
// (internal/btsuite.TestSuite); this runs any of them:
//
//	go run ./internal/tools/btsuite -bin bin/tracebroker -filter 'probe.*'
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"time"

	"github.com/tracebroker/tracebroker/internal/btsuite"
)

func main() {
	var (
		bin     = flag.String("bin", "bin/tracebroker", "the tracebroker binary under test")
		src     = flag.String("suite", "testdata/bpftrace-0.17", "the vendored suite")
		work    = flag.String("work", "", "where the test programs are built (default: a temporary directory)")
		filter  = flag.String("filter", "*", "run the tests whose suite.name matches this glob")
		jobs    = flag.Int("j", runtime.NumCPU()*2, "tests run side by side")
		verbose = flag.Bool("v", false, "print the output of each failing test")
		pass    = flag.String("pass", "", "write the IDs of the passing tests to this file")
		differ  = flag.String("differ", "testdata/bpftrace-0.17.differ", "the tests failed on purpose, reported apart (\"\": none)")
		vm      = flag.Bool("vm", false, "only the tests that need what the development host lacks (btsuite.VMNeeds): what the kernel matrix's guests run")
		attach  = flag.Duration("attach-timeout", btsuite.AttachTimeout, "how long a test may take to attach its probes (raise it under qemu's TCG)")
	)
	flag.Parse()
	if err := run(*bin, *src, *work, *filter, *differ, *jobs, *verbose, *pass, *vm, *attach); err != nil {
		fmt.Fprintln(os.Stderr, "btsuite:", err)
		os.Exit(1)
	}
}

func run(bin, src, work, filter, differFile string, jobs int, verbose bool, passFile string, vm bool, attach time.Duration) error {
	differ := map[string]string{}
	if differFile != "" {
		var err error
		if differ, err = btsuite.ReadDiffers(differFile); err != nil {
			return err
		}
	}
	if work == "" {
		d, err := os.MkdirTemp("", "btsuite")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		work = d
	}
	env, err := btsuite.Setup(src, work, bin)
	if err != nil {
		return err
	}
	env.AttachTimeout = attach
	all, err := btsuite.Load(src, btsuite.Machine())
	if err != nil {
		return err
	}
	var tests []btsuite.Test
	for _, t := range all {
		if btsuite.Match(filter, t.ID()) && (!vm || env.ForVM(t)) {
			tests = append(tests, t)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	start := time.Now()
	results := env.RunAll(ctx, tests, jobs, func(r btsuite.Result) {
		fmt.Printf("[%8s ] %s (%v)", r.Status, r.Test.ID(), r.Elapsed.Round(10*time.Millisecond))
		if r.Reason != "" {
			fmt.Printf(": %s", r.Reason)
		}
		fmt.Println()
		if verbose && r.Status.Failed() {
			fmt.Printf("\tCommand: %s\n\tOutput:\n%s\n", r.Command, indent(r.Output))
		}
	})
	var passed, failed, differs, skipped []btsuite.Result
	for _, r := range results {
		switch {
		case r.Status == btsuite.Pass:
			passed = append(passed, r)
		case r.Status == btsuite.Skip:
			skipped = append(skipped, r)
		case differ[r.Test.ID()] != "":
			differs = append(differs, r)
		default:
			failed = append(failed, r)
		}
	}
	fmt.Printf("\n%d tests, %d apply here: %d pass, %d fail, %d differ on purpose; %d skip (%v)\n",
		len(results), len(results)-len(skipped), len(passed), len(failed), len(differs), len(skipped), time.Since(start).Round(time.Second))
	for _, r := range skipped {
		fmt.Printf("[    SKIP ] %s: %s\n", r.Test.ID(), r.Reason)
	}
	for _, r := range differs {
		fmt.Printf("[  DIFFER ] %s: %s (%s)\n", r.Test.ID(), r.Reason, differ[r.Test.ID()])
	}
	for _, r := range failed {
		fmt.Printf("[ %7s ] %s: %s\n", r.Status, r.Test.ID(), r.Reason)
	}
	if passFile != "" {
		var ids []string
		for _, r := range passed {
			ids = append(ids, r.Test.ID())
		}
		sort.Strings(ids)
		return os.WriteFile(passFile, []byte(strings.Join(ids, "\n")+"\n"), 0o644)
	}
	return nil
}

func indent(s string) string {
	return "\t\t" + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n\t\t")
}
