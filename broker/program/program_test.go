package program

import (
	"encoding/binary"
	"fmt"
	"reflect"
	"testing"
)

func u64s(vs ...uint64) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint64(b, v)
	}
	return b
}

var (
	s64 = Type{Kind: Int, Size: 8, Signed: true}
	u64 = Type{Kind: Int, Size: 8}
)

func TestDecode(t *testing.T) {
	tests := []struct {
		typ  Type
		b    []byte
		want string
	}{
		{Type{Kind: Int, Size: 1, Signed: true}, []byte{0xff}, "-1"},
		{Type{Kind: Int, Size: 1}, []byte{0xff}, "255"},
		{Type{Kind: Int, Size: 2, Signed: true}, []byte{0xfe, 0xff}, "-2"},
		{Type{Kind: Int, Size: 4, Signed: true}, []byte{0x9c, 0xff, 0xff, 0xff}, "-100"},
		{Type{Kind: Int, Size: 4}, []byte{0x9c, 0xff, 0xff, 0xff}, "4294967196"},
		{s64, u64s(^uint64(0)), "-1"},
		{u64, u64s(^uint64(0)), "18446744073709551615"},
		{Type{Kind: String, Size: 8}, []byte("abc\x00\x00\x00\x00\x00"), "abc"},
		{Type{Kind: String, Size: 4}, []byte("abcd"), "abcd"}, // full, no NUL
		{Type{Kind: Tuple, Size: 16, Elems: []Type{s64, {Kind: String, Size: 8}}, Offs: []int{0, 8}},
			append(u64s(uint64(1<<64-3)), "xy\x00\x00\x00\x00\x00\x00"...), "(-3, xy)"},
	}
	for _, tt := range tests {
		if got := Decode(tt.typ, tt.b).String(); got != tt.want {
			t.Errorf("Decode(%+v, %x) = %q, want %q", tt.typ, tt.b, got, tt.want)
		}
	}
}

// TestBuildSnapshot: per-CPU values reduce to what bpftrace prints, and
// hist buckets group by subscript.
func TestBuildSnapshot(t *testing.T) {
	key := func(v int64) []byte { return u64s(uint64(v)) }
	tests := []struct {
		name string
		m    *Map
		raws []RawEntry
		want []MapEntry
	}{
		{
			name: "count sums CPUs, entries ordered by key",
			m:    &Map{Name: "@", Keys: []Type{s64}, Value: u64, Agg: Count},
			raws: []RawEntry{
				{Key: key(2), Vals: [][]byte{u64s(1), u64s(2)}},
				{Key: key(-1), Vals: [][]byte{u64s(0), u64s(5)}},
			},
			want: []MapEntry{
				{Keys: []Value{{Type: s64, Int: uint64(1<<64 - 1)}}, Value: Value{Type: u64, Int: 5}},
				{Keys: []Value{{Type: s64, Int: 2}}, Value: Value{Type: u64, Int: 3}},
			},
		},
		{
			name: "min ignores CPUs that never set a value",
			m:    &Map{Name: "@m", Value: s64, Agg: Min},
			raws: []RawEntry{{Key: key(0), Vals: [][]byte{u64s(0, 0), u64s(uint64(1<<64-7), 1), u64s(3, 1)}}},
			want: []MapEntry{{Keys: []Value{}, Value: Value{Type: s64, Int: uint64(1<<64 - 7)}}},
		},
		{
			name: "max",
			m:    &Map{Name: "@m", Value: u64, Agg: Max},
			raws: []RawEntry{{Key: key(0), Vals: [][]byte{u64s(9, 1), u64s(0, 0), u64s(4, 1)}}},
			want: []MapEntry{{Keys: []Value{}, Value: Value{Type: u64, Int: 9}}},
		},
		{
			name: "avg of signed values divides signed",
			m:    &Map{Name: "@a", Value: s64, Agg: Avg},
			raws: []RawEntry{{Key: key(0), Vals: [][]byte{u64s(uint64(1<<64-10), 2), u64s(uint64(1<<64-5), 1)}}},
			want: []MapEntry{{Keys: []Value{}, Value: Value{Type: s64, Int: uint64(1<<64 - 5)}, Count: 3, Total: -15}},
		},
		{
			name: "hist groups buckets by subscript",
			m:    &Map{Name: "@h", Keys: []Type{u64}, Value: u64, Agg: Hist},
			raws: []RawEntry{
				{Key: append(key(7), key(3)...), Vals: [][]byte{u64s(1), u64s(1)}},
				{Key: append(key(7), key(1)...), Vals: [][]byte{u64s(4), u64s(0)}},
				{Key: append(key(1), key(0)...), Vals: [][]byte{u64s(1), u64s(0)}},
			},
			want: []MapEntry{
				{Keys: []Value{{Type: u64, Int: 1}}, Buckets: []uint64{1}},
				{Keys: []Value{{Type: u64, Int: 7}}, Buckets: []uint64{0, 4, 0, 2}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := BuildSnapshot(tt.m, tt.raws).Decoded()
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// TestAttachOrder: kprobes, uprobes and kfuncs are attached block by
// block last to first (the kernel runs them last attached first), a
// wildcard's probes first to last, everything else in order.
func TestAttachOrder(t *testing.T) {
	probes := []*Probe{
		{Kind: Tracepoint, Block: 0}, {Kind: Uprobe, Block: 1}, {Kind: Uprobe, Block: 1},
		{Kind: Uretprobe, Block: 2}, {Kind: Kretprobe, Block: 3}, {Kind: Kprobe, Block: 4}, {Kind: Interval, Block: 5},
	}
	got := fmt.Sprint(AttachOrder(probes))
	if want := "[0 4 6 5 3 1 2]"; got != want {
		t.Errorf("order %s, want %s", got, want)
	}
}
