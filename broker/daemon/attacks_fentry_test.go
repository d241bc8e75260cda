package daemon

import (
	"path"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
)

// fentryKernel is a kernel with three functions in vmlinux and one
// module that has a function of a vmlinux function's name: what a
// token holder's kfunc/fentry spellings expand to there.
type fentryKernel struct{}

var fentryKernelFuncs = [][2]string{{"evilmod", "vfs_read"}, {"vmlinux", "security_file_open"}, {"vmlinux", "vfs_read"}, {"vmlinux", "vfs_write"}}

func (fentryKernel) Available() error { return nil }

func (fentryKernel) Match(mod, fn string) ([][2]string, error) {
	var out [][2]string
	for _, f := range fentryKernelFuncs {
		okm, _ := path.Match(mod, f[0])
		okf, _ := path.Match(fn, f[1])
		if okm && okf {
			out = append(out, f)
		}
	}
	return out, nil
}

func (fentryKernel) Proto(mod, fn string) ([]compile.Field, *compile.Field, error) {
	return []compile.Field{{Name: "file", Type: "struct file *", Size: 8, Kind: compile.FieldPtr}},
		&compile.Field{Name: "retval", Type: "ssize_t", Offset: 8, Size: 8, Signed: true, Kind: compile.FieldInt}, nil
}

// TestAttacksFentry: a token holder's probe: scopes judge a kfunc probe
// by its canonical name, kfunc:MODULE:FUNC, whatever spelling the script
// used (fentry:, f:, no module, a wildcard): an alias reaches nothing
// the canonical name is not allowed, and a program whose name says one
// function while its fields attach another is refused.
func TestAttacksFentry(t *testing.T) {
	for _, tt := range []struct {
		name, scopes, script string
		want                 string // "": allowed; else the refusal contains it
	}{
		{"item4/canonical_allowed", "trace probe:kfunc:vmlinux:vfs_read", `kfunc:vmlinux:vfs_read { @ = count(); }`, ""},
		{"item4/fentry_alias_is_canonical", "trace probe:kfunc:vmlinux:vfs_read", `fentry:vmlinux:vfs_read { @ = count(); }`, ""},
		{"item4/short_alias_is_canonical", "trace probe:kretfunc:vmlinux:vfs_read", `fr:vmlinux:vfs_read { @ = retval; }`, ""},
		{"item4/alias_does_not_bypass_type", "trace probe:kfunc:vmlinux:vfs_read", `fexit:vmlinux:vfs_read { @ = count(); }`, "does not allow probe kretfunc:vmlinux:vfs_read"},
		{"item4/wildcard_reaches_only_scoped", "trace probe:kfunc:vmlinux:vfs_*", `fentry:vmlinux:* { @ = count(); }`, "does not allow probe kfunc:vmlinux:security_file_open"},
		{"item4/no_module_reaches_module_function", "trace probe:kfunc:vmlinux:vfs_read", `fentry:vfs_read { @ = count(); }`, "does not allow probe kfunc:evilmod:vfs_read"},
		{"item4/tracepoint_scope_grants_no_kfunc", "trace probe:tracepoint:**", `kfunc:vmlinux:vfs_write { @ = count(); }`, "does not allow probe kfunc:vmlinux:vfs_write"},
		{"item4/alias_scope_grants_nothing", "trace probe:fentry:**", `fentry:vmlinux:vfs_read { @ = count(); }`, "does not allow probe kfunc:vmlinux:vfs_read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := token.ParseScopes(tt.scopes)
			if err != nil {
				t.Fatal(err)
			}
			f, err := syntax.Parse("stdin", []byte(tt.script))
			if err != nil {
				t.Fatal(err)
			}
			prog, _, err := compile.Compile(f, compile.Options{Funcs: fentryKernel{}})
			if err != nil {
				t.Fatal(err)
			}
			err = authorizeProbes(&token.Token{Subject: "alice", Scopes: sc})(prog)
			wantRefusal(t, err, tt.want)
		})
	}

	// A program handed over whole (a plugin's, a crafted one) whose
	// kfunc probe is named for an allowed function but attaches another.
	for _, tt := range []struct {
		name string
		p    program.Probe
	}{
		{"item4/name_not_attach", program.Probe{Kind: program.Fentry, Name: "kfunc:vmlinux:vfs_read", Category: "vmlinux", Event: "security_file_open"}},
		{"item4/kind_not_name", program.Probe{Kind: program.Fexit, Name: "kfunc:vmlinux:vfs_read", Category: "vmlinux", Event: "vfs_read"}},
		{"item4/glob_in_event", program.Probe{Kind: program.Fentry, Name: "kfunc:vmlinux:vfs_*", Category: "vmlinux", Event: "vfs_*"}},
		{"item4/colon_in_module", program.Probe{Kind: program.Fentry, Name: "kfunc:vmlinux:x:vfs_read", Category: "vmlinux:x", Event: "vfs_read"}},
		{"item4/no_module", program.Probe{Kind: program.Fentry, Name: "kfunc::vfs_read", Event: "vfs_read"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.p.CheckName(); err == nil {
				t.Fatalf("%+v: CheckName accepted it", tt.p)
			}
		})
	}
}
