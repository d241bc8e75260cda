package bpf_test

import (
	"bytes"
	"context"
	"os"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
)

// BenchmarkDetach360 detaches a program from every syscall entry
// tracepoint (360 on this project's kernel) and reports the time it
// takes, the threads the process had at most meanwhile and the threads
// it created for it. Each close waits for the kernel's RCU grace
// periods, in a system call that holds an OS thread. Run it alone, once
// per process (-benchtime=1x): Go keeps the threads it has made.
func BenchmarkDetach360(b *testing.B) {
	if err := bpf.Supported(); err != nil {
		b.Skipf("kernel tracing unavailable: %v", err)
	}
	lockKernel(b)
	prog, _, err := broker.Compile(&broker.Request{Name: "stdin", Source: []byte(`tracepoint:syscalls:sys_enter_* { @ = count(); }`)})
	if err != nil {
		b.Fatal(err)
	}
	s, err := bpf.Load(prog, bpf.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	var peak, created int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := s.Attach(context.Background()); err != nil {
			b.Fatal(err)
		}
		n := s.Attached()
		before := pprof.Lookup("threadcreate").Count()
		stop := watchThreads(&peak)
		b.StartTimer()
		s.Detach()
		b.StopTimer()
		stop()
		created = max(created, pprof.Lookup("threadcreate").Count()-before)
		if i == 0 {
			b.Logf("%d attachments", n)
		}
	}
	b.ReportMetric(float64(peak), "threads-peak")
	b.ReportMetric(float64(created), "threads-made")
}

// watchThreads samples this process's thread count into peak until the
// returned function is called.
func watchThreads(peak *int) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(time.Millisecond)
		defer t.Stop()
		for {
			*peak = max(*peak, threads())
			select {
			case <-done:
				return
			case <-t.C:
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

// threads is the Threads line of /proc/self/status.
func threads() int {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	_, rest, _ := bytes.Cut(b, []byte("\nThreads:\t"))
	line, _, _ := bytes.Cut(rest, []byte("\n"))
	n, _ := strconv.Atoi(string(line))
	return n
}
