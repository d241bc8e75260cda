package tracefs

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// The testdata/*.format files are verbatim copies from a Linux 6.18 host.

var commonFields = []Field{
	{Name: "common_type", Type: "unsigned short", Decl: "unsigned short common_type", Offset: 0, Size: 2, Kind: KindInteger},
	{Name: "common_flags", Type: "unsigned char", Decl: "unsigned char common_flags", Offset: 2, Size: 1, Kind: KindInteger},
	{Name: "common_preempt_count", Type: "unsigned char", Decl: "unsigned char common_preempt_count", Offset: 3, Size: 1, Kind: KindInteger},
	{Name: "common_pid", Type: "int", Decl: "int common_pid", Offset: 4, Size: 4, Signed: true, Kind: KindInteger},
}

func TestParseFormatFiles(t *testing.T) {
	tests := []struct {
		file   string
		name   string
		id     uint64
		fields []Field
	}{
		{
			file: "syscalls_sys_enter_openat.format", name: "sys_enter_openat", id: 782,
			fields: []Field{
				{Name: "__syscall_nr", Type: "int", Decl: "int __syscall_nr", Offset: 8, Size: 4, Signed: true, Kind: KindInteger},
				// Syscall args are widened to 8 bytes whatever the C type says.
				{Name: "dfd", Type: "int", Decl: "int dfd", Offset: 16, Size: 8, Kind: KindInteger},
				{Name: "filename", Type: "const char *", Decl: "const char * filename", Offset: 24, Size: 8, Kind: KindPointer},
				{Name: "flags", Type: "int", Decl: "int flags", Offset: 32, Size: 8, Kind: KindInteger},
				{Name: "mode", Type: "umode_t", Decl: "umode_t mode", Offset: 40, Size: 8, Kind: KindInteger},
			},
		},
		{
			file: "syscalls_sys_exit_openat.format", name: "sys_exit_openat", id: 781,
			fields: []Field{
				{Name: "__syscall_nr", Type: "int", Decl: "int __syscall_nr", Offset: 8, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "ret", Type: "long", Decl: "long ret", Offset: 16, Size: 8, Signed: true, Kind: KindInteger},
			},
		},
		{
			file: "sched_sched_switch.format", name: "sched_switch", id: 372,
			fields: []Field{
				{Name: "prev_comm", Type: "char[16]", Decl: "char prev_comm[16]", Offset: 8, Size: 16, Kind: KindString, ElemType: "char", ArrayLen: 16, ElemSize: 1},
				{Name: "prev_pid", Type: "pid_t", Decl: "pid_t prev_pid", Offset: 24, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "prev_prio", Type: "int", Decl: "int prev_prio", Offset: 28, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "prev_state", Type: "long", Decl: "long prev_state", Offset: 32, Size: 8, Signed: true, Kind: KindInteger},
				{Name: "next_comm", Type: "char[16]", Decl: "char next_comm[16]", Offset: 40, Size: 16, Kind: KindString, ElemType: "char", ArrayLen: 16, ElemSize: 1},
				{Name: "next_pid", Type: "pid_t", Decl: "pid_t next_pid", Offset: 56, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "next_prio", Type: "int", Decl: "int next_prio", Offset: 60, Size: 4, Signed: true, Kind: KindInteger},
			},
		},
		{
			file: "sched_sched_process_exec.format", name: "sched_process_exec", id: 365,
			fields: []Field{
				{Name: "filename", Type: "__data_loc char[]", Decl: "__data_loc char[] filename", Offset: 8, Size: 4, Kind: KindDynString, ElemType: "char"},
				{Name: "pid", Type: "pid_t", Decl: "pid_t pid", Offset: 12, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "old_pid", Type: "pid_t", Decl: "pid_t old_pid", Offset: 16, Size: 4, Signed: true, Kind: KindInteger},
			},
		},
		{
			file: "raw_syscalls_sys_enter.format", name: "sys_enter", id: 443,
			fields: []Field{
				{Name: "id", Type: "long", Decl: "long id", Offset: 8, Size: 8, Signed: true, Kind: KindInteger},
				{Name: "args", Type: "unsigned long[6]", Decl: "unsigned long args[6]", Offset: 16, Size: 48, Kind: KindArray, ElemType: "unsigned long", ArrayLen: 6, ElemSize: 8},
			},
		},
		{
			file: "ftrace_function.format", name: "function", id: 1,
			fields: []Field{
				{Name: "ip", Type: "unsigned long", Decl: "unsigned long ip", Offset: 8, Size: 8, Kind: KindInteger},
				{Name: "parent_ip", Type: "unsigned long", Decl: "unsigned long parent_ip", Offset: 16, Size: 8, Kind: KindInteger},
				// A flexible array: size 0, and the length is only known
				// from the record's size.
				{Name: "args", Type: "unsigned long[]", Decl: "unsigned long args[]", Offset: 24, Size: 0, Kind: KindArray, ElemType: "unsigned long", ElemSize: 8},
			},
		},
		{
			file: "dma_dma_map_sg.format", name: "dma_map_sg", id: 431,
			fields: []Field{
				{Name: "device", Type: "__data_loc char[]", Decl: "__data_loc char[] device", Offset: 8, Size: 4, Kind: KindDynString, ElemType: "char"},
				{Name: "full_nents", Type: "int", Decl: "int full_nents", Offset: 12, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "full_ents", Type: "int", Decl: "int full_ents", Offset: 16, Size: 4, Signed: true, Kind: KindInteger},
				{Name: "truncated", Type: "bool", Decl: "bool truncated", Offset: 20, Size: 1, Kind: KindInteger},
				{Name: "phys_addrs", Type: "__data_loc u64[]", Decl: "__data_loc u64[] phys_addrs", Offset: 24, Size: 4, Kind: KindDynArray, ElemType: "u64"},
				{Name: "dma_addrs", Type: "__data_loc u64[]", Decl: "__data_loc u64[] dma_addrs", Offset: 28, Size: 4, Kind: KindDynArray, ElemType: "u64"},
				{Name: "lengths", Type: "__data_loc unsigned int[]", Decl: "__data_loc unsigned int[] lengths", Offset: 32, Size: 4, Kind: KindDynArray, ElemType: "unsigned int"},
				{Name: "dir", Type: "enum dma_data_direction", Decl: "enum dma_data_direction dir", Offset: 36, Size: 4, Kind: KindInteger},
				{Name: "attrs", Type: "unsigned long", Decl: "unsigned long attrs", Offset: 40, Size: 8, Kind: KindInteger},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			f, err := ParseFormat(data)
			if err != nil {
				t.Fatal(err)
			}
			if f.Name != tt.name || f.ID != tt.id {
				t.Errorf("name, ID = %q, %d; want %q, %d", f.Name, f.ID, tt.name, tt.id)
			}
			if !reflect.DeepEqual(f.Common, commonFields) {
				t.Errorf("Common:\n got %+v\nwant %+v", f.Common, commonFields)
			}
			if len(f.Fields) != len(tt.fields) {
				t.Fatalf("got %d fields, want %d: %+v", len(f.Fields), len(tt.fields), f.Fields)
			}
			for i := range tt.fields {
				if !reflect.DeepEqual(f.Fields[i], tt.fields[i]) {
					t.Errorf("field %d:\n got %+v\nwant %+v", i, f.Fields[i], tt.fields[i])
				}
			}
			if !strings.HasPrefix(f.PrintFmt, `"`) {
				t.Errorf("PrintFmt = %q, want the quoted format string first", f.PrintFmt)
			}
		})
	}
}

// formatWith wraps field lines in the header and common fields of a real
// format file.
func formatWith(fields ...string) string {
	var b strings.Builder
	b.WriteString("name: test\nID: 42\nformat:\n")
	b.WriteString("\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n")
	b.WriteString("\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;\n\n")
	for _, f := range fields {
		b.WriteString("\t" + f + "\n")
	}
	b.WriteString("\nprint fmt: \"\"\n")
	return b.String()
}

func TestParseFormatFieldForms(t *testing.T) {
	tests := []struct {
		line string
		want Field
	}{
		{
			// Kernels before 6.x print array lengths unevaluated.
			"field:char comm[TASK_COMM_LEN];\toffset:8;\tsize:16;\tsigned:0;",
			Field{Name: "comm", Type: "char[TASK_COMM_LEN]", Decl: "char comm[TASK_COMM_LEN]", Offset: 8, Size: 16, Kind: KindString, ElemType: "char", ArrayLen: 16, ElemSize: 1},
		},
		{
			"field:__u8 saddr[sizeof(struct sockaddr_in6)];\toffset:8;\tsize:28;\tsigned:0;",
			Field{Name: "saddr", Type: "__u8[sizeof(struct sockaddr_in6)]", Decl: "__u8 saddr[sizeof(struct sockaddr_in6)]", Offset: 8, Size: 28, Kind: KindArray, ElemType: "__u8", ArrayLen: 28, ElemSize: 1},
		},
		{
			"field:u8 fsid[16];\toffset:8;\tsize:16;\tsigned:0;",
			Field{Name: "fsid", Type: "u8[16]", Decl: "u8 fsid[16]", Offset: 8, Size: 16, Kind: KindArray, ElemType: "u8", ArrayLen: 16, ElemSize: 1},
		},
		{
			"field:__rel_loc char[] name;\toffset:8;\tsize:4;\tsigned:0;",
			Field{Name: "name", Type: "__rel_loc char[]", Decl: "__rel_loc char[] name", Offset: 8, Size: 4, Kind: KindDynString, ElemType: "char", RelLoc: true},
		},
		{
			"field:__data_loc cpumask_t cpumask;\toffset:8;\tsize:4;\tsigned:0;",
			Field{Name: "cpumask", Type: "__data_loc cpumask_t", Decl: "__data_loc cpumask_t cpumask", Offset: 8, Size: 4, Kind: KindDynArray, ElemType: "cpumask_t"},
		},
		{
			"field:const void* ip;\toffset:8;\tsize:8;\tsigned:0;",
			Field{Name: "ip", Type: "const void*", Decl: "const void* ip", Offset: 8, Size: 8, Kind: KindPointer},
		},
		{
			"field:struct foo bar;\toffset:8;\tsize:24;\tsigned:0;",
			Field{Name: "bar", Type: "struct foo", Decl: "struct foo bar", Offset: 8, Size: 24, Kind: KindOther},
		},
		{
			// Very old kernels have no signed attribute.
			"field:int x;\toffset:8;\tsize:4;",
			Field{Name: "x", Type: "int", Decl: "int x", Offset: 8, Size: 4, Kind: KindInteger},
		},
	}
	for _, tt := range tests {
		t.Run(tt.want.Decl, func(t *testing.T) {
			f, err := ParseFormat([]byte(formatWith(tt.line)))
			if err != nil {
				t.Fatal(err)
			}
			if len(f.Fields) != 1 || !reflect.DeepEqual(f.Fields[0], tt.want) {
				t.Errorf("got %+v\nwant %+v", f.Fields, tt.want)
			}
		})
	}
}

func TestParseFormatErrors(t *testing.T) {
	tests := []struct {
		name, text, wantErr string
	}{
		{"empty", "", `no "format:" line`},
		{"id file", "782\n", `no "format:" line`},
		{"field before format", "name: x\n\tfield:int a;\toffset:0;\tsize:4;\tsigned:1;\nformat:\n", "field before"},
		{"bad ID", "name: x\nID: abc\nformat:\n", "bad ID"},
		{"no offset", formatWith("field:int a;\tsize:4;\tsigned:1;"), "missing offset or size"},
		{"negative offset", formatWith("field:int a;\toffset:-1;\tsize:4;\tsigned:1;"), "bad offset"},
		{"huge size", formatWith("field:int a;\toffset:0;\tsize:99999999999;\tsigned:1;"), "bad size"},
		{"no name", formatWith("field:int;\toffset:8;\tsize:4;\tsigned:1;"), "cannot split"},
		{"empty decl", formatWith("field:;\toffset:8;\tsize:4;\tsigned:1;"), "no declaration"},
		{"junk attr", formatWith("field:int a;\toffset 8;\tsize:4;"), "malformed field attribute"},
		{"bad array len", formatWith("field:struct x a[N];\toffset:8;\tsize:4;\tsigned:0;"), "unsupported array length"},
		{"array size mismatch", formatWith("field:u32 a[3];\toffset:8;\tsize:8;\tsigned:0;"), "not a multiple"},
		{"unbalanced", formatWith("field:int a];\toffset:8;\tsize:4;\tsigned:0;"), "unbalanced"},
		{"data_loc size", formatWith("field:__data_loc char[] s;\toffset:8;\tsize:8;\tsigned:0;"), "want 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseFormat([]byte(tt.text))
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("err = %v, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestDataLoc(t *testing.T) {
	// sched_process_exec: filename of 11 bytes ("/bin/true\x00" plus one)
	// stored at offset 24 of the record.
	f := Field{Offset: 8, Size: 4, Kind: KindDynString}
	if off, n := f.DataLoc(11<<16 | 24); off != 24 || n != 11 {
		t.Errorf("__data_loc: got offset %d len %d, want 24 11", off, n)
	}
	// __rel_loc counts from the end of the field itself.
	f.RelLoc = true
	if off, n := f.DataLoc(11<<16 | 4); off != 16 || n != 11 {
		t.Errorf("__rel_loc: got offset %d len %d, want 16 11", off, n)
	}
}

func TestFormatFieldLookup(t *testing.T) {
	data, err := os.ReadFile("testdata/sched_sched_switch.format")
	if err != nil {
		t.Fatal(err)
	}
	f, err := ParseFormat(data)
	if err != nil {
		t.Fatal(err)
	}
	if fld, ok := f.Field("next_comm"); !ok || fld.Offset != 40 {
		t.Errorf("Field(next_comm) = %+v, %v", fld, ok)
	}
	if fld, ok := f.Field("common_pid"); !ok || fld.Offset != 4 {
		t.Errorf("Field(common_pid) = %+v, %v", fld, ok)
	}
	if _, ok := f.Field("nosuch"); ok {
		t.Error("Field(nosuch) found")
	}
}

func TestReadFormatFake(t *testing.T) {
	events := fakeEvents(t)
	f, err := readFormat(events, "sched", "sched_switch")
	if err != nil {
		t.Fatal(err)
	}
	if f.Category != "sched" || f.Name != "sched_switch" || f.ID != 372 || len(f.Fields) != 7 {
		t.Errorf("got %s:%s id %d with %d fields", f.Category, f.Name, f.ID, len(f.Fields))
	}

	// No "ID:" line: the id file is the fallback.
	f, err = readFormat(events, "noid", "ev")
	if err != nil {
		t.Fatal(err)
	}
	if f.ID != 99 {
		t.Errorf("ID from id file = %d, want 99", f.ID)
	}

	for _, tp := range [][2]string{{"syscalls", "sys_enter_nosuch"}, {"nosuch", "x"}, {"sched", "enable"}} {
		_, err := readFormat(events, tp[0], tp[1])
		want := "tracepoint not found: " + tp[0] + ":" + tp[1]
		if !errors.Is(err, ErrNotFound) || err.Error() != want {
			t.Errorf("readFormat(%s:%s) = %v, want %q", tp[0], tp[1], err, want)
		}
	}
	for _, tp := range [][2]string{{"..", "sched"}, {"sched/../sched", "sched_switch"}, {"", "x"}, {"sched", "."}} {
		if _, err := readFormat(events, tp[0], tp[1]); err == nil || !strings.Contains(err.Error(), "invalid tracepoint name") {
			t.Errorf("readFormat(%q, %q) = %v, want invalid name", tp[0], tp[1], err)
		}
	}
}

func FuzzParseFormat(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.format")
	for _, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(formatWith("field:__rel_loc char[] n;\toffset:8;\tsize:4;\tsigned:0;", "field:char c[TASK_COMM_LEN];\toffset:12;\tsize:16;\tsigned:0;")))
	f.Fuzz(func(t *testing.T, data []byte) {
		fm, err := ParseFormat(data)
		if err != nil {
			return
		}
		for _, fld := range append(fm.Common, fm.Fields...) {
			if fld.Name == "" || fld.Type == "" || strings.TrimSpace(fld.Decl) == "" {
				t.Fatalf("field with empty name, type or decl: %+v", fld)
			}
			if fld.Offset < 0 || fld.Size < 0 || fld.ArrayLen < 0 || fld.ElemSize < 0 {
				t.Fatalf("negative offset, size or length: %+v", fld)
			}
			switch fld.Kind {
			case KindString, KindArray:
				if fld.ArrayLen > 0 && fld.ArrayLen*fld.ElemSize != fld.Size {
					t.Fatalf("array %d x %d does not fill size %d: %+v", fld.ArrayLen, fld.ElemSize, fld.Size, fld)
				}
			case KindDynString, KindDynArray:
				if fld.Size != 4 {
					t.Fatalf("dynamic field of size %d", fld.Size)
				}
				if off, n := fld.DataLoc(^uint32(0)); off < 0 || n < 0 {
					t.Fatalf("DataLoc gave %d, %d", off, n)
				}
			case KindInteger:
				if s := fld.Size; s != 1 && s != 2 && s != 4 && s != 8 {
					t.Fatalf("integer of size %d", s)
				}
			case KindPointer, KindOther:
			default:
				t.Fatalf("unknown kind %v", fld.Kind)
			}
		}
	})
}
