package bpf_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// FuzzVerifier: every program the compiler accepts, the kernel's verifier
// accepts too. A rejection is a code generation bug (an uninitialised
// read, an unbounded access), never the user's fault.
func FuzzVerifier(f *testing.F) {
	// Seeded with the end-to-end scripts: real programs, which the fuzzer
	// then bends.
	scripts, err := filepath.Glob("../testdata/scripts/*.bt")
	if err != nil || len(scripts) == 0 {
		f.Fatalf("no seed scripts in testdata/scripts: %v", err)
	}
	for _, path := range scripts {
		src, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(src))
	}
	f.Fuzz(func(t *testing.T, src string) {
		if err := bpf.Supported(); err != nil {
			t.Skipf("kernel tracing unavailable: %v", err)
		}
		file, err := syntax.Parse("stdin", []byte(src))
		if err != nil {
			return
		}
		prog, _, err := compile.Compile(file, compile.Options{Tracepoints: broker.KernelTracepoints{}, MaxMapKeys: 16, HaveChild: true, NoV4: !bpf.HaveV4ISA()})
		if err != nil || len(prog.Probes) > 8 {
			return
		}
		// Per input, not per target: fuzzing workers are processes of
		// their own and would wait for each other forever.
		kerneltest.Lock(t)
		s, err := bpf.Load(prog, bpf.Options{})
		if err != nil {
			if strings.Contains(err.Error(), "too many") || strings.Contains(err.Error(), "cannot allocate memory") {
				return
			}
			t.Fatalf("the verifier rejected a compiled program:\n%s\n%v", src, err)
		}
		s.Close()
	})
}
