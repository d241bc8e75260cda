package btsuite

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     []Test
		err      string
	}{
		{
			name: "two tests, a comment, words joined by one space",
			in:   "NAME a\nPROG BEGIN {  exit(); }\nEXPECT ^x$\nTIMEOUT 5\n\n# c\nNAME b\nRUN {{BPFTRACE}} -l\nEXPECT y\nTIMEOUT 0\nWILL_FAIL\nREQUIRES ls\nREQUIRES_FEATURE btf !kfunc\nENV A=1 B=2\n",
			want: []Test{
				{Suite: "s", Name: "a", Line: 1, Prog: "BEGIN { exit(); }", Expect: "^x$", Timeout: 5},
				{Suite: "s", Name: "b", Line: 7, Run: "{{BPFTRACE}} -l", Expect: "y", WillFail: true,
					Requires: []string{"ls"}, Features: []string{"btf"}, NotFeatures: []string{"kfunc"}, Env: [][2]string{{"A", "1"}, {"B", "2"}}},
			},
		},
		{
			name: "the last test ends with the file, with no newline",
			in:   "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1",
			want: []Test{{Suite: "s", Name: "a", Line: 1, Prog: "x", Expect: "y", Timeout: 1}},
		},
		{
			name: "a comment as the last line does not end the last test (as in parser.py)",
			in:   "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\n# end",
		},
		{
			name: "another machine's test is dropped",
			in:   "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nARCH s390x|ppc64\n\nNAME b\nPROG x\nEXPECT y\nTIMEOUT 1\nARCH aarch64 | x86_64\n",
			want: []Test{{Suite: "s", Name: "b", Line: 7, Prog: "x", Expect: "y", Timeout: 1, Arch: []string{"aarch64", "x86_64"}}},
		},
		{name: "no name", in: "PROG x\nEXPECT y\nTIMEOUT 1\n", err: "s:1: test NAME is required"},
		{name: "no program", in: "NAME a\nEXPECT y\nTIMEOUT 1\n", err: "RUN or PROG is required"},
		{name: "both", in: "NAME a\nRUN x\nPROG x\nEXPECT y\nTIMEOUT 1\n", err: "RUN and PROG both specified"},
		{name: "no expect", in: "NAME a\nPROG x\nTIMEOUT 1\n", err: "EXPECT is required"},
		{name: "no timeout", in: "NAME a\nPROG x\nEXPECT y\n", err: "TIMEOUT is required"},
		{name: "bad timeout", in: "NAME a\nPROG x\nEXPECT y\nTIMEOUT soon\n", err: `s:4: TIMEOUT "soon" is not a number`},
		{name: "unknown field", in: "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nEXPECTED z\n", err: "s:5: field EXPECTED is unknown"},
		{name: "unknown feature", in: "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nREQUIRES_FEATURE warp\n", err: `"warp" is invalid for REQUIRES_FEATURE`},
		{name: "bad env", in: "NAME a\nPROG x\nEXPECT y\nTIMEOUT 1\nENV A\n", err: `ENV "A" is not NAME=VALUE`},
		{name: "blank line of spaces", in: "NAME a\n  \nPROG x\n", err: "s:2: a line of blanks"},
		{name: "a regexp RE2 cannot run", in: "NAME a\nPROG x\nEXPECT (?<=a)b\nTIMEOUT 1\n", err: "EXPECT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse("s", []byte(tc.in), "x86_64")
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// TestLoadVendored reads the whole vendored suite: every file parses,
// and the count is the engine's on this machine's architecture.
func TestLoadVendored(t *testing.T) {
	tests, err := Load("../../testdata/bpftrace-0.17", "x86_64")
	if err != nil {
		t.Fatal(err)
	}
	// 525 tests, 18 of them for other architectures.
	if len(tests) != 507 {
		t.Errorf("%d tests, want 507", len(tests))
	}
	ids := map[string]bool{}
	for _, tt := range tests {
		if ids[tt.ID()] {
			t.Errorf("two tests are %s", tt.ID())
		}
		ids[tt.ID()] = true
	}
	if !ids["probe.uprobe_offset#2"] {
		t.Error("no probe.uprobe_offset#2: the suite names two tests probe.uprobe_offset")
	}
	for i := 1; i < len(tests); i++ {
		a, b := tests[i-1], tests[i]
		if a.Suite > b.Suite || a.Suite == b.Suite && a.Name > b.Name {
			t.Fatalf("not in the engine's order: %s before %s", a.ID(), b.ID())
		}
	}
}

func TestExpect(t *testing.T) {
	for _, tc := range []struct {
		pattern, out string
		multiline    bool
		want         bool
	}{
		{`^@: 1$`, "Attaching 1 probe...\n@: 1\n", true, true},
		{`^@: 1$`, "Attaching 1 probe...\n@: 1\n", false, false},
		{`^@: 1$`, "@: 1\n", false, true}, // Python's $ before a final newline
		{`^@: 1$`, "@: 1\n\n", false, false},
		{`^((?!file not found).)*$`, "file not found\n", true, true}, // the empty line after it
		{`^((?!file not found).)*$`, "file not found", true, false},
		{`^((?!file not found).)*$`, "x: file not found\nok", true, true},
		{`^((?!file not found).)*$`, "all fine\n", false, true},
		{`^((?!file not found).)*$`, "a\nfile not found\n", false, false},
	} {
		m, err := compileExpect(tc.pattern, tc.multiline)
		if err != nil {
			t.Fatal(err)
		}
		if got := m(tc.out); got != tc.want {
			t.Errorf("%q in %q (multiline %v): %v, want %v", tc.pattern, tc.out, tc.multiline, got, tc.want)
		}
	}
}

func TestVersions(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"4.18", "6.18.44-fc-v1272", -1},
		{"5.5", "5.5.0", -1},
		{"5.5", "5.5", 0},
		{"6.12", "6.1.0-28-amd64", 1},
		{"6.1", "6.1.0-28-amd64", -1},
		{"6.1.1", "6.1.0-28-amd64", 1},
	} {
		if got := compareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("compareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("NAME a\nPROG BEGIN { exit(); }\nEXPECT ^x$\nTIMEOUT 5\n\nNAME b\nRUN {{BPFTRACE}} -l\nEXPECT y\nTIMEOUT 0\nREQUIRES_FEATURE btf !kfunc\nENV A=1\nARCH x86_64\n"))
	f.Add([]byte("# c\nNAME a\nRUN x\nEXPECT ^((?!file not found).)*$\nTIMEOUT 1"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tests, err := Parse("f", data, "x86_64")
		if err != nil {
			return
		}
		for _, tt := range tests {
			if tt.Name == "" || (tt.Run == "") == (tt.Prog == "") || tt.Expect == "" || tt.Timeout < 0 {
				t.Fatalf("accepted an incomplete test: %+v", tt)
			}
			if _, err := compileExpect(tt.Expect, false); err != nil {
				t.Fatalf("accepted an EXPECT that does not compile: %v", err)
			}
		}
	})
}

func TestMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, id string
		want        bool
	}{
		{"*", "call.iter:task", true},
		{"*", "probe.tracepoint_syscalls/sys_enter", true},
		{"probe.*", "probe.kprobe", true},
		{"probe.*", "probes.kprobe", false},
		{"call.s?m", "call.sum", true},
	} {
		if got := Match(tc.pattern, tc.id); got != tc.want {
			t.Errorf("Match(%q, %q) = %v", tc.pattern, tc.id, got)
		}
	}
}
