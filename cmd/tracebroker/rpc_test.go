package main

import (
	"debug/buildinfo"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestLeanLinksNoRPC: the lean build, what make installs as
// tracebroker, links none of the modules its RPC commands need (their
// start-up is what it leaves out); tracebroker-rpc links them all.
func TestLeanLinksNoRPC(t *testing.T) {
	rpcModules := []string{"google.golang.org/grpc", "github.com/hashicorp/go-plugin", "github.com/prometheus/client_golang"}
	for _, b := range []struct {
		path   string
		linked bool
	}{{binary, false}, {kerneltest.RPCBinary(binary), true}} {
		bi, err := buildinfo.ReadFile(b.path)
		if err != nil {
			t.Fatal(err)
		}
		deps := map[string]bool{}
		for _, d := range bi.Deps {
			deps[d.Path] = true
		}
		for _, m := range rpcModules {
			if deps[m] != b.linked {
				t.Errorf("%s: links %s: %v, want %v", filepath.Base(b.path), m, deps[m], b.linked)
			}
		}
	}
}

// TestRPCHandoff: the lean tracebroker lists the RPC commands and hands
// each, with its flags, help and --gen, to tracebroker-rpc; without
// tracebroker-rpc beside it, it says so and runs the rest alone.
func TestRPCHandoff(t *testing.T) {
	plugins := t.TempDir()
	noPlugin := `no generator plugin "nosuch" in ` + plugins
	for _, tt := range []struct {
		name string
		args []string
		code int
		out  string // in stdout, or else in stderr
	}{
		{"help_lists", []string{"--help"}, 0, "  serve       " + rpcShort["serve"]},
		{"help_lists_plugins", []string{"--help"}, 0, "  plugins     " + rpcShort["plugins"]},
		// The lean build's serve has no flags: these are tracebroker-rpc's.
		{"serve_help", []string{"serve", "--help"}, 0, "--socket-group"},
		{"help_trace", []string{"help", "trace"}, 0, "--token-file"},
		{"sessions_flags", []string{"sessions", "list", "--no-such-flag"}, 1, "`tracebroker sessions list` has no flag --no-such-flag"},
		{"run_gen", []string{"run", "--gen", "nosuch", "--plugin-dir", plugins}, 1, noPlugin},
		// Flags parsed to find --gen are parsed again by tracebroker-rpc:
		// a --param given once is not seen twice.
		{"run_gen_equals", []string{"run", "--param", "k=v", "--gen=nosuch", "--plugin-dir", plugins}, 1, noPlugin},
		{"run_gen_help", []string{"run", "--gen", "nosuch", "--plugin-dir", plugins, "--help"}, 1, noPlugin},
		{"run_no_gen", []string{"run", "--param", "k=v", "-e", "BEGIN { exit(); }"}, 1, "--param goes with --gen NAME"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tracebroker(t, tt.args...)
			if r.code != tt.code || !strings.Contains(r.stdout+r.stderr, tt.out) {
				t.Errorf("exit %d, want %d with %q\nstdout: %s\nstderr: %s", r.code, tt.code, tt.out, r.stdout, r.stderr)
			}
		})
	}

	t.Run("alone", func(t *testing.T) {
		lean := filepath.Join(t.TempDir(), "tracebroker")
		if err := copyFile(binary, lean, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"serve"}, {"trace", "-e", "BEGIN { exit(); }"}, {"plugins", "list"}, {"run", "--gen", "x"}} {
			r := tracebrokerAt(t, lean, args...)
			want := filepath.Join(filepath.Dir(lean), "tracebroker-rpc") + ", which is not beside it"
			if r.code != 1 || !strings.Contains(r.stderr, want) || r.stdout != "" {
				t.Errorf("%q alone: exit %d, want 1 saying %q\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
			}
		}
		if r := tracebrokerAt(t, lean, "version", "--short"); r.code != 0 || r.stdout == "" {
			t.Errorf("version alone: exit %d\n%s", r.code, r.stderr)
		}
		require(t, needKernel)
		r := tracebrokerAt(t, lean, "run", "-e", `BEGIN { printf("alone\n"); exit(); }`)
		if r.code != 0 || !strings.Contains(r.stdout, "\nalone\n") {
			t.Errorf("run alone: exit %d\nstdout: %q\nstderr: %s", r.code, r.stdout, r.stderr)
		}
	})
}
