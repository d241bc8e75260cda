package bpf_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestTpBTFAttach: a tp_btf probe loads as a tracing program typed by its
// tracepoint's BTF, counts exactly, and is detached with everything else
// when a later probe fails to attach; a tp_btf target the kernel does not
// have fails the load in one line, leaving nothing behind.
func TestTpBTFAttach(t *testing.T) {
	needKernel(t)
	src := fmt.Sprintf(`tp_btf:sys_enter /pid == %d && args.id == 79/ { @[probe] = count(); }
tracepoint:syscalls:sys_enter_getcpu /pid == %[1]d/ { @[probe] = count(); }`, os.Getpid())
	t.Run("attached", func(t *testing.T) {
		lockKernel(t)
		prog := compileScript(t, src, 0)
		objs := kerneltest.Track(t)
		s := loadTracing(t, prog)
		if err := s.Attach(context.Background()); err != nil {
			t.Fatalf("Attach: %v", err)
		}
		if n := s.Attached(); n != 2 {
			t.Errorf("Attached() = %d, want 2", n)
		}
		kerneltest.Syscalls(3, 2)
		want := []string{"tp_btf:sys_enter=3", "tracepoint:syscalls:sys_enter_getcpu=2"}
		if got := entries(t, s, mapID(t, prog, "@")); !reflect.DeepEqual(got, want) {
			t.Errorf("@ = %q, want %q", got, want)
		}
		closeAndCheck(t, s, objs)
	})
	t.Run("rolled back", func(t *testing.T) {
		lockKernel(t)
		prog := compileScript(t, src, 0)
		prog.Probes[1].Event, prog.Probes[1].Name = "sys_enter_nosuch", "tracepoint:syscalls:sys_enter_nosuch"
		objs := kerneltest.Track(t)
		s, err := bpf.Load(prog, bpf.Options{})
		if err != nil {
			t.Fatalf("Load: %v", err)
		}
		defer s.Close()
		// tp_btf:sys_enter is attached first, then rolled back.
		if err := s.Attach(context.Background()); err == nil || !strings.HasPrefix(err.Error(), "attach tracepoint:syscalls:sys_enter_nosuch: ") {
			t.Errorf("Attach: %v, want the missing tracepoint's error", err)
		}
		if n := s.Attached(); n != 0 {
			t.Errorf("Attached() = %d, want 0", n)
		}
		kerneltest.Syscalls(3, 2)
		if got := entries(t, s, mapID(t, prog, "@")); got != nil {
			t.Errorf("@ = %q after the rollback, want nothing", got)
		}
		closeAndCheckLinks(t, s, objs)
	})
	t.Run("no such target", func(t *testing.T) {
		lockKernel(t)
		prog := compileScript(t, src, 0)
		prog.Probes[0].Event, prog.Probes[0].Name = "no_such_tracepoint", "tp_btf:no_such_tracepoint"
		objs := kerneltest.Track(t)
		s, err := bpf.Load(prog, bpf.Options{})
		if err == nil {
			s.Close()
			t.Fatal("Load succeeded")
		}
		if want := "tp_btf:no_such_tracepoint: this kernel does not support BTF tracepoint (tp_btf) programs for no_such_tracepoint"; err.Error() != want {
			t.Errorf("Load: %q, want %q", err, want)
		}
		for _, h := range objs.HeldBySelf(t) {
			t.Errorf("after a failed load: %v", h)
		}
	})
}

// closeAndCheckLinks is closeAndCheck for a session whose only attachments
// were raw tracepoint links (rawtracepoint, tp_btf): the kernel drops a
// link's reference to its program an RCU grace period after the link's
// fd is closed, not during the close as for a perf event, so the
// programs, too, may take a moment to go.
func closeAndCheckLinks(t *testing.T, s *bpf.Session, objs *kerneltest.Objects) {
	t.Helper()
	var progs []ebpf.ProgramID
	for _, p := range s.Programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progs = append(progs, id)
	}
	s.Close()
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after Close: %v", h)
	}
	start := time.Now()
	for _, id := range progs {
		for {
			p, err := ebpf.NewProgramFromID(id)
			if err != nil {
				break
			}
			p.Close()
			if time.Since(start) > 2*time.Second {
				t.Fatalf("program %d still loaded 2s after Close", id)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	t.Logf("programs unloaded %v after Close", time.Since(start).Round(time.Millisecond))
}
