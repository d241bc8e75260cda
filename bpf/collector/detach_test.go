package collector_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

func TestMain(m *testing.M) {
	// DetachInBackground runs this binary again as its helper.
	bpf.RunReleaseHelper()
	os.Exit(m.Run())
}

// TestDetachInBackground: a stopped session handed to the release
// helper delivers nothing more and counts nothing attached; once closed,
// this process holds nothing, and the helper soon leaves nothing loaded.
// Every kind of attachment the collectors make on this kernel is there:
// a tracepoint's perf link, a raw tracepoint's link, a uprobe's perf
// link, a profile's perf event links.
func TestDetachInBackground(t *testing.T) { rawCollectors(t, testDetachInBackground) }

func testDetachInBackground(t *testing.T) {
	needKernel(t)
	probes := []collector.Probe{
		{Kind: program.Tracepoint, Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 16},
		{Kind: program.RawTracepoint, Name: "sys_enter", CtxLen: 16},
		{Kind: program.Profile, Freq: 10},
	}
	if bash, err := uprobe.FindBinary("bash"); err == nil {
		if syms, err := uprobe.Match(bash, "readline"); err == nil {
			probes = append(probes, collector.Probe{Kind: program.Uprobe, Path: bash, Offset: syms[0].Offset})
		}
	}
	objs := kerneltest.Track(t)
	s, err := collector.Open(collector.Options{Probes: probes, Trust: collector.Trust{Unsigned: true}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Attach(context.Background()); err != nil {
		t.Fatal(err)
	}
	kerneltest.Syscalls(3, 0)
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	s.DetachInBackground()
	if n := s.Attached(); n != 0 {
		t.Errorf("%d attachments after DetachInBackground", n)
	}
	kerneltest.Syscalls(4, 0)
	getcwd := func(r *collector.Record) bool { return mine(r) && r.Probe == 0 }
	if got := len(drainStopped(t, s, getcwd)); got != 3 {
		t.Errorf("%d getcwd records, want the 3 before Stop", got)
	}
	s.Close()
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after Close: %v", h)
	}
	objs.ExpectReleased(t, 10*time.Second)
}
