// Package asmgen is what the project's fixed programs (interpreter
// mode's collectors, the kernel gate) share: an instruction builder with
// labels, and the encoding of their code in the objects their manifests
// sign.
package asmgen

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/cilium/ebpf/asm"
)

// Builder collects instructions; a label applies to the next one
// emitted.
type Builder struct {
	Insns   asm.Instructions
	pending string
}

// Emit appends ins, the first one labelled with the pending label.
func (b *Builder) Emit(ins ...asm.Instruction) {
	for _, in := range ins {
		if b.pending != "" {
			in = in.WithSymbol(b.pending)
			b.pending = ""
		}
		b.Insns = append(b.Insns, in)
	}
}

// Label names the next instruction emitted. Two labels on one
// instruction are a bug in the generator: it panics.
func (b *Builder) Label(l string) {
	if b.pending != "" {
		panic("asmgen: two labels on one instruction: " + b.pending + ", " + l)
	}
	b.pending = l
}

type mapIndex int

func (m mapIndex) FD() int { return int(m) }

// Encode is insns as the kernel takes them with an fd_array: 8-byte
// little-endian slots in which every map load is BPF_PSEUDO_MAP_IDX
// (src 5) with the map's index in maps as imm. The bytes alone say which
// map each load uses, where a file descriptor would differ on every
// run: they are what a fixed program's manifest signs.
func Encode(insns asm.Instructions, maps map[string]int) ([]byte, error) {
	insns = append(asm.Instructions(nil), insns...) // Marshal resolves jumps and maps in place
	for i := range insns {
		if !insns[i].IsLoadFromMap() {
			continue
		}
		idx, ok := maps[insns[i].Reference()]
		if !ok {
			return nil, fmt.Errorf("instruction %d loads map %q, which is not in its map table", i, insns[i].Reference())
		}
		if err := insns[i].AssociateMap(mapIndex(idx)); err != nil {
			return nil, err
		}
	}
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return nil, fmt.Errorf("encoding: %w", err)
	}
	raw := code.Bytes()
	for i := 0; i+16 <= len(raw); i += 8 {
		if raw[i] == 0x18 { // BPF_LD | BPF_IMM | BPF_DW: two slots
			if raw[i+1]>>4 == 1 { // BPF_PSEUDO_MAP_FD
				raw[i+1] = raw[i+1]&0x0f | 5<<4
			}
			i += 8
		}
	}
	return raw, nil
}
