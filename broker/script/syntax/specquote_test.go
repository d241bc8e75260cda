package syntax

import (
	"slices"
	"strings"
	"testing"
)

func TestSplitSpec(t *testing.T) {
	tests := []struct {
		spec string
		want []string
	}{
		{"uprobe:/bin/bash:readline", []string{"uprobe", "/bin/bash", "readline"}},
		{`uprobe:/bin/bash:"echo_builtin"+0`, []string{"uprobe", "/bin/bash", "echo_builtin+0"}},
		{`usdt:./p:test:"\"probe1\""`, []string{"usdt", "./p", "test", `"probe1"`}},
		{`uprobe:lib:"ns::f(int)"`, []string{"uprobe", "lib", "ns::f(int)"}},
		{`uprobe:"/a b/c":f`, []string{"uprobe", "/a b/c", "f"}},
		{`uprobe:lib:"a"b"c"`, []string{"uprobe", "lib", "abc"}},
		{`uprobe:lib:"\x41\101\\"`, []string{"uprobe", "lib", `AA\`}},
		{`uprobe:lib:""`, []string{"uprobe", "lib", ""}},
		{"BEGIN", []string{"BEGIN"}},
		{"k:", []string{"k", ""}},
		// Unterminated (the scanner reports it): kept as written.
		{`uprobe:lib:"f`, []string{"uprobe", "lib", `"f`}},
		{`uprobe:lib:"f\"`, []string{"uprobe", "lib", `"f\"`}},
	}
	for _, tt := range tests {
		if got := SplitSpec(tt.spec); !slices.Equal(got, tt.want) {
			t.Errorf("SplitSpec(%q) = %q, want %q", tt.spec, got, tt.want)
		}
	}
}

func TestParseQuotedSpec(t *testing.T) {
	tests := []struct {
		src      string
		provider string
		parts    []string
		err      string // a substring of the error, "" for none
	}{
		{`uprobe:/bin/bash:"echo_builtin"+0 { exit() }`, "uprobe", []string{"/bin/bash", "echo_builtin+0"}, ""},
		{`u:/bin/bash:"echo_builtin" /pid/ { exit() }`, "uprobe", []string{"/bin/bash", "echo_builtin"}, ""},
		{`usdt:./p:test:"\"probe1\""{ exit() }`, "usdt", []string{"./p", "test", `"probe1"`}, ""},
		{`uprobe:lib:"a b{,}" , BEGIN { exit() }`, "uprobe", []string{"lib", "a b{,}"}, ""},
		{`uprobe:lib:"a:b":c { exit() }`, "uprobe", []string{"lib", "a:b", "c"}, ""},
		{"uprobe:lib:\"f\n\" { exit() }", "", nil, "unterminated string"},
		{`uprobe:lib:"f\q" { exit() }`, "", nil, "invalid escape"},
		// A quote cannot begin the provider: it is no spec.
		{`"x":f { exit() }`, "", nil, "syntax error"},
	}
	for _, tt := range tests {
		f, err := Parse("t", []byte(tt.src))
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Parse(%q): error %v, want one with %q", tt.src, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.src, err)
			continue
		}
		s := f.Probes[0].Specs[0]
		if s.Provider != tt.provider || !slices.Equal(s.Parts, tt.parts) {
			t.Errorf("Parse(%q): spec %s %q, want %s %q", tt.src, s.Provider, s.Parts, tt.provider, tt.parts)
		}
	}
}

// FuzzSplitSpec: any spec splits without a panic; one without quotes
// splits at every ':', and quoting a part that has no '"' or '\' gives
// that part back whole.
func FuzzSplitSpec(f *testing.F) {
	for _, s := range []string{`uprobe:/bin/bash:"echo_builtin"+0`, `usdt:./p:test:"\"probe1\""`, `u:lib:"a:b"`, `"`, `:"\`, `a:"\x4`, `k:"\777"`} {
		f.Add(s, "part")
	}
	f.Fuzz(func(t *testing.T, spec, part string) {
		got := SplitSpec(spec)
		if !strings.Contains(spec, `"`) && !slices.Equal(got, strings.Split(spec, ":")) {
			t.Fatalf("SplitSpec(%q) = %q, want strings.Split's", spec, got)
		}
		if strings.ContainsAny(part, "\"\\\n") {
			return
		}
		if got := SplitSpec(`uprobe:lib:"` + part + `"`); len(got) != 3 || got[2] != part {
			t.Fatalf("SplitSpec of quoted %q = %q", part, got)
		}
	})
}
