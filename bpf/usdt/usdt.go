// Package usdt reads the USDT probes (SystemTap's statically defined
// tracing, <sys/sdt.h>) an ELF file declares in its .note.stapsdt
// section: where each probe is, its semaphore, and where its arguments
// are at the probe (the x86-64 operand of each, "-4@%edi", "8@-80(%rsp)",
// "-8@$-16"). A USDT probe is a uprobe at its address; its semaphore is a
// counter the kernel increments while the probe is attached (the uprobe's
// ref_ctr_offset), which programs test before preparing the arguments.
package usdt

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
)

// Probe is one USDT probe site. A probe name used at several places of
// a program has one Probe per place.
type Probe struct {
	Provider, Name string
	// Addr is the probe's virtual address, adjusted for prelinking by
	// the .stapsdt.base section as the notes' consumers do.
	Addr uint64
	// Semaphore is the virtual address of the probe's semaphore, 0 if it
	// has none.
	Semaphore uint64
	Args      []Arg
	// ArgSpec is the arguments' text as the note holds it, and ArgErr
	// why it could not be read (then Args is nil): a script that reads
	// no argument still attaches.
	ArgSpec string
	ArgErr  error
}

// FullName is PROVIDER:NAME.
func (p Probe) FullName() string { return p.Provider + ":" + p.Name }

// ArgKind is where an argument is at the probe.
type ArgKind uint8

const (
	Const ArgKind = iota + 1 // $N: the value itself
	Reg                      // %reg: a register of the probe's pt_regs
	Mem                      // disp(%base[,%index[,scale]]): memory at an address
)

// Arg is one probe argument.
type Arg struct {
	Size   int  // 1, 2, 4 or 8 bytes
	Signed bool // sign-extended from Size
	Kind   ArgKind
	Value  int64 // Const
	// Reg is the register of a Reg argument, the base of a Mem one: its
	// 64-bit name (rdi for %edi), and Bits the width the operand names
	// (32 for %edi).
	Reg  string
	Bits int
	// Mem: Reg + Disp + Index*Scale.
	Disp  int64
	Index string
	Scale int
}

// MaxProbes bounds the probes read from one file: the notes come from a
// file a user names.
const MaxProbes = 1 << 16

// sdtNoteType is NT_STAPSDT.
const sdtNoteType = 3

// Read returns the USDT probes of the ELF file r. A file without
// .note.stapsdt has none.
func Read(r io.ReaderAt) ([]Probe, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.ByteOrder != binary.LittleEndian {
		return nil, errors.New("USDT notes are read for 64-bit little-endian ELF files only")
	}
	notes := f.Section(".note.stapsdt")
	if notes == nil {
		return nil, nil
	}
	var base uint64
	haveBase := false
	if s := f.Section(".stapsdt.base"); s != nil {
		base, haveBase = s.Addr, true
	}
	data, err := notes.Data()
	if err != nil {
		return nil, fmt.Errorf(".note.stapsdt: %w", err)
	}
	return parseNotes(data, base, haveBase)
}

// parseNotes reads the notes of a .note.stapsdt section's data.
func parseNotes(data []byte, base uint64, haveBase bool) ([]Probe, error) {
	var out []Probe
	le := binary.LittleEndian
	for len(data) >= 12 {
		namesz, descsz, typ := le.Uint32(data), le.Uint32(data[4:]), le.Uint32(data[8:])
		data = data[12:]
		nameLen, descLen := align4(namesz), align4(descsz)
		if uint64(len(data)) < nameLen+descLen {
			return nil, errors.New(".note.stapsdt: a note runs past the section")
		}
		owner := string(bytes.TrimRight(data[:namesz], "\x00"))
		desc := data[nameLen : nameLen+uint64(descsz)]
		data = data[nameLen+descLen:]
		if owner != "stapsdt" || typ != sdtNoteType {
			continue
		}
		p, err := parseNote(desc)
		if err != nil {
			return nil, err
		}
		if haveBase && p.noteBase != 0 {
			p.Addr += base - p.noteBase
			if p.Semaphore != 0 {
				// Prelinking moves the semaphore with the rest.
				p.Semaphore += base - p.noteBase
			}
		}
		out = append(out, p.Probe)
		if len(out) > MaxProbes {
			return nil, fmt.Errorf(".note.stapsdt: more than %d probes", MaxProbes)
		}
	}
	return out, nil
}

func align4(n uint32) uint64 { return (uint64(n) + 3) &^ 3 }

type note struct {
	Probe
	noteBase uint64
}

// parseNote reads a note's descriptor: pc, base and semaphore (8 bytes
// each), then provider, name and arguments, each NUL-terminated.
func parseNote(desc []byte) (note, error) {
	if len(desc) < 24 {
		return note{}, errors.New(".note.stapsdt: a note shorter than its addresses")
	}
	le := binary.LittleEndian
	n := note{noteBase: le.Uint64(desc[8:])}
	n.Addr, n.Semaphore = le.Uint64(desc), le.Uint64(desc[16:])
	strs := bytes.SplitN(desc[24:], []byte{0}, 4)
	if len(strs) < 3 {
		return note{}, errors.New(".note.stapsdt: a note without provider, name and arguments")
	}
	n.Provider, n.Name, n.ArgSpec = string(strs[0]), string(strs[1]), string(strs[2])
	if n.Provider == "" || n.Name == "" {
		return note{}, errors.New(".note.stapsdt: a note without a provider or a name")
	}
	n.Args, n.ArgErr = ParseArgs(n.ArgSpec)
	return n, nil
}

// MaxArgs is how many arguments a probe has at most (sys/sdt.h's 12).
const MaxArgs = 12

// ParseArgs reads a probe's argument spec: operands separated by spaces,
// each SIZE@OPERAND with a negative SIZE for a signed value.
func ParseArgs(spec string) ([]Arg, error) {
	fields := strings.Fields(spec)
	if len(fields) > MaxArgs {
		return nil, fmt.Errorf("%d arguments, more than %d", len(fields), MaxArgs)
	}
	var out []Arg
	for _, f := range fields {
		a, err := parseArg(f)
		if err != nil {
			return nil, fmt.Errorf("argument %q: %w", f, err)
		}
		out = append(out, a)
	}
	return out, nil
}

func parseArg(s string) (Arg, error) {
	size, op, ok := strings.Cut(s, "@")
	if !ok {
		// Old notes have no size: an 8-byte signed value.
		size, op = "-8", s
	}
	n, err := strconv.Atoi(size)
	if err != nil {
		return Arg{}, errors.New("the size is not a number")
	}
	a := Arg{Size: n, Signed: n < 0}
	if n < 0 {
		a.Size = -n
	}
	switch a.Size {
	case 1, 2, 4, 8:
	default:
		return Arg{}, fmt.Errorf("size %d is not 1, 2, 4 or 8", a.Size)
	}
	switch {
	case strings.HasPrefix(op, "$"):
		v, err := strconv.ParseInt(op[1:], 0, 64)
		if err != nil {
			return Arg{}, errors.New("a constant that is not a number")
		}
		a.Kind, a.Value = Const, v
	case strings.HasPrefix(op, "%"):
		reg, bits, ok := Register(op[1:])
		if !ok {
			return Arg{}, fmt.Errorf("unknown register %s", op)
		}
		a.Kind, a.Reg, a.Bits = Reg, reg, bits
	default:
		open := strings.IndexByte(op, '(')
		if open < 0 || !strings.HasSuffix(op, ")") {
			return Arg{}, errors.New("an operand that is neither a constant, a register nor memory")
		}
		if d := op[:open]; d != "" {
			v, err := strconv.ParseInt(d, 0, 64)
			if err != nil {
				// disp is a symbol (sym(%rip)): its address is the
				// process's, which this package does not know.
				return Arg{}, fmt.Errorf("a displacement %q that is not a number", d)
			}
			a.Disp = v
		}
		parts := strings.Split(op[open+1:len(op)-1], ",")
		if len(parts) > 3 {
			return Arg{}, errors.New("a memory operand of more than base, index and scale")
		}
		base, _, ok := Register(strings.TrimPrefix(parts[0], "%"))
		if !ok || !strings.HasPrefix(parts[0], "%") || base == "rip" {
			return Arg{}, fmt.Errorf("a memory operand based on %q", parts[0])
		}
		a.Kind, a.Reg, a.Bits = Mem, base, 64
		if len(parts) >= 2 {
			idx, _, ok := Register(strings.TrimPrefix(parts[1], "%"))
			if !ok || !strings.HasPrefix(parts[1], "%") {
				return Arg{}, fmt.Errorf("a memory operand indexed by %q", parts[1])
			}
			a.Index, a.Scale = idx, 1
			if len(parts) == 3 {
				sc, err := strconv.Atoi(parts[2])
				if err != nil || sc != 1 && sc != 2 && sc != 4 && sc != 8 {
					return Arg{}, fmt.Errorf("a scale %q that is not 1, 2, 4 or 8", parts[2])
				}
				a.Scale = sc
			}
		}
	}
	return a, nil
}

// registers maps each x86-64 register name an operand may use to its
// 64-bit register and its width.
var registers = sync.OnceValue(func() map[string][2]any {
	m := map[string][2]any{}
	for _, r := range []struct{ q, d, w, b string }{
		{"rax", "eax", "ax", "al"}, {"rbx", "ebx", "bx", "bl"}, {"rcx", "ecx", "cx", "cl"},
		{"rdx", "edx", "dx", "dl"}, {"rsi", "esi", "si", "sil"}, {"rdi", "edi", "di", "dil"},
		{"rbp", "ebp", "bp", "bpl"}, {"rsp", "esp", "sp", "spl"},
	} {
		m[r.q], m[r.d], m[r.w], m[r.b] = [2]any{r.q, 64}, [2]any{r.q, 32}, [2]any{r.q, 16}, [2]any{r.q, 8}
	}
	for i := 8; i <= 15; i++ {
		q := "r" + strconv.Itoa(i)
		m[q], m[q+"d"], m[q+"w"], m[q+"b"] = [2]any{q, 64}, [2]any{q, 32}, [2]any{q, 16}, [2]any{q, 8}
	}
	m["rip"] = [2]any{"rip", 64}
	// The high byte registers: %ah is bits 8..15 of rax, which a 1-byte
	// read of the register does not reach; refused (bits 0 marks it).
	for _, h := range []string{"ah", "bh", "ch", "dh"} {
		m[h] = [2]any{"r" + h[:1] + "x", 0}
	}
	return m
})

// Register names the 64-bit register an operand's register is part of
// (rdi for edi), and how many of its low bits the name covers.
func Register(name string) (reg string, bits int, ok bool) {
	r, ok := registers()[name]
	if !ok || r[1].(int) == 0 {
		return "", 0, false
	}
	return r[0].(string), r[1].(int), true
}
