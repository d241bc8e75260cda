package broker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// fentryCases is the kfunc/kretfunc table: scripts with their workload
// and expected output, as testdata/scripts' (which runs everywhere);
// these need a kernel that loads fentry programs.
const fentryCases = "../testdata/fentry"

func needFentry(t testing.TB) {
	t.Helper()
	needKernel(t)
	if err := bpf.HaveFentry(); err != nil {
		t.Skipf("skipping: fentry/fexit unavailable: %v", err)
	}
}

// TestFentryEndToEnd runs the kfunc table in JIT mode against the
// workloads it starts, and checks that interpreter mode refuses it
// before anything is loaded.
func TestFentryEndToEnd(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	trust := testCollectors(t)
	for _, tc := range loadCasesFrom(t, fentryCases) {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			req := Request{Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Format: tc.format, Mode: ModeJIT}
			out, stderr, err := runScript(t, req)
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if want := f.expand(tc.want); out != want {
				t.Errorf("output:\n%s\nwant:\n%s\nstderr: %s", out, want, stderr)
			}
			req.Mode, req.Collectors = ModeInterp, trust
			out, _, err = runScript(t, req)
			if err == nil || !strings.Contains(err.Error(), "interpreter mode has no collector for kfunc/kretfunc (fentry/fexit) probes yet") || out != "" {
				t.Errorf("interpreter mode: err %v, output %q; want the refusal and no output", err, out)
			}
			rec := filepath.Join(t.TempDir(), "rec")
			err = Record(context.Background(), RecordRequest{Request: Request{Name: "stdin", Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Collectors: trust, Quiet: true}, Output: rec})
			if err == nil || !strings.Contains(err.Error(), "record has no collector for kfunc/kretfunc") {
				t.Errorf("record: %v, want the refusal", err)
			}
			if _, serr := os.Stat(rec); serr == nil {
				t.Errorf("record left %s behind", rec)
			}
		})
	}
}

// TestFentrySideBySide runs the kfunc table through bpftrace 0.17 on the
// same workloads: both must print the expected output byte for byte
// (TB_RECORD=1 records bpftrace's, as TestSideBySide does).
func TestFentrySideBySide(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	bt := kerneltest.Bpftrace017(t)
	for _, tc := range loadCasesFrom(t, fentryCases) {
		t.Run(tc.name, func(t *testing.T) {
			if tc.newSyntax {
				t.Skip("newer bpftrace syntax: bpftrace 0.17 cannot run it")
			}
			f := newFixture(t)
			args := []string{"-e", f.expand(tc.script)}
			if tc.cmd != "" {
				args = append(args, "-c", f.expand(tc.cmd))
			}
			ref := startBpftrace(t, bt, args, nil).output(t)
			unexpand := strings.NewReplacer(f.file, "FILE", f.exe, "EXE").Replace
			want := f.expand(tc.want)
			checkReference(t, ref, want, tc.bug, f.expand, unexpand, tc.path)
			out, stderr, err := runScript(t, Request{Source: []byte(f.expand(tc.script)), Command: f.expand(tc.cmd), Mode: ModeJIT})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr)
			}
			if out != want {
				t.Errorf("tracebroker:\n%s\nwant (%s):\n%s\nbpftrace:\n%s", out, filepath.Base(tc.path), want, ref)
			}
		})
	}
}
