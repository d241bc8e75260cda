package btsuite

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Setup builds the suite in src (the vendored testdata/bpftrace-0.17)
// into work and returns the Env that runs it with tracer, reached as
// work/bin/bpftrace: a link named as the tests name it (`pidof
// bpftrace`, a comm of "bpftrace" in BEGIN).
func Setup(src, work, tracer string) (*Env, error) {
	if err := Build(src, work); err != nil {
		return nil, err
	}
	tracer, err := filepath.Abs(tracer)
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(work, "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		return nil, err
	}
	link := filepath.Join(bin, "bpftrace")
	os.Remove(link)
	if err := os.Symlink(tracer, link); err != nil {
		return nil, err
	}
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return nil, err
	}
	return &Env{
		Dir:      work,
		Bpftrace: link,
		Kernel:   unix.ByteSliceToString(uts.Release[:]),
		Features: Features(),
		Lacks:    Lacks(),
	}, nil
}

// Machine is uname's machine name, which ARCH lists.
func Machine() string {
	var uts unix.Utsname
	if err := unix.Uname(&uts); err != nil {
		return ""
	}
	return unix.ByteSliceToString(uts.Machine[:])
}

// aloneCommand finds what a test does to the whole machine, not only to
// its own processes: it signals or looks up every process named
// bpftrace, or reads the kernel's shared trace buffer.
var aloneCommand = regexp.MustCompile(`\b(pidof|pkill|killall)\b|/tracing/trace\b|\bnft\b`)

// tracePrintkRetry finds the tests that read what bpf_trace_printk
// wrote to the kernel's trace buffer, which run once more when they
// fail. In the 6.12 guest the boot's first bpf_trace_printk (call.debugf)
// wrote nothing to it in three full runs of the kernel suite of four,
// after the shared tests, with no tracer left running, and never when
// fewer tests ran before it; the two debugf tests after it always
// passed. Result.Flaked keeps the first run's failure, for the log.
var tracePrintkRetry = regexp.MustCompile(`/tracing/trace\b`)

// Alone says whether t must run with no other test beside it.
func Alone(t Test) bool {
	for _, c := range []string{t.Run, t.Prog, t.Before, t.After} {
		if aloneCommand.MatchString(c) {
			return true
		}
	}
	return false
}

// RunAll runs tests, jobs at a time, then those that must run Alone one
// by one. Tests side by side see each other's events (two tests that
// count the system calls of ./testprogs/syscall count both), so a test
// that fails beside others runs again alone, and its result is that
// run's. done hears each result as it is final. Results are in the
// order of tests.
func (e *Env) RunAll(ctx context.Context, tests []Test, jobs int, done func(Result)) []Result {
	if jobs < 1 {
		jobs = 1
	}
	results := make([]Result, len(tests))
	var (
		shared, alone []int
		mu            sync.Mutex
		wg            sync.WaitGroup
	)
	for i, t := range tests {
		if Alone(t) || jobs == 1 {
			alone = append(alone, i)
		} else {
			shared = append(shared, i)
		}
	}
	next := make(chan int)
	for w := 0; w < jobs; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				r := e.Run(ctx, tests[i])
				mu.Lock()
				results[i] = r
				if r.Status.Failed() {
					alone = append(alone, i)
				} else if done != nil {
					done(r)
				}
				mu.Unlock()
			}
		}()
	}
	for _, i := range shared {
		if ctx.Err() != nil {
			break
		}
		next <- i
	}
	close(next)
	wg.Wait()
	sort.Ints(alone)
	for _, i := range alone {
		if ctx.Err() != nil {
			break
		}
		r := e.Run(ctx, tests[i])
		if r.Status.Failed() && tracePrintkRetry.MatchString(tests[i].Run) {
			again := e.Run(ctx, tests[i])
			again.Flaked = r.Reason
			r = again
		}
		if jobs > 1 && !Alone(tests[i]) && r.Status.Failed() {
			r.Reason = strings.TrimSpace(r.Reason + " (run again alone)")
		}
		results[i] = r
		if done != nil {
			done(r)
		}
	}
	return results
}
