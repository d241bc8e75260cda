package interp

import (
	"fmt"
	"unsafe"
)

// A pointer inside the interpreter is a 64-bit value, never a Go address:
// the top byte says which region it points into and the rest is an offset
// in that region. Every load, store and helper argument is resolved
// through mem, which checks the region and the bounds, so a program can
// compute any value it likes and still touch nothing but its own stack,
// its context, map values and the buffers helpers gave it. Small integers
// (tag 0) are never valid pointers, so NULL faults as it should.
//
//	tag 0x01  map value   idx<<44 | slot<<shift | offset within the value
//	tag 0x02  map handle  idx<<44 (what a map load yields; not memory)
//	tag 0x10  stack       offset from the bottom of frame 0
//	tag 0x11  context     offset into the caller's buffer
//	tag 0x12  ring-buffer reservation  n<<32 | offset
const (
	tagShift     = 56
	tagMapValue  = 0x01
	tagMapHandle = 0x02
	tagStack     = 0x10
	tagCtx       = 0x11
	tagResv      = 0x12

	mapIdxShift = 44
	maxMaps     = 1 << (tagShift - mapIdxShift)
	mapOffMask  = 1<<mapIdxShift - 1

	stackBase = uint64(tagStack) << tagShift
	ctxBase   = uint64(tagCtx) << tagShift
	resvBase  = uint64(tagResv) << tagShift
)

func mapHandle(idx int) uint64 {
	return uint64(tagMapHandle)<<tagShift | uint64(idx)<<mapIdxShift
}

func mapValueAddr(idx int, slot uint64, shift uint) uint64 {
	return uint64(tagMapValue)<<tagShift | uint64(idx)<<mapIdxShift | slot<<shift
}

// mem returns the size bytes at addr if the program may access them (and
// write them, when write is set), else nil.
func (m *machine) mem(addr, size uint64, write bool) []byte {
	switch addr >> tagShift {
	case tagStack:
		off := addr - stackBase
		if off < m.stackTop && size <= m.stackTop-off {
			return m.stack[off : off+size : off+size]
		}
	case tagMapValue:
		idx := (addr >> mapIdxShift) & (maxMaps - 1)
		if idx < uint64(len(m.prog.maps)) {
			return m.prog.maps[idx].value(addr&mapOffMask, size)
		}
	case tagCtx:
		off := addr - ctxBase
		if off < uint64(len(m.ctx)) && size <= uint64(len(m.ctx))-off && (!write || m.prog.ctxW) {
			return m.ctx[off : off+size : off+size]
		}
	case tagResv:
		n := (addr >> 32) & 0xffffff
		off := uint64(uint32(addr))
		if n < uint64(len(m.resv)) {
			b := m.resv[n].buf
			if off < uint64(len(b)) && size <= uint64(len(b))-off {
				return b[off : off+size : off+size]
			}
		}
	}
	return nil
}

// describe names the place an address points to, for fault messages.
func (m *machine) describe(addr uint64) string {
	switch addr >> tagShift {
	case tagStack:
		off := int64(addr - stackBase)
		frame := int64(m.depth)
		return fmt.Sprintf("stack (frame %d, r10%+d)", frame, off-(frame+1)*StackSize)
	case tagMapValue:
		idx := (addr >> mapIdxShift) & (maxMaps - 1)
		if idx < uint64(len(m.prog.maps)) {
			mp := m.prog.maps[idx]
			off := addr & mapOffMask
			return fmt.Sprintf("map %q value (slot %d, offset %d of %d)", mp.name, off>>mp.shift, off&(1<<mp.shift-1), mp.valueSize)
		}
		return "an unknown map"
	case tagMapHandle:
		return "a map handle, which is not memory"
	case tagCtx:
		return fmt.Sprintf("context+%d (%d bytes)", addr-ctxBase, len(m.ctx))
	case tagResv:
		return "a ring-buffer reservation"
	}
	if addr < 4096 {
		return "NULL"
	}
	return "no region"
}

func (m *machine) fault(addr, size uint64, write bool) error {
	what := "read"
	if write {
		what = "write"
	}
	return fmt.Errorf("%w: %s of %d bytes at %#x: %s", ErrFault, what, size, addr, m.describe(addr))
}

// aligned8 allocates n bytes at an 8-byte boundary, so 64-bit atomics on
// them are well-formed.
func aligned8(n uint64) []byte {
	if n == 0 {
		return nil
	}
	words := make([]uint64, (n+7)/8)
	return unsafe.Slice((*byte)(unsafe.Pointer(&words[0])), n)
}
