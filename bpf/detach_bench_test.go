package bpf_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker"
)

func TestMain(m *testing.M) {
	// The background detach runs this binary again as its helper.
	bpf.RunReleaseHelper()
	os.Exit(m.Run())
}

// detachable is a session whose probes the benchmark attaches and
// detaches: JIT mode's (*bpf.Session) or interpreter mode's collectors.
type detachable interface {
	Attach(ctx context.Context) error
	Attached() int
	Detach()
	DetachInBackground()
}

type jitSession struct{ *bpf.Session }

func (s jitSession) DetachInBackground() { s.Session.DetachInBackground() }

// BenchmarkDetach360 detaches a program from every syscall entry
// tracepoint (360 on this project's kernel), in JIT mode and in
// interpreter mode (the collectors), in place or handed to the release
// helper (what the CLI does). ns/op is how long the detach call takes,
// what a command waits for before it returns; s-detached is how long
// until the kernel is done with every attachment (the helper gone);
// threads-peak is what this process had at most meanwhile,
// helper-threads-peak the helper's, threads-made the threads this
// process created for it. Each close waits for the kernel's RCU grace
// periods, in a system call that holds an OS thread. Run one
// sub-benchmark per process, once (-benchtime=1x): Go keeps the
// threads it has made, and the kernel takes its grace periods one
// tracepoint at a time, whoever asks.
func BenchmarkDetach360(b *testing.B) {
	if err := bpf.Supported(); err != nil {
		b.Skipf("kernel tracing unavailable: %v", err)
	}
	lockKernel(b)
	prog, _, err := broker.Compile(&broker.Request{Name: "stdin", Source: []byte(`tracepoint:syscalls:sys_enter_* { @ = count(); }`)})
	if err != nil {
		b.Fatal(err)
	}
	open := map[string]func(b *testing.B) detachable{
		"jit": func(b *testing.B) detachable {
			s, err := bpf.Load(prog, bpf.Options{})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			// Stopped: the probes return at once, as a finished
			// trace's do while they detach.
			if err := s.Stop(); err != nil {
				b.Fatal(err)
			}
			return jitSession{s}
		},
		"interp": func(b *testing.B) detachable {
			var probes []collector.Probe
			for _, p := range prog.Probes {
				probes = append(probes, collector.Probe{Kind: p.Kind, Category: p.Category, Event: p.Event, CtxLen: p.CtxLen})
			}
			s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(s.Close)
			if err := s.Stop(); err != nil {
				b.Fatal(err)
			}
			return s
		},
	}
	for _, mode := range []string{"jit", "interp"} {
		for _, how := range []string{"in-place", "background"} {
			b.Run(mode+"/"+how, func(b *testing.B) { benchDetach(b, open[mode](b), how == "background") })
		}
	}
}

func benchDetach(b *testing.B, s detachable, background bool) {
	var peak, helperPeak, created int
	var detached time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := s.Attach(context.Background()); err != nil {
			b.Fatal(err)
		}
		n := s.Attached()
		before := pprof.Lookup("threadcreate").Count()
		stop := watchThreads(&peak, &helperPeak)
		start := time.Now()
		b.StartTimer()
		if background {
			s.DetachInBackground()
		} else {
			s.Detach()
		}
		b.StopTimer()
		for len(releaseHelpers()) > 0 {
			time.Sleep(5 * time.Millisecond)
		}
		detached = max(detached, time.Since(start))
		stop()
		created = max(created, pprof.Lookup("threadcreate").Count()-before)
		if i == 0 {
			b.Logf("%d attachments", n)
		}
	}
	b.ReportMetric(detached.Seconds(), "s-detached")
	b.ReportMetric(float64(peak), "threads-peak")
	b.ReportMetric(float64(helperPeak), "helper-threads-peak")
	b.ReportMetric(float64(created), "threads-made")
}

// watchThreads samples this process's thread count into peak, and its
// release helpers' into helperPeak, until the returned function is
// called.
func watchThreads(peak, helperPeak *int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, threads("self"))
			h := 0
			for _, pid := range releaseHelpers() {
				h += threads(strconv.Itoa(pid))
			}
			*helperPeak = max(*helperPeak, h)
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// threads is the Threads line of /proc/PID/status.
func threads(pid string) int {
	b, err := os.ReadFile("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	_, rest, _ := bytes.Cut(b, []byte("\nThreads:\t"))
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, _ := strconv.Atoi(string(line))
	return n
}

// releaseHelpers are this process's children that are release helpers.
func releaseHelpers() []int {
	var out []int
	files, _ := filepath.Glob("/proc/self/task/*/children")
	for _, f := range files {
		b, _ := os.ReadFile(f)
		for _, w := range strings.Fields(string(b)) {
			env, _ := os.ReadFile(fmt.Sprintf("/proc/%s/environ", w))
			if bytes.Contains(env, []byte("TRACEBROKER_RELEASE_FDS=")) {
				pid, _ := strconv.Atoi(w)
				out = append(out, pid)
			}
		}
	}
	return out
}
