package program_test

import (
	"encoding/binary"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
)

// TestRecordValue: a struct stored whole decodes to its members, as
// bpftrace prints it as a map's value ({ .a = 1, .b = x }) and as a key
// ({.a=1,.b=x}); arrays print as [1,2]; a bitfield is its bits, unsigned.
func TestRecordValue(t *testing.T) {
	inner := program.Type{Kind: program.Record, Size: 8, Names: []string{"weight", "flags"}, Offs: []int{0, 4},
		Elems: []program.Type{{Kind: program.Int, Size: 4}, {Kind: program.Int, Size: 4, BitOff: 3, Bits: 5}}}
	arr := program.Type{Kind: program.Array, Size: 8, Offs: []int{0, 2, 4, 6},
		Elems: []program.Type{{Kind: program.Int, Size: 2, Signed: true}, {Kind: program.Int, Size: 2, Signed: true}, {Kind: program.Int, Size: 2, Signed: true}, {Kind: program.Int, Size: 2, Signed: true}}}
	rec := program.Type{Kind: program.Record, Size: 32, Names: []string{"load", "comm", "v"}, Offs: []int{0, 8, 24},
		Elems: []program.Type{inner, {Kind: program.String, Size: 16}, arr}}
	b := make([]byte, 32)
	le := binary.LittleEndian
	le.PutUint32(b[0:], 1024)
	le.PutUint32(b[4:], 0xffffff00|0b10110_101) // bits 3..7: 22
	copy(b[8:], "pwd")
	for i, v := range []int16{3, -1, 0, 7} {
		le.PutUint16(b[24+2*i:], uint16(v))
	}
	v := program.Decode(rec, b)
	if got, want := v.ValueString(), "{ .load = { .weight = 1024, .flags = 22 }, .comm = pwd, .v = [3,-1,0,7] }"; got != want {
		t.Errorf("value %q, want %q", got, want)
	}
	if got, want := v.String(), "{.load={.weight=1024,.flags=22},.comm=pwd,.v=[3,-1,0,7]}"; got != want {
		t.Errorf("key %q, want %q", got, want)
	}
	w := program.Decode(rec, b)
	w.Elems[2].Elems[0].Int = 4
	if program.Compare(v, w) >= 0 || program.Compare(w, v) <= 0 || program.Compare(v, v) != 0 {
		t.Error("records do not order member by member")
	}
}
