package symbols

import "testing"

// BenchmarkUserResolve resolves addresses of a live process with a warm
// cache: in the executable and in libc (whose debug file, when installed,
// makes its table the largest).
func BenchmarkUserResolve(b *testing.B) {
	bin := build(b, b.TempDir(), "prog", userProgram, "-ldl")
	p := start(b, bin)
	for _, bc := range []struct {
		name string
		addr uint64
	}{
		{"exe", p.addrs["add_one"] + 2},
		{"libc", p.addrs["getpid"] + 3},
	} {
		b.Run(bc.name, func(b *testing.B) {
			u := NewUser()
			if _, ok := u.Resolve(p.pid, bc.addr); !ok {
				b.Fatalf("%#x does not resolve", bc.addr)
			}
			for b.Loop() {
				u.Resolve(p.pid, bc.addr)
			}
		})
	}
	b.Run("stack8", func(b *testing.B) {
		u := NewUser()
		addrs := []uint64{p.addrs["add_one"] + 2, p.addrs["outer"] + 4, p.addrs["getpid"] + 3, 0x1000,
			p.addrs["add_one"] + 2, p.addrs["outer"] + 4, p.addrs["getpid"] + 3, 0x1000}
		u.Stack(p.pid, addrs, true, 0)
		for b.Loop() {
			u.Stack(p.pid, addrs, true, 0)
		}
	})
}

func BenchmarkKernelResolve(b *testing.B) {
	k, err := LoadKernel("")
	if err != nil {
		b.Skipf("skipping: %v", err)
	}
	addr, ok := k.Lookup("vfs_read")
	if !ok {
		b.Skip("skipping: no vfs_read")
	}
	for b.Loop() {
		k.Resolve(addr + 5)
	}
}

func BenchmarkLoadKernel(b *testing.B) {
	if _, err := LoadKernel(""); err != nil {
		b.Skipf("skipping: %v", err)
	}
	for b.Loop() {
		LoadKernel("")
	}
}
