package interp_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/tracefs"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/interp"
)

// TestCompiledScripts: every probe the script compiler generates for the
// end-to-end scripts passes interp's verifier with the maps it declares,
// and BEGIN runs: the bytecode the kernel runs in JIT mode is bytecode
// the interpreter accepts, which interpreter mode rests on.
func TestCompiledScripts(t *testing.T) {
	if _, err := tracefs.Root(); err != nil {
		t.Skipf("compiling against this kernel's tracepoints needs tracefs: %v", err)
	}
	files, err := filepath.Glob("../testdata/scripts/*.bt")
	if err != nil || len(files) == 0 {
		t.Fatalf("no scripts: %v", err)
	}
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			src, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			// A script interpreter mode refuses before anything runs
			// (curtask, struct access: the kernel at the event) says
			// so in its header, as the end-to-end table reads it.
			for _, line := range strings.Split(string(src), "\n") {
				if !strings.HasPrefix(line, "// ") {
					break
				}
				if why, ok := strings.CutPrefix(line, "// interp: refused:"); ok {
					t.Skipf("interpreter mode refuses it:%s", why)
				}
			}
			prog, _, err := broker.Compile(&broker.Request{Name: file, Source: src, Command: "true", MaxMapKeys: 64})
			if err != nil {
				t.Fatal(err)
			}
			maps := map[string]*interp.Map{}
			for _, spec := range prog.Maps {
				m, err := interp.NewMap(spec, interp.MapOptions{})
				if err != nil {
					t.Fatal(err)
				}
				maps[spec.Name] = m
			}
			for _, probe := range prog.Probes {
				p, err := interp.LoadInstructions(probe.Insns, maps, interp.Options{})
				if err != nil {
					t.Fatalf("%s: %v", probe.Name, err)
				}
				if probe.Kind == program.Begin {
					if _, err := p.Run(&interp.Env{}, make([]byte, 64)); err != nil {
						t.Fatalf("BEGIN: %v", err)
					}
				}
			}
		})
	}
}
