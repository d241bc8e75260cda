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
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

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

func getcwdLoop(b *testing.B) {
	buf := make([]byte, 256)
	b.ResetTimer()
	for b.Loop() {
		syscall.Getcwd(buf)
	}
}

// BenchmarkProbeOverhead is the time of one getcwd syscall with no probe,
// with tracebroker's count probe, and with bpftrace's on the same script.
func BenchmarkProbeOverhead(b *testing.B) {
	b.Run("none", getcwdLoop)
	for _, mode := range modes {
		b.Run("tracebroker-"+string(mode), func(b *testing.B) {
			needKernel(b)
			// The calls are this process's, which interpreter mode's
			// collectors would otherwise skip as the broker's own.
			traceSelf = true
			defer func() { traceSelf = false }()
			pr, pw := io.Pipe()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Request{Name: "stdin", Source: []byte(overheadScript), Mode: mode, Collectors: testCollectors(b), Stdout: pw, Stderr: io.Discard})
				pw.Close()
			}()
			waitReady(b, pr, "ready")
			getcwdLoop(b)
			b.StopTimer()
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
		cmd := exec.Command(bt, "-e", overheadScript)
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		waitReady(b, out, "ready")
		getcwdLoop(b)
		b.StopTimer()
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
