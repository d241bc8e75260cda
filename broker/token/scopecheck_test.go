package token

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/broker/program"
)

// TestTokenCheckScopes: an issuer's typo is refused with what was
// meant, not issued as a token that grants nothing.
func TestTokenCheckScopes(t *testing.T) {
	for _, tt := range []struct {
		name, scope, err string // err "": accepted
	}{
		{"item2/known_kinds", "trace probe:tracepoint:syscalls:* probe:uprobe:/usr/bin/*:* gen:opensnoop read:user read:kernel", ""},
		{"item2/every_probe", "trace probe:**", ""},
		{"item2/one_star", "trace probe:*", ""},
		{"item2/glob_over_types", "trace probe:u*probe:/bin/*:*", ""},
		{"item2/class_over_types", "trace probe:[tu]*:*", ""},
		{"item2/interval", "trace probe:interval:ms:*", ""},
		{"item18/software", "trace probe:software:page-faults:*", ""},
		{"item18/short_software", "trace probe:s:faults:*",
			`scope "probe:s:faults:*" matches no probe: probe names use the long type name, software (write probe:software:faults:*)`},
		{"item2/typo_kind", "trace prob:tracepoint:*",
			`unknown scope "prob:tracepoint:*": the scopes are trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel (did you mean "probe:tracepoint:*"?)`},
		{"item2/typo_trace", "tarce probe:**",
			`unknown scope "tarce": the scopes are trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel (did you mean "trace"?)`},
		{"item2/typo_gen", "trace gne:opensnoop",
			`unknown scope "gne:opensnoop": the scopes are trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel (did you mean "gen:opensnoop"?)`},
		{"item2/unrelated_word", "trace openid",
			`unknown scope "openid": the scopes are trace, probe:PATTERN, gen:PATTERN, read:user, read:kernel`},
		{"item2/typo_read", "trace read:usr", `unknown scope "read:usr": the memory scopes are read:user and read:kernel`},
		{"item2/unknown_probe_type", "trace probe:usdt:do_sys_open",
			`scope "probe:usdt:do_sys_open" matches no probe tracebroker attaches: the probe types are interval, kfunc, kprobe, kretfunc, kretprobe, profile, rawtracepoint, software, tp_btf, tracepoint, uprobe, uretprobe`},
		{"item2/begin_needs_no_scope", "trace probe:BEGIN",
			`scope "probe:BEGIN" matches no probe tracebroker attaches: the probe types are interval, kfunc, kprobe, kretfunc, kretprobe, profile, rawtracepoint, software, tp_btf, tracepoint, uprobe, uretprobe`},
		{"item2/short_type", "trace probe:t:syscalls:*",
			`scope "probe:t:syscalls:*" matches no probe: probe names use the long type name, tracepoint (write probe:tracepoint:syscalls:*)`},
		{"item2/glob_of_no_type", "trace probe:x*",
			`scope "probe:x*" matches no probe tracebroker attaches: the probe types are interval, kfunc, kprobe, kretfunc, kretprobe, profile, rawtracepoint, software, tp_btf, tracepoint, uprobe, uretprobe`},
		{"item4/kfunc", "trace probe:kfunc:vmlinux:vfs_* probe:kretfunc:*:vfs_read probe:kfunc:*", ""},
		{"item4/fentry_alias", "trace probe:fentry:vmlinux:vfs_read",
			`scope "probe:fentry:vmlinux:vfs_read" matches no probe: probe names use the long type name, kfunc (write probe:kfunc:vmlinux:vfs_read)`},
		{"item4/fexit_alias", "trace probe:fexit:*",
			`scope "probe:fexit:*" matches no probe: probe names use the long type name, kretfunc (write probe:kretfunc:*)`},
		{"item4/kfunc_without_module", "trace probe:kfunc:vfs_read",
			`scope "probe:kfunc:vfs_read" names no module: kfunc probe names carry it (kfunc:vmlinux:vfs_read); write probe:kfunc:vmlinux:vfs_read or probe:kfunc:*:vfs_read`},
		{"item2/type_without_rest", "trace probe:tracepoint",
			`scope "probe:tracepoint" matches no probe tracebroker attaches: the probe types are interval, kfunc, kprobe, kretfunc, kretprobe, profile, rawtracepoint, software, tp_btf, tracepoint, uprobe, uretprobe`},
		{"item3/kprobe", "trace probe:kprobe:do_sys_open", ""},
		{"item3/kretprobe_glob", "trace probe:kretprobe:vfs_*", ""},
		{"item3/short_kprobe", "trace probe:k:vfs_read",
			`scope "probe:k:vfs_read" matches no probe: probe names use the long type name, kprobe (write probe:kprobe:vfs_read)`},
		{"item2/empty_glob", "trace probe:", `scope "probe:" has an empty pattern`},
		{"item2/empty_gen_glob", "trace gen:", `scope "gen:" has an empty pattern`},
		{"item2/unbalanced_class", "trace probe:tracepoint:sys[calls:*", `scope "probe:tracepoint:sys[calls:*": malformed pattern "tracepoint:sys[calls:*": unterminated character class`},
		{"item2/control_chars", "trace prob:\x1b]0;x\x07", `unknown scope "prob:\x1b]0;x\a"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CheckScopes(tt.scope)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.err != "" && err == nil:
				t.Fatalf("accepted, want %q", tt.err)
			case tt.err != "" && !strings.HasPrefix(err.Error(), tt.err):
				t.Fatalf("error\n%q\nwant\n%q", err, tt.err)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\x1b\x07\n") {
				t.Errorf("control characters in %q", err)
			}
		})
	}
}

// TestTokenProbeTypes: ProbeTypes are the kinds the compiler makes whose
// names the daemon checks (all but BEGIN, END and the gatekeeper's).
func TestTokenProbeTypes(t *testing.T) {
	var kinds []string
	for k := program.Begin; k.String() != "unknown"; k++ {
		switch k {
		case program.Begin, program.End, program.Gatekeeper:
			continue
		}
		kinds = append(kinds, k.String())
	}
	slices.Sort(kinds)
	if !slices.Equal(kinds, ProbeTypes) {
		t.Errorf("program's probe kinds %v, ProbeTypes %v", kinds, ProbeTypes)
	}
}

// TestTokenVerifyKeepsUnknownScopes: the verifier stays lenient where
// the issuer is strict: a word another issuer put in a token grants
// nothing and refuses nothing.
func TestTokenVerifyKeepsUnknownScopes(t *testing.T) {
	k := genKey(t)
	raw := craft(k.Key, goodHeader(k), with(goodClaims(), "scope", "trace openid probe:tracepoint:syscalls:*"))
	v, err := NewVerifier(Config{Keys: []*attest.PublicKey{k.Public()}, Now: fixed(t0.Add(time.Minute))})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := v.Verify(raw)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(tok.Scopes.Other, []string{"openid"}) {
		t.Errorf("Other %v", tok.Scopes.Other)
	}
	if _, err := CheckScopes(tok.Scopes.String()); err == nil {
		t.Error("CheckScopes accepted openid")
	}
}

// FuzzCheckScopes: CheckScopes accepts only what ParseScopes accepts,
// with no unknown word, and refuses a probe pattern only when no probe
// name of a known type could match it.
func FuzzCheckScopes(f *testing.F) {
	for _, s := range []string{"trace probe:**", "prob:tracepoint:*", "probe:t:syscalls:*", "probe:[tu]*:*", "probe:k*", "gen:x tarce", "probe:tracepoint"} {
		f.Add(s, "syscalls:sys_enter_openat")
	}
	f.Fuzz(func(t *testing.T, s, rest string) {
		sc, err := CheckScopes(s)
		parsed, perr := ParseScopes(s)
		if err == nil {
			if perr != nil || len(sc.Other) != 0 || sc.String() != parsed.String() {
				t.Fatalf("%q: CheckScopes %q, ParseScopes %q %v", s, sc.String(), parsed.String(), perr)
			}
			return
		}
		if perr != nil {
			return
		}
		for _, p := range parsed.Probes {
			if checkProbeType(p) != nil {
				for _, typ := range ProbeTypes {
					if ok, _ := Match(p, typ+":"+rest); ok && rest != "" {
						t.Fatalf("refused %q, which matches %q", p, typ+":"+rest)
					}
				}
			}
		}
	})
}
