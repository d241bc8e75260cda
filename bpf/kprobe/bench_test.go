package kprobe

import (
	"fmt"
	"strings"
	"testing"
)

// kernelSized is an available_filter_functions of Debian 6.12's size
// (about 60,000 functions, a tenth of them in modules).
func kernelSized() string {
	var b strings.Builder
	for i := 0; i < 60000; i++ {
		fmt.Fprintf(&b, "func_%05d_%s", i, []string{"vfs", "tcp", "ext4", "sched"}[i%4])
		if i%10 == 0 {
			b.WriteString(" [mod]")
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// BenchmarkParseFunctions is what each compilation of a kprobe script
// pays to learn the traceable functions.
func BenchmarkParseFunctions(b *testing.B) {
	in := kernelSized()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseFunctions(strings.NewReader(in), nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMatch is one wildcard matched against them.
func BenchmarkMatch(b *testing.B) {
	funcs, _ := ParseFunctions(strings.NewReader(kernelSized()), nil)
	for b.Loop() {
		if _, err := Match(funcs, "", "func_*_vfs"); err != nil {
			b.Fatal(err)
		}
	}
}
