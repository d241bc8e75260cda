package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// tool is one of the compared tracers: tracebroker in a mode, or
// bpftrace.
type tool struct {
	name string // as the tables show it
	path string
	mode string // tracebroker's --mode; "" for bpftrace
}

func (t tool) isBpftrace() bool { return t.mode == "" }

// opts is what a case asks of a run besides the script.
type opts struct {
	child string // -c CMD
	keys  int    // map capacity: --max-map-keys / BPFTRACE_MAP_KEYS_MAX
}

// command is the argv and environment that run script with t.
func (t tool) command(script string, o opts) (argv, env []string) {
	env = os.Environ()
	if t.isBpftrace() {
		// Without these bpftrace 0.17 refuses more than 512 probes or
		// programs; they cost nothing when not needed.
		env = append(env, "BPFTRACE_MAX_PROBES=100000", "BPFTRACE_MAX_BPF_PROGS=100000")
		if o.keys > 0 {
			env = append(env, "BPFTRACE_MAP_KEYS_MAX="+strconv.Itoa(o.keys))
		}
		if o.child != "" {
			argv = append(argv, "-c", o.child)
		}
		return append(argv, "-e", script), env
	}
	argv = []string{"run", "--mode", t.mode}
	if t.mode == "interp" {
		// A development host has no signed manifests for the static
		// collectors (tracebroker init); checking them is not what is
		// measured here.
		argv = append(argv, "--unsigned-collectors")
	}
	if o.keys > 0 {
		argv = append(argv, "--max-map-keys", strconv.Itoa(o.keys))
	}
	if o.child != "" {
		argv = append(argv, "-c", o.child)
	}
	return append(argv, "-e", script), env
}

// job is one run of a tool.
type job struct {
	argv, env []string
	path      string
	// stdoutFile: write the tool's output there (a regular file, as a
	// user redirecting it would); "" reads it through a pipe, timing its
	// "Attaching" line; os.DevNull discards it.
	stdoutFile string
	// onLine, if set, sees each line of the output, as it comes through
	// the pipe or from the file once the tool is done (streamed: a map
	// of 10^6 keys is 15 MB, which this process must not hold; see
	// lowerPeak).
	onLine func(string)
	// threads samples the thread count of the tool and of every other
	// process it leaves behind (the detach helper) every few ms.
	threads bool
	// exclude are processes of this tool's (workloads) that are neither
	// the tool nor its helper.
	exclude []int
	timeout time.Duration
}

// sample is what one run measured. Times are from the start.
type sample struct {
	attach   time.Duration // the "Attaching N probes" line (piped output only)
	wall     time.Duration // the command returned
	detached time.Duration // the command and every process it left behind are gone
	endMono  int64         // CLOCK_MONOTONIC when the command returned

	rss                    int64 // KiB, peak (wait4)
	helperRSS              int64 // KiB, the helpers' VmHWM as last sampled (their wait4 peak is the tool's, see lowerPeak)
	threads, helperThreads int   // peak threads of the tool, and of its helpers together
	helpers                int   // processes it left behind

	attaching int    // N of "Attaching N probes", -1 if none
	lost      uint64 // sum of "Lost N events"
	stderr    string
}

func monoNow() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return ts.Nano()
}

// runJob runs j, waits for it and for whatever it leaves behind, and
// measures it. This process is a child subreaper (main), so that a
// helper the tool leaves running becomes this process's child when the
// tool exits, and can be waited for here.
func runJob(j job) (*sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), j.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.path, j.argv...)
	cmd.Env = j.env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	s := &sample{attaching: -1}

	var pipe io.ReadCloser
	var outFile *os.File
	switch j.stdoutFile {
	case "":
		p, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		pipe = p
	default:
		f, err := os.Create(j.stdoutFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		outFile = f
		cmd.Stdout = f
	}

	lowerPeak()
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var readDone sync.WaitGroup
	if pipe != nil {
		readDone.Add(1)
		go func() {
			defer readDone.Done()
			sc := bufio.NewScanner(pipe)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				l := sc.Text()
				if s.attaching < 0 {
					if n, ok := attachingCount(l); ok {
						s.attach, s.attaching = time.Since(start), n
					}
				}
				if n, ok := lostCount(l); ok {
					s.lost += n
				}
				if j.onLine != nil {
					j.onLine(l)
				}
			}
			io.Copy(io.Discard, pipe)
		}()
	}
	var sampler *threadSampler
	if j.threads {
		sampler = startSampler(cmd.Process.Pid, j.exclude)
	}
	readDone.Wait() // before Wait, which closes the pipe
	err := cmd.Wait()
	s.wall = time.Since(start)
	s.endMono = monoNow()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		s.rss = ru.Maxrss
	}
	s.stderr = stderr.String()
	if err != nil {
		reapOrphans(j.exclude, s, start.Add(j.timeout))
		if sampler != nil {
			s.threads, s.helperThreads, s.helperRSS = sampler.stop()
		}
		return s, fmt.Errorf("%s: %v after %s: %s", filepath.Base(j.path), err, secs(s.wall), firstLine(s.stderr))
	}
	reapOrphans(j.exclude, s, start.Add(j.timeout))
	s.detached = time.Since(start)
	if sampler != nil {
		s.threads, s.helperThreads, s.helperRSS = sampler.stop()
	}
	if outFile != nil && j.stdoutFile != os.DevNull {
		err := scanFile(j.stdoutFile, func(l string) {
			if n, ok := lostCount(l); ok {
				s.lost += n
			} else if n, ok := attachingCount(l); ok && s.attaching < 0 {
				s.attaching = n
			}
			if j.onLine != nil {
				j.onLine(l)
			}
		})
		if err != nil {
			return nil, err
		}
	}
	_, lostErr := scanStatus(s.stderr)
	s.lost += lostErr
	return s, nil
}

// firstLine is the first non-empty line of an error output, for a table.
func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.Contains(l, "RLIMIT_MEMLOCK") {
			return l
		}
	}
	return ""
}

// children lists this process's children (every thread's: Go starts a
// command from whichever thread its goroutine runs on).
func children(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/children", pid, t.Name()))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

// reapOrphans waits for every child of this process that is not a
// workload: after a tool exits, those are what it left behind (its
// detach helper), re-parented here. One still there at deadline is
// killed.
func reapOrphans(exclude []int, s *sample, deadline time.Time) {
	for {
		var left []int
		for _, c := range children(os.Getpid()) {
			if !slices.Contains(exclude, c) {
				left = append(left, c)
			}
		}
		if len(left) == 0 {
			return
		}
		for _, pid := range left {
			kill := time.AfterFunc(time.Until(deadline), func() { unix.Kill(pid, unix.SIGKILL) })
			var ws unix.WaitStatus
			if _, err := unix.Wait4(pid, &ws, 0, nil); err == nil {
				s.helpers++
			}
			kill.Stop()
		}
	}
}

// threadSampler polls the thread counts of a tool and its descendants.
type threadSampler struct {
	done chan struct{}
	res  chan [3]int64
}

const samplePeriod = 5 * time.Millisecond

func startSampler(pid int, exclude []int) *threadSampler {
	t := &threadSampler{done: make(chan struct{}), res: make(chan [3]int64, 1)}
	self := os.Getpid()
	go func() {
		var most [3]int64 // tool's threads, helpers' threads, helpers' VmHWM
		hwm := map[int]int64{}
		tick := time.NewTicker(samplePeriod)
		defer tick.Stop()
		for {
			// The tool's descendants, and once it has exited, this
			// process's children that are not workloads.
			helpers := 0
			var walk func(p int)
			visit := func(c int) {
				helpers += threads(c)
				if k := vmHWM(c); k > 0 {
					hwm[c] = k
				}
				walk(c)
			}
			walk = func(p int) {
				for _, c := range children(p) {
					if !slices.Contains(exclude, c) {
						visit(c)
					}
				}
			}
			walk(pid)
			for _, c := range children(self) {
				if c != pid && !slices.Contains(exclude, c) {
					visit(c)
				}
			}
			most[0] = max(most[0], int64(threads(pid)))
			most[1] = max(most[1], int64(helpers))
			select {
			case <-t.done:
				// A helper's last VmHWM, not the largest seen: until
				// its exec, a vfork child shows its parent's memory.
				for _, k := range hwm {
					most[2] += k
				}
				t.res <- most
				return
			case <-tick.C:
			}
		}
	}()
	return t
}

// stop ends the sampling: the peak threads of the tool and of its
// helpers together, and the helpers' peak RSS (KiB, VmHWM summed).
func (t *threadSampler) stop() (tool, helpers int, helperRSS int64) {
	close(t.done)
	r := <-t.res
	return int(r[0]), int(r[1]), r[2]
}

// vmHWM is the peak RSS of pid's memory since its exec, KiB (0 if gone).
func vmHWM(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// scanFile streams path's lines to f.
func scanFile(path string, f func(string)) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f(sc.Text())
	}
	return sc.Err()
}

// lowerPeak makes this process's peak RSS its current, small, RSS just
// before it starts a tool. A child started with vfork, as Go starts
// them, inherits at its exec the peak RSS of the memory it shared with
// this process, and wait4 reports the larger of that and its own: left
// alone, every tool would be charged this process's peak. (The detach
// helper is tracebroker's vfork child, which is why its wait4 peak is
// tracebroker's and it is sampled instead.)
func lowerPeak() {
	debug.FreeOSMemory()
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// threads is the number of threads of pid, 0 once it is gone (a zombie
// has none).
func threads(pid int) int {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	return len(ents)
}
