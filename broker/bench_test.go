package broker

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
)

// overheadScript counts every getcwd by process name: the cost a probe
// adds to each event it fires on.
const overheadScript = `tracepoint:syscalls:sys_enter_getcwd { @[comm] = count(); } BEGIN { printf("ready\n"); }`

// waitReady consumes r until a line "ready" (or any line, for bpftrace's
// "Attaching"), then drains it in the background.
func waitReady(b *testing.B, r io.Reader, want string) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if strings.Contains(sc.Text(), want) {
			go io.Copy(io.Discard, r)
			return
		}
	}
	b.Fatalf("tracer ended before %q", want)
}

// getcwdLoop makes b.N getcwd calls on one thread and reports, besides
// the wall time, the thread's CPU time per call (cpu-ns/op): the system
// call and every probe that runs in it, the traced process's own cost.
func getcwdLoop(b *testing.B) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	buf := make([]byte, 256)
	b.ResetTimer()
	start := threadCPU()
	for b.Loop() {
		syscall.Getcwd(buf)
	}
	b.ReportMetric(float64(threadCPU()-start)/float64(b.N), "cpu-ns/op")
}

func threadCPU() int64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts)
	return ts.Nano()
}

// progStats are the run counts and run times of the kernel's programs
// (with BPF_ENABLE_STATS on), by id.
func progStats() map[ebpf.ProgramID][2]uint64 {
	out := map[ebpf.ProgramID][2]uint64{}
	var id ebpf.ProgramID
	for {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			return out
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue
		}
		st, err := p.Stats()
		p.Close()
		if err == nil {
			out[id] = [2]uint64{st.RunCount, uint64(st.Runtime)}
		}
	}
}

// probeStats measures, for the programs loaded after it is called, the
// run time per run of the one that ran for each of b.N calls (the JIT
// program, or the collector), as prog-ns/run: call measure before the
// calls and after. The kernel keeps the figures only while someone asks
// it to (BPF_ENABLE_STATS), which adds two clock reads to every
// program's run, the tracer's and any other's.
func probeStats(b *testing.B) (measure func()) {
	stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Logf("no program run times: %v", err)
		return func() {}
	}
	b.Cleanup(func() { stats.Close() })
	old := progStats()
	var before map[ebpf.ProgramID][2]uint64
	return func() {
		if before == nil {
			before = progStats()
			return
		}
		for id, a := range progStats() {
			_, seen := old[id]
			n := a[0] - before[id][0]
			if seen || n < uint64(b.N) || n > 2*uint64(b.N) {
				continue // not the tracer's, or not on getcwd
			}
			b.ReportMetric(float64(a[1]-before[id][1])/float64(n), "prog-ns/run")
		}
	}
}

// BenchmarkProbeOverhead is the time of one getcwd syscall with no probe,
// with tracebroker's count probe in each mode, and with bpftrace's on the
// same script: wall time (ns/op, which in interpreter mode includes
// the reader competing for this 2-core machine), the calling thread's
// CPU time (cpu-ns/op: what the probe costs the traced process), and
// the probe's program alone (prog-ns/run: the JIT program, or the
// collector). Others' probes on getcwd count in all three.
func BenchmarkProbeOverhead(b *testing.B) {
	b.Run("none", getcwdLoop)
	for _, mode := range modes {
		b.Run("tracebroker-"+string(mode), func(b *testing.B) {
			needKernel(b)
			// The calls are this process's, which interpreter mode's
			// collectors would otherwise skip as the broker's own.
			traceSelf = true
			defer func() { traceSelf = false }()
			measure := probeStats(b)
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Request{Name: "stdin", Source: []byte(overheadScript), Mode: mode, Collectors: testCollectors(b), Stdout: pw, Stderr: io.Discard})
				pw.Close()
			}()
			waitReady(b, pr, "ready")
			measure()
			getcwdLoop(b)
			b.StopTimer()
			measure()
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
		})
	}
	b.Run("bpftrace", func(b *testing.B) {
		needKernel(b)
		bt, err := exec.LookPath("bpftrace")
		if err != nil {
			b.Skip("bpftrace is not installed")
		}
		measure := probeStats(b)
		cmd := exec.Command(bt, "-e", overheadScript)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitReady(b, out, "ready")
		measure()
		getcwdLoop(b)
		b.StopTimer()
		measure()
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
	})
}

// BenchmarkPrintfEvent is the user-space cost of one printf event: decode
// the record and format it, as the runner does for each.
func BenchmarkPrintfEvent(b *testing.B) {
	f := &program.Format{
		Fmt: "%s opened %s (%d)\n",
		Args: []program.Arg{
			{Type: program.Type{Kind: program.String, Size: 16}, Offset: 16},
			{Type: program.Type{Kind: program.String, Size: 64}, Offset: 32},
			{Type: program.Type{Kind: program.Int, Size: 8, Signed: true}, Offset: 96},
		},
		Size: 104,
	}
	rec := make([]byte, f.Size)
	rec[0] = byte(program.EventPrintf)
	copy(rec[16:], "cat")
	copy(rec[32:], "/etc/hostname")
	rec[96] = 3
	r := &runner{prog: &program.Program{Schema: program.Schema{Formats: []*program.Format{f}}}, out: output.NewText(io.Discard)}
	b.ReportAllocs()
	for b.Loop() {
		if err := r.handle(rec); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkInterpPipeline is interpreter mode's throughput: a child makes
// b.N getcwd calls as fast as it can while the collector copies each
// into the ring buffer and this process runs the script over each record
// in the interpreter. events/s-per-core is the events handled per second
// of this process's CPU time (the consumer's cost; the child and the
// kernel's collector run on the other core); lost are the events the
// consumer did not keep up with.
func BenchmarkInterpPipeline(b *testing.B) {
	needKernel(b)
	for _, tc := range []struct{ name, script string }{
		{"count", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[comm] = count(); }`},
		{"hist", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = hist(args->size); }`},
	} {
		for _, mode := range modes {
			b.Run(tc.name+"/"+string(mode), func(b *testing.B) {
				floodKernel(b)
				exe, err := os.Executable()
				if err != nil {
					b.Fatal(err)
				}
				var out bytes.Buffer
				var before, after syscall.Rusage
				syscall.Getrusage(syscall.RUSAGE_SELF, &before)
				b.ResetTimer()
				err = Run(context.Background(), Request{Name: "stdin", Source: []byte(tc.script), Command: fmt.Sprintf("%s get %d 0", exe, b.N),
					Mode: mode, Collectors: testCollectors(b), Stdout: &out, Stderr: io.Discard, Quiet: true})
				b.StopTimer()
				syscall.Getrusage(syscall.RUSAGE_SELF, &after)
				if err != nil {
					b.Fatal(err)
				}
				cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
				b.ReportMetric(float64(b.N)/cpu.Seconds(), "events/s-per-core")
				lost := 0
				if m := regexp.MustCompile(`Lost (\d+) events`).FindStringSubmatch(out.String()); m != nil {
					lost, _ = strconv.Atoi(m[1])
				}
				b.ReportMetric(float64(lost), "lost")
			})
		}
	}
}
