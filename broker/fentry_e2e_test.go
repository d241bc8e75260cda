package broker

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/bpf/collector"
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

// TestFentryEndToEnd runs the kfunc table in both modes against the
// workloads it starts (interpreter mode on the kfunc/kretfunc
// collectors, one instance per function), and records and replays the
// scripts interpreter mode runs. What a script reads through a kernel
// pointer (*args->pos, args->file->f_inode->i_size) the collectors read
// at the event as chains of reads from the arguments (TestKReads).
func TestFentryEndToEnd(t *testing.T) {
	needFentry(t)
	lockKernel(t)
	if err := collector.FuncCollectors(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	trust := testCollectors(t)
	cases := loadCasesFrom(t, fentryCases)
	for _, mode := range modes {
		t.Run(string(mode), func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					lc := newLeakCheck(t)
					runCase(t, tc, mode, trust)
					lc.expectReleased(t, false)
				})
			}
		})
	}
	t.Run("record", func(t *testing.T) { recordReplay(t, cases) })
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
