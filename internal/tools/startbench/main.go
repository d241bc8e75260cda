// Command startbench measures tracebroker against bpftrace, wall time and
// peak RSS, median of several runs: what a one-liner that attaches and
// exits costs, and how long a storm of printf events takes to come out.
// It is run by `make bench` and needs root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"strings"
	"syscall"
	"time"
)

const script = `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } BEGIN { exit(); }`

// stormScript prints one line per getcwd of the -c child, which is this
// binary run with -getcwd.
const stormScript = `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { printf("%d %s\n", pid, comm); }`

const stormEvents = 200000

type result struct {
	wall []time.Duration
	rss  []int64 // KiB
}

func measure(name string, args []string, runs int) (*result, error) {
	r := &result{}
	for i := 0; i < runs+1; i++ {
		cmd := exec.Command(name, args...)
		cmd.Stdout, cmd.Stderr = nil, nil
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		wall := time.Since(start)
		if i == 0 {
			continue // warm the page cache
		}
		r.wall = append(r.wall, wall)
		r.rss = append(r.rss, cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	}
	return r, nil
}

func median[T int64 | time.Duration](xs []T) T {
	s := append([]T(nil), xs...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func main() {
	runs := flag.Int("runs", 15, "runs per tool")
	bin := flag.String("bin", "bin/tracebroker", "tracebroker binary")
	getcwd := flag.Int("getcwd", 0, "be the storm's workload: call getcwd N times and exit")
	flag.Parse()
	if *getcwd > 0 {
		buf := make([]byte, 256)
		for i := 0; i < *getcwd; i++ {
			syscall.Getcwd(buf)
		}
		return
	}

	fmt.Printf("script: %s\nruns: %d (median)\n\n", script, *runs)
	tb, err := measure(*bin, []string{"run", "-e", script}, *runs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%-12s %10s %12s\n", "tool", "wall", "peak RSS")
	fmt.Printf("%-12s %10v %9d KiB\n", "tracebroker", median(tb.wall).Round(100*time.Microsecond), median(tb.rss))
	bt, err := exec.LookPath("bpftrace")
	if err != nil {
		fmt.Println("bpftrace    not installed (apt-get install bpftrace) — no comparison")
		return
	}
	ref, err := measure(bt, []string{"-e", script}, *runs)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%-12s %10v %9d KiB\n", "bpftrace", median(ref.wall).Round(100*time.Microsecond), median(ref.rss))
	fmt.Printf("\nratio: wall %.3fx, peak RSS %.3fx (goal: <= 0.05x and <= 0.15x)\n",
		float64(median(tb.wall))/float64(median(ref.wall)), float64(median(tb.rss))/float64(median(ref.rss)))

	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	child := fmt.Sprintf("%s -getcwd %d", self, stormEvents)
	stormRuns := max(*runs/5, 3)
	fmt.Printf("\nstorm: %s\n%d printf events to /dev/null, runs: %d (median)\n\n", stormScript, stormEvents, stormRuns)
	tbs, err := measure(*bin, []string{"run", "-c", child, "-e", stormScript}, stormRuns)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bts, err := measure(bt, []string{"-c", child, "-e", stormScript}, stormRuns)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("%-12s %10s %12s\n", "tool", "wall", "peak RSS")
	fmt.Printf("%-12s %10v %9d KiB\n", "tracebroker", median(tbs.wall).Round(time.Millisecond), median(tbs.rss))
	fmt.Printf("%-12s %10v %9d KiB\n", "bpftrace", median(bts.wall).Round(time.Millisecond), median(bts.rss))
	fmt.Printf("\nratio: wall %.3fx\n", float64(median(tbs.wall))/float64(median(bts.wall)))
	for _, c := range []struct {
		name string
		cmd  *exec.Cmd
	}{
		{"tracebroker", exec.Command(*bin, "run", "-c", child, "-e", stormScript)},
		{"bpftrace", exec.Command(bt, "-c", child, "-e", stormScript)},
	} {
		out, err := c.cmd.Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		printed, lost := 0, 0
		for _, l := range strings.Split(string(out), "\n") {
			var n int
			if _, err := fmt.Sscanf(l, "Lost %d events", &n); err == nil {
				lost += n
			} else if strings.HasSuffix(l, " startbench") {
				printed++
			}
		}
		fmt.Printf("%-12s printed %d, lost %d of %d\n", c.name, printed, lost, stormEvents)
	}
}
