package usdt

import (
	"encoding/binary"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []Arg
		err  string
	}{
		{"-8@%rax 8@%rdx", []Arg{{Size: 8, Signed: true, Kind: Reg, Reg: "rax", Bits: 64}, {Size: 8, Kind: Reg, Reg: "rdx", Bits: 64}}, ""},
		{"-4@%edi", []Arg{{Size: 4, Signed: true, Kind: Reg, Reg: "rdi", Bits: 32}}, ""},
		{"1@%al 2@%r9w -1@%sil", []Arg{{Size: 1, Kind: Reg, Reg: "rax", Bits: 8}, {Size: 2, Kind: Reg, Reg: "r9", Bits: 16}, {Size: 1, Signed: true, Kind: Reg, Reg: "rsi", Bits: 8}}, ""},
		{"8@$-579005069656919568", []Arg{{Size: 8, Kind: Const, Value: -579005069656919568}}, ""},
		{"-2@$0x10", []Arg{{Size: 2, Signed: true, Kind: Const, Value: 16}}, ""},
		{"-8@-80(%rsp)", []Arg{{Size: 8, Signed: true, Kind: Mem, Reg: "rsp", Bits: 64, Disp: -80}}, ""},
		{"4@(%rdi)", []Arg{{Size: 4, Kind: Mem, Reg: "rdi", Bits: 64}}, ""},
		{"-2@-88(%rsp,%rax,8)", []Arg{{Size: 2, Signed: true, Kind: Mem, Reg: "rsp", Bits: 64, Disp: -88, Index: "rax", Scale: 8}}, ""},
		{"8@(%rbx,%rcx)", []Arg{{Size: 8, Kind: Mem, Reg: "rbx", Bits: 64, Index: "rcx", Scale: 1}}, ""},
		{"%rdi", []Arg{{Size: 8, Signed: true, Kind: Reg, Reg: "rdi", Bits: 64}}, ""},
		{"", nil, ""},
		{"3@%rax", nil, "size 3"},
		{"8@%xmm0", nil, "unknown register %xmm0"},
		{"1@%ah", nil, "unknown register %ah"},
		{"8@foo(%rip)", nil, `a displacement "foo" that is not a number`},
		{"8@8(%rip)", nil, "based on"},
		{"8@8(%rax,%rbx,3)", nil, "scale"},
		{"8@$x", nil, "constant"},
		{"x@%rax", nil, "size is not a number"},
		{strings.Repeat("8@%rax ", 13), nil, "more than 12"},
	} {
		got, err := ParseArgs(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%q: %v, want an error with %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v, %v; want %+v", tc.spec, got, err, tc.want)
		}
	}
}

// TestReadGCC reads the notes gcc writes for sys/sdt.h's probes, with
// readelf's reading of the same file as the reference.
func TestReadGCC(t *testing.T) {
	cc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("skipping: no gcc")
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "p.c")
	os.WriteFile(src, []byte(`#include <sys/sdt.h>
int sem_use;
unsigned short prov_second_semaphore __attribute__((section(".probes")));
int main(int argc, char **argv) {
	DTRACE_PROBE2(prov, first, argc, argv[0]);
	if (prov_second_semaphore) DTRACE_PROBE1(prov, second, 7);
	DTRACE_PROBE(other, third);
	return 0;
}
`), 0o644)
	bin := filepath.Join(dir, "p")
	if out, err := exec.Command(cc, "-O1", "-o", bin, src).CombinedOutput(); err != nil {
		t.Skipf("skipping: no sys/sdt.h to build with: %s", out)
	}
	f, err := os.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	probes, err := Read(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range probes {
		got = append(got, p.FullName())
		if p.Addr == 0 || p.ArgErr != nil {
			t.Errorf("%s: addr %#x, args %q: %v", p.FullName(), p.Addr, p.ArgSpec, p.ArgErr)
		}
	}
	if strings.Join(got, " ") != "prov:first prov:second other:third" {
		t.Errorf("probes %v", got)
	}
	if len(probes) == 3 && (len(probes[0].Args) != 2 || len(probes[1].Args) != 1 || probes[1].Args[0].Kind != Const || probes[1].Args[0].Value != 7 || len(probes[2].Args) != 0) {
		t.Errorf("arguments %+v", probes)
	}
	out, err := exec.Command("readelf", "-n", bin).Output()
	if err != nil {
		t.Skip("no readelf to compare addresses with")
	}
	for _, p := range probes {
		if !strings.Contains(string(out), fmt.Sprintf("Location: 0x%016x", p.Addr)) {
			t.Errorf("%s at %#x: not a location readelf shows:\n%s", p.FullName(), p.Addr, out)
		}
	}
}

func FuzzParseArgs(f *testing.F) {
	for _, s := range []string{"-8@%rax 8@%rdx", "8@$-5", "-2@-88(%rsp,%rax,8)", "4@(%rdi)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		args, err := ParseArgs(spec)
		if err != nil {
			return
		}
		for _, a := range args {
			if a.Size != 1 && a.Size != 2 && a.Size != 4 && a.Size != 8 || a.Kind < Const || a.Kind > Mem {
				t.Fatalf("%q: %+v", spec, a)
			}
			if a.Kind != Const {
				if _, _, ok := Register(a.Reg); !ok {
					t.Fatalf("%q: register %q", spec, a.Reg)
				}
			}
		}
	})
}

// FuzzParseNotes: a file's notes never panic the reader, and what it
// returns is bounded.
func FuzzParseNotes(f *testing.F) {
	note := func(owner string, typ uint32, desc []byte) []byte {
		b := binary.LittleEndian.AppendUint32(nil, uint32(len(owner)+1))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(desc)))
		b = binary.LittleEndian.AppendUint32(b, typ)
		b = append(b, owner...)
		b = append(b, 0)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		b = append(b, desc...)
		for len(b)%4 != 0 {
			b = append(b, 0)
		}
		return b
	}
	desc := binary.LittleEndian.AppendUint64(nil, 0x401000)
	desc = binary.LittleEndian.AppendUint64(desc, 0x402000)
	desc = binary.LittleEndian.AppendUint64(desc, 0x404010)
	desc = append(desc, "prov\x00name\x00-4@%edi 8@-8(%rbp)\x00"...)
	f.Add(note("stapsdt", 3, desc), uint64(0x402000))
	f.Add(append(note("GNU", 1, []byte{1, 2, 3}), note("stapsdt", 3, desc[:20])...), uint64(0))
	f.Fuzz(func(t *testing.T, data []byte, base uint64) {
		probes, err := parseNotes(data, base, base != 0)
		if err != nil {
			return
		}
		if len(probes) > MaxProbes {
			t.Fatalf("%d probes", len(probes))
		}
		for _, p := range probes {
			if p.Provider == "" || p.Name == "" || len(p.Args) > MaxArgs {
				t.Fatalf("%+v", p)
			}
		}
	})
}
