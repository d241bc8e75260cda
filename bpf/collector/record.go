// Package collector is the kernel side of interpreter mode: static eBPF
// programs, one per probe kind, fixed at build time and signed like any
// artifact (role collector), that copy each event into a ring buffer as a
// Record. What to copy (how much of the context, which strings behind
// which pointers) is map data, never code; the generated program then
// runs over each Record in the interpreter (package interp), so no new
// native code exists anywhere.
package collector

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The record layout, version 1, little-endian. It is the collector's
// output in the ring buffer and the body of every record in a recording
// (broker/record): documented here once.
//
//	off  size
//	  0   4   size: the whole record's length in bytes
//	  4   2   probe: the probe's index in the program (the attach cookie)
//	  6   1   nstr: number of entries (strings, stacks) that follow the
//	          context, at most MaxEntries
//	  7   1   flags (0)
//	  8   8   ktime: bpf_ktime_get_ns at the event
//	 16   4   tgid (the process id)
//	 20   4   pid (the thread id)
//	 24   4   uid
//	 28   4   gid
//	 32   8   cgroup: bpf_get_current_cgroup_id
//	 40   4   cpu
//	 44   4   ctxlen: bytes of context that follow the header
//	 48  16   comm
//	 64   ctxlen bytes: the probe's context (the tracepoint's record, the
//	      uprobe's pt_regs, the perf event's bpf_perf_event_data, the raw
//	      tracepoint's u64 arguments)
//	 then nstr strings, each 8-byte aligned:
//	      8   addr: the pointer the string was read from
//	      2   len: bytes read including the NUL (0: the read failed)
//	      6   pad
//	      len bytes, padded to 8
//
// A string entry may instead be a raw array copy, for a pointer to an
// array of pointers to strings (argv; StringSpec.Array): addr is the
// array's address and len is ArrayLen*8, the array's first ArrayLen
// pointers as the memory held them, with no NUL meaning (len 0: the
// read failed). The strings those pointers point to follow as entries
// of their own, in the array's order, up to its first NULL pointer and
// as long as the record has entries left (MaxStrings in all); each has
// the pointer it was read from as its addr.
//
// After the strings come the kernel reads (Probe.Reads): first, when the
// probe asks for it (Probe.Task), an entry with addr TaskAddr whose 8
// bytes are the current task's address; then one entry per read step,
// its addr the address read and its data what was read there (len 0:
// the read failed), a string's with its NUL. A chain's reads follow the
// pointers its earlier reads gave: a failed read gives the pointer 0,
// whose reads fail in turn, as they would in the kernel.
//
// The last entries may be stacks, marked by these addresses: addr
// KStackAddr, the kernel stack of the event, then addr UStackAddr, its
// user stack, each present when the probe asks for it (Probe.KStack,
// Probe.UStack) and in this order. The data is what bpf_get_stack
// returned, the instruction pointers as u64s, innermost first, at most
// MaxStackFrames of them; len is 8 times their number (0: the kernel
// could not take the stack). The markers are ERR_PTR values, from which
// no string or array can be read: a string entry carries one only when
// the context held such a value, and then with len 0 (the read failed).
// A reader takes a probe's stack as the last entry with its marker.
// Stack entries do not count against MaxStrings: a record has at most
// MaxEntries entries.
const (
	HeaderSize = 64
	// MaxContext bounds the context copied; a tracepoint record larger
	// than this is cut (the fields past it read as zero).
	MaxContext = 512
	// MaxStrings and MaxString bound the strings of one record: every
	// entry, array copies and the strings of arrays included.
	MaxStrings = 24
	MaxString  = 256
	// ArrayLen is how many pointers an array capture copies.
	ArrayLen = 16
	// MaxStackFrames is how many frames a stack entry holds at most
	// (perf_event_max_stack's default).
	MaxStackFrames = 127
	// KStackAddr and UStackAddr are the addrs of the kernel and the user
	// stack entries: ERR_PTR(-255) and ERR_PTR(-254), never a real
	// pointer.
	KStackAddr = 0xffffffffffffff01
	UStackAddr = 0xffffffffffffff02
	// TaskAddr marks the entry of the current task's address:
	// ERR_PTR(-253).
	TaskAddr = 0xffffffffffffff03
	// MaxSteps bounds a record's kernel reads, each at most MaxString
	// bytes (program.MaxKReadSteps, program.MaxKReadSize).
	MaxSteps = 32
	// MaxEntries bounds a record's entries: MaxStrings strings, the
	// task, MaxSteps reads, then a kernel and a user stack.
	MaxEntries = MaxStrings + 1 + MaxSteps + 2
	// MaxRecord is the largest record a collector writes.
	MaxRecord = HeaderSize + MaxContext + MaxStrings*(16+MaxString) + 24 + MaxSteps*(16+MaxString) + 2*(16+8*MaxStackFrames)
)

// Record is one decoded event.
type Record struct {
	Probe    int
	Ktime    uint64
	TGID     uint32
	PID      uint32
	UID, GID uint32
	Cgroup   uint64
	CPU      uint32
	Comm     [16]byte
	Context  []byte
	// Strings are the record's entries: the strings, then the stacks
	// (see the record layout).
	Strings []String
}

// String is a string the collector read behind a pointer, an array's
// pointers, or a stack (Addr KStackAddr or UStackAddr).
type String struct {
	Addr uint64
	// Data is what was read, with its NUL; nil when the read failed.
	// A stack's is its frames, 8 bytes each.
	Data []byte
}

// ErrShort is a record that its bytes do not hold.
var ErrShort = errors.New("short record")

// Decode reads one record from b (the ring buffer sample, or a
// recording's record). The slices of the result point into b.
func Decode(b []byte, r *Record) error {
	le := binary.LittleEndian
	if len(b) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, the header alone is %d", ErrShort, len(b), HeaderSize)
	}
	size := int(le.Uint32(b[0:]))
	if size < HeaderSize || size > len(b) {
		return fmt.Errorf("%w: size %d, %d bytes", ErrShort, size, len(b))
	}
	b = b[:size]
	ctxlen := int(le.Uint32(b[44:]))
	if ctxlen > MaxContext || HeaderSize+ctxlen > size {
		return fmt.Errorf("%w: context of %d bytes in a record of %d", ErrShort, ctxlen, size)
	}
	*r = Record{
		Probe: int(le.Uint16(b[4:])),
		Ktime: le.Uint64(b[8:]),
		TGID:  le.Uint32(b[16:]), PID: le.Uint32(b[20:]),
		UID: le.Uint32(b[24:]), GID: le.Uint32(b[28:]),
		Cgroup:  le.Uint64(b[32:]),
		CPU:     le.Uint32(b[40:]),
		Context: b[HeaderSize : HeaderSize+ctxlen],
		Strings: r.Strings[:0],
	}
	copy(r.Comm[:], b[48:64])
	nstr := int(b[6])
	if nstr > MaxEntries {
		return fmt.Errorf("record with %d entries, at most %d", nstr, MaxEntries)
	}
	off := align8(HeaderSize + ctxlen)
	for i := 0; i < nstr; i++ {
		if off+16 > size {
			return fmt.Errorf("%w: entry %d's header past the end", ErrShort, i)
		}
		s := String{Addr: le.Uint64(b[off:])}
		n := int(le.Uint16(b[off+8:]))
		off += 16
		if n > max(MaxString, 8*MaxStackFrames) || off+n > size {
			return fmt.Errorf("%w: entry %d of %d bytes", ErrShort, i, n)
		}
		if n > 0 {
			s.Data = b[off : off+n]
		}
		r.Strings = append(r.Strings, s)
		off = align8(off + n)
	}
	// The stacks are the last entries, a kernel stack before a user
	// stack: as many as can be (a string entry that looks like a stack,
	// a failed read of a marker's address, is one as well); the entries
	// before them are strings.
	nstack := 0
	for _, addr := range [...]uint64{UStackAddr, KStackAddr} {
		if nstack < nstr {
			if e := r.Strings[nstr-1-nstack]; e.Addr == addr && len(e.Data)%8 == 0 && len(e.Data) <= 8*MaxStackFrames {
				nstack++
			}
		}
	}
	if nstr-nstack > MaxStrings+1+MaxSteps {
		return fmt.Errorf("record with %d strings and reads, at most %d", nstr-nstack, MaxStrings+1+MaxSteps)
	}
	for i, e := range r.Strings[:nstr-nstack] {
		if len(e.Data) > MaxString {
			return fmt.Errorf("string %d of %d bytes, at most %d", i, len(e.Data), MaxString)
		}
	}
	return nil
}

// Encode appends r in the record layout to b: what a collector writes,
// for recordings made in user space and for tests.
func Encode(b []byte, r *Record) []byte {
	le := binary.LittleEndian
	start := len(b)
	var h [HeaderSize]byte
	le.PutUint16(h[4:], uint16(r.Probe))
	h[6] = byte(len(r.Strings))
	le.PutUint64(h[8:], r.Ktime)
	le.PutUint32(h[16:], r.TGID)
	le.PutUint32(h[20:], r.PID)
	le.PutUint32(h[24:], r.UID)
	le.PutUint32(h[28:], r.GID)
	le.PutUint64(h[32:], r.Cgroup)
	le.PutUint32(h[40:], r.CPU)
	le.PutUint32(h[44:], uint32(len(r.Context)))
	copy(h[48:], r.Comm[:])
	b = append(b, h[:]...)
	b = append(b, r.Context...)
	b = pad8(b, start)
	for _, s := range r.Strings {
		var sh [16]byte
		le.PutUint64(sh[0:], s.Addr)
		le.PutUint16(sh[8:], uint16(len(s.Data)))
		b = append(b, sh[:]...)
		b = append(b, s.Data...)
		b = pad8(b, start)
	}
	le.PutUint32(b[start:], uint32(len(b)-start))
	return b
}

func align8(n int) int { return (n + 7) &^ 7 }

func pad8(b []byte, start int) []byte {
	for (len(b)-start)%8 != 0 {
		b = append(b, 0)
	}
	return b
}
