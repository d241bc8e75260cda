package interp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

func k32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func v64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// TestMapSemantics: the kernel's answers for each type, flag and limit.
func TestMapSemantics(t *testing.T) {
	h := mustMap(t, &ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 2})
	steps := []struct {
		name string
		err  error
		do   func() error
	}{
		{"insert", nil, func() error { return h.Update(k32(1), v64(10), UpdateAny) }},
		{"noexist on present", errExist, func() error { return h.Update(k32(1), v64(11), UpdateNoExist) }},
		{"exist on absent", errNoEnt, func() error { return h.Update(k32(2), v64(20), UpdateExist) }},
		{"second", nil, func() error { return h.Update(k32(2), v64(20), UpdateNoExist) }},
		{"full", errFull, func() error { return h.Update(k32(3), v64(30), UpdateAny) }},
		{"replace when full", nil, func() error { return h.Update(k32(2), v64(21), UpdateExist) }},
		{"bad flags", errInval, func() error { return h.Update(k32(2), v64(21), 7) }},
		{"delete", nil, func() error { return h.Delete(k32(1)) }},
		{"delete absent", errNoEnt, func() error { return h.Delete(k32(1)) }},
		{"room again", nil, func() error { return h.Update(k32(3), v64(30), UpdateAny) }},
	}
	for _, s := range steps {
		if err := s.do(); !errors.Is(err, s.err) {
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
		}
	}
	if got := entries(h); got != "2=21 3=30" {
		t.Fatalf("hash holds %s", got)
	}

	a := mustMap(t, &ebpf.MapSpec{Name: "a", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err := a.Update(k32(3), v64(1), UpdateAny); !errors.Is(err, errFull) {
		t.Fatalf("array index out of range: %v", err)
	}
	if err := a.Update(k32(0), v64(1), UpdateNoExist); !errors.Is(err, errExist) {
		t.Fatalf("array noexist: %v", err)
	}
	if err := a.Delete(k32(0)); !errors.Is(err, errInval) {
		t.Fatalf("array delete: %v", err)
	}
	a.Update(k32(2), v64(5), UpdateAny)
	if got := entries(a); got != "0=0 1=0 2=5" {
		t.Fatalf("array holds %s", got)
	}

	if err := h.Update([]byte{1}, v64(1), UpdateAny); err == nil || !strings.Contains(err.Error(), "key is 1 bytes, want 4") {
		t.Fatalf("short key: %v", err)
	}
	for _, spec := range []*ebpf.MapSpec{
		{Name: "z", Type: ebpf.Hash, KeySize: 4, ValueSize: 8},
		{Name: "z", Type: ebpf.Hash, KeySize: 0, ValueSize: 8, MaxEntries: 1},
		{Name: "z", Type: ebpf.Array, KeySize: 8, ValueSize: 8, MaxEntries: 1},
		{Name: "z", Type: ebpf.RingBuf, MaxEntries: 4095},
		{Name: "z", Type: ebpf.StackTrace, KeySize: 4, ValueSize: 8, MaxEntries: 1},
		{Name: "z", Type: ebpf.Hash, KeySize: 4, ValueSize: 1 << 20, MaxEntries: 1 << 20},
	} {
		if _, err := NewMap(spec, MapOptions{}); err == nil {
			t.Errorf("NewMap(%+v) succeeded", spec)
		}
	}
}

// entries renders a map with 4-byte keys and 8-byte values as "k=v ...".
func entries(m *Map) string {
	var out []string
	m.Iterate(func(k, v []byte) bool {
		out = append(out, itoa(binary.LittleEndian.Uint32(k))+"="+itoa(uint32(binary.LittleEndian.Uint64(v))))
		return true
	})
	sort.Strings(out)
	return strings.Join(out, " ")
}

func itoa(v uint32) string {
	if v == 0 {
		return "0"
	}
	var b []byte
	for ; v > 0; v /= 10 {
		b = append([]byte{byte('0' + v%10)}, b...)
	}
	return string(b)
}

// TestLRU: a full LRU map evicts the least recently used key, and a
// program's lookup counts as a use.
func TestLRU(t *testing.T) {
	m := mustMap(t, &ebpf.MapSpec{Name: "lru", Type: ebpf.LRUHash, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	for k := uint32(1); k <= 3; k++ {
		m.Update(k32(k), v64(uint64(k)), UpdateAny)
	}
	// A program touches key 1, so 2 is now the oldest.
	p := load(t, append(keyOnStack("lru", 1), asm.FnMapLookupElem.Call(), asm.Mov.Imm(asm.R0, 0), asm.Return()), map[string]*Map{"lru": m}, Options{})
	if _, err := p.Run(nil, nil); err != nil {
		t.Fatal(err)
	}
	if err := m.Update(k32(4), v64(4), UpdateAny); err != nil {
		t.Fatal(err)
	}
	if got := entries(m); got != "1=1 3=3 4=4" {
		t.Fatalf("after eviction: %s", got)
	}
	m.Update(k32(5), v64(5), UpdateAny) // evicts 3
	m.Delete(k32(1))
	m.Update(k32(6), v64(6), UpdateAny) // free slot, no eviction
	if got := entries(m); got != "4=4 5=5 6=6" {
		t.Fatalf("after delete: %s", got)
	}
}

// TestPerCPU: a program sees its CPU's copy; the owner sees all of them.
func TestPerCPU(t *testing.T) {
	for _, typ := range []ebpf.MapType{ebpf.PerCPUArray, ebpf.PerCPUHash, ebpf.LRUCPUHash} {
		t.Run(typ.String(), func(t *testing.T) {
			m := mustMap(t, &ebpf.MapSpec{Name: "pc", Type: typ, KeySize: 4, ValueSize: 4, MaxEntries: 4})
			if typ != ebpf.PerCPUArray {
				if err := m.Update(k32(0), make([]byte, 4*8), UpdateAny); err != nil {
					t.Fatal(err)
				}
			}
			// *value += cpu + 1, through the pointer lookup returns
			insns := append(keyOnStack("pc", 0),
				asm.FnMapLookupElem.Call(),
				asm.JEq.Imm(asm.R0, 0, "out"),
				asm.Mov.Reg(asm.R6, asm.R0),
				asm.FnGetSmpProcessorId.Call(),
				asm.Add.Imm(asm.R0, 1),
				asm.LoadMem(asm.R1, asm.R6, 0, asm.Word),
				asm.Add.Reg(asm.R1, asm.R0),
				asm.StoreMem(asm.R6, 0, asm.R1, asm.Word),
				asm.Mov.Imm(asm.R0, 0).WithSymbol("out"),
				asm.Return(),
			)
			p := load(t, insns, map[string]*Map{"pc": m}, Options{})
			for cpu := uint32(0); cpu < 4; cpu++ {
				for i := uint32(0); i <= cpu; i++ { // cpu c runs c+1 times
					if _, err := p.Run(&Env{CPU: cpu}, nil); err != nil {
						t.Fatal(err)
					}
				}
			}
			v, ok, err := m.Lookup(k32(0))
			if err != nil || !ok || len(v) != 4*8 {
				t.Fatalf("lookup: %d bytes, %v %v", len(v), ok, err)
			}
			for cpu := uint32(0); cpu < 4; cpu++ {
				if got := binary.LittleEndian.Uint32(v[cpu*8:]); got != (cpu+1)*(cpu+1) {
					t.Errorf("cpu %d copy = %d, want %d", cpu, got, (cpu+1)*(cpu+1))
				}
			}
			if _, err := p.Run(&Env{CPU: 4}, nil); err == nil || !strings.Contains(err.Error(), "cpu 4 has no copy") {
				t.Fatalf("cpu out of range: %v", err)
			}
		})
	}
}

// TestIndexAgainstGoMap: a hash map's index (open addressing, deletions
// that move entries back) agrees with a Go map through random inserts,
// updates and deletes, full maps and keys that share home slots, and
// Iterate sees each key once with its value.
func TestIndexAgainstGoMap(t *testing.T) {
	// Keys of up to 8 bytes live in their slots, longer ones in the map:
	// both kinds, and the largest that fits a slot. The counter sits in
	// the key's last two bytes, so that all the rest is equal.
	for _, ks := range []int{2, 8, 12} {
		t.Run(fmt.Sprintf("key=%dB", ks), func(t *testing.T) { testIndexAgainstGoMap(t, ks) })
	}
}

func testIndexAgainstGoMap(t *testing.T, ks int) {
	for _, tt := range []struct {
		max, keys int
	}{{1, 3}, {7, 12}, {64, 200}, {1000, 1500}} {
		m, err := NewMap(&ebpf.MapSpec{Type: ebpf.Hash, KeySize: uint32(ks), ValueSize: 8, MaxEntries: uint32(tt.max)}, MapOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rnd := rand.New(rand.NewSource(int64(tt.max)))
		want := map[uint16]uint64{}
		key := func(k uint16) []byte {
			b := make([]byte, ks)
			binary.LittleEndian.PutUint16(b[ks-2:], k)
			return b
		}
		for op := range 20 * tt.keys {
			k := uint16(rnd.Intn(tt.keys))
			switch rnd.Intn(3) {
			case 0, 1:
				v := uint64(op)
				err := m.Update(key(k), binary.LittleEndian.AppendUint64(nil, v), UpdateAny)
				if _, ok := want[k]; !ok && len(want) == tt.max {
					if err == nil {
						t.Fatalf("max %d: update of a new key into a full map succeeded", tt.max)
					}
					continue
				}
				if err != nil {
					t.Fatalf("max %d: update %d: %v", tt.max, k, err)
				}
				want[k] = v
			case 2:
				err := m.Delete(key(k))
				if _, ok := want[k]; ok != (err == nil) {
					t.Fatalf("max %d: delete %d: %v, present %v", tt.max, k, err, ok)
				}
				delete(want, k)
			}
			if m.Len() != len(want) {
				t.Fatalf("max %d: Len %d, want %d", tt.max, m.Len(), len(want))
			}
			probe := uint16(rnd.Intn(tt.keys))
			v, ok, err := m.Lookup(key(probe))
			if w, present := want[probe]; err != nil || ok != present || (ok && binary.LittleEndian.Uint64(v) != w) {
				t.Fatalf("max %d: lookup %d = %x %v %v, want %d %v", tt.max, probe, v, ok, err, w, present)
			}
		}
		seen := map[uint16]uint64{}
		m.Iterate(func(k, v []byte) bool {
			kk := binary.LittleEndian.Uint16(k[ks-2:])
			if _, dup := seen[kk]; dup {
				t.Fatalf("max %d: Iterate gave %d twice", tt.max, kk)
			}
			seen[kk] = binary.LittleEndian.Uint64(v)
			return true
		})
		if !reflect.DeepEqual(seen, want) {
			t.Fatalf("max %d: Iterate saw %v, want %v", tt.max, seen, want)
		}
	}
}
