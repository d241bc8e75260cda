package broker

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/recordingtest"
)

// withCPUs is the recording at path with its header saying cpus, as an
// attacker who hands someone a recording writes it.
func withCPUs(t *testing.T, path string, cpus int) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), fmt.Sprintf("cpus%d.tbrec", cpus))
	recordingtest.Rewrite(t, path, out, func(h *recording.Header) { h.CPUs = cpus })
	return out
}

// TestAttacksReplay: a recording's header says how many CPUs its host
// had, and a replay keeps a copy of each per-CPU map for each; a crafted
// header cannot make it allocate more than maxInterpMapBytes, and is
// refused before anything is allocated.
func TestAttacksReplay(t *testing.T) {
	rec := writeRecording(t, []opened{{"cat", 10, 0, "/etc/hostname"}, {"ls", 11, 3, "/"}}, true, true)
	script := `tracepoint:syscalls:sys_enter_openat { @a = count(); @b[comm] = sum(1); @c = avg(cpu); @d = hist(pid); }`
	for _, tt := range []struct {
		name    string
		cpus    int
		err     string
		maxHeap uint64 // what the replay may allocate
	}{
		{"item13/cpus_64", 64, "", 64 << 20},
		{"item13/cpus_8192", 8192, "CPUs, more than 256 MiB; use smaller maps (--max-map-keys)", 16 << 20},
		{"item13/cpus_over_linux", 9999, "recording of 9999 CPUs (1 to 8192)", 16 << 20},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := rec
			if tt.cpus <= recording.MaxCPUs {
				path = withCPUs(t, rec, tt.cpus)
			} else {
				path = rewriteHeader(t, withCPUs(t, rec, 1000), `"cpus":1000`, fmt.Sprintf(`"cpus":%d`, tt.cpus))
			}
			var stdout, stderr bytes.Buffer
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			err := Replay(context.Background(), ReplayRequest{Recording: path, Name: "stdin", Source: []byte(script), Stdout: &stdout, Stderr: &stderr})
			runtime.ReadMemStats(&after)
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > tt.maxHeap {
				t.Errorf("the replay allocated %d MiB", alloc>>20)
			}
			if tt.err == "" {
				if err != nil || !strings.Contains(stdout.String(), "\n@a: 2\n") || !strings.Contains(stdout.String(), "\n@c: 1\n") {
					t.Fatalf("err %v, stdout %q", err, stdout.String())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("err %v, want %q", err, tt.err)
			}
		})
	}
}

// rewriteHeader replaces old by new in the header of the recording at
// path (of the same length, so that the header's size still holds).
func rewriteHeader(t *testing.T, path, old, new string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "rewritten.tbrec")
	recordingtest.ReplaceInHeader(t, path, out, old, new)
	return out
}

// TestInterpMapBytes: the estimate checkInterpMaps judges by is what
// creating the maps allocates, give or take.
func TestInterpMapBytes(t *testing.T) {
	f, err := syntax.Parse("stdin", []byte(`tracepoint:syscalls:sys_enter_openat { @a = count(); @b[comm] = sum(1); @c = avg(cpu); @d = hist(pid); @s[pid] = comm; }`))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := compile.Compile(f, recordedKernel(&recording.Header{Probes: []recording.Probe{{Name: "tracepoint:syscalls:sys_enter_openat", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_openat", CtxLen: 48, Fields: openatFields}}}, 4096))
	if err != nil {
		t.Fatal(err)
	}
	for _, cpus := range []int{1, 16, 64} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := newInterpSession(prog, noEvents{}, cpus)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		// Ring buffers count for what they may come to hold; creating
		// them allocates nothing yet.
		got, est := after.TotalAlloc-before.TotalAlloc, interpMapBytes(prog, cpus)
		for _, m := range prog.Maps {
			if m.Type == ebpf.RingBuf {
				est -= uint64(m.MaxEntries)
			}
		}
		t.Logf("%d CPUs: estimated %d KiB, allocated %d KiB", cpus, est>>10, got>>10)
		if got > est*3/2+1<<20 || est > got*3/2+1<<20 {
			t.Errorf("%d CPUs: estimated %d bytes, allocated %d", cpus, est, got)
		}
		runtime.KeepAlive(s)
	}
}
