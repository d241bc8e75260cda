package compile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

func TestPtonBytes(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want []byte
		why  string
	}{
		{"127.0.0.1", []byte{127, 0, 0, 1}, ""},
		{"::1", []byte{15: 1}, ""},
		{"2001:db8::ff00:42:8329", []byte{0x20, 0x01, 0x0d, 0xb8, 10: 0xff, 11: 0, 12: 0, 13: 0x42, 14: 0x83, 15: 0x29}, ""},
		{"::ffff:102:304", []byte{10: 0xff, 11: 0xff, 12: 1, 13: 2, 14: 3, 15: 4}, ""},
		// bpftrace decides by the first '.': IPv4, which this is not.
		{"::ffff:1.2.3.4", nil, "pton() expects a valid IPv4/IPv6 address, got ::ffff:1.2.3.4"},
		{"1.2.3", nil, "pton() expects a valid IPv4/IPv6 address, got 1.2.3"},
		{"256.0.0.1", nil, "pton() expects a valid IPv4/IPv6 address, got 256.0.0.1"},
		{"fe80::1%eth0", nil, "pton() expects a valid IPv4/IPv6 address, got fe80::1%eth0"},
		{"abc", nil, "pton() expects an string argument of an IPv4/IPv6 address, got abc"},
		{"", nil, "pton() expects an string argument of an IPv4/IPv6 address, got "},
	} {
		got, why := ptonBytes(tt.in)
		if why != tt.why || !bytes.Equal(got, tt.want) {
			t.Errorf("ptonBytes(%q) = %v, %q; want %v, %q", tt.in, got, why, tt.want, tt.why)
		}
	}
}

func TestNetaddrErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`BEGIN { $x = "1.2.3.4"; print(pton($x)); }`, "stdin:1:31-39: ERROR: pton() expects an string argument of an IPv4/IPv6 address, got \n"},
		{`BEGIN { print(pton(1)); }`, "ERROR: pton() expects an string argument of an IPv4/IPv6 address, got \n"},
		{`BEGIN { print(pton("1.2.3")); }`, "stdin:1:15-28: ERROR: pton() expects a valid IPv4/IPv6 address, got 1.2.3"},
		{`BEGIN { print(pton()); }`, "pton() requires one argument (0 provided)"},
		// A malformed address still has its type: no error follows.
		{`BEGIN { @a[pton("1.2.3")] = 1; }`, "ERROR: pton() expects a valid IPv4/IPv6 address, got 1.2.3\nBEGIN"},
		{`BEGIN { @ = macaddr("abcdef"); }`, "macaddr() argument must be 6 bytes in size"},
		{`BEGIN { @ = macaddr("abcde"); }`, "macaddr() does not support literal string arguments"},
		{`BEGIN { @ = macaddr(pton("1.2.3.4")); }`, "stdin:1:13-37: ERROR: macaddr() argument must be 6 bytes in size"},
		{`BEGIN { @ = macaddr((1, 2)); }`, "macaddr() only supports array or pointer arguments (tuple provided)"},
		{`BEGIN { @ = macaddr(); }`, "macaddr() requires one argument (0 provided)"},
		{`struct S { char m[4]; } BEGIN { @ = macaddr(((struct S *)0)->m); }`, "macaddr() argument must be 6 bytes in size"},
		{`BEGIN { @ = ntop(macaddr(1)); }`, "ntop() expects an integer or an array of 4 or 16 bytes (macaddr provided)"},
		{`struct S { int m[3]; } BEGIN { @ = ntop(((struct S *)0)->m); }`, "ntop() expects an array of 4 or 16 bytes (12 provided)"},
	} {
		t.Run(tt.src, func(t *testing.T) {
			_, _, err := compileString(t, tt.src)
			l, ok := err.(syntax.ErrorList)
			if !ok {
				t.Fatalf("error %T %v, want %q", err, err, tt.want)
			}
			got := l.Format("stdin", []byte(tt.src))
			if !strings.Contains(got, tt.want) {
				t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
			}
			if strings.Contains(tt.src, "@a[") && len(l) != 1 {
				t.Errorf("%d errors, want 1:\n%s", len(l), got)
			}
		})
	}
}

// TestNetaddrTypes: what pton() and macaddr() store, as the output stage
// decodes it.
func TestNetaddrTypes(t *testing.T) {
	for _, tt := range []struct {
		src  string
		want program.Type
	}{
		{`BEGIN { @ = macaddr(1); }`, program.Type{Kind: program.MacAddr, Size: 8}},
		{`struct S { unsigned short m[3]; } BEGIN { @ = macaddr(((struct S *)0)->m); }`, program.Type{Kind: program.MacAddr, Size: 8}},
		{`BEGIN { @ = pton("1.2.3.4"); }`, program.Type{Kind: program.Array, Size: 4}},
		{`BEGIN { @ = pton("::"); }`, program.Type{Kind: program.Array, Size: 16}},
	} {
		p, _, err := compileString(t, tt.src)
		if err != nil {
			t.Fatalf("%s: %v", tt.src, err)
		}
		got := p.Schema.Maps[0].Value
		if got.Kind != tt.want.Kind || got.Size != tt.want.Size {
			t.Errorf("%s: value %+v, want kind %d size %d", tt.src, got, tt.want.Kind, tt.want.Size)
		}
		if got.Kind == program.Array && (len(got.Elems) != got.Size || got.Elems[0].Kind != program.Int || got.Elems[0].Size != 1) {
			t.Errorf("%s: pton() is not an array of bytes: %+v", tt.src, got)
		}
	}
}

func TestCgroupPathErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`BEGIN { @ = cgroup_path(); }`, "cgroup_path() requires at least one argument (0 provided)"},
		{`BEGIN { @ = cgroup_path(1, "a", 2); }`, "cgroup_path() takes up to 2 arguments (3 provided)"},
		{`BEGIN { @ = cgroup_path("a"); }`, "stdin:1:25-28: ERROR: cgroup_path() only supports integer arguments (string provided)"},
		{`BEGIN { @ = cgroup_path(1, comm); }`, "cgroup_path() expects a string literal as second argument (string provided)"},
		{`BEGIN { printf("%d", cgroup_path(1)); }`, "printf: %d specifier expects a value of type integer (cgroup_path supplied)"},
	} {
		_, _, err := compileString(t, tt.src)
		l, ok := err.(syntax.ErrorList)
		if !ok {
			t.Fatalf("%s: error %T %v, want %q", tt.src, err, err, tt.want)
		}
		if got := l.Format("stdin", []byte(tt.src)); !strings.Contains(got, tt.want) {
			t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
		}
	}
	p, _, err := compileString(t, `BEGIN { @[cgroup_path(cgroup, "uni*")] = count(); }`)
	if err != nil {
		t.Fatal(err)
	}
	if k := p.Schema.Maps[0].Keys[0]; k.Kind != program.CgroupPath || k.Size != 8 || k.Format != "uni*" {
		t.Errorf("key type %+v, want a cgroup_path with its filter", k)
	}
}
