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

// access is mem with a one-region cache in front: loops that walk a map
// value or the stack resolve their region once. It is small enough to be
// inlined into the run loop.
func (m *machine) access(addr, size uint64) []byte {
	if off := addr - m.cBase; off < m.cLen && size <= m.cLen-off {
		return m.cData[off : off+size]
	}
	return m.mem(addr, size, false)
}

// accessW is access for a store.
func (m *machine) accessW(addr, size uint64) []byte {
	if off := addr - m.cBase; off < m.cLen && size <= m.cLen-off && m.cW {
		return m.cData[off : off+size]
	}
	return m.mem(addr, size, true)
}

// mem returns the size bytes at addr if the program may access them (and
// write them, when write is set), else nil. A region it resolves becomes
// the one access caches.
func (m *machine) mem(addr, size uint64, write bool) []byte {
	var base uint64
	var data []byte
	w := true
	switch addr >> tagShift {
	case tagStack:
		base, data = stackBase, m.stack[:m.stackTop]
	case tagMapValue:
		idx := (addr >> mapIdxShift) & (maxMaps - 1)
		if idx >= uint64(len(m.prog.maps)) {
			return nil
		}
		mp := m.prog.maps[idx]
		off := addr & mapOffMask
		within := off & (1<<mp.shift - 1)
		data = mp.slot(off >> mp.shift)
		base = addr - within
	case tagCtx:
		base, data, w = ctxBase, m.ctx, m.prog.ctxW
	case tagResv:
		// Not cached: a reservation stops being memory when submitted.
		n := (addr >> 32) & 0xffffff
		off := uint64(uint32(addr))
		if n < uint64(len(m.resv)) && m.resv[n].live {
			b := m.resv[n].buf
			if off < uint64(len(b)) && size <= uint64(len(b))-off {
				return b[off : off+size : off+size]
			}
		}
		return nil
	default:
		return nil
	}
	if data == nil {
		return nil
	}
	m.cBase, m.cLen, m.cData, m.cW = base, uint64(len(data)), data, w
	off := addr - base
	if off < uint64(len(data)) && size <= uint64(len(data))-off && (w || !write) {
		return data[off : off+size : off+size]
	}
	return nil
}

// uncache forgets the cached region; the stack's extent changes on calls
// and returns, and a new run has a new context.
func (m *machine) uncache() { m.cLen = 0 }

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
