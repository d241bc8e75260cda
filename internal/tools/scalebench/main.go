// Command scalebench measures tracebroker, JIT-compiled and interpreted,
// side by side with bpftrace 0.17 in the same run, on the cases of issue
// 21 ("Performance at scale"): a one-liner's start-up, large maps
// printed at exit, many probes attached and detached, the cost each
// event adds to the traced process, and a storm of printf events. Each
// case is in a file of its own; `make bench` runs them all. It needs
// root.
//
// Runs of the tools alternate (tracebroker jit, interp, bpftrace, then
// again) and the tables show medians: the machine this runs on is shared
// and its timings move.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

type bench struct {
	self      string // this binary, for the workloads
	tmp       string
	tools     []tool
	bpftrace  bool // bpftrace is among the tools
	runs      int  // one-liner
	heavyRuns int  // maps, probes, storm
	eventRuns int
	keys      []int
	probeSets []string
	busySet   string
	events    int
	libc      string // the file uprobes attach to
	timeout   time.Duration
}

var cases = []struct {
	name string
	run  func(*bench) error
}{
	{"startup", (*bench).startup},
	{"maps", (*bench).maps},
	{"probes", (*bench).probes},
	{"events", (*bench).perEvent},
	{"storm", (*bench).storm},
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "scalebench: "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "workload" {
		runWorkload(os.Args[2:])
		return
	}
	var names []string
	for _, c := range cases {
		names = append(names, c.name)
	}
	caseList := flag.String("cases", strings.Join(names, ","), "cases to run, of "+strings.Join(names, ","))
	toolList := flag.String("tools", "jit,interp,bpftrace", "tools to compare: jit and interp (tracebroker's modes), bpftrace")
	bin := flag.String("bin", "bin/tracebroker", "tracebroker binary")
	runs := flag.Int("runs", 15, "runs per tool of the one-liner")
	heavyRuns := flag.Int("heavy-runs", 3, "runs per tool of the maps, probes and storm cases")
	eventRuns := flag.Int("event-runs", 5, "runs per tool and script of the per-event case")
	keys := flag.String("keys", "10^4,10^5,10^6", "map sizes of the maps case")
	probeSets := flag.String("probe-sets", "tp360,tp720,up1017,"+issueSet, "probe sets of the probes case, of "+strings.Join(probeSetNames(), ","))
	busySet := flag.String("busy-set", "tp720", "probe set attached while a busy workload runs, to count lost events (empty: none)")
	events := flag.Int("events", 300000, "getcwd calls of the per-event case's child")
	libc := flag.String("libc", "/usr/lib/x86_64-linux-gnu/libc.so.6", "the library whose functions the uprobe sets attach to")
	realLibc := flag.Bool("real-libc", false, "attach the uprobes to -libc itself, which every process on the host maps, rather than to a private copy nothing runs")
	timeout := flag.Duration("timeout", 15*time.Minute, "kill a run of a tool after this long")
	flag.Parse()

	want := map[string]bool{}
	for _, c := range strings.Split(*caseList, ",") {
		if c = strings.TrimSpace(c); c == "" {
			continue
		}
		if !slices.Contains(names, c) {
			fatalf("-cases: no case %q (%s)", c, strings.Join(names, ","))
		}
		want[c] = true
	}
	if os.Geteuid() != 0 {
		fatalf("needs root: every case loads and attaches eBPF programs (run it as root, e.g. sudo make bench)")
	}
	b := &bench{runs: *runs, heavyRuns: *heavyRuns, eventRuns: *eventRuns, busySet: *busySet, events: *events, timeout: *timeout}
	var err error
	if b.keys, err = parseInts(*keys); err != nil {
		fatalf("-keys: %v", err)
	}
	for _, s := range strings.Split(*probeSets, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		if _, ok := findProbeSet(s); !ok {
			fatalf("-probe-sets: no set %q (%s)", s, strings.Join(probeSetNames(), ","))
		}
		b.probeSets = append(b.probeSets, s)
	}
	if b.busySet != "" {
		if _, ok := findProbeSet(b.busySet); !ok {
			fatalf("-busy-set: no set %q", b.busySet)
		}
	}
	if b.self, err = os.Executable(); err != nil {
		fatalf("%v", err)
	}
	tb, err := filepath.Abs(*bin)
	if err != nil {
		fatalf("%v", err)
	}
	if _, err := os.Stat(tb); err != nil {
		fatalf("tracebroker: %v (make build)", err)
	}
	for _, t := range strings.Split(*toolList, ",") {
		switch strings.TrimSpace(t) {
		case "jit", "interp":
			b.tools = append(b.tools, tool{name: "tracebroker " + t, path: tb, mode: t})
		case "bpftrace":
			p, err := exec.LookPath("bpftrace")
			if err != nil {
				fmt.Println("bpftrace is not installed (apt-get install bpftrace): tracebroker's figures only, no ratios")
				continue
			}
			b.tools = append(b.tools, tool{name: "bpftrace", path: p})
			b.bpftrace = true
		default:
			fatalf("-tools: %q is none of jit, interp, bpftrace", t)
		}
	}
	// Whatever a tool leaves running when it exits (tracebroker's detach
	// helper) is re-parented here, to be timed and waited for.
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		fatalf("PR_SET_CHILD_SUBREAPER: %v", err)
	}
	if b.tmp, err = os.MkdirTemp("", "scalebench"); err != nil {
		fatalf("%v", err)
	}
	defer os.RemoveAll(b.tmp)
	b.libc = *libc
	if !*realLibc && b.usesUprobes() {
		// Uprobes on the host's libc trap in every process of the host
		// (other users' too) for as long as they are attached; a copy
		// that nothing maps costs the tools the same to attach and
		// detach, and leaves the host alone.
		b.libc = filepath.Join(b.tmp, "libc.so.6")
		if err := copyFile(*libc, b.libc); err != nil {
			fatalf("copy %s: %v", *libc, err)
		}
	}

	host, _ := os.Hostname()
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("scalebench %s, host %s, kernel %s, %d CPUs\n", time.Now().Format("2006-01-02 15:04"), host, unix.ByteSliceToString(uts.Release[:]), numCPU())
	for _, t := range b.tools {
		fmt.Printf("  %-20s %s %s\n", t.name, t.path, version(t))
	}
	lowerPeak()
	fmt.Printf("peak RSS is wait4's, at least this process's own at each start (%s; see lowerPeak)\n", mib(vmHWM(os.Getpid())))
	for _, c := range cases {
		if !want[c.name] {
			continue
		}
		fmt.Printf("\n=== %s\n", c.name)
		t0 := time.Now()
		if err := c.run(b); err != nil {
			fmt.Printf("case %s FAILED: %v\n", c.name, err)
		}
		fmt.Printf("(%s took %v)\n", c.name, time.Since(t0).Round(time.Second))
	}
}

func version(t tool) string {
	var out []byte
	if t.isBpftrace() {
		out, _ = exec.Command(t.path, "--version").Output()
	} else {
		out, _ = exec.Command(t.path, "version", "--short").Output()
	}
	return strings.TrimSpace(string(out))
}

func numCPU() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
