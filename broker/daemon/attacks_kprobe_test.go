package daemon

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/token"
)

// TestAttacksKprobe: a token holder granted some kernel functions
// reaches no other through a wildcard, a kprobe.multi probe whose name
// is a pattern, the other probe kind, or a module's name.
func TestAttacksKprobe(t *testing.T) {
	kp := func(name string, funcs ...string) *program.Probe {
		return &program.Probe{Kind: program.Kprobe, Name: name, Funcs: funcs}
	}
	for _, tt := range []struct {
		name, scope string
		probes      []*program.Probe
		refused     string // the probe named in the refusal; "" allowed
	}{
		{"item3/multi_within_scope", "trace probe:kprobe:vfs_*",
			[]*program.Probe{kp("kprobe:vfs_*", "vfs_read", "vfs_write")}, ""},
		{"item3/multi_reaches_unscoped_function", "trace probe:kprobe:vfs_read*",
			[]*program.Probe{kp("kprobe:vfs_*", "vfs_read", "vfs_readv", "vfs_write")}, "kprobe:vfs_write"},
		{"item3/multi_pattern_is_the_scope", "trace probe:kprobe:vfs_[*]",
			[]*program.Probe{kp("kprobe:vfs_*", "vfs_read")}, "kprobe:vfs_read"},
		{"item3/multi_name_hides_functions", "trace probe:kprobe:vfs_*",
			[]*program.Probe{kp("kprobe:vfs_*", "vfs_read", "commit_creds")}, "kprobe:commit_creds"},
		{"item3/per_function_beyond_scope", "trace probe:kprobe:vfs_read",
			[]*program.Probe{kp("kprobe:vfs_read"), kp("kprobe:vfs_write")}, "kprobe:vfs_write"},
		{"item3/kretprobe_needs_its_own_scope", "trace probe:kprobe:*",
			[]*program.Probe{{Kind: program.Kretprobe, Name: "kretprobe:vfs_read"}}, "kretprobe:vfs_read"},
		{"item3/module_function", "trace probe:kprobe:vfs_*",
			[]*program.Probe{kp("kprobe:nf_tables:nft_trans_alloc_gfp")}, "kprobe:nf_tables:nft_trans_alloc_gfp"},
		{"item3/module_multi", "trace probe:kprobe:nf_tables:nft_*",
			[]*program.Probe{{Kind: program.Kprobe, Name: "kprobe:nf_tables:nft_*", Category: "nf_tables", Funcs: []string{"nft_a", "nft_b"}}}, ""},
		{"item3/tracepoint_scope_grants_no_kprobe", "trace probe:tracepoint:*",
			[]*program.Probe{kp("kprobe:vfs_read")}, "kprobe:vfs_read"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sc, err := token.CheckScopes(tt.scope)
			if err != nil {
				t.Fatal(err)
			}
			err = authorizeProbes(&token.Token{Subject: "alice", Scopes: sc})(&program.Program{Probes: tt.probes})
			switch {
			case tt.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.refused != "" && err == nil:
				t.Fatalf("allowed, want %s refused", tt.refused)
			case tt.refused != "" && !strings.Contains(err.Error(), "does not allow probe "+tt.refused+" "):
				t.Fatalf("refused with %v, want %s named", err, tt.refused)
			}
		})
	}
}
