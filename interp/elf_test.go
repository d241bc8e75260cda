package interp

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
)

// elfOptions are the conformance suite's options: r1, r2 = memory, length.
var elfOptions = Options{Args: 2, WritableContext: true}

// The objects in testdata/elf are built from the .c files beside them
// (the clang command is in each); the tests never need clang.
func TestLoadELF(t *testing.T) {
	type run struct {
		mem  []byte
		want uint64
	}
	tests := []struct {
		name    string
		file    string
		program string
		runs    []run    // run in order, on the same maps
		maps    []string // Program.Maps, by name
		wantErr string   // substring of the error; the runs are skipped
		errIs   error
		check   func(t *testing.T, p *Program)
	}{
		{
			name: "array map lookup and atomic add", file: "counter.o", program: "count",
			runs: []run{{nil, 42}, {nil, 42}},
			maps: []string{"counts"},
			check: func(t *testing.T, p *Program) {
				v, ok, err := p.Maps()[0].Lookup([]byte{2, 0, 0, 0})
				if err != nil || !ok {
					t.Fatalf("lookup counts[2]: %v %v", ok, err)
				}
				if got := binary.LittleEndian.Uint64(v); got != 10 {
					t.Errorf("counts[2] = %d after two runs, want 10", got)
				}
			},
		},
		{
			name: "global variable starts at its initial value", file: "counter.o", program: "globals",
			runs: []run{{nil, 8}, {nil, 9}},
			maps: []string{".data"},
		},
		{
			name: "several programs and none named", file: "counter.o",
			wantErr: "the object has 3 programs (count, globals, perf): name one",
		},
		{
			name: "no such program", file: "counter.o", program: "nosuch",
			wantErr: `no program "nosuch" in the object (it has count, globals, perf)`,
		},
		{
			name: "unsupported map type", file: "counter.o", program: "perf",
			wantErr: `program "perf": interp: map "events": type PerfEventArray is not supported`,
		},
		{
			name: "not an ELF", file: "counter.c",
			wantErr: "counter.c: interp: not an ELF object", errIs: ErrNotELF,
		},
		{
			name: "missing file", file: "missing.o",
			wantErr: "missing.o", errIs: os.ErrNotExist,
		},
		{
			name: "code only in .text: the only function", file: "text.o",
			runs: []run{{nil, 3}, {[]byte{5, 0, 0, 0, 0, 0, 0, 0}, 13}},
		},
		{
			name: "code only in .text: by name", file: "text.o", program: "main",
			runs: []run{{nil, 3}},
		},
		{
			name: "code only in .text: no such function", file: "text.o", program: "other",
			wantErr: `no program "other" in the object (it has main)`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadELF("testdata/elf/"+tc.file, tc.program, elfOptions)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("loaded; want an error with %q", tc.wantErr)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q, want it to contain %q", err, tc.wantErr)
				}
				if tc.errIs != nil && !errors.Is(err, tc.errIs) {
					t.Errorf("error %q is not %v", err, tc.errIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, m := range p.Maps() {
				names = append(names, m.Name())
			}
			if strings.Join(names, ",") != strings.Join(tc.maps, ",") {
				t.Errorf("maps %q, want %q", names, tc.maps)
			}
			for i, r := range tc.runs {
				got, err := p.Run(nil, r.mem)
				if err != nil {
					t.Fatalf("run %d: %v", i, err)
				}
				if got != r.want {
					t.Errorf("run %d: r0 = %d, want %d", i, got, r.want)
				}
			}
			if tc.check != nil {
				tc.check(t, p)
			}
		})
	}
}

// conformanceELF wraps bytecode in an ELF object as bpf_conformance's
// bpf_writer_classic does for its runner's --elf option: sections null,
// .shstrtab, .symtab (its strings in .shstrtab), .text, and one global
// function "main" covering .text.
func conformanceELF(code []byte) []byte {
	strtab := []byte("\x00.shstrtab\x00.symtab\x00.text\x00main\x00")
	name := func(s string) uint32 { return uint32(bytes.Index(strtab, []byte("\x00"+s+"\x00")) + 1) }
	var syms bytes.Buffer
	binary.Write(&syms, binary.LittleEndian, []elf.Sym64{
		{},
		{Name: name("main"), Info: elf.ST_INFO(elf.STB_GLOBAL, elf.STT_FUNC), Shndx: 3, Size: uint64(len(code))},
	})
	pad := func(b []byte) []byte { return append(b, make([]byte, -len(b)&7)...) }
	const hdr = 64
	strOff := uint64(hdr)
	symOff := strOff + uint64(len(pad(bytes.Clone(strtab))))
	textOff := symOff + uint64(syms.Len())
	shOff := textOff + uint64(len(pad(bytes.Clone(code))))

	var out bytes.Buffer
	h := elf.Header64{
		Type: uint16(elf.ET_REL), Machine: uint16(elf.EM_BPF), Version: uint32(elf.EV_CURRENT),
		Shoff: shOff, Ehsize: hdr, Shentsize: 64, Shnum: 4, Shstrndx: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&out, binary.LittleEndian, h)
	out.Write(pad(bytes.Clone(strtab)))
	out.Write(syms.Bytes())
	out.Write(pad(bytes.Clone(code)))
	binary.Write(&out, binary.LittleEndian, []elf.Section64{
		{},
		{Name: name(".shstrtab"), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(strtab)), Addralign: 1},
		{Name: name(".symtab"), Type: uint32(elf.SHT_SYMTAB), Off: symOff, Size: uint64(syms.Len()), Link: 1, Info: 1, Addralign: 4, Entsize: 24},
		{Name: name(".text"), Type: uint32(elf.SHT_PROGBITS), Flags: uint64(elf.SHF_ALLOC | elf.SHF_EXECINSTR), Off: textOff, Size: uint64(len(code)), Addralign: 4},
	})
	return out.Bytes()
}

// TestLoadELFConformance runs the whole conformance suite through
// LoadELFReader, each program in an ELF object as the upstream runner
// writes it with --elf.
func TestLoadELFConformance(t *testing.T) {
	for _, c := range loadConformance(t) {
		t.Run(strings.TrimSuffix(c.Name, ".data"), func(t *testing.T) {
			code, mem, want := c.decode(t)
			p, err := LoadELFReader(bytes.NewReader(conformanceELF(code)), "", elfOptions)
			if err != nil {
				t.Fatalf("%v\n%s", err, strings.Join(c.Asm, "\n"))
			}
			got, err := p.Run(nil, mem)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("r0 = %#x, want %#x", got, want)
			}
		})
	}
}

func TestLoadELFReaderNotELF(t *testing.T) {
	for _, in := range [][]byte{nil, []byte("\x7fEL"), []byte("b7 00 00 00 2a 00 00 00")} {
		_, err := LoadELFReader(bytes.NewReader(in), "", elfOptions)
		if !errors.Is(err, ErrNotELF) {
			t.Errorf("%q: error %v, want ErrNotELF", in, err)
		}
	}
}
