package broker

import (
	"testing"
)

// TestHelperErrors runs -k and -kk scripts in both modes and checks
// what bpftrace 0.17 prints for them, byte for byte (its -k output for
// the same scripts): -k reports a failed delete, not a lookup of an
// absent key; -kk both; JSON has bpftrace's helper_error objects; a
// macro's site is the script's text.
func TestHelperErrors(t *testing.T) {
	needKernel(t)
	tests := []struct {
		name, src, format string
		level             int
		interp            bool // interpreter mode runs it too
		want              string
	}{
		{"delete -k", `i:ms:100 { @[1] = 1; delete(@[2]); exit(); }`, "", 1, true,
			"Attaching 1 probe...\nstdin:1:22-34: WARNING: Failed to map_delete_elem: No such file or directory (-2)\ni:ms:100 { @[1] = 1; delete(@[2]); exit(); }\n                     ^~~~~~~~~~~~\n\n\n@[1]: 1\n"},
		{"lookup -k is silent", `i:ms:100 { @[1] = 1; printf("%d\n", @[2]); exit(); }`, "", 1, true,
			"Attaching 1 probe...\n0\n\n\n@[1]: 1\n"},
		{"lookup -kk", `i:ms:100 { @[1] = 1; printf("%d\n", @[2]); exit(); }`, "", 2, true,
			"Attaching 1 probe...\nstdin:1:37-41: WARNING: Failed to map_lookup_elem: 0\ni:ms:100 { @[1] = 1; printf(\"%d\\n\", @[2]); exit(); }\n                                    ^~~~\n0\n\n\n@[1]: 1\n"},
		{"no -k", `i:ms:100 { @[1] = 1; printf("%d\n", @[2]); delete(@[3]); exit(); }`, "", 0, true,
			"Attaching 1 probe...\n0\n\n\n@[1]: 1\n"},
		{"json -kk", `i:ms:100 { @[1] = 1; printf("%d\n", @[2]); delete(@[3]); exit(); }`, "json", 2, true,
			`{"type": "attached_probes", "data": {"probes": 1}}
{"type": "helper_error", "helper": "map_lookup_elem", "retcode": 0, "line": 1, "col": 37}
{"type": "printf", "data": "0\n"}
{"type": "helper_error", "helper": "map_delete_elem", "retcode": -2, "line": 1, "col": 44}


{"type": "map", "data": {"@": {"1": 1}}}
`},
		{"probe_read -kk", `struct foo {int a;}; BEGIN { $tmp = ((struct foo*) 0)->a; exit(); }`, "json", 2, false,
			`{"type": "attached_probes", "data": {"probes": 1}}
{"type": "helper_error", "helper": "probe_read", "retcode": -14, "line": 1, "col": 37}


`},
		{"site through a macro", "#define KEY 2\ni:ms:100 { @[1] = 1; delete(@[KEY]); exit(); }", "json", 1, true,
			`{"type": "attached_probes", "data": {"probes": 1}}
{"type": "helper_error", "helper": "map_delete_elem", "retcode": -2, "line": 2, "col": 22}


{"type": "map", "data": {"@": {"1": 1}}}
`},
	}
	for _, tt := range tests {
		for _, mode := range []Mode{ModeJIT, ModeInterp} {
			if mode == ModeInterp && !tt.interp {
				continue
			}
			t.Run(tt.name+"/"+string(mode), func(t *testing.T) {
				lockKernel(t)
				req := Request{Source: []byte(tt.src), Format: tt.format, HelperErrors: tt.level, Mode: mode}
				if mode == ModeInterp {
					req.Collectors = testCollectors(t)
				}
				out, stderr, err := runScript(t, req)
				if err != nil {
					t.Fatalf("%v\n%s", err, stderr)
				}
				if out != tt.want {
					t.Errorf("got\n%s\nwant\n%s", out, tt.want)
				}
			})
		}
	}
}
