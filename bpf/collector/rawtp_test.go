package collector_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// rawCollectors runs test with each raw tracepoint collector: the one
// that takes its probe index from the attach cookie, where the kernel
// gives raw tracepoints cookies, and the one loaded per probe that
// reads it from a map of its own, which kernels before 6.10 get and
// which runs on any kernel.
func rawCollectors(t *testing.T, test func(*testing.T)) {
	t.Run("cookie", func(t *testing.T) {
		if !collector.RawTracepointCookies() {
			t.Skip("this kernel's raw tracepoints have no attach cookie (bpf_get_attach_cookie in a raw tracepoint program: Linux 6.10)")
		}
		test(t)
	})
	t.Run("index", func(t *testing.T) {
		t.Setenv(collector.NoRawTracepointCookiesEnv, "1")
		test(t)
	})
}

// BenchmarkOpenRawTracepoints measures what kernels without raw
// tracepoint cookies pay: a session of four raw tracepoints opened and
// closed, with one collector for all (cookie) or one instance each
// (index), each instance through the verifier.
func BenchmarkOpenRawTracepoints(b *testing.B) {
	needKernel(b)
	probes := []collector.Probe{
		{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16},
		{Kind: program.RawTracepoint, Name: "sys_exit", CtxLen: 16},
		{Kind: program.RawTracepoint, Name: "sched_switch", CtxLen: 24},
		{Kind: program.RawTracepoint, Name: "sched_wakeup", CtxLen: 8},
	}
	for _, mode := range []string{"cookie", "index"} {
		b.Run(mode, func(b *testing.B) {
			if mode == "index" {
				b.Setenv(collector.NoRawTracepointCookiesEnv, "1")
			} else if !collector.RawTracepointCookies() {
				b.Skip("this kernel's raw tracepoints have no attach cookie")
			}
			for b.Loop() {
				s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
				if err != nil {
					b.Fatal(err)
				}
				s.Close()
			}
		})
	}
}

// TestAttacksCollector: what a script's author can make the collectors
// hold in the kernel.
func TestAttacksCollector(t *testing.T) {
	needKernel(t)
	t.Run("item2/rawtp_instances_bounded", func(t *testing.T) {
		// Where each raw tracepoint is a program of its own, a script
		// of a thousand raw tracepoints (the compiler's bound) would
		// load a thousand collectors with a per-CPU scratch value each:
		// refused before anything is loaded.
		t.Setenv(collector.NoRawTracepointCookiesEnv, "1")
		objs := kerneltest.Track(t)
		probes := make([]collector.Probe, collector.MaxRawTracepointInstances+1)
		for i := range probes {
			probes[i] = collector.Probe{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16}
		}
		s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
		if err == nil {
			s.Close()
			t.Fatalf("%d raw tracepoints opened", len(probes))
		}
		if want := fmt.Sprintf("collector: %d raw tracepoints, at most %d on a kernel without raw tracepoint cookies", len(probes), collector.MaxRawTracepointInstances); !strings.Contains(err.Error(), want) {
			t.Errorf("Open: %v, want %q", err, want)
		}
		for _, h := range objs.HeldBySelf(t) {
			t.Errorf("after a refused Open: %v", h)
		}
		// The bound is on raw tracepoints, not on probes: the same
		// number of tracepoints opens.
		for i := range probes {
			probes[i] = collector.Probe{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16}
		}
		s, err = collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
		if err != nil {
			t.Fatalf("%d tracepoints: %v", len(probes), err)
		}
		s.Close()
	})
}
