package tracefs

import (
	"slices"
	"strings"
	"testing"
)

func TestParseFunctions(t *testing.T) {
	in := "vfs_read\n\n  ksys_read  \n__v9fs_get_acl [9p]\nfoo\t0xffffffff81000000\nnft_trans_alloc_gfp [nf_tables]\n"
	var got []Function
	if err := ParseFunctions(strings.NewReader(in), func(f Function) { got = append(got, f) }); err != nil {
		t.Fatal(err)
	}
	want := []Function{{"vfs_read", ""}, {"ksys_read", ""}, {"__v9fs_get_acl", "9p"}, {"foo", ""}, {"nft_trans_alloc_gfp", "nf_tables"}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	long := strings.Repeat("x", maxFunctionLine+1) + "\n"
	if err := ParseFunctions(strings.NewReader(long), func(Function) {}); err == nil || !strings.Contains(err.Error(), "available_filter_functions") {
		t.Errorf("a line longer than %d bytes: %v, want an error naming the file", maxFunctionLine, err)
	}
}
