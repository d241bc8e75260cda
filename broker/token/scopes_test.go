package token

import (
	"path"
	"reflect"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/gatekeeper/abi"
)

func TestTokenMatch(t *testing.T) {
	for _, tc := range []struct {
		pattern, s string
		want       bool
	}{
		{"tracepoint:syscalls:*", "tracepoint:syscalls:sys_enter_openat", true},
		{"tracepoint:syscalls:*", "tracepoint:sched:sched_switch", false},
		{"tracepoint:syscalls:*", "tracepoint:syscalls:", true},
		{"uprobe:/usr/bin/*:*", "uprobe:/usr/bin/bash:readline", true},
		{"uprobe:/usr/bin/*:*", "uprobe:/usr/bin/x/y:f", false},
		{"uprobe:/usr/bin/**:*", "uprobe:/usr/bin/x/y:f", true},
		{"uprobe:/usr/bin/**", "uprobe:/usr/bin/x/y:f", true},
		{"uprobe:/usr/bin/*", "uprobe:/usr/bin/bash:readline", true},
		{"uprobe:**:readline", "uprobe:/bin/bash:readline", true},
		{"uprobe:**:readline", "uprobe:/bin/bash:readline2", false},
		{"**", "", true},
		{"**", "uprobe:/a/b/c:d", true},
		{"*", "", true},
		{"*", "kprobe:do_sys_open", true},
		{"*", "uprobe:/bin/sh:main", false}, // * never crosses '/'
		{"interval:*", "interval:s:1", true},
		{"interval:*", "interval:", true},
		{"interval:*", "profile:hz:99", false},
		// anchored at both ends
		{"syscalls", "tracepoint:syscalls:x", false},
		{"tracepoint:syscalls", "tracepoint:syscalls:x", false},
		{"syscalls:x", "tracepoint:syscalls:x", false},
		{"", "", true},
		{"", "a", false},
		// ?
		{"kprobe:vfs_?ead", "kprobe:vfs_read", true},
		{"kprobe:vfs_?ead", "kprobe:vfs_ead", false},
		{"kprobe:vfs_?ead", "kprobe:vfs_rread", false},
		{"a?b", "a/b", false},
		{"a?b", "aéb", true}, // one character, not one byte
		// classes
		{"interval:[ms]:*", "interval:s:1", true},
		{"interval:[ms]:*", "interval:ms:1", false},
		{"interval:[^ms]:*", "interval:u:1", true},
		{"interval:[^ms]:*", "interval:m:1", false},
		{"cpu[0-3]", "cpu2", true},
		{"cpu[0-3]", "cpu4", false},
		{"cpu[0-35-7]", "cpu6", true},
		{"[^a]", "/", false}, // a class never matches '/'
		{`[\-]`, "-", true},
		{`[\]]`, "]", true},
		{`[\^a]`, "^", true},
		{"[é]", "é", true},
		// escapes
		{`a\*`, "a*", true},
		{`a\*`, "ab", false},
		{`a\?`, "a?", true},
		{`a\\`, `a\`, true},
		{`a\[`, "a[", true},
		{`\/`, "/", true},
		// stars combine
		{"*a*b", "xxaxxb", true},
		{"*a*b", "xxaxx", false},
		{"a**b", "a/x/yb", true},
		{"a*/*b", "ax/yb", true},
		{"a*/*b", "a/x/b", false},
		{"*:*:*", "tracepoint:syscalls:sys_enter_openat", true},
		{"*:*:*", "tracepoint:syscalls", false},
		// subject must be valid UTF-8
		{"**", "\xff", false},
		{"?", "\xff", false},
	} {
		got, err := Match(tc.pattern, tc.s)
		if err != nil || got != tc.want {
			t.Errorf("Match(%q, %q) = %v, %v; want %v", tc.pattern, tc.s, got, err, tc.want)
		}
	}
}

func TestTokenMatchMalformed(t *testing.T) {
	for _, p := range []string{
		"***", "a***b", `a\`, "[", "[a", "[]", "[^]", "[z-a]", "[a-]", "[-a]", "[a-b-c]", "[/]", "[^/]", `[\/]`, "[[]", `[a\`,
		"\xff", strings.Repeat("a", MaxPatternLen+1),
	} {
		if ok, err := Match(p, "a"); err == nil || ok {
			t.Errorf("Match(%q) = %v, %v; want an error", p, ok, err)
		}
	}
	if _, err := Match(strings.Repeat("a", MaxPatternLen), "a"); err != nil {
		t.Errorf("pattern of the maximum length: %v", err)
	}
}

// TestMatchAgreesWithPathMatch checks the shared subset (no '**', no
// '/' in classes) against the standard library's matcher.
func TestTokenMatchAgreesWithPathMatch(t *testing.T) {
	patterns := []string{"*", "a*", "*a", "a*b*c", "?", "a?c", "[abc]*", "[^a]?", "*/*", "a/*/c", `\*`, "*:*"}
	subjects := []string{"", "a", "b", "abc", "aXbYc", "a/b", "a/b/c", "*", "x:y", "ab/c", "/", "ac"}
	for _, p := range patterns {
		for _, s := range subjects {
			want, _ := path.Match(p, s)
			if strings.Contains(p, "[^") && strings.Contains(s, "/") {
				continue // path.Match lets a negated class match '/'; we do not
			}
			got, err := Match(p, s)
			if err != nil || got != want {
				t.Errorf("Match(%q, %q) = %v, %v; path.Match says %v", p, s, got, err, want)
			}
		}
	}
}

// TestMatchHostile: patterns that make backtracking matchers exponential
// cost at most (len(s)+1)·(tokens+1) position visits here.
func TestTokenMatchHostile(t *testing.T) {
	long := strings.Repeat("a", 20000)
	for _, tc := range []struct{ pattern, s string }{
		{strings.Repeat("*a", 100) + "*b", long},
		{strings.Repeat("**a", 100) + "**b", long},
		{strings.Repeat("a*", 200) + "b", long},
		{strings.Repeat("?", 500), long},
		{strings.Repeat("*", 1) + strings.Repeat("[a]*", 100) + "b", long},
		{strings.Repeat("*a", 256), strings.Repeat("a/", 10000)},
	} {
		toks, err := compileGlob(tc.pattern)
		if err != nil {
			t.Fatal(err)
		}
		steps := 0
		if matchGlob(toks, tc.s, &steps) {
			t.Errorf("%.20q… matched", tc.pattern)
		}
		if bound := (len(tc.s) + 1) * (len(toks) + 1); steps > bound {
			t.Errorf("%.20q…: %d steps, more than the bound %d", tc.pattern, steps, bound)
		}
	}
	// A hostile pattern that does match still finishes.
	p := strings.Repeat("*a", 200)
	if ok, err := Match(p, long); err != nil || !ok {
		t.Errorf("Match(%.20q…, a…) = %v, %v", p, ok, err)
	}
}

func TestTokenParseScopes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Scopes
		bits uint64
		str  string
	}{
		{"", Scopes{}, 0, ""},
		{"trace", Scopes{Trace: true}, abi.ScopeTrace, "trace"},
		{"  trace\ttrace\n", Scopes{Trace: true}, abi.ScopeTrace, "trace"},
		{
			"gen:opensnoop probe:uprobe:/usr/bin/*:* trace probe:tracepoint:syscalls:* gen:opensnoop",
			Scopes{Trace: true, Probes: []string{"tracepoint:syscalls:*", "uprobe:/usr/bin/*:*"}, Gens: []string{"opensnoop"}},
			abi.ScopeTrace | abi.ScopeProbe | abi.ScopeGen,
			"trace probe:tracepoint:syscalls:* probe:uprobe:/usr/bin/*:* gen:opensnoop",
		},
		{"TRACE openid probe:**", Scopes{Probes: []string{"**"}, Other: []string{"TRACE", "openid"}}, abi.ScopeProbe, "probe:** TRACE openid"},
		{"gen:*snoop", Scopes{Gens: []string{"*snoop"}}, abi.ScopeGen, "gen:*snoop"},
		{
			"read:kernel x read:user trace read:user probe:**",
			Scopes{Trace: true, Probes: []string{"**"}, ReadUser: true, ReadKernel: true, Other: []string{"x"}},
			abi.ScopeTrace | abi.ScopeProbe | abi.ScopeReadUser | abi.ScopeReadKernel,
			"trace probe:** read:user read:kernel x",
		},
		{"read:user", Scopes{ReadUser: true}, abi.ScopeReadUser, "read:user"},
	} {
		got, err := ParseScopes(tc.in)
		if err != nil {
			t.Errorf("ParseScopes(%q): %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) || got.Bits() != tc.bits || got.String() != tc.str {
			t.Errorf("ParseScopes(%q) = %+v bits %d %q; want %+v bits %d %q", tc.in, got, got.Bits(), got.String(), tc.want, tc.bits, tc.str)
		}
		again, err := ParseScopes(got.String())
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Errorf("String of %q does not round-trip: %+v %v", tc.in, again, err)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{"probe:", "empty pattern"},
		{"trace gen:", "empty pattern"},
		{"probe:[a", "unterminated character class"},
		{"gen:a***", "'*' in a row"},
		{"probe:" + strings.Repeat("x", MaxPatternLen+1), "longer than"},
		{strings.Repeat("x", 600), "longer than"},
		{strings.Repeat("trace ", MaxScopes+1), "the limit is 64"},
		{"trace read:kernal", `unknown scope "read:kernal": the memory scopes are read:user and read:kernel`},
		{"read:", "unknown scope"},
		{"read:*", "unknown scope"},
	} {
		if _, err := ParseScopes(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ParseScopes(%.30q): %v, want %q", tc.in, err, tc.want)
		}
	}
	if _, err := ParseScopes(strings.TrimSpace(strings.Repeat("trace ", MaxScopes))); err != nil {
		t.Errorf("%d words: %v", MaxScopes, err)
	}
}

func TestTokenAllows(t *testing.T) {
	sc, err := ParseScopes("trace probe:tracepoint:syscalls:sys_enter_* probe:uprobe:/usr/bin/*:* gen:opensnoop gen:tcp*")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		spec string
		want bool
	}{
		{"tracepoint:syscalls:sys_enter_openat", true},
		{"tracepoint:syscalls:sys_exit_openat", false},
		{"uprobe:/usr/bin/bash:readline", true},
		{"uprobe:/usr/bin/x/y:f", false},
		{"uprobe:/usr/lib/libc.so.6:malloc", false},
		{"kprobe:do_sys_open", false},
	} {
		if got := sc.AllowsProbe(tc.spec); got != tc.want {
			t.Errorf("AllowsProbe(%q) = %v", tc.spec, got)
		}
	}
	for _, tc := range []struct {
		name string
		want bool
	}{{"opensnoop", true}, {"tcpconnect", true}, {"execsnoop", false}, {"opensnoop2", false}} {
		if got := sc.AllowsGen(tc.name); got != tc.want {
			t.Errorf("AllowsGen(%q) = %v", tc.name, got)
		}
	}
	// A hand-built Scopes with a malformed pattern grants nothing.
	bad := Scopes{Probes: []string{"[", "***"}, Gens: []string{"["}}
	if bad.AllowsProbe("[") || bad.AllowsGen("[") {
		t.Error("malformed pattern matched")
	}
	if (Scopes{Other: []string{"trace:all"}}).Grants() {
		t.Error("unknown scope grants something")
	}
}
