package recording

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

// testTypes is a task with an embedded struct, a bitfield, a char array,
// a pointer to itself and one to a struct the script did not read.
func testTypes() []btf.Type {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	char := &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	mm := &btf.Struct{Name: "mm_struct", Size: 8, Members: []btf.Member{{Name: "users", Type: u32}}}
	se := &btf.Struct{Name: "sched_entity", Size: 8, Members: []btf.Member{{Name: "on_rq", Type: u32, Offset: 32}}}
	task := &btf.Struct{Name: "task_struct", Size: 64}
	task.Members = []btf.Member{
		{Name: "pid", Type: &btf.Typedef{Name: "pid_t", Type: &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}}},
		{Name: "flag", Type: u32, Offset: 32, BitfieldSize: 3},
		{Name: "comm", Type: &btf.Array{Index: u32, Type: char, Nelems: 16}, Offset: 64},
		{Name: "se", Type: se, Offset: 192},
		{Name: "real_parent", Type: &btf.Pointer{Target: task}, Offset: 256},
		{Name: "mm", Type: &btf.Pointer{Target: mm}, Offset: 320},
		{Name: "fn", Type: &btf.Pointer{Target: &btf.FuncProto{Return: u32}}, Offset: 384},
	}
	return []btf.Type{task}
}

// TestTypes: a recording holds the structs its script read, each with
// its members at their offsets, and pointers to other structs as forward
// declarations; a struct it does not hold is not found.
func TestTypes(t *testing.T) {
	enc, err := EncodeTypes(testTypes())
	if err != nil {
		t.Fatal(err)
	}
	h := &Header{Types: enc}
	typ, err := h.StructTypes().Type("struct", "task_struct")
	if err != nil {
		t.Fatal(err)
	}
	task := typ.(*btf.Struct)
	want := map[string]btf.Bits{"pid": 0, "flag": 32, "comm": 64, "se": 192, "real_parent": 256, "mm": 320, "fn": 384}
	if len(task.Members) != len(want) || task.Size != 64 {
		t.Fatalf("task_struct of %d bytes, members %v", task.Size, task.Members)
	}
	for _, m := range task.Members {
		if off, ok := want[m.Name]; !ok || off != m.Offset {
			t.Errorf("member %s at %d, want %d", m.Name, m.Offset, off)
		}
		switch m.Name {
		case "flag":
			if m.BitfieldSize != 3 {
				t.Errorf("flag: a bitfield of %d bits, want 3", m.BitfieldSize)
			}
		case "se":
			if se, ok := m.Type.(*btf.Struct); !ok || se.Members[0].Name != "on_rq" || se.Members[0].Offset != 32 {
				t.Errorf("se: %v, want the embedded struct whole", m.Type)
			}
		case "real_parent", "mm":
			if fwd, ok := m.Type.(*btf.Pointer).Target.(*btf.Fwd); !ok || fwd.Kind != btf.FwdStruct {
				t.Errorf("%s: %v, want a pointer to a forward declaration", m.Name, m.Type)
			}
		}
	}
	if _, err := h.StructTypes().Type("struct", "mm_struct"); !errors.Is(err, btf.ErrNotFound) {
		t.Errorf("mm_struct, which the script did not read: %v, want not found", err)
	}
	if _, err := h.StructTypes().Type("union", "task_struct"); !errors.Is(err, btf.ErrNotFound) {
		t.Errorf("union task_struct: %v, want not found", err)
	}
	if (&Header{}).StructTypes() != nil {
		t.Error("a header without types answers for types")
	}
}

// FuzzTypes: a recording's types are any bytes its file holds. They
// parse or fail; a lookup never panics.
func FuzzTypes(f *testing.F) {
	enc, err := EncodeTypes(testTypes())
	if err != nil {
		f.Fatal(err)
	}
	raw, _ := base64.StdEncoding.DecodeString(enc)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add([]byte{0x9f, 0xeb, 1, 0, 24, 0, 0, 0})
	f.Add([]byte("\x7fELF"))
	self := &btf.Struct{Name: "task_struct", Size: 8}
	self.Members = []btf.Member{{Name: "", Type: self}}
	if enc, err := EncodeTypes([]btf.Type{self}); err == nil {
		raw, _ := base64.StdEncoding.DecodeString(enc)
		f.Add(raw)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		h := &Header{Types: base64.StdEncoding.EncodeToString(b)}
		st := h.StructTypes()
		if st == nil {
			if len(b) != 0 {
				t.Fatal("types the header holds are not answered for")
			}
			return
		}
		for _, kind := range []string{"struct", "union", "enum", ""} {
			st.Type(kind, "task_struct")
		}
	})
}

// TestTypesRefused: a recording is a file from anywhere. Types that hold
// themselves by value (which no C type does, and which would send the
// compiler into a loop) or nest too deep are refused when the recording
// is read; types that share members are walked once each.
func TestTypesRefused(t *testing.T) {
	u32 := &btf.Int{Name: "unsigned int", Size: 4}
	self := &btf.Struct{Name: "task_struct", Size: 8}
	self.Members = []btf.Member{{Name: "", Type: self}, {Name: "x", Type: u32, Offset: 32}}
	outer := &btf.Struct{Name: "outer", Size: 8}
	inner := &btf.Struct{Name: "inner", Size: 8, Members: []btf.Member{{Name: "o", Type: &btf.Array{Index: u32, Type: &btf.Typedef{Name: "o_t", Type: outer}, Nelems: 1}}}}
	outer.Members = []btf.Member{{Name: "i", Type: inner}}
	var deep btf.Type = u32
	for i := range 70 {
		deep = &btf.Struct{Name: fmt.Sprintf("d%d", i), Size: 4, Members: []btf.Member{{Name: "m", Type: deep}}}
	}
	// Thirty levels of structs of fifty members, each the level below:
	// 50^30 paths, thirty-one types.
	var wide btf.Type = u32
	for i := range 30 {
		ms := make([]btf.Member, 50)
		for j := range ms {
			ms[j] = btf.Member{Name: fmt.Sprintf("m%d", j), Type: wide}
		}
		wide = &btf.Struct{Name: fmt.Sprintf("w%d", i), Size: 4, Members: ms}
	}
	for _, tc := range []struct {
		name string
		t    btf.Type
		want string // "" decodes
	}{
		{"itself", self, "holds itself"},
		{"itself through another", outer, "holds itself"},
		{"too deep", deep, "nests types more than 64 deep"},
		{"wide and shared", wide, ""},
	} {
		enc, err := EncodeTypes([]btf.Type{tc.t})
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		_, err = (&Header{Types: enc}).StructTypes().Type("struct", "task_struct")
		switch {
		case tc.want == "" && !errors.Is(err, btf.ErrNotFound):
			t.Errorf("%s: %v, want the types read (and no task_struct among them)", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
