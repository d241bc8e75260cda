package btsuite

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Status is how a test ended.
type Status int

const (
	Pass Status = iota
	Fail
	Timeout // the engine's TIMEOUT: a failure
	Skip
)

func (s Status) String() string {
	return [...]string{"PASS", "FAIL", "TIMEOUT", "SKIP"}[s]
}

// Failed is the engine's Runner.failed.
func (s Status) Failed() bool { return s == Fail || s == Timeout }

// A Result is one test's run.
type Result struct {
	Test    Test
	Status  Status
	Reason  string // why it failed or skipped
	Command string // the command line run
	Output  string // its standard output and error, interleaved
	Elapsed time.Duration
	// Flaked is why a first run failed, for a test RunAll ran twice
	// (tracePrintkRetry).
	Flaked string
}

// The engine's constants (runner.py).
const (
	AttachTimeout  = 5 * time.Second // from start until the probes are attached
	DefaultTimeout = 5 * time.Second // a test's TIMEOUT 0
	notifyLine     = "__BPFTRACE_NOTIFY_PROBES_ATTACHED\n"
)

// Env is where tests run.
type Env struct {
	Dir      string // holds runtime/, testprogs/ and testlibs/ (Build); the tests' working directory
	Bpftrace string // the program {{BPFTRACE}} names; its directory leads REQUIRES' PATH
	Kernel   string // the kernel's release (uname -r)
	Features map[string]bool
	// Lacks says what the kernel lacks that tests need without
	// naming it (Lacks()).
	Lacks map[string]string
	// Disabled are tests not run, by ID, with why (the engine's
	// RUNTIME_TEST_DISABLE).
	Disabled map[string]string
	// Grace is how long a timed-out test has to end on SIGTERM before it is
	// killed (the engine waits forever).
	Grace time.Duration
	// AttachTimeout is how long a test may take until its probes are
	// attached (AttachTimeout when 0). It is only a hang guard: a
	// longer one changes no result of a test that attaches, and keeps a
	// busy machine from failing one that is slow to.
	AttachTimeout time.Duration
}

// Command is the shell command line a test runs (prepare_bpf_call).
func (e *Env) Command(t Test) string {
	if t.Run != "" {
		return strings.ReplaceAll(t.Run, "{{BPFTRACE}}", e.Bpftrace)
	}
	return fmt.Sprintf("%s -e '%s'", e.Bpftrace, t.Prog)
}

// Skipped says why t does not apply here, or "" when it does: the
// kernel's version, a REQUIRES command that fails, a feature the kernel
// lacks, as runner.py decides it in that order.
func (e *Env) Skipped(ctx context.Context, t Test) string {
	if t.MinKernel != "" && compareVersions(t.MinKernel, e.Kernel) > 0 {
		return "min Kernel: " + t.MinKernel
	}
	if t.MaxKernel != "" && compareVersions(t.MaxKernel, e.Kernel) < 0 {
		return "max Kernel: " + t.MaxKernel
	}
	if why, ok := e.Disabled[t.ID()]; ok {
		return "disabled: " + why
	}
	for _, req := range t.Requires {
		cmd := exec.CommandContext(ctx, "/bin/sh", "-c", req)
		cmd.Dir = e.Dir
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(e.Bpftrace)+":"+os.Getenv("PATH"))
		if cmd.Run() != nil {
			return fmt.Sprintf("unmet condition: '%s'", strings.Join(t.Requires, " && "))
		}
	}
	for _, n := range e.needs(t) {
		if why, ok := e.Lacks[n]; ok {
			return "needs " + n + ": " + why
		}
		if have, ok := e.Features[n]; ok && !have {
			return "missed feature: " + n
		}
	}
	for _, f := range t.Features {
		if !e.Features[f] {
			return "missed feature: " + f
		}
	}
	for _, f := range t.NotFeatures {
		if e.Features[f] {
			return "missed feature: !" + f
		}
	}
	return ""
}

// Run runs one test as runner.py's run_test does.
func (e *Env) Run(ctx context.Context, t Test) (res Result) {
	start := time.Now()
	res = Result{Test: t, Command: e.Command(t)}
	defer func() { res.Elapsed = time.Since(start) }()
	if why := e.Skipped(ctx, t); why != "" {
		res.Status, res.Reason = Skip, why
		return res
	}
	timeout := time.Duration(t.Timeout) * time.Second
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	var groups []*exec.Cmd
	defer func() {
		for _, c := range groups {
			killGroup(c, syscall.SIGKILL)
			c.Wait()
		}
	}()
	if t.Before != "" {
		before := shell(t.Before, e.Dir, nil)
		before.Stdout, before.Stderr = io.Discard, io.Discard
		if err := before.Start(); err != nil {
			res.Status, res.Reason = Fail, "BEFORE: "+err.Error()
			return res
		}
		groups = append(groups, before)
		words := strings.Fields(t.Before)
		name := filepath.Base(words[len(words)-1])
		pid, err := waitProcess(ctx, before.Process.Pid, name, timeout)
		if err != nil {
			res.Status, res.Reason = Timeout, fmt.Sprintf("BEFORE %s: %v", t.Before, err)
			return res
		}
		res.Command = strings.ReplaceAll(res.Command, "{{BEFORE_PID}}", strconv.Itoa(pid))
	}
	env := []string{
		"test=" + t.Name,
		"__BPFTRACE_NOTIFY_PROBES_ATTACHED=1",
		"__BPFTRACE_NOTIFY_AOT_PORTABILITY_DISABLED=1",
		"BPFTRACE_VERIFY_LLVM_IR=1",
	}
	for _, kv := range t.Env {
		env = append(env, kv[0]+"="+kv[1])
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	defer pr.Close()
	p := shell(res.Command, e.Dir, env)
	p.Stdout, p.Stderr = pw, pw
	err = p.Start()
	pw.Close()
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	groups = append(groups, p)

	lines := make(chan string)
	go func() {
		defer close(lines)
		r := bufio.NewReader(pr)
		for {
			l, err := r.ReadString('\n')
			if l != "" {
				lines <- l
			}
			if err != nil {
				return
			}
		}
	}()
	var out strings.Builder
	attach := e.AttachTimeout
	if attach == 0 {
		attach = AttachTimeout
	}
	alarm := time.NewTimer(attach)
	defer alarm.Stop()
	var after *exec.Cmd
	timedOut := false
read:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				break read
			}
			out.WriteString(l)
			if l == notifyLine && after == nil {
				alarm.Reset(timeout)
				if t.After != "" {
					after = shell(t.After, e.Dir, os.Environ())
					after.Stdout, after.Stderr = io.Discard, io.Discard
					if after.Start() == nil {
						groups = append(groups, after)
					}
				}
			}
		case <-alarm.C:
			timedOut = true
			break read
		case <-ctx.Done():
			res.Status, res.Reason = Fail, ctx.Err().Error()
			return res
		}
	}
	if timedOut {
		// The engine sends SIGTERM, so that the tracer ends cleanly
		// and prints what it has, and reads to the end.
		killGroup(p, syscall.SIGTERM)
		grace := time.NewTimer(e.grace())
		defer grace.Stop()
	drain:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break drain
				}
				out.WriteString(l)
			case <-grace.C:
				killGroup(p, syscall.SIGKILL)
				grace.Reset(time.Hour)
			}
		}
	}
	p.Wait()
	res.Output = out.String()
	m, err := compileExpect(t.Expect, !timedOut)
	if err != nil {
		res.Status, res.Reason = Fail, err.Error()
		return res
	}
	matched := m(res.Output)
	switch {
	case timedOut && !matched:
		res.Status, res.Reason = Timeout, fmt.Sprintf("no %q after %v", t.Expect, timeout)
	case !timedOut && p.ProcessState.ExitCode() != 0 && !t.WillFail:
		res.Status, res.Reason = Fail, fmt.Sprintf("unclean exit code %d", p.ProcessState.ExitCode())
	case matched:
		res.Status = Pass
	default:
		res.Status, res.Reason = Fail, fmt.Sprintf("expected %q", t.Expect)
	}
	return res
}

func (e *Env) grace() time.Duration {
	if e.Grace > 0 {
		return e.Grace
	}
	return 10 * time.Second
}

// shell is sh -c line in its own process group, as the engine's
// Popen(shell=True, preexec_fn=os.setsid) is. env nil inherits ours; the
// engine gives the tracer only its own variables, not even PATH.
func shell(line, dir string, env []string) *exec.Cmd {
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = dir
	if env != nil {
		cmd.Env = env
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

func killGroup(c *exec.Cmd, sig syscall.Signal) {
	if c.Process != nil {
		syscall.Kill(-c.Process.Pid, sig)
	}
}

// waitProcess is the engine's `pidof NAME` loop, looking only in the
// BEFORE command's process group: tests that run side by side start
// the same programs, and each must find its own.
func waitProcess(ctx context.Context, pgid int, name string, limit time.Duration) (int, error) {
	deadline := time.Now().Add(limit)
	for {
		if pid := findInGroup(pgid, name); pid > 0 {
			return pid, nil
		}
		if time.Now().After(deadline) {
			return 0, fmt.Errorf("no process %s after %v", name, limit)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func findInGroup(pgid int, name string) int {
	procs, _ := os.ReadDir("/proc")
	for _, d := range procs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		if g, err := syscall.Getpgid(pid); err != nil || g != pgid {
			continue
		}
		// pidof matches the program's name: argv[0]'s base name.
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			continue
		}
		argv0, _, _ := strings.Cut(string(cmdline), "\x00")
		if filepath.Base(argv0) == name {
			return pid
		}
	}
	return 0
}

// compareVersions compares kernel versions as Python's LooseVersion
// does for the releases the suite names: numerically, component by
// component, where a version that is a prefix of another is the lesser
// (5.5 < 5.5.0).
func compareVersions(a, b string) int {
	pa, pb := versionParts(a), versionParts(b)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] != pb[i] {
			if pa[i] < pb[i] {
				return -1
			}
			return 1
		}
	}
	switch {
	case len(pa) < len(pb):
		return -1
	case len(pa) > len(pb):
		return 1
	}
	return 0
}

// versionParts are a release's numbers up to the first word that is
// not one (6.1.0-28-amd64: 6 1 0 28).
func versionParts(v string) []int {
	var out []int
	for _, f := range strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '-' || r == '+' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			break
		}
		out = append(out, n)
	}
	return out
}

// Match is the engine's fnmatch of a test filter against suite.name: *
// and ? match any characters, / included.
func Match(pattern, id string) bool {
	var re strings.Builder
	re.WriteString("^")
	for _, r := range pattern {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	m, err := regexp.MatchString(re.String(), id)
	return err == nil && m
}
