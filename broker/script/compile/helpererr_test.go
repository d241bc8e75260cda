package compile

import (
	"fmt"
	"testing"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// TestHelperSites: which helper calls -k and -kk check, by bpftrace's
// rules, named as bpftrace names them, at the script's text.
func TestHelperSites(t *testing.T) {
	tests := []struct {
		src   string
		level int
		want  string // the sites, "helper line:col-endcol" each
	}{
		{`i:ms:1 { delete(@[2]); @[1] = 1; }`, 0, "[]"},
		{`i:ms:1 { delete(@[2]); @[1] = 1; }`, 1, "[map_delete_elem 1:10-22 map_update_elem 1:24-32]"},
		{`i:ms:1 { @y = 1; @x = @y; }`, 1, "[map_update_elem 1:10-16 map_update_elem 1:18-25]"},
		{`i:ms:1 { @y = 1; @x = @y; }`, 2, "[map_update_elem 1:10-16 map_lookup_elem 1:23-25 map_update_elem 1:18-25]"},
		{`BEGIN { $x = *(int32 *)8; }`, 1, "[]"},
		{`BEGIN { $x = *(int32 *)8; }`, 2, "[probe_read 1:14-25]"},
		{`tracepoint:syscalls:sys_enter_openat { $x = *(int32 *)8; }`, 2, "[probe_read_kernel 1:45-56]"},
		{`tracepoint:syscalls:sys_enter_openat { @[str(args->filename)] = count(); }`, 2, "[probe_read_user_str 1:42-61 map_update_elem 1:40-72]"},
		// An aggregation's miss is its first event, not an error; its
		// insert is checked.
		{`i:ms:1 { @ = count(); }`, 2, "[map_update_elem 1:10-21]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s/%d", tt.src, tt.level), func(t *testing.T) {
			f, err := syntax.Parse("stdin", []byte(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}, HelperErrors: tt.level})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, s := range prog.Schema.HelperSites {
				got = append(got, fmt.Sprintf("%s %d:%d-%d", s.Helper, s.Line, s.Col, s.EndCol))
			}
			if g := fmt.Sprint(got); g != tt.want {
				t.Errorf("sites %s, want %s", g, tt.want)
			}
		})
	}
}
