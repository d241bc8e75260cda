package compile

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
)

// spellStrings writes a probe's captures as "24u*" (offset, u for user
// memory, * when saved for a read at another probe).
func spellStrings(cs []program.CtxString) string {
	var out []string
	for _, c := range cs {
		s := fmt.Sprint(c.Off)
		if c.User {
			s += "u"
		}
		if c.Saved {
			s += "*"
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

// TestSavedPointers: a pointer saved at one probe and read with str() at
// another is captured at the probe that saves it (per probe, "|"
// between them), and what no capture can answer is refused at the probe
// that reads it, naming the read.
func TestSavedPointers(t *testing.T) {
	const (
		enter = "tracepoint:syscalls:sys_enter_openat "
		exit  = " tracepoint:syscalls:sys_exit_openat "
	)
	for _, tc := range []struct {
		src, strings, kernelOnly string
	}{
		// opensnoop.
		{enter + `{ @filename[tid] = args->filename; }` + exit + `/@filename[tid]/ { printf("%s\n", str(@filename[tid])); delete(@filename[tid]); }`, "24u*|", ""},
		// Through scratch variables on both sides, and a second map.
		{enter + `{ $p = args->filename; @f[tid] = $p; }` + exit + `{ @g[tid] = @f[tid]; $q = @g[tid]; printf("%s\n", str($q, 32)); }`, "24u*|", ""},
		// Maps stored into each other, the pointer into one of them.
		{enter + `{ @a[tid] = args->filename; @b[tid] = @a[tid]; }` + exit + `{ @a[tid] = @b[tid]; printf("%s\n", str(@b[tid])); }`, "24u*|", ""},
		// Variables that feed themselves.
		{enter + `{ $p = args->filename; $p = pid > 1 ? $p : 0; @f[tid] = $p; }` + exit + `{ printf("%s\n", str(@f[tid])); }`, "24u*|", ""},
		// Read where it is taken, through a variable: captured, not saved.
		{enter + `{ $p = args->filename; printf("%s\n", str($p)); }`, "24u", ""},
		// Read where it is taken, directly: as always.
		{enter + `{ printf("%s\n", str(args->filename)); }`, "24u", ""},
		// Saved and also read where taken.
		{enter + `{ @f[tid] = args->filename; printf("%s\n", str(args->filename)); }` + exit + `{ printf("%s\n", str(@f[tid])); }`, "24u*|", ""},
		// uprobe argument saved, read at the uretprobe (gethostlatency).
		{`uprobe:/bin/work:add_one { @name[tid] = arg0; }` + ` uretprobe:/bin/work:add_one { printf("%s\n", str(@name[tid])); }`, "112u*|", ""},
		// A map never read by str(): nothing copied.
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ @n[@f[tid]] = count(); }`, "|", ""},
		// NULL stored as well: still a pointer the collector copies.
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ printf("%s\n", str(@f[tid])); @f[tid] = 0; }`, "24u*|", ""},
		// Pointer arithmetic on the saved value.
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ printf("%s\n", str(@f[tid] + 1)); }`, "|", "str(@f[tid] + 1) (pointer arithmetic on a pointer @f saved at another probe"},
		// An address computed from integers.
		{enter + `{ @f[tid] = args->flags * 4096; }` + exit + `{ printf("%s\n", str(@f[tid])); }`, "|", "str(@f[tid]) (a read through @f, which holds args->flags * 4096, an address the collector cannot copy behind)"},
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ @f[tid] += 8; printf("%s\n", str(@f[tid])); }`, "|", "str(@f[tid]) (a read through @f, which holds @f[tid] += 8,"},
		// Bytes behind a saved pointer: the collector copies strings.
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ printf("%r\n", buf(@f[tid], 8)); }`, "|", "buf(@f[tid], 8) (a read of bytes through a pointer @f saved at another probe"},
		// A saved pointer or a computed value.
		{enter + `{ @f[tid] = args->filename; }` + exit + `{ printf("%s\n", str(pid > 1 ? @f[tid] : 4096)); }`, "|", "(a read through a pointer saved at another probe or 4096,"},
	} {
		prog, _, err := compileString(t, tc.src)
		if err != nil {
			t.Errorf("%s: %v", tc.src, err)
			continue
		}
		var got []string
		kernelOnly := ""
		for _, p := range prog.Probes {
			got = append(got, spellStrings(p.CtxStrings))
			if p.KernelOnly != "" && kernelOnly == "" {
				kernelOnly = p.KernelOnly
			}
		}
		if g := strings.Join(got, "|"); g != tc.strings {
			t.Errorf("%s:\ncaptures %q, want %q", tc.src, g, tc.strings)
		}
		if tc.kernelOnly == "" && kernelOnly != "" || !strings.Contains(kernelOnly, tc.kernelOnly) {
			t.Errorf("%s:\nkernel only %q, want %q", tc.src, kernelOnly, tc.kernelOnly)
		}
	}
}
