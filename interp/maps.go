package interp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"

	"github.com/cilium/ebpf"
)

// maxMapBytes caps the memory one map may preallocate.
const maxMapBytes = 1 << 30

// Map is a user-space BPF map with the kernel's semantics for the types
// the interpreter supports: hash, array, LRU hash, per-CPU hash and array,
// and ring buffer. Like the kernel's (default, preallocated) maps, every
// value has its place from the start: a pointer a program got from
// lookup stays valid memory for as long as the map exists, whatever
// other runs do to the map meanwhile.
//
// A Map is safe for concurrent use by programs and by its owner. Values
// written through pointers are not locked, exactly as in the kernel;
// programs that share counters use atomic instructions.
type Map struct {
	name       string
	typ        ebpf.MapType
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	ncpu       uint32 // copies of each value: NumCPU for per-CPU maps, else 1

	shift uint   // a value's address space is 1<<shift bytes
	data  []byte // values, stride bytes each (8-aligned), ncpu per entry
	slots uint64 // len(data)/stride

	mu     sync.RWMutex
	index  index    // hash types: key -> entry
	keys   []byte   // hash types: key of each entry
	used   []bool   // hash types: entry holds a key
	free   []uint32 // hash types: unused entries
	lruPrv []uint32 // LRU: recency list, most recent at lruHead
	lruNxt []uint32
	lruHd  uint32

	ring ringState
}

// MapOptions are the host facts a map needs beyond its spec.
type MapOptions struct {
	// CPUs is the number of copies a per-CPU map keeps; 0 means
	// runtime.NumCPU(). Env.CPU must be below it.
	CPUs int
}

const noEntry = ^uint32(0)

// NewMap creates a map from the same spec the kernel path uses.
func NewMap(spec *ebpf.MapSpec, opts MapOptions) (*Map, error) {
	m := &Map{
		name:       spec.Name,
		typ:        spec.Type,
		keySize:    spec.KeySize,
		valueSize:  spec.ValueSize,
		maxEntries: spec.MaxEntries,
		ncpu:       1,
	}
	fail := func(format string, args ...any) (*Map, error) {
		return nil, fmt.Errorf("interp: map %q: %s", spec.Name, fmt.Sprintf(format, args...))
	}
	if m.maxEntries == 0 {
		return fail("max entries is 0")
	}
	switch m.typ {
	case ebpf.Hash, ebpf.LRUHash, ebpf.PerCPUHash, ebpf.LRUCPUHash, ebpf.Array, ebpf.PerCPUArray:
		if m.valueSize == 0 {
			return fail("value size is 0")
		}
	case ebpf.RingBuf:
		if m.keySize != 0 || m.valueSize != 0 {
			return fail("a ring buffer has no key or value size")
		}
		if bits.OnesCount32(m.maxEntries) != 1 {
			return fail("ring buffer size %d is not a power of 2", m.maxEntries)
		}
		if m.maxEntries > maxMapBytes {
			return fail("ring buffer size %d exceeds %d", m.maxEntries, maxMapBytes)
		}
		m.ring.init(m.maxEntries)
		return m, nil
	default:
		return fail("type %v is not supported by the interpreter", m.typ)
	}
	if m.typ == ebpf.Array || m.typ == ebpf.PerCPUArray {
		if m.keySize != 4 {
			return fail("an array's key size must be 4, not %d", m.keySize)
		}
	} else if m.keySize == 0 {
		return fail("key size is 0")
	}
	if m.perCPU() {
		n := opts.CPUs
		if n <= 0 {
			n = runtime.NumCPU()
		}
		m.ncpu = uint32(n)
	}
	stride := uint64(m.valueSize+7) &^ 7
	m.shift = uint(bits.Len32(m.valueSize - 1))
	m.slots = uint64(m.maxEntries) * uint64(m.ncpu)
	if m.slots*stride > maxMapBytes || m.slots<<m.shift > mapOffMask {
		return fail("%d entries of %d bytes are too large for the interpreter", m.maxEntries, m.valueSize)
	}
	m.data = aligned8(m.slots * stride)
	if m.typ == ebpf.Array || m.typ == ebpf.PerCPUArray {
		return m, nil
	}
	m.keys = make([]byte, uint64(m.maxEntries)*uint64(m.keySize))
	m.index.init(m.maxEntries)
	m.used = make([]bool, m.maxEntries)
	m.free = make([]uint32, m.maxEntries)
	for i := range m.free {
		m.free[i] = m.maxEntries - 1 - uint32(i) // pop order 0, 1, 2, ...
	}
	if m.lru() {
		m.lruPrv = make([]uint32, m.maxEntries)
		m.lruNxt = make([]uint32, m.maxEntries)
		m.lruHd = noEntry
	}
	return m, nil
}

// Name is the map's name from its spec.
func (m *Map) Name() string { return m.name }

// Type is the map's type.
func (m *Map) Type() ebpf.MapType { return m.typ }

// KeySize and ValueSize are the sizes from the spec.
func (m *Map) KeySize() uint32   { return m.keySize }
func (m *Map) ValueSize() uint32 { return m.valueSize }

// CPUs is the number of copies of each value (1 unless per-CPU).
func (m *Map) CPUs() int { return int(m.ncpu) }

func (m *Map) lru() bool { return m.typ == ebpf.LRUHash || m.typ == ebpf.LRUCPUHash }

func (m *Map) perCPU() bool {
	return m.typ == ebpf.PerCPUHash || m.typ == ebpf.PerCPUArray || m.typ == ebpf.LRUCPUHash
}

func (m *Map) array() bool { return m.typ == ebpf.Array || m.typ == ebpf.PerCPUArray }

func (m *Map) stride() uint64 { return uint64(m.valueSize+7) &^ 7 }

// slot is the value memory at a slot number from a map-value address,
// nil if there is no such slot.
func (m *Map) slot(slot uint64) []byte {
	if slot >= m.slots {
		return nil
	}
	start := slot * m.stride()
	return m.data[start : start+uint64(m.valueSize) : start+uint64(m.valueSize)]
}

// slotBytes is the value of entry e for cpu.
func (m *Map) slotBytes(e uint32, cpu uint32) []byte {
	start := (uint64(e)*uint64(m.ncpu) + uint64(cpu)) * m.stride()
	return m.data[start : start+uint64(m.valueSize)]
}

// find returns the entry holding key, or noEntry. Callers hold mu.
func (m *Map) find(key []byte) uint32 {
	if m.array() {
		i := binary.LittleEndian.Uint32(key)
		if i >= m.maxEntries {
			return noEntry
		}
		return i
	}
	return m.index.find(m, key)
}

// Errors with the kernel's errno, which is what a program sees.
var (
	errNoEnt = errors.New("no such key")         // ENOENT
	errExist = errors.New("key exists")          // EEXIST
	errFull  = errors.New("map is full")         // E2BIG
	errInval = errors.New("invalid argument")    // EINVAL
	errNoSpc = errors.New("ring buffer is full") // EAGAIN, as ringbuf_output returns it
)

func errno(err error) uint64 {
	switch err {
	case nil:
		return 0
	case errNoEnt:
		return negErrno(2)
	case errExist:
		return negErrno(17)
	case errFull:
		return negErrno(7)
	case errNoSpc:
		return negErrno(11)
	}
	return negErrno(22)
}

func negErrno(e int64) uint64 { return uint64(-e) }

// Update flags, as in the kernel.
const (
	UpdateAny     = 0
	UpdateNoExist = 1
	UpdateExist   = 2
)

// lookupEntry finds key for a program, refreshing LRU order.
func (m *Map) lookupEntry(key []byte) uint32 {
	if m.array() {
		return m.find(key)
	}
	if m.lru() {
		m.mu.Lock()
		e := m.find(key)
		if e != noEntry {
			m.lruTouch(e)
		}
		m.mu.Unlock()
		return e
	}
	m.mu.RLock()
	e := m.find(key)
	m.mu.RUnlock()
	return e
}

// update stores value for key: for every CPU when cpu is allCPUs (the
// syscall's per-CPU layout, one stride per CPU), else for one CPU.
func (m *Map) update(key, value []byte, flags uint64, cpu uint32) error {
	if flags > UpdateExist {
		return errInval
	}
	if m.array() {
		e := m.find(key)
		if e == noEntry {
			return errFull
		}
		if flags == UpdateNoExist {
			return errExist
		}
		m.store(e, value, cpu)
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.find(key)
	switch {
	case e != noEntry && flags == UpdateNoExist:
		return errExist
	case e == noEntry && flags == UpdateExist:
		return errNoEnt
	case e == noEntry:
		if len(m.free) == 0 {
			if !m.lru() {
				return errFull
			}
			m.evict()
		}
		e = m.free[len(m.free)-1]
		m.free = m.free[:len(m.free)-1]
		k := m.keys[uint64(e)*uint64(m.keySize):][:m.keySize]
		copy(k, key)
		m.index.insert(m, k, e)
		m.used[e] = true
		for c := uint32(0); c < m.ncpu; c++ {
			clear(m.slotBytes(e, c))
		}
		if m.lru() {
			m.lruPush(e)
		}
	default:
		if m.lru() {
			m.lruTouch(e)
		}
	}
	m.store(e, value, cpu)
	return nil
}

const allCPUs = ^uint32(0)

func (m *Map) store(e uint32, value []byte, cpu uint32) {
	if cpu != allCPUs {
		copy(m.slotBytes(e, cpu), value)
		return
	}
	for c := uint32(0); c < m.ncpu; c++ {
		copy(m.slotBytes(e, c), value[uint64(c)*m.stride():])
	}
}

func (m *Map) delete(key []byte) error {
	if m.array() {
		return errInval
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.find(key)
	if e == noEntry {
		return errNoEnt
	}
	m.remove(e)
	return nil
}

func (m *Map) remove(e uint32) {
	k := m.keys[uint64(e)*uint64(m.keySize):][:m.keySize]
	m.index.remove(m, k)
	m.used[e] = false
	m.free = append(m.free, e)
	if m.lru() {
		m.lruUnlink(e)
	}
}

func (m *Map) evict() {
	// The tail of the circular list is the least recently used.
	m.remove(m.lruPrv[m.lruHd])
}

func (m *Map) lruUnlink(e uint32) {
	if m.lruNxt[e] == e {
		m.lruHd = noEntry
		return
	}
	p, n := m.lruPrv[e], m.lruNxt[e]
	m.lruNxt[p], m.lruPrv[n] = n, p
	if m.lruHd == e {
		m.lruHd = n
	}
}

func (m *Map) lruPush(e uint32) {
	if m.lruHd == noEntry {
		m.lruPrv[e], m.lruNxt[e] = e, e
	} else {
		h := m.lruHd
		t := m.lruPrv[h]
		m.lruPrv[e], m.lruNxt[e] = t, h
		m.lruNxt[t], m.lruPrv[h] = e, e
	}
	m.lruHd = e
}

func (m *Map) lruTouch(e uint32) {
	if m.lruHd == e {
		return
	}
	m.lruUnlink(e)
	m.lruPush(e)
}

func (m *Map) checkKV(key, value []byte, withValue bool) error {
	if m.typ == ebpf.RingBuf {
		return fmt.Errorf("interp: map %q: a ring buffer has no keys", m.name)
	}
	if uint32(len(key)) != m.keySize {
		return fmt.Errorf("interp: map %q: key is %d bytes, want %d", m.name, len(key), m.keySize)
	}
	if withValue && uint64(len(value)) != m.userValueSize() {
		return fmt.Errorf("interp: map %q: value is %d bytes, want %d", m.name, len(value), m.userValueSize())
	}
	return nil
}

// userValueSize is the size of a value as the owner sees it: per-CPU
// maps give every CPU's copy at an 8-byte stride, as the bpf syscall does.
func (m *Map) userValueSize() uint64 {
	if m.perCPU() {
		return uint64(m.ncpu) * m.stride()
	}
	return uint64(m.valueSize)
}

func (m *Map) wrap(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("interp: map %q: %w", m.name, err)
}

// Lookup copies out the value for key (every CPU's copy for per-CPU
// maps, 8-byte aligned one after another).
func (m *Map) Lookup(key []byte) ([]byte, bool, error) {
	if err := m.checkKV(key, nil, false); err != nil {
		return nil, false, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	e := m.find(key)
	if e == noEntry || !m.array() && !m.used[e] {
		return nil, false, nil
	}
	return m.copyOut(e), true, nil
}

func (m *Map) copyOut(e uint32) []byte {
	out := make([]byte, m.userValueSize())
	m.copyInto(out, e)
	return out
}

// copyInto copies entry e's value (userValueSize bytes) into out.
func (m *Map) copyInto(out []byte, e uint32) {
	if !m.perCPU() {
		copy(out, m.slotBytes(e, 0))
		return
	}
	for c := uint32(0); c < m.ncpu; c++ {
		copy(out[uint64(c)*m.stride():], m.slotBytes(e, c))
	}
}

// Update sets key to value with the kernel's flags (UpdateAny,
// UpdateNoExist, UpdateExist).
func (m *Map) Update(key, value []byte, flags uint64) error {
	if err := m.checkKV(key, value, true); err != nil {
		return err
	}
	cpu := uint32(0)
	if m.perCPU() {
		cpu = allCPUs
	}
	return m.wrap(m.update(key, value, flags, cpu))
}

// Delete removes key.
func (m *Map) Delete(key []byte) error {
	if err := m.checkKV(key, nil, false); err != nil {
		return err
	}
	return m.wrap(m.delete(key))
}

// Iterate calls fn with each key and value (copies) until it returns
// false; hash maps in no particular order, arrays by index.
func (m *Map) Iterate(fn func(key, value []byte) bool) {
	if m.typ == ebpf.RingBuf {
		return
	}
	// Every key and value is copied, under the lock, into one buffer: a
	// consistent copy, at the cost of the map's live bytes, and not an
	// allocation per key (a million keys are printed through here).
	m.mu.RLock()
	n := m.maxEntries
	if !m.array() {
		n = m.index.n
	}
	ks, vs := uint64(m.keySize), m.userValueSize()
	buf := make([]byte, uint64(n)*(ks+vs))
	off, i := uint64(0), uint32(0)
	for e := uint32(0); e < m.maxEntries && i < n; e++ {
		if m.array() {
			binary.LittleEndian.PutUint32(buf[off:], e)
		} else if m.used[e] {
			copy(buf[off:], m.keys[uint64(e)*ks:][:ks])
		} else {
			continue
		}
		m.copyInto(buf[off+ks:off+ks+vs], e)
		off += ks + vs
		i++
	}
	m.mu.RUnlock()
	// fn runs unlocked so it may update the map.
	for off := uint64(0); off < uint64(len(buf)); off += ks + vs {
		if !fn(buf[off:off+ks:off+ks], buf[off+ks:off+ks+vs:off+ks+vs]) {
			return
		}
	}
}

// Len is the number of keys present (max entries for arrays).
func (m *Map) Len() int {
	if m.array() {
		return int(m.maxEntries)
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	return int(m.index.n)
}

// Clear removes every key of a hash map and zeroes an array.
func (m *Map) Clear() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.array() {
		clear(m.data)
		return
	}
	for e := uint32(0); e < m.maxEntries; e++ {
		if m.used[e] {
			m.remove(e)
		}
	}
}
