package dwarfargs

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// build compiles testdata/NAME.c with gcc and the flags, once per test
// binary, or skips: the reader's cases are what gcc emits.
func build(t testing.TB, name string, flags ...string) []byte {
	t.Helper()
	key := name + " " + strings.Join(flags, " ")
	builtMu.Lock()
	defer builtMu.Unlock()
	if b, ok := built[key]; ok {
		return b
	}
	if _, err := exec.LookPath("gcc"); err != nil {
		t.Skip("gcc is not installed: the test programs can not be built")
	}
	out := filepath.Join(t.TempDir(), name)
	args := append([]string{"-O0", "-o", out, filepath.Join("testdata", name+".c")}, flags...)
	if msg, err := exec.Command("gcc", args...).CombinedOutput(); err != nil {
		t.Fatalf("gcc %v: %v\n%s", args, err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	built[key] = b
	return b
}

var (
	builtMu sync.Mutex
	built   = map[string][]byte{}
)

func load(t *testing.T, flags ...string) *Info {
	t.Helper()
	info, err := Load(bytes.NewReader(build(t, "params", flags...)))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestParamsNames(t *testing.T) {
	// What bpftrace 0.17 lists for each function of params.c (-lv).
	want := map[string]string{
		"f1": "const char* s|<unknown type> v|myul u|enum E e|union U* up|S_t* sp|const struct S* const csp|void* vp|<unknown type>* fn|uint8_t b|short int sh|long long unsigned int ull",
		"f2": "struct Big big|int x",
		"f3": "int a|int b|int c|int d|int e|int f|int g|int h",
		"f4": "int* arr|char** argv|double d|float fl|_Bool bo",
		"f5": "",
		"f6": "int n",
		"f7": "struct Opaque* o",
	}
	for _, dwarf := range [][]string{{"-g"}, {"-gdwarf-4"}, {"-gdwarf-5"}} {
		info := load(t, dwarf...)
		for fn, w := range want {
			ps, err := info.Params(fn)
			if err != nil {
				t.Fatalf("%v %s: %v", dwarf, fn, err)
			}
			var got []string
			for _, p := range ps {
				got = append(got, p.CType+" "+p.Name)
			}
			if g := strings.Join(got, "|"); g != w {
				t.Errorf("%v %s:\n got %s\nwant %s", dwarf, fn, g, w)
			}
		}
	}
}

func TestParamTypes(t *testing.T) {
	info := load(t, "-g")
	ps, err := info.Params("f1")
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]btf.Type{}
	for _, p := range ps {
		byName[p.Name] = p.Type
	}
	tests := []struct {
		param string
		size  int
		ctype string // btf's spelling of the underlying type
	}{
		{"s", 8, "*btf.Pointer"},
		{"v", 4, "*btf.Int"},
		{"u", 8, "*btf.Int"},
		{"e", 4, "*btf.Enum"},
		{"up", 8, "*btf.Pointer"},
		{"sp", 8, "*btf.Pointer"},
		{"b", 1, "*btf.Int"},
		{"sh", 2, "*btf.Int"},
		{"ull", 8, "*btf.Int"},
	}
	for _, tt := range tests {
		typ := byName[tt.param]
		if typ == nil {
			t.Errorf("no parameter %s", tt.param)
			continue
		}
		n, err := btf.Sizeof(typ)
		if err != nil || n != tt.size {
			t.Errorf("sizeof %s = %d, %v; want %d", tt.param, n, err, tt.size)
		}
		if got := typeName(btf.UnderlyingType(typ)); got != tt.ctype {
			t.Errorf("%s is %s, want %s", tt.param, got, tt.ctype)
		}
	}
	e := btf.UnderlyingType(byName["e"]).(*btf.Enum)
	if !e.Signed || len(e.Values) != 2 || e.Values[1].Value != 7 {
		t.Errorf("enum E = %+v", e)
	}
	if i := btf.UnderlyingType(byName["sh"]).(*btf.Int); i.Encoding&btf.Signed == 0 {
		t.Errorf("short is unsigned: %+v", i)
	}
	if i := btf.UnderlyingType(byName["ull"]).(*btf.Int); i.Encoding&btf.Signed != 0 {
		t.Errorf("unsigned long long is signed: %+v", i)
	}
}

func typeName(t btf.Type) string {
	switch t.(type) {
	case *btf.Pointer:
		return "*btf.Pointer"
	case *btf.Int:
		return "*btf.Int"
	case *btf.Enum:
		return "*btf.Enum"
	}
	return "other"
}

// TestStructLayout checks every member's offset, size and bitfield
// against what gcc laid out (offsetof in params.c's struct S).
func TestStructLayout(t *testing.T) {
	for _, flags := range [][]string{{"-gdwarf-4"}, {"-gdwarf-5"}, {"-gdwarf-2", "-gstrict-dwarf"}} {
		info := load(t, flags...)
		typ, err := info.Type("struct", "S")
		if err != nil {
			t.Fatal(err)
		}
		s := typ.(*btf.Struct)
		if s.Size != 64 {
			t.Errorf("%v: sizeof(struct S) = %d, want 64", flags, s.Size)
		}
		want := []struct {
			name      string
			off, bits btf.Bits
		}{
			{"a", 0, 3}, {"b", 3, 5}, {"c", 64, 0}, {"next", 128, 0}, {"name", 192, 0},
			{"arr", 256, 0}, {"u", 256 + 24*8, 0}, {"e", 256 + 28*8, 0},
		}
		if len(s.Members) != len(want) {
			t.Fatalf("%v: %d members, want %d", flags, len(s.Members), len(want))
		}
		for i, w := range want {
			m := s.Members[i]
			if m.Name != w.name || m.Offset != w.off || m.BitfieldSize != w.bits {
				t.Errorf("%v: member %d = %s at %d (%d bits), want %s at %d (%d bits)", flags, i, m.Name, m.Offset, m.BitfieldSize, w.name, w.off, w.bits)
			}
		}
		// The pointer to itself is the same struct, not a copy.
		if p := s.Members[3].Type.(*btf.Pointer); p.Target != s {
			t.Errorf("%v: next points to %v, not struct S", flags, p.Target)
		}
		arr := s.Members[5].Type.(*btf.Array)
		if inner, ok := arr.Type.(*btf.Array); !ok || arr.Nelems != 2 || inner.Nelems != 3 {
			t.Errorf("%v: arr is %v", flags, arr)
		}
	}
}

func TestTypeLookup(t *testing.T) {
	info := load(t, "-g")
	tests := []struct {
		kind, name string
		found      bool
	}{
		{"struct", "S", true},
		{"union", "U", true},
		{"enum", "E", true},
		{"", "S_t", true},
		{"", "myul", true},
		{"struct", "Big", true},
		{"struct", "Opaque", false}, // only declared
		{"struct", "U", false},
		{"union", "S", false},
		{"struct", "nosuch", false},
	}
	for _, tt := range tests {
		_, err := info.Type(tt.kind, tt.name)
		if tt.found && err != nil {
			t.Errorf("%s %s: %v", tt.kind, tt.name, err)
		}
		if !tt.found && !errors.Is(err, btf.ErrNotFound) {
			t.Errorf("%s %s: %v, want not found", tt.kind, tt.name, err)
		}
	}
	if info.HasFunc("nosuch") || !info.HasFunc("main") {
		t.Error("HasFunc")
	}
	if _, err := info.Params("nosuch"); err == nil {
		t.Error("params of a function that is not there")
	}
}

func TestNoDebugInfo(t *testing.T) {
	for _, flags := range [][]string{{}, {"-s"}} {
		_, err := Load(bytes.NewReader(build(t, "params", flags...)))
		if !errors.Is(err, ErrNoDebugInfo) {
			t.Errorf("%v: %v, want ErrNoDebugInfo", flags, err)
		}
	}
	if _, err := Load(bytes.NewReader([]byte("not an ELF file"))); err == nil || errors.Is(err, ErrNoDebugInfo) {
		t.Errorf("not an ELF: %v", err)
	}
}

func TestCompressed(t *testing.T) {
	if err := exec.Command("gcc", "-gz", "-x", "c", "-c", "-o", os.DevNull, os.DevNull).Run(); err != nil {
		t.Skip("gcc -gz is not supported here")
	}
	info := load(t, "-g", "-gz")
	ps, err := info.Params("f4")
	if err != nil || len(ps) != 5 {
		t.Fatalf("%v %v", ps, err)
	}
}

// FuzzLoad reads arbitrary files as ELF with DWARF: nothing panics, and
// every function's parameters and every named type come out or fail.
// The seeds are whole binaries: minimizing each new input takes long,
// so run it with -fuzzminimizetime=1s.
func FuzzLoad(f *testing.F) {
	for _, flags := range [][]string{{"-g"}, {"-gdwarf-4"}, {"-g", "-gz"}} {
		f.Add(build(f, "params", flags...))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := Load(bytes.NewReader(data))
		if err != nil {
			return
		}
		for name := range info.funcs {
			info.Params(name)
		}
		for key := range info.types {
			kind, name, _ := strings.Cut(key, " ")
			if typ, err := info.Type(kind, name); err == nil {
				btf.Sizeof(typ)
			}
		}
	})
}

// TestCharSign: char is signed on x86-64, unsigned char is not, and
// neither has more than one BTF encoding bit (the kernel allows one).
func TestCharSign(t *testing.T) {
	info := load(t, "-g")
	typ, err := info.Type("struct", "S")
	if err != nil {
		t.Fatal(err)
	}
	name := typ.(*btf.Struct).Members[4].Type.(*btf.Array).Type.(*btf.Int)
	if name.Encoding != btf.Signed || name.Size != 1 {
		t.Errorf("char = %+v, want a signed 1-byte integer", name)
	}
	ps, err := info.Params("f1")
	if err != nil {
		t.Fatal(err)
	}
	// uint8_t b: a typedef of unsigned char.
	if u := btf.UnderlyingType(ps[9].Type).(*btf.Int); u.Encoding != 0 || u.Size != 1 {
		t.Errorf("uint8_t = %+v, want an unsigned 1-byte integer", u)
	}
}
