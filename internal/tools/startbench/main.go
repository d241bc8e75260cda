// Command startbench measures what a one-liner that attaches and exits
// costs, tracebroker against bpftrace: wall time and peak RSS, median of
// several runs. It is run by `make bench` and needs root.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"
)

const script = `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); } BEGIN { exit(); }`

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
	flag.Parse()

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
	fmt.Printf("\nratio: wall %.3fx, peak RSS %.3fx (goal: <= 0.10x and <= 0.25x)\n",
		float64(median(tb.wall))/float64(median(ref.wall)), float64(median(tb.rss))/float64(median(ref.rss)))
}
