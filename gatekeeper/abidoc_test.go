package gatekeeper

import (
	"cmp"
	"flag"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

var updateABIDoc = flag.Bool("update-abi-doc", false, "rewrite the generated parts of ABI.md and gatekeeper.h")

// The generated parts of ABI.md sit between these markers; the prose
// around them is written by hand.
const (
	genBegin = "<!-- generated:%s (go test ./gatekeeper -run TestABIDoc -update-abi-doc) -->"
	genEnd   = "<!-- end generated:%s -->"
)

// cType is how C declares an abi field.
func cType(f abi.Field) (typ, suffix string) {
	switch f.Kind {
	case abi.String:
		return "char", fmt.Sprintf("[%d]", f.Size)
	case abi.Bool:
		return "unsigned char", ""
	}
	return map[int]string{1: "unsigned char", 2: "unsigned short", 4: "unsigned int", 8: "unsigned long long"}[f.Size], ""
}

func kindName(f abi.Field) string {
	switch f.Kind {
	case abi.String:
		return fmt.Sprintf("char[%d]", f.Size)
	case abi.Bool:
		return "bool (u8)"
	}
	return fmt.Sprintf("u%d", 8*f.Size)
}

type namedConst struct {
	name  string
	value uint64
}

func sortedConsts[V int | uint64 | uint8](m map[string]V) []namedConst {
	var out []namedConst
	for k, v := range m {
		out = append(out, namedConst{k, uint64(v)})
	}
	slices.SortFunc(out, func(a, b namedConst) int { return cmp.Compare(a.value, b.value) })
	return out
}

var scopeBits = []namedConst{{"trace", abi.ScopeTrace}, {"probe", abi.ScopeProbe}, {"gen", abi.ScopeGen},
	{"read:kernel", abi.ScopeReadKernel}, {"read:user", abi.ScopeReadUser}}

var readBits = []namedConst{{"context", abi.ReadContext}, {"user-context", abi.ReadUserContext},
	{"user", abi.ReadUser}, {"kernel", abi.ReadKernel}, {"kernel-address", abi.ReadKernelAddr}}

func cName(s string) string {
	return strings.ToUpper(strings.NewReplacer("-", "_", ":", "_").Replace(s))
}

// genFieldTable is the Request's layout, padding included, as a
// Markdown table.
func genFieldTable() string {
	var b strings.Builder
	b.WriteString("| offset | size | field | type | meaning |\n| ---: | ---: | --- | --- | --- |\n")
	off := 0
	for _, f := range abi.Fields {
		if f.Offset > off {
			fmt.Fprintf(&b, "| %d | %d | *(padding, zero)* | | |\n", off, f.Offset-off)
		}
		fmt.Fprintf(&b, "| %d | %d | `%s` | %s | %s |\n", f.Offset, f.Size, f.Name, kindName(f), strings.ReplaceAll(f.Doc, "|", `\|`))
		off = f.Offset + f.Size
	}
	if off < abi.Size {
		fmt.Fprintf(&b, "| %d | %d | *(padding, zero)* | | |\n", off, abi.Size-off)
	}
	fmt.Fprintf(&b, "\nTotal size: **%d bytes** (ABI version %d).\n", abi.Size, abi.Version)
	return b.String()
}

// genConstTables lists verdicts, role bits, forms, covers and scope
// bits, from the values the code uses.
func genConstTables() string {
	var b strings.Builder
	table := func(title, col string, cs []namedConst, hex bool) {
		fmt.Fprintf(&b, "%s\n\n| %s | value |\n| --- | ---: |\n", title, col)
		for _, c := range cs {
			if hex {
				fmt.Fprintf(&b, "| `%s` | 0x%x |\n", c.name, c.value)
			} else {
				fmt.Fprintf(&b, "| `%s` | %d |\n", c.name, c.value)
			}
		}
		b.WriteString("\n")
	}
	table("Verdicts (the policy's return value, r0):", "verdict", sortedConsts(abi.VerdictNames), false)
	table("Role bits (the values of `trusted_keys`):", "role", sortedConsts(abi.RoleBits), true)
	table("`form`:", "name", sortedConsts(formNames), false)
	table("`covers` (0: the program is unsigned):", "name", sortedConsts(coversNames), false)
	table("`token_scope` bits:", "scope", scopeBits, true)
	table("`reads` bits:", "class", readBits, true)
	return strings.TrimSuffix(b.String(), "\n")
}

// genCHeader is gatekeeper.h: the struct for clang policies, with
// static assertions that make any C compiler check it against the ABI.
func genCHeader() string {
	var b strings.Builder
	fmt.Fprintf(&b, `/* Generated from gatekeeper/abi by
 * go test ./gatekeeper -run TestABIDoc -update-abi-doc; do not edit.
 *
 * The context of a tracebroker gatekeeper policy: struct tb_request, ABI
 * version %d, little-endian, %d bytes, read-only. See gatekeeper/ABI.md.
 * Only fixed-size C types are used, so it needs no other header. */
#ifndef TRACEBROKER_GATEKEEPER_H
#define TRACEBROKER_GATEKEEPER_H

#define TB_ABI_VERSION %d
#define TB_REQUEST_SIZE %d
#define TB_KEY_ID_SIZE %d /* 64 hex digits, NUL-padded */

`, abi.Version, abi.Size, abi.Version, abi.Size, abi.KeyIDSize)
	defines := func(comment, prefix string, cs []namedConst, hex bool) {
		fmt.Fprintf(&b, "/* %s */\n", comment)
		for _, c := range cs {
			if hex {
				fmt.Fprintf(&b, "#define TB_%s%s 0x%x\n", prefix, cName(c.name), c.value)
			} else {
				fmt.Fprintf(&b, "#define TB_%s%s %d\n", prefix, cName(c.name), c.value)
			}
		}
		b.WriteString("\n")
	}
	defines("Verdicts: what a policy returns.", "", sortedConsts(abi.VerdictNames), false)
	defines("Role bits: the values of trusted_keys.", "ROLE_", sortedConsts(abi.RoleBits), true)
	defines("form", "FORM_", sortedConsts(formNames), false)
	defines("covers (0: unsigned)", "COVERS_", sortedConsts(coversNames), false)
	defines("token_scope bits", "SCOPE_", scopeBits, true)
	defines("reads bits", "READ_", readBits, true)

	b.WriteString("struct tb_request {\n")
	off := 0
	pad := func(to int) {
		if to > off {
			fmt.Fprintf(&b, "\tunsigned char _pad%d[%d];\n", off, to-off)
		}
	}
	for _, f := range abi.Fields {
		pad(f.Offset)
		typ, suffix := cType(f)
		fmt.Fprintf(&b, "\t%s %s%s; /* %d: %s */\n", typ, f.Name, suffix, f.Offset, strings.ReplaceAll(f.Doc, "*/", "* /"))
		off = f.Offset + f.Size
	}
	pad(abi.Size)
	b.WriteString("};\n\n")
	fmt.Fprintf(&b, "_Static_assert(sizeof(struct tb_request) == TB_REQUEST_SIZE, \"struct tb_request is not ABI version %d\");\n", abi.Version)
	for _, f := range abi.Fields {
		fmt.Fprintf(&b, "_Static_assert(__builtin_offsetof(struct tb_request, %s) == %d, \"%s\");\n", f.Name, f.Offset, f.Name)
	}
	b.WriteString("\n#endif\n")
	return b.String()
}

// regenerate replaces each generated section of doc.
func regenerate(doc string, sections map[string]string) (string, error) {
	for _, name := range slices.Sorted(maps.Keys(sections)) {
		begin, end := fmt.Sprintf(genBegin, name), fmt.Sprintf(genEnd, name)
		i := strings.Index(doc, begin)
		j := strings.Index(doc, end)
		if i < 0 || j < i {
			return "", fmt.Errorf("no %q ... %q section", begin, end)
		}
		doc = doc[:i+len(begin)] + "\n" + sections[name] + doc[j:]
	}
	return doc, nil
}

func abiDocSections() map[string]string {
	return map[string]string{
		"fields":    genFieldTable(),
		"constants": genConstTables() + "\n",
		"c":         "```c\n" + genCHeader() + "```\n",
	}
}

// TestABIDoc keeps ABI.md and gatekeeper.h what abi.Fields says: a
// policy author reads them, and a C policy includes the header.
func TestABIDoc(t *testing.T) {
	files := []struct {
		path string
		want func(old string) (string, error)
	}{
		{"ABI.md", func(old string) (string, error) { return regenerate(old, abiDocSections()) }},
		{"gatekeeper.h", func(string) (string, error) { return genCHeader(), nil }},
	}
	for _, f := range files {
		old, err := os.ReadFile(f.path)
		if err != nil && !(*updateABIDoc && os.IsNotExist(err)) {
			t.Fatal(err)
		}
		want, err := f.want(string(old))
		if err != nil {
			t.Fatalf("%s: %v", f.path, err)
		}
		if want == string(old) {
			continue
		}
		if *updateABIDoc {
			if err := os.WriteFile(f.path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("%s is out of date with gatekeeper/abi: run go test ./gatekeeper -run TestABIDoc -update-abi-doc", f.path)
	}
}

// TestCHeaderCompiles has a C compiler check gatekeeper.h's static
// assertions: the C layout of struct tb_request is abi.Fields'.
func TestCHeaderCompiles(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "check.c")
	if err := os.WriteFile(src, []byte(genCHeader()+"int main(void) { return 0; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	compilers := [][]string{
		{"clang", "-target", "bpf", "-fsyntax-only", "-Wall", "-Werror", src},
		{"cc", "-fsyntax-only", "-Wall", "-Werror", src},
	}
	ran := false
	for _, c := range compilers {
		if _, err := exec.LookPath(c[0]); err != nil {
			continue
		}
		ran = true
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", strings.Join(c, " "), err, out)
		}
	}
	if !ran {
		t.Skip("no C compiler (clang, cc)")
	}
}
