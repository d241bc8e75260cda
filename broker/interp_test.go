package broker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/internal/recordingtest"
)

// TestInterpFlood: a storm of events into a one-page collector buffer.
// Events are dropped, and every one dropped is counted: what was counted
// and what was lost add up to what the workload did. Nothing hangs.
func TestInterpFlood(t *testing.T) {
	needKernel(t)
	floodKernel(t)
	const calls = 100000
	f := newFixture(t)
	out, stderr, err := runScript(t, Request{
		Source:          []byte(`tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); }`),
		Command:         f.expand("EXE get " + strconv.Itoa(calls) + " 0"),
		Mode:            ModeInterp,
		Collectors:      testCollectors(t),
		EventBufferSize: 4096,
	})
	if err != nil {
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	lost := 0
	for _, m := range regexp.MustCompile(`(?m)^Lost (\d+) events$`).FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		lost += n
	}
	m := regexp.MustCompile(`(?m)^@: (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no count in %q", out)
	}
	counted, _ := strconv.Atoi(m[1])
	t.Logf("%d calls: %d counted, %d lost", calls, counted, lost)
	// Other processes' getcwd calls are lost too, uncounted by pid.
	if lost == 0 || counted > calls || counted+lost < calls {
		t.Errorf("%d calls: %d counted and %d lost; want some lost, and every call counted or lost\n%s", calls, counted, lost, strings.TrimSpace(out))
	}
}

// TestRecordReplay records the events of every end-to-end script that
// traces a command, then replays the script over the recording, without
// the kernel: the output is the live trace's, the table's expectation.
func TestRecordReplay(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	recordReplay(t, loadCases(t))
}

// recordReplay records and replays each case of a table that traces a
// command.
func recordReplay(t *testing.T, cases []e2eCase) {
	trust := testCollectors(t)
	for _, tc := range cases {
		if tc.cmd == "" || tc.interpRefused != "" {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			script := f.expand(tc.script)
			rec := filepath.Join(t.TempDir(), "rec.tbrec")
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := Record(ctx, RecordRequest{Request: Request{Name: "stdin", Source: []byte(script), Command: f.expand(tc.cmd), Collectors: trust, Stderr: &stderr}, Output: rec})
			if err != nil && strings.Contains(err.Error(), "nothing to record") {
				t.Skip(err)
			}
			if err != nil {
				t.Fatalf("record: %v\n%s", err, stderr.String())
			}
			var out, rstderr bytes.Buffer
			if err := Replay(ctx, ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(script), Format: tc.format, Stdout: &out, Stderr: &rstderr}); err != nil {
				t.Fatalf("replay: %v\n%s", err, rstderr.String())
			}
			if want := f.expand(tc.want); out.String() != want {
				t.Errorf("replay:\n%q\nwant:\n%q\nstderr: %s", out.String(), want, rstderr.String())
			}
		})
	}
}

// TestRecordSizeLimit: a recording stops at its size limit, says so, and
// is a whole recording that replays what it holds. The collectors record
// every process's events, for the replay to filter: the workload's are
// getcpu calls, which no other process makes as system calls (the vDSO's
// getcpu is none), so that another's getcwd storm cannot fill the 16 KB
// first. The replay must count exactly the workload's events that the
// recording holds, whatever else it holds.
func TestRecordSizeLimit(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	rec := filepath.Join(t.TempDir(), "rec.tbrec")
	script := `tracepoint:syscalls:sys_enter_getcpu /pid == cpid/ { @ = count(); }`
	var stderr bytes.Buffer
	err := Record(context.Background(), RecordRequest{Request: Request{Name: "stdin", Source: []byte(script), Command: f.expand("EXE get 0 1000"), Collectors: testCollectors(t), Stderr: &stderr}, Output: rec, MaxSize: 16 << 10})
	if err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "WARNING: the recording reached its size limit (16384 bytes)") {
		t.Errorf("stderr %q does not say the limit was reached", stderr.String())
	}
	if fi, err := os.Stat(rec); err != nil || fi.Size() > 16<<10 {
		t.Fatalf("recording: %v, %d bytes", err, fi.Size())
	}
	held := childEvents(t, rec)
	var out, rstderr bytes.Buffer
	if err := Replay(context.Background(), ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(script), Stdout: &out, Stderr: &rstderr}); err != nil {
		t.Fatalf("replay: %v", err)
	}
	m := regexp.MustCompile(`(?m)^@: (\d+)$`).FindStringSubmatch(out.String())
	if m == nil {
		t.Fatalf("no count in %q", out.String())
	}
	if n, _ := strconv.Atoi(m[1]); n != held || n == 0 || n >= 1000 || rstderr.Len() != 0 {
		t.Errorf("replayed %d of 1000 calls, stderr %q; want the %d the recording holds, some, not all, and no warning", n, rstderr.String(), held)
	}
}

// childEvents counts the events of the -c command in a recording.
func childEvents(t *testing.T, path string) int {
	t.Helper()
	rd, c, err := recording.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	cpid := rd.Header().Cpid
	c.Close()
	return recordingtest.Count(t, path, func(r *collector.Record) bool { return int(r.TGID) == cpid })
}
