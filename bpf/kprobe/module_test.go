package kprobe

import (
	"strings"
	"testing"
)

// TestInModule: a probe's functions must be the named module's, not
// the kernel image's or another module's of the same name.
func TestInModule(t *testing.T) {
	funcs, err := ParseFunctions(strings.NewReader("vfs_read\nnft_trans_alloc_gfp [nf_tables]\nnft_x [nf_tables]\nvfs_write [evil]\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		module string
		names  []string
		want   string
	}{
		{"nf_tables", []string{"nft_trans_alloc_gfp", "nft_x"}, ""},
		{"nf_tables", []string{"vfs_read"}, "vfs_read is not a traceable function of module nf_tables"},
		{"nf_tables", []string{"nft_x", "vfs_write"}, "vfs_write is not a traceable function of module nf_tables"},
		{"nosuch", []string{"vfs_read"}, "vfs_read is not a traceable function of module nosuch"},
	} {
		err := inModule(funcs, tt.module, tt.names)
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("inModule(%s, %v) = %v, want %q", tt.module, tt.names, err, tt.want)
		}
	}
}

// TestCheckOffset: an offset past the function's end is refused, one
// inside it or of a function of unknown size is the kernel's to judge.
func TestCheckOffset(t *testing.T) {
	size := func(fn string) (uint64, bool) { return 320, fn == "vfs_read" }
	for _, tt := range []struct {
		fn     string
		offset uint64
		ok     bool
	}{
		{"vfs_read", 4, true}, {"vfs_read", 319, true}, {"vfs_read", 320, false}, {"vfs_read", 1 << 40, false}, {"unknown", 4096, true},
	} {
		if err := offsetIn(tt.fn, tt.offset, size); (err == nil) != tt.ok {
			t.Errorf("%s+%d: %v", tt.fn, tt.offset, err)
		}
	}
}
