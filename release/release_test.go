package release

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
	"github.com/tracebroker/tracebroker/internal/hoststate"
)

// fakeRelease lays out a release as make release does, signed with a
// fresh key: a stand-in broker, this binary's collectors and two
// stand-in plugins (the installer judges bytes, never runs them). It
// returns the release directory and the key's .pub.
func fakeRelease(t testing.TB, pluginSize int) (dir, pub string, key *attest.PrivateKey) {
	t.Helper()
	base := t.TempDir()
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	dir = filepath.Join(base, "release")
	for _, d := range []string{"bin", CollectorsDir, GateDir, PluginsDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sign := func(rel string, data []byte, mode os.FileMode, role attest.Role) {
		p := filepath.Join(dir, rel)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := attest.SignArtifact(p, key, attest.ArtifactPredicate{Role: role, Version: "v0.0.1-test"}); err != nil {
			t.Fatal(err)
		}
	}
	sign(BrokerPath, []byte("a broker"), 0o755, attest.RoleBroker)
	sign(RPCPath, []byte("its rpc build"), 0o755, attest.RoleBroker)
	for _, s := range collector.Programs() {
		var b bytes.Buffer
		if err := collector.WriteObject(&b, s.Name); err != nil {
			t.Fatal(err)
		}
		sign(filepath.Join(CollectorsDir, collector.ObjectFile(s.Name)), b.Bytes(), 0o644, attest.RoleCollector)
	}
	gate, err := lsmgate.Object()
	if err != nil {
		t.Fatal(err)
	}
	sign(filepath.Join(GateDir, lsmgate.ObjectFile), gate, 0o644, attest.RoleGate)
	for _, name := range []string{"alpha", "beta", "gamma"} {
		sign(filepath.Join(PluginsDir, name), append([]byte("plugin "+name), make([]byte, pluginSize)...), 0o755, attest.RoleGenerator)
	}
	if err := attest.WriteKeyPair(filepath.Join(dir, "release"), key); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "release.key"))
	return dir, filepath.Join(dir, KeyFile), key
}

func freshState(t testing.TB) string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	if _, err := hoststate.Init(state); err != nil {
		t.Fatal(err)
	}
	return state
}

// contents lists every file under state's trust, manifests and plugins,
// and anything else left in state.
func contents(t testing.TB, state string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(state, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			rel, _ := filepath.Rel(state, p)
			out = append(out, rel)
		}
		return nil
	})
	return out
}

// TestInstall: a release installs its key, the broker's manifest under
// the broker's digest, the collectors' manifests and the plugins; again,
// the same, and nothing staged is left.
func TestInstall(t *testing.T) {
	dir, pub, key := fakeRelease(t, 0)
	state := freshState(t)
	var want []string
	for _, b := range []string{BrokerPath, RPCPath} {
		digest, err := attest.FileDigest(filepath.Join(dir, b))
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, "manifests/"+digest+".sig")
	}
	for _, s := range collector.Programs() {
		want = append(want, "manifests/"+collector.ObjectFile(s.Name)+".sig")
	}
	want = append(want, "manifests/"+lsmgate.ObjectFile+".sig", "plugins/alpha", "plugins/alpha.sig", "plugins/beta", "plugins/beta.sig", "plugins/gamma", "plugins/gamma.sig", "trust/release-"+key.ID[:16]+".pub")
	slices.Sort(want)
	for i := range 2 {
		in, err := Install(state, pub, dir)
		if err != nil {
			t.Fatalf("install %d: %v", i, err)
		}
		if got := contents(t, state); !slices.Equal(got, want) {
			t.Fatalf("install %d: state holds %q, want %q", i, got, want)
		}
		if len(in.Brokers) != 2 || !in.Brokers[0].Verified || !in.Brokers[1].Verified || !in.Gate.Verified || len(in.Collectors) != len(collector.Programs()) || len(in.Plugins) != 3 || in.Key.ID != key.ID {
			t.Fatalf("install %d: %+v", i, in)
		}
	}
	// What was installed verifies where the broker looks for it.
	trust, err := attest.StateTrust(state)
	if err != nil {
		t.Fatal(err)
	}
	ct := collector.Trust{Keys: trust, ManifestDir: attest.StateManifestDir(state)}
	if _, err := ct.Verify(collector.Programs()...); err != nil {
		t.Errorf("the installed collectors' manifests: %v", err)
	}
	if _, err := attest.VerifyArtifact(filepath.Join(state, "plugins", "alpha"), "", trust, attest.RoleGenerator); err != nil {
		t.Errorf("the installed plugin: %v", err)
	}
}

// TestAttacksRelease: a release directory handed to the operator that
// was tampered with, signed by another key or for another role, or that
// plants a pipe or a link, is refused, and nothing is installed — no
// key, no manifest, no plugin, nothing staged left.
func TestAttacksRelease(t *testing.T) {
	for _, tt := range []struct {
		name   string
		attack func(t *testing.T, dir string, key *attest.PrivateKey)
		want   string
	}{
		{"item1/tampered_plugin", func(t *testing.T, dir string, key *attest.PrivateKey) {
			appendTo(t, filepath.Join(dir, PluginsDir, "beta"), "evil")
		}, "plugins/beta: digest mismatch"},
		{"item1/tampered_collector", func(t *testing.T, dir string, key *attest.PrivateKey) {
			appendTo(t, filepath.Join(dir, CollectorsDir, "tb_coll_perf.bpf"), "evil")
		}, "collectors/tb_coll_perf.bpf is not this tracebroker's collector tb_coll_perf"},
		{"item1/tampered_broker", func(t *testing.T, dir string, key *attest.PrivateKey) {
			appendTo(t, filepath.Join(dir, BrokerPath), "evil")
		}, "bin/tracebroker: digest mismatch"},
		{"item1/tampered_rpc_build", func(t *testing.T, dir string, key *attest.PrivateKey) {
			appendTo(t, filepath.Join(dir, RPCPath), "evil")
		}, "bin/tracebroker-rpc: digest mismatch"},
		{"item1/rpc_build_missing", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.Remove(filepath.Join(dir, RPCPath+attest.SigSuffix)); err != nil {
				t.Fatal(err)
			}
		}, "bin/tracebroker-rpc.sig: no such file or directory"},
		{"item1/collector_signed_by_another_key", func(t *testing.T, dir string, key *attest.PrivateKey) {
			other, err := attest.GenerateKey()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := attest.SignArtifact(filepath.Join(dir, CollectorsDir, "tb_coll_tp.bpf"), other, attest.ArtifactPredicate{Role: attest.RoleCollector}); err != nil {
				t.Fatal(err)
			}
		}, "collectors/tb_coll_tp.bpf: untrusted key"},
		{"item1/plugin_signed_as_policy", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if _, err := attest.SignArtifact(filepath.Join(dir, PluginsDir, "alpha"), key, attest.ArtifactPredicate{Role: attest.RolePolicy}); err != nil {
				t.Fatal(err)
			}
		}, "plugins/alpha: wrong role"},
		{"item1/plugin_unsigned", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.WriteFile(filepath.Join(dir, PluginsDir, "delta"), []byte("unsigned"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, "plugins/delta.sig: no such file or directory"},
		{"item1/plugin_fifo", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := syscall.Mkfifo(filepath.Join(dir, PluginsDir, "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "plugins/pipe is not a regular file"},
		{"item1/plugin_symlink", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.Symlink("/etc/passwd", filepath.Join(dir, PluginsDir, "passwd")); err != nil {
				t.Fatal(err)
			}
		}, "plugins/passwd is not a regular file"},
		{"item1/manifest_fifo", func(t *testing.T, dir string, key *attest.PrivateKey) {
			p := filepath.Join(dir, PluginsDir, "beta.sig")
			os.Remove(p)
			if err := syscall.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "beta.sig: not a regular file"},
		{"item1/huge_manifest", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.Truncate(filepath.Join(dir, BrokerPath+attest.SigSuffix), attest.MaxEnvelopeSize+1); err != nil {
				t.Fatal(err)
			}
		}, "larger than"},
		{"issue20/gate_signed_for_another_role", func(t *testing.T, dir string, key *attest.PrivateKey) {
			p := filepath.Join(dir, GateDir, lsmgate.ObjectFile)
			if _, err := attest.SignArtifact(p, key, attest.ArtifactPredicate{Role: attest.RoleCollector}); err != nil {
				t.Fatal(err)
			}
		}, "gate/tb_gate.bpf: wrong role"},
		{"issue20/tampered_gate", func(t *testing.T, dir string, key *attest.PrivateKey) {
			p := filepath.Join(dir, GateDir, lsmgate.ObjectFile)
			b, _ := os.ReadFile(p)
			b[len(b)-2] ^= 1
			os.WriteFile(p, b, 0o644)
		}, "gate/tb_gate.bpf is not this tracebroker's kernel gate"},
		{"issue20/no_gate", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.RemoveAll(filepath.Join(dir, GateDir)); err != nil {
				t.Fatal(err)
			}
		}, "gate/tb_gate.bpf"},
		{"item1/no_collectors", func(t *testing.T, dir string, key *attest.PrivateKey) {
			if err := os.RemoveAll(filepath.Join(dir, CollectorsDir)); err != nil {
				t.Fatal(err)
			}
		}, "collectors/tb_coll_tp.bpf"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir, pub, key := fakeRelease(t, 0)
			tt.attack(t, dir, key)
			state := freshState(t)
			in, err := Install(state, pub, dir)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasSuffix(err.Error(), "; nothing was installed") {
				t.Fatalf("Install: %+v, %v; want an error with %q", in, err, tt.want)
			}
			if got := contents(t, state); len(got) != 0 {
				t.Errorf("after a refused release, state holds %q", got)
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

// TestAttacksReleaseKey: a release is judged by the key the operator
// names, not by the one it carries.
func TestAttacksReleaseKey(t *testing.T) {
	t.Run("item1/release_of_another_key", func(t *testing.T) {
		dir, _, _ := fakeRelease(t, 0)
		other, err := attest.GenerateKey()
		if err != nil {
			t.Fatal(err)
		}
		prefix := filepath.Join(t.TempDir(), "mine")
		if err := attest.WriteKeyPair(prefix, other); err != nil {
			t.Fatal(err)
		}
		state := freshState(t)
		if _, err := Install(state, prefix+".pub", dir); err == nil || !strings.Contains(err.Error(), "bin/tracebroker: untrusted key") {
			t.Fatalf("Install: %v", err)
		}
		if got := contents(t, state); len(got) != 0 {
			t.Errorf("state holds %q", got)
		}
	})
}

// BenchmarkInstall: init --trust's install of a release the size make
// release makes (three 18 MB plugins, the collectors, the broker's
// manifest) into a state directory that already holds it, as a rerun.
func BenchmarkInstall(b *testing.B) {
	dir, pub, _ := fakeRelease(b, 18<<20)
	state := freshState(b)
	b.SetBytes(3 * 18 << 20)
	for b.Loop() {
		if _, err := Install(state, pub, dir); err != nil {
			b.Fatal(err)
		}
	}
}
