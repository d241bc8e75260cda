package symbols

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

func FuzzParseKallsyms(f *testing.F) {
	data, err := os.ReadFile("testdata/kallsyms")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(string(data))
	f.Add("ffffffff81000000 T _text\nffffffff81000000 t x\t[m\n")
	f.Add("0xffffffff81000000 T\n ffffffff81000010\nffffffffffffffff T max\n-1 T neg\n")
	f.Add("ffffffff81000000 T a\tb [c]\nffffffff81000000 t\t[ext4]\n\n\n")
	f.Fuzz(func(t *testing.T, data string) {
		k, err := parseKallsyms(data)
		if err != nil {
			return
		}
		for i := 1; i < len(k.syms); i++ {
			if k.syms[i-1].addr > k.syms[i].addr {
				t.Fatalf("symbols out of order at %d", i)
			}
		}
		for _, addr := range []uint64{0, 1, 0xffffffff81000000, 0xffffffff81000010, ^uint64(0)} {
			if s, ok := k.Resolve(addr); ok && s.Name == "" {
				t.Fatalf("Resolve(%#x) = %+v", addr, s)
			}
			k.Frame(addr, true)
		}
		for _, line := range strings.Split(data, "\n") {
			if f := strings.Fields(line); len(f) > 2 {
				k.Lookup(f[2])
			}
		}
	})
}

func FuzzParseMaps(f *testing.F) {
	f.Add(`55ac4dddf000-55ac4dde0000 r-xp 00001000 fe:00 9978036                    /tmp/bt/w
7f45c03df000-7f45c03e2000 rw-p 00000000 00:00 0 
7f45c0600000-7f45c0601000 r-xp 00000000 00:01 77                         /memfd:jit (deleted)
7f45c05d5000-7f45c05d7000 r-xp 00000000 00:00 0                          [vdso]
`)
	f.Add("1-2 r-x 0 0:0 0\n1-2 --xp 0 0:0 0 /a\n")
	f.Add("ffffffffffffffff-0 rwxps 0 0:0 1 /x\n")
	f.Fuzz(func(t *testing.T, data string) {
		for _, m := range parseMaps(data) {
			if !fileBacked(m.name) {
				t.Fatalf("kept %+v", m)
			}
		}
	})
}

func FuzzParsePerfMap(f *testing.F) {
	f.Add("1000 10 jit_a\n2000 8 LazyCompile: foo bar.js:1\ngarbage\n0 10 zero\n3000 nosize\n")
	f.Add("0x10 0x2 a\n  20   3   spaced name  \n")
	f.Fuzz(func(t *testing.T, data string) {
		syms := parsePerfMap(strings.NewReader(data))
		for _, off := range []uint64{0, 0x1000, 0x1005, ^uint64(0)} {
			find(syms, off)
		}
	})
}

// FuzzReadFileSyms feeds arbitrary bytes to the ELF reader: a malformed
// file, mapped by some process, must not take the tracer down.
func FuzzReadFileSyms(f *testing.F) {
	for _, p := range []string{"/proc/self/exe", "/usr/lib/x86_64-linux-gnu/libc.so.6"} {
		if b, err := os.ReadFile(p); err == nil && len(b) < 4<<20 {
			f.Add(b[:min(len(b), 1<<16)])
		}
	}
	f.Add([]byte("\x7fELF"))
	f.Fuzz(func(t *testing.T, b []byte) {
		fs := readFileSyms(bytes.NewReader(b), "/nonexistent/fuzz", int64(len(b)))
		fs.vaddr(0x1000)
		find(fs.syms, 0x1000)
	})
}
