package btftp

import (
	"bytes"
	"errors"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/btf"
)

func specOf(t *testing.T, types ...btf.Type) *btf.Spec {
	t.Helper()
	b, err := btf.NewBuilder(types, nil)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := b.Marshal(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec, err := btf.LoadSpecFromReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	return spec
}

var (
	tInt    = &btf.Int{Name: "int", Size: 4, Encoding: btf.Signed}
	tUint   = &btf.Int{Name: "unsigned int", Size: 4}
	tChar   = &btf.Int{Name: "char", Size: 1, Encoding: btf.Signed}
	tSizeT  = &btf.Typedef{Name: "size_t", Type: &btf.Int{Name: "long unsigned int", Size: 8}}
	tSsizeT = &btf.Typedef{Name: "ssize_t", Type: &btf.Int{Name: "long int", Size: 8, Encoding: btf.Signed}}
	tFile   = &btf.Struct{Name: "file", Size: 200}
	tPair   = &btf.Struct{Name: "pair", Size: 16}
)

func fn(name string, ret btf.Type, params ...btf.FuncParam) *btf.Func {
	return &btf.Func{Name: name, Linkage: btf.GlobalFunc, Type: &btf.FuncProto{Return: ret, Params: params}}
}

// vfsRead is vfs_read as Linux 6.1's BTF has it.
var vfsRead = fn("vfs_read", tSsizeT,
	btf.FuncParam{Name: "file", Type: &btf.Pointer{Target: tFile}},
	btf.FuncParam{Name: "buf", Type: &btf.Pointer{Target: &btf.TypeTag{Value: "user", Type: tChar}}},
	btf.FuncParam{Name: "count", Type: tSizeT},
	btf.FuncParam{Name: "pos", Type: &btf.Pointer{Target: &btf.Typedef{Name: "loff_t", Type: &btf.Int{Name: "long long int", Size: 8, Encoding: btf.Signed}}}},
)

// TestProtoOf: arguments take a context slot each, a struct of more
// than 8 bytes by value as many as its size needs; the return value is
// in the slot after them; void has none.
func TestProtoOf(t *testing.T) {
	p, err := protoOf(vfsRead)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range p.Args {
		got = append(got, listDecl(a))
		if a.Slot != len(got)-1 {
			t.Errorf("%s in slot %d", a.Name, a.Slot)
		}
	}
	if want := []string{"struct file * file", "char * buf", "size_t count", "loff_t * pos"}; !slices.Equal(got, want) {
		t.Errorf("args %q, want %q", got, want)
	}
	if !p.Args[1].User || p.Args[0].User {
		t.Errorf("__user: buf %v file %v", p.Args[1].User, p.Args[0].User)
	}
	if p.Ret == nil || p.Ret.Slot != 4 || listDecl(*p.Ret) != "ssize_t retval" || !p.Ret.Signed || p.Ret.Size != 8 {
		t.Errorf("retval %+v, want ssize_t in slot 4", p.Ret)
	}

	p, err = protoOf(fn("by_value", tPair, btf.FuncParam{Name: "v", Type: tPair}, btf.FuncParam{Name: "n", Type: tInt}))
	if err != nil {
		t.Fatal(err)
	}
	if p.Args[1].Slot != 2 || p.Slots != 3 || p.Ret.Slot != 3 {
		t.Errorf("after a 16-byte struct: n in slot %d, %d slots, retval in %d; want 2, 3, 3", p.Args[1].Slot, p.Slots, p.Ret.Slot)
	}

	p, err = protoOf(fn("kmem_cache_free", nil, btf.FuncParam{Name: "x", Type: &btf.Pointer{Target: &btf.Void{}}}))
	if err == nil && p.Ret != nil {
		t.Errorf("void function has retval %+v", p.Ret)
	}
	if _, err := protoOf(fn("printk", tInt, btf.FuncParam{Name: "fmt", Type: &btf.Pointer{Target: tChar}}, btf.FuncParam{Type: &btf.Void{}})); err == nil {
		t.Error("a variadic function was accepted")
	}
}

func TestParseTraceable(t *testing.T) {
	m, err := parseTraceable(strings.NewReader("vfs_read\nksys_read\n__v9fs_get_acl [9p]\nnft_trans_alloc_gfp [nf_tables]\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !m["vmlinux"]["vfs_read"] || !m["9p"]["__v9fs_get_acl"] || !m["nf_tables"]["nft_trans_alloc_gfp"] || m["vmlinux"]["__v9fs_get_acl"] {
		t.Errorf("parsed %v", m)
	}
}

// TestFuncs: what is listed is in BTF and, when the kernel says, in
// available_filter_functions; a module's function of a vmlinux
// function's name is not offered under the module.
func TestFuncs(t *testing.T) {
	vmlinux := specOf(t, vfsRead, fn("vfs_readv", tSsizeT), fn("vfs_write", tSsizeT), fn("notrace_fn", tInt))
	mod := specOf(t, fn("nft_trans_alloc_gfp", tInt, btf.FuncParam{Name: "size", Type: tUint}), fn("vfs_read", tInt))
	specs := map[string]*btf.Spec{"vmlinux": vmlinux, "nf_tables": mod}
	src := func(trace map[string]map[string]bool) *funcSource {
		return &funcSource{
			traceable: func() (map[string]map[string]bool, error) { return trace, nil },
			modules:   func() ([]string, error) { return []string{"vmlinux", "nf_tables"}, nil },
			spec: func(m string) (*btf.Spec, error) {
				if s := specs[m]; s != nil {
					return s, nil
				}
				return nil, errors.New("no module " + m)
			},
		}
	}
	traced := src(map[string]map[string]bool{
		"vmlinux":   {"vfs_read": true, "vfs_readv": true, "vfs_write": true},
		"nf_tables": {"nft_trans_alloc_gfp": true, "vfs_read": true},
	})
	all := src(nil)
	for _, tc := range []struct {
		src     *funcSource
		mod, fn string
		want    string
	}{
		{traced, "*", "*", "nf_tables:nft_trans_alloc_gfp vmlinux:vfs_read vmlinux:vfs_readv vmlinux:vfs_write"},
		{traced, "*", "vfs_read", "vmlinux:vfs_read"},
		{traced, "vmlinux", "vfs_re*", "vmlinux:vfs_read vmlinux:vfs_readv"},
		{traced, "nf_*", "*", "nf_tables:nft_trans_alloc_gfp"},
		{traced, "*", "notrace_fn", ""},
		{all, "*", "notrace_fn", "vmlinux:notrace_fn"},
		{all, "nosuch", "*", ""},
	} {
		funcs, err := tc.src.funcs(tc.mod, tc.fn)
		if err != nil {
			t.Errorf("%s:%s: %v", tc.mod, tc.fn, err)
			continue
		}
		var got []string
		for _, f := range funcs {
			got = append(got, f.Module+":"+f.Name)
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("%s:%s: %q, want %q", tc.mod, tc.fn, got, tc.want)
		}
	}
	if _, err := traced.funcs("*", "vfs_["); err == nil {
		t.Error("a malformed glob was accepted")
	}
	p, err := traced.proto("vmlinux", "vfs_read")
	if err != nil || len(p.Args) != 4 {
		t.Errorf("proto(vfs_read) = %+v, %v", p, err)
	}
	if _, err := traced.proto("vmlinux", "nosuch"); !errors.Is(err, ErrNoFunc) {
		t.Errorf("proto(nosuch): %v, want ErrNoFunc", err)
	}
}

// TestKernelFuncs lists the running kernel's vfs_read as bpftrace 0.17's
// `bpftrace -lv kretfunc:vfs_read` prints it (the same on 6.1, 6.12 and
// 6.18).
func TestKernelFuncs(t *testing.T) {
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		t.Skipf("kernel BTF unavailable: %v", err)
	}
	var b bytes.Buffer
	if err := ListFuncs(&b, "kretfunc", "vfs_read", true); err != nil {
		t.Fatal(err)
	}
	want := "kretfunc:vmlinux:vfs_read\n    struct file * file\n    char * buf\n    size_t count\n    loff_t * pos\n    ssize_t retval\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := ListFuncs(&b, "kfunc", "vmlinux:vfs_rea*", false); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "kfunc:vmlinux:vfs_read\n") {
		t.Errorf("kfunc:vmlinux:vfs_rea* lists\n%s", b.String())
	}
}
