package interp

import (
	"encoding/hex"
	"encoding/json"
	"os"
	"strconv"
	"strings"
	"testing"
)

// conformanceTest is one test of the bpf_conformance suite, as data.
type conformanceTest struct {
	Name    string   `json:"name"`
	Program string   `json:"program"`
	Memory  string   `json:"memory"`
	Result  string   `json:"result"`
	Asm     []string `json:"asm"`
}

func loadConformance(t testing.TB) []conformanceTest {
	t.Helper()
	b, err := os.ReadFile("testdata/conformance/bpf_conformance.json")
	if err != nil {
		t.Fatal(err)
	}
	var suite struct {
		Tests []conformanceTest `json:"tests"`
	}
	if err := json.Unmarshal(b, &suite); err != nil {
		t.Fatal(err)
	}
	return suite.Tests
}

func (c conformanceTest) decode(t testing.TB) (code, mem []byte, want uint64) {
	t.Helper()
	code, err := hex.DecodeString(c.Program)
	if err != nil {
		t.Fatal(err)
	}
	mem, err = hex.DecodeString(c.Memory)
	if err != nil {
		t.Fatal(err)
	}
	want, err = strconv.ParseUint(strings.TrimPrefix(c.Result, "0x"), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return code, mem, want
}

// ConformanceOptions are the options the bpf_conformance runner implies:
// r1 and r2 are memory and length, and the memory is the program's to
// write.
var conformanceOptions = Options{Args: 2, WritableContext: true}

// TestConformance runs every test of the eBPF ISA conformance suite
// (../shared/conformance, copied into testdata with its licence),
// callx included.
func TestConformance(t *testing.T) {
	tests := loadConformance(t)
	if len(tests) != 313 {
		t.Fatalf("suite has %d tests, want 313", len(tests))
	}
	for _, c := range tests {
		t.Run(strings.TrimSuffix(c.Name, ".data"), func(t *testing.T) {
			code, mem, want := c.decode(t)
			p, err := Load(code, conformanceOptions)
			if err != nil {
				t.Fatalf("%v\n%s", err, strings.Join(c.Asm, "\n"))
			}
			got, err := p.Run(nil, mem)
			if err != nil {
				t.Fatalf("%v\n%s", err, strings.Join(c.Asm, "\n"))
			}
			if got != want {
				t.Fatalf("r0 = %#x, want %#x\n%s", got, want, strings.Join(c.Asm, "\n"))
			}
		})
	}
}
