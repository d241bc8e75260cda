package object

import (
	"encoding/binary"
	"strings"
	"testing"
)

func TestSetVariables(t *testing.T) {
	p, err := Parse("opencount.bpf.o", readObject(t, "opencount.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(Variables(p.Object), ", "); got != "targ_comm char[16], weight u64" {
		t.Errorf("Variables = %s", got)
	}
	for _, tc := range []struct {
		vars map[string]string
		err  string
	}{
		{map[string]string{"nosuch": "1"}, `no global variable "nosuch" to set (it has: targ_comm char[16], weight u64)`},
		{map[string]string{"weight": "-1"}, "not a 64-bit unsigned integer"},
		{map[string]string{"weight": "ten"}, "not a 64-bit unsigned integer"},
		{map[string]string{"targ_comm": "sixteen-bytes-xx"}, "at most 15 bytes"},
		{map[string]string{"targ_comm": "a\x00b"}, "no NUL"},
		{map[string]string{"weight": "0x10", "targ_comm": "workload"}, ""},
	} {
		err := SetVariables(p.Object, tc.vars)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("SetVariables(%v) = %v, want %q", tc.vars, err, tc.err)
		}
	}
	data, ok := SectionData(p.Object, ".rodata")
	if !ok {
		t.Fatal("no .rodata")
	}
	w, c := p.Object.Spec.Variables["weight"], p.Object.Spec.Variables["targ_comm"]
	if got := binary.LittleEndian.Uint64(data[w.Offset:]); got != 16 {
		t.Errorf("weight in .rodata = %d, want 16", got)
	}
	if got := string(data[c.Offset : c.Offset+9]); got != "workload\x00" {
		t.Errorf("targ_comm in .rodata = %q", got)
	}
}
