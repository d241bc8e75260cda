package interp

import (
	"bytes"
	"hash/maphash"
	"math/bits"
)

// index finds a hash map's entries by key: open addressing with linear
// probing over entry numbers, the keys themselves kept in Map.keys.
// Sized once for the map's max entries (at most half full), as the
// map's values are, it costs 8 bytes per entry the map may hold and
// nothing per insert: a Go map[string]uint32 cost a string and its
// share of buckets per key, about 100 bytes, and work for the garbage
// collector at a million keys.
type index struct {
	slots []uint32 // entry+1; 0 is empty
	mask  uint64
	n     uint32 // keys present
	seed  maphash.Seed
}

func (x *index) init(maxEntries uint32) {
	size := uint64(1) << bits.Len64(2*uint64(maxEntries)-1)
	x.slots = make([]uint32, size)
	x.mask = size - 1
	x.seed = maphash.MakeSeed()
}

func (x *index) home(key []byte) uint64 { return maphash.Bytes(x.seed, key) & x.mask }

func (m *Map) keyOf(e uint32) []byte {
	return m.keys[uint64(e)*uint64(m.keySize):][:m.keySize]
}

// find is the entry holding key, or noEntry.
func (x *index) find(m *Map, key []byte) uint32 {
	for i := x.home(key); ; i = (i + 1) & x.mask {
		s := x.slots[i]
		if s == 0 {
			return noEntry
		}
		if bytes.Equal(m.keyOf(s-1), key) {
			return s - 1
		}
	}
}

// insert adds entry e, whose key (not present) is key.
func (x *index) insert(m *Map, key []byte, e uint32) {
	i := x.home(key)
	for x.slots[i] != 0 {
		i = (i + 1) & x.mask
	}
	x.slots[i] = e + 1
	x.n++
}

// remove takes out key's slot, present, and moves back the entries
// after it that probed past it, so that no lookup stops short.
func (x *index) remove(m *Map, key []byte) {
	i := x.home(key)
	for !bytes.Equal(m.keyOf(x.slots[i]-1), key) {
		i = (i + 1) & x.mask
	}
	for j := (i + 1) & x.mask; x.slots[j] != 0; j = (j + 1) & x.mask {
		h := x.home(m.keyOf(x.slots[j] - 1))
		// The entry at j may move to the hole at i unless its home lies
		// cyclically in (i, j].
		if (j-h)&x.mask >= (j-i)&x.mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = 0
	x.n--
}
