package btftp

import (
	"os"
	"testing"
)

// BenchmarkFuncs is what matching a kfunc spec costs the compiler once
// the kernel's BTF is read (the first call reads and indexes it: see
// BenchmarkFuncsFirst): a name, and a glob over every function.
func BenchmarkFuncs(b *testing.B) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		b.Skipf("kernel BTF unavailable: %v", err)
	}
	if _, err := Funcs("*", "vfs_read"); err != nil { // read and index BTF
		b.Fatal(err)
	}
	for _, pattern := range []string{"vfs_read", "vfs_*"} {
		b.Run(pattern, func(b *testing.B) {
			for b.Loop() {
				if _, err := Funcs("*", pattern); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("proto", func(b *testing.B) {
		for b.Loop() {
			if _, err := FuncProto(Vmlinux, "vfs_read"); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkFuncsFirst is the first kfunc spec of a process: reading the
// kernel's BTF and listing its functions.
func BenchmarkFuncsFirst(b *testing.B) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		b.Skipf("kernel BTF unavailable: %v", err)
	}
	for b.Loop() {
		src := &funcSource{traceable: readTraceable, modules: btfModules, spec: moduleSpec}
		if _, err := src.funcs("*", "vfs_read"); err != nil {
			b.Fatal(err)
		}
	}
}
