package output

import (
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf/btf"
)

var (
	u32   = &btf.Int{Name: "__u32", Size: 4}
	s32   = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	u64   = &btf.Int{Name: "__u64", Size: 8}
	char  = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	bool8 = &btf.Int{Name: "_Bool", Size: 1, Encoding: btf.Bool}
	comm  = &btf.Array{Type: char, Index: u32, Nelems: 8}
	event = &btf.Struct{Name: "event", Size: 16, Members: []btf.Member{
		{Name: "pid", Type: u32},
		{Name: "ret", Type: s32, Offset: 32},
		{Name: "comm", Type: comm, Offset: 64},
	}}
	stateEnum = &btf.Enum{Name: "state", Size: 4, Values: []btf.EnumValue{{Name: "RUNNING", Value: 0}, {Name: "SLEEPING", Value: 1}}}
	flags     = &btf.Struct{Name: "flags", Size: 4, Members: []btf.Member{
		{Name: "a", Type: u32, BitfieldSize: 3},
		{Name: "b", Type: u32, Offset: 3, BitfieldSize: 5},
	}}
	pair = &btf.Array{Type: u64, Index: u32, Nelems: 2}
)

func le32(vs ...uint32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, v)
	}
	return b
}

func TestDecode(t *testing.T) {
	ev := append(le32(42, uint32(0xffffffff)), "bash\x00xyz"...)
	for _, tc := range []struct {
		name      string
		typ       btf.Type
		data      []byte
		text, key string
		json      string
	}{
		{"struct", event, ev, `{ .pid = 42, .ret = -1, .comm = "bash" }`, `42, -1, bash`, `{"pid": 42, "ret": -1, "comm": "bash"}`},
		{"typedef", &btf.Typedef{Name: "ev_t", Type: &btf.Const{Type: event}}, ev, `{ .pid = 42, .ret = -1, .comm = "bash" }`, `42, -1, bash`, `{"pid": 42, "ret": -1, "comm": "bash"}`},
		{"char array", comm, []byte("12345678"), "12345678", "12345678", `"12345678"`},
		{"enum", stateEnum, le32(1), "SLEEPING", "SLEEPING", `"SLEEPING"`},
		{"enum unnamed value", stateEnum, le32(7), "7", "7", `7`},
		{"bitfields", flags, []byte{0b10101_011, 0, 0, 0}, "{ .a = 3, .b = 21 }", "3, 21", `{"a": 3, "b": 21}`},
		{"bool", bool8, []byte{1}, "true", "true", "true"},
		{"array", pair, binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint64(nil, 1), 2), "[1, 2]", "[1, 2]", "[1, 2]"},
		{"pointer", &btf.Pointer{Target: u32}, binary.LittleEndian.AppendUint64(nil, 0xffff8000), "0xffff8000", "0xffff8000", `"0xffff8000"`},
		{"no type", nil, []byte{0xde, 0xad}, "dead", "dead", `"dead"`},
		{"short data", event, []byte{1, 2}, "0102", "0102", `"0102"`},
		{"string with quote", &btf.Struct{Size: 8, Members: []btf.Member{{Name: "s", Type: comm}}}, []byte("a\"b\x00\x00\x00\x00\x00"), `{ .s = "a\"b" }`, `a"b`, `{"s": "a\"b"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := Decode(tc.typ, tc.data)
			if got := string(AppendText(nil, v)); got != tc.text {
				t.Errorf("text %s, want %s", got, tc.text)
			}
			if got := string(AppendKeyText(nil, v)); got != tc.key {
				t.Errorf("key %s, want %s", got, tc.key)
			}
			if got := string(AppendJSON(nil, v)); got != tc.json {
				t.Errorf("json %s, want %s", got, tc.json)
			}
		})
	}
}

func TestSumPerCPU(t *testing.T) {
	two := &btf.Struct{Size: 12, Members: []btf.Member{{Name: "n", Type: u64}, {Name: "m", Type: u32, Offset: 64}}}
	cpu := func(n uint64, m uint32) []byte {
		return append(binary.LittleEndian.AppendUint64(nil, n), le32(m)...)
	}
	sum, ok := SumPerCPU(two, [][]byte{cpu(1, 10), cpu(2, 20), cpu(3, 30)})
	if !ok || string(AppendText(nil, Decode(two, sum))) != "{ .n = 6, .m = 60 }" {
		t.Errorf("sum %x, %v", sum, ok)
	}
	if _, ok := SumPerCPU(event, [][]byte{make([]byte, 16)}); ok {
		t.Error("a struct with a char array was summed")
	}
}

// FuzzDecode: any bytes, as any of the test types, decode and print
// without a panic.
func FuzzDecode(f *testing.F) {
	types := []btf.Type{event, comm, stateEnum, flags, pair, bool8, nil}
	f.Add(uint8(0), []byte("0123456789abcdef"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		v := Decode(types[int(which)%len(types)], data)
		AppendText(nil, v)
		AppendKeyText(nil, v)
		AppendJSON(nil, v)
	})
}
