package daemon

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/uprobe"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins"
)

// manyFuncs is how many functions f_0000, f_0001, … the uprobe.multi
// attacks' workload has: more than a token may put uprobes on.
const manyFuncs = 1100

// manyFuncsWorkload calls f_0000 … f_(N-1) once each, N = argv[1];
// secret_fn is never called.
func manyFuncsWorkload() string {
	var b strings.Builder
	b.WriteString("#include <stdlib.h>\n")
	b.WriteString(kerneltest.CFuncs("f_", 4, manyFuncs))
	b.WriteString("__attribute__((noinline)) int secret_fn(int x) { __asm__ volatile(\"\"); return x * 3; }\n")
	b.WriteString("int main(int argc, char **argv) {\n\tint n = argc > 1 ? atoi(argv[1]) : 0;\n\tvolatile int s = 0;\n")
	fmt.Fprintf(&b, "\tfor (int i = 0; i < n && i < %d; i++)\n\t\ts += fns[i](1);\n\treturn argc > 2 ? secret_fn(s) : 0;\n}\n", manyFuncs)
	return b.String()
}

func buildManyFuncs(t *testing.T) string {
	t.Helper()
	return kerneltest.CC(t, "the uprobe.multi attacks' workload", "many", manyFuncsWorkload())
}

// TestAttacksUprobeMulti: a uprobe wildcard attached with one
// uprobe.multi link is no way around what a token grants. Every function
// on the link is judged by its own name, so one outside the token's
// scopes refuses the whole probe; the functions under uprobes are
// bounded by what a token could attach one by one (1024), however the
// script spells them and whether a token holder or a plugin wrote it;
// and a plugin's raw program cannot name a probe on many functions.
// Root without a token keeps its freedom (4096).
func TestAttacksUprobeMulti(t *testing.T) {
	needKernel(t)
	if !uprobe.HaveMulti() {
		t.Logf("this kernel has no uprobe.multi links: the same scopes and bounds hold one by one")
	}
	bin := buildManyFuncs(t)
	pluginDir, pluginKey := signedPlugin(t, "uprobes", "misnamed")
	d := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) {
		c.Plugins = &plugins.Host{Dir: pluginDir, Trust: attest.NewTrust(pluginKey.Public()), StartTimeout: 30 * time.Second, CallTimeout: 30 * time.Second}
	}})
	script := func(specs ...string) []byte {
		for i, s := range specs {
			specs[i] = "uprobe:" + bin + ":" + s
		}
		return []byte(strings.Join(specs, ", ") + " { @[probe] = count(); }")
	}
	names := func(from, to int) string {
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "@[uprobe:%s:f_%04d]: 1\n", bin, i)
		}
		return b.String()
	}

	t.Run("token/in_scope_each_function_counted_and_attested", func(t *testing.T) {
		tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace probe:uprobe:" + bin + ":f_00*"})
		r := d.start(t, tok, &pb.TraceRequest{Source: script("f_00*"), DurationMs: 60_000})
		ss := d.attached(t, 1, r)
		// One probe on a link, or where the kernel has none, one per
		// function.
		want := []string{"uprobe:" + bin + ":f_00*"}
		if !uprobe.HaveMulti() {
			want = nil
			for i := range 100 {
				want = append(want, fmt.Sprintf("uprobe:%s:f_%04d", bin, i))
			}
		}
		if len(ss) != 1 || !slices.Equal(ss[0].Probes, want) {
			t.Errorf("sessions list: %v, want the probes %.3q...", ss, want)
		}
		if err := exec.Command(bin, "150").Run(); err != nil {
			t.Fatal(err)
		}
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || !strings.HasSuffix(r.stdout.String(), "\n\n"+names(0, 100)) {
			t.Errorf("err %v, stdout %q, want one call of each of f_0000..f_0099", r.err, r.stdout.String())
		}
		// The attestations name every function attached to: a link's
		// lists them, or each probe's names its own.
		files, _ := filepath.Glob(filepath.Join(d.attest, "*"+r.res.SessionID+"*.dsse.json"))
		var attached []string
		for _, f := range files {
			b, _ := os.ReadFile(f)
			var st struct {
				Predicate attest.ProgramPredicate `json:"predicate"`
			}
			json.Unmarshal(decodeDSSE(t, b), &st)
			if a := st.Predicate.Program.Attach; len(a) > 0 {
				attached = append(attached, a...)
			} else {
				attached = append(attached, st.Predicate.Program.Name)
			}
		}
		slices.Sort(attached)
		if len(files) != len(want) || len(attached) != 100 || attached[0] != "uprobe:"+bin+":f_0000" || attached[99] != "uprobe:"+bin+":f_0099" {
			t.Errorf("%d attestations, of attach points %d (%.3q...)", len(files), len(attached), attached)
		}
	})

	for _, tt := range []struct {
		name, scope string
		req         *pb.TraceRequest
		why         string
	}{
		// Scopes: one function outside refuses the link.
		{"token/one_function_outside_the_scope", "trace probe:uprobe:" + bin + ":f_00*",
			&pb.TraceRequest{Source: script("f_0*")}, "does not allow probe uprobe:" + bin + ":f_0100"},
		{"token/functions_of_the_file_the_scope_leaves_out", "trace probe:uprobe:" + bin + ":f_*",
			&pb.TraceRequest{Source: script("*e*")}, "does not allow probe uprobe:" + bin + ":"},
		// Bounds: 1024 uprobes, whichever way they are written.
		{"token/one_wildcard_past_the_bound", "trace probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Source: script("f_*")}, "f_* matches 1100 functions; at most 1024 uprobes may attach"},
		{"token/wildcards_past_the_bound_together", "trace probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Source: script("f_0*", "f_10*")}, "f_10* matches 100 functions, which makes 1100 uprobes in all; at most 1024 may attach"},
		{"token/one_wildcard_written_twice", "trace probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Source: script("f_0*", "f_0*")}, "f_0* matches 1000 functions, which makes 2000 uprobes in all; at most 1024 may attach"},
		{"token/a_link_and_functions_one_by_one", "trace probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Source: script("f_0*", "f_1000", "f_1001", "f_1002", "f_1003", "f_1004", "f_1005", "f_1006", "f_1007", "f_1008", "f_1009", "f_101*", "f_102*")},
			"makes 1030 uprobes in all; at most 1024 may attach"},
		// A plugin's script is held to the same.
		{"plugin/script_past_the_bound", "trace gen:uprobes probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Generator: "uprobes", Params: map[string]string{"path": bin, "pattern": "f_*"}}, "at most 1024 uprobes may attach"},
		{"plugin/script_written_twice", "trace gen:uprobes probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Generator: "uprobes", Params: map[string]string{"path": bin, "pattern": "f_0*", "times": "2"}}, "which makes 2000 uprobes in all; at most 1024 may attach"},
		{"plugin/script_outside_the_scope", "trace gen:uprobes probe:uprobe:" + bin + ":f_*",
			&pb.TraceRequest{Generator: "uprobes", Params: map[string]string{"path": bin, "pattern": "*e*"}}, "does not allow probe uprobe:" + bin + ":"},
		// A raw program's probe is on one place: a wildcard name is
		// not where it attaches.
		{"plugin/raw_probe_named_by_a_wildcard", "trace gen:misnamed probe:uprobe:" + bin + ":*",
			&pb.TraceRequest{Generator: "misnamed", Params: map[string]string{"kind": "uprobe", "name": "uprobe:" + bin + ":f_*", "path": bin, "offset": fmt.Sprint(symbolOffset(t, bin, "f_0000"))}},
			"uprobe:" + bin + ":f_*"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: tt.scope})
			tt.req.DurationMs = 60_000
			ce, _ := refusedUnlessItRuns(t, d, tok, tt.req, func() { exec.Command(bin, "1100").Run() })
			why := tt.why
			if !uprobe.HaveMulti() && strings.Contains(why, "at most 1024") {
				// One uprobe per function: the compiler's 1024 probes
				// bound them first, in words of its own.
				why = "at most 1024"
			}
			if ce != nil && !strings.Contains(ce.Message, why) {
				t.Errorf("refused with %q, want a reason saying %q", ce.Message, why)
			}
			if ce != nil && strings.Contains(tt.why, "does not allow") {
				// The function named is one the scope leaves out.
				if i := strings.Index(ce.Message, tt.why); i >= 0 && strings.HasPrefix(ce.Message[i+len(tt.why):], "f_") {
					t.Errorf("refused naming a function the scope allows: %q", ce.Message)
				}
			}
		})
	}

	t.Run("root/without_a_token_past_the_token_bound", func(t *testing.T) {
		if !uprobe.HaveMulti() {
			t.Skip("no uprobe.multi links: one uprobe per function, at most the compiler's 1024 probes")
		}
		r := d.start(t, "", &pb.TraceRequest{Source: script("f_*"), DurationMs: 60_000})
		d.attached(t, 1, r)
		if err := exec.Command(bin, "1100").Run(); err != nil {
			t.Fatal(err)
		}
		close(r.interrupt)
		r.wait(t)
		if r.err != nil || !strings.HasSuffix(r.stdout.String(), "\n\n"+names(0, manyFuncs)) {
			t.Errorf("err %v, stdout %.200q…, want one call of each of the %d functions", r.err, r.stdout.String(), manyFuncs)
		}
	})

	t.Run("root/not_past_MaxUprobeFuncs", func(t *testing.T) {
		if !uprobe.HaveMulti() {
			t.Skip("no uprobe.multi links: one uprobe per function, at most the compiler's 1024 probes")
		}
		specs := make([]string, 4)
		for i := range specs {
			specs[i] = "f_*"
		}
		ce, _ := refusedUnlessItRuns(t, d, "", &pb.TraceRequest{Source: script(specs...), DurationMs: 60_000}, func() {})
		if want := fmt.Sprintf("which makes %d uprobes in all; at most %d may attach", 4*manyFuncs, program.MaxUprobeFuncs); ce != nil && !strings.Contains(ce.Message, want) {
			t.Errorf("refused with %q, want a reason saying %q", ce.Message, want)
		}
	})
}
