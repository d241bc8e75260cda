package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// The workloads are this binary run again, `scalebench workload KIND
// ARGS...`: as a tool's -c child (so that the script's /pid == cpid/
// sees only them), or beside a tool.

// workloadCmd is the -c command line of a workload.
func workloadCmd(self string, args ...string) string {
	return self + " workload " + strings.Join(args, " ")
}

func getcwd(buf []byte, size uintptr) {
	unix.Syscall(unix.SYS_GETCWD, uintptr(unsafe.Pointer(&buf[0])), size, 0)
}

// runWorkload runs the workload args name and exits.
func runWorkload(args []string) {
	if len(args) < 1 {
		fatalf("workload: which?")
	}
	num := func(i int) int {
		if len(args) <= i {
			fatalf("workload %s: missing argument %d", args[0], i)
		}
		n, err := strconv.Atoi(args[i])
		if err != nil {
			fatalf("workload %s: %v", args[0], err)
		}
		return n
	}
	buf := make([]byte, 4096)
	switch args[0] {
	case "sizes":
		// sizes N STAMP: getcwd(buf, k) for k = 1..N, each a distinct
		// key of @[args->size] (one too small for the path fails with
		// ERANGE after the tracepoint has seen it), then the time it
		// ended, CLOCK_MONOTONIC ns, written to STAMP: the tool prints
		// its maps after this.
		n := num(1)
		f, err := os.Create(args[2])
		if err != nil {
			fatalf("%v", err)
		}
		for k := 1; k <= n; k++ {
			getcwd(buf, uintptr(k))
		}
		fmt.Fprintf(f, "%d\n", monoNow())
		f.Close()
	case "loop":
		// loop M RESULT: getcwd(buf, 256) M times; the loop's CPU time
		// (user+sys, ns) written to RESULT.
		m := num(1)
		var before, after syscall.Rusage
		syscall.Getrusage(syscall.RUSAGE_SELF, &before)
		for range m {
			getcwd(buf, 256)
		}
		syscall.Getrusage(syscall.RUSAGE_SELF, &after)
		cpu := tvNs(after.Utime) + tvNs(after.Stime) - tvNs(before.Utime) - tvNs(before.Stime)
		if err := os.WriteFile(args[2], []byte(strconv.FormatInt(cpu, 10)+"\n"), 0o644); err != nil {
			fatalf("%v", err)
		}
	case "storm":
		// storm N: getcwd N times, as fast as it can.
		n := num(1)
		for range n {
			getcwd(buf, 256)
		}
	case "busy":
		// busy: syscalls of several kinds until killed, to fire many
		// syscall tracepoints while a tool attaches to them.
		for {
			getcwd(buf, 256)
			unix.Getpid()
			unix.Close(-1)
			unix.Getppid()
			var ts unix.Timespec
			unix.ClockGettime(unix.CLOCK_REALTIME, &ts) // vDSO: no syscall
			unix.Uname(&unix.Utsname{})
		}
	case "compare":
		// compare A B: how output file A differs from B, lines sorted.
		if len(args) != 3 {
			fatalf("workload compare A B")
		}
		var lines [2][]string
		for i, p := range args[1:] {
			data, err := os.ReadFile(p)
			if err != nil {
				fatalf("%v", err)
			}
			lines[i] = strings.Split(string(data), "\n")
		}
		d := compareOutputs(lines[0], lines[1])
		fmt.Printf("%d lines only in the first (first %q), %d only in the second (first %q)\n", d.onlyA, d.firstA, d.onlyB, d.firstB)
	default:
		fatalf("workload %q: unknown", args[0])
	}
	os.Exit(0)
}

func tvNs(tv syscall.Timeval) int64 { return tv.Sec*1e9 + tv.Usec*1e3 }

// readInt reads the number a workload wrote to path.
func readInt(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
}
