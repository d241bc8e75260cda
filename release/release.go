// Package release is what `make release` lays out and what `tracebroker
// init --trust release.pub` installs from it: a host's trust in a release
// key, with the broker's and the collectors' manifests and the signed
// example plugins, so that interpreter mode and --gen work at once.
//
// A release directory (dist/release):
//
//	bin/tracebroker, bin/tracebroker.sig        the broker, role broker
//	bin/tracebroker-rpc, bin/tracebroker-rpc.sig  its RPC commands' build (serve, trace, plugins), role broker
//	collectors/NAME.bpf, collectors/NAME.bpf.sig  interpreter mode's collectors, role collector
//	gate/tb_gate.bpf, gate/tb_gate.bpf.sig       the kernel gate (BPF LSM), role gate
//	plugins/NAME, plugins/NAME.sig               generator plugins, role generator
//	release.pub                                  the key that signed them
//	SHA256SUMS                                   for the transfer; nothing here trusts it
//
// The directory is untrusted: only the key the operator names is. Every
// file installed is copied first into a staging directory inside the
// state directory and verified there, as copied, against that key alone;
// one that does not verify stops the install before anything is moved
// into place, and the staging directory goes.
package release

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/gatekeeper/lsmgate"
	"github.com/tracebroker/tracebroker/internal/hoststate"
	"github.com/tracebroker/tracebroker/internal/regfile"
)

// The layout of a release directory.
const (
	BrokerPath    = "bin/tracebroker"
	RPCPath       = "bin/tracebroker-rpc" // what BrokerPath hands serve, trace, sessions, plugins and --gen to
	CollectorsDir = "collectors"
	GateDir       = "gate"
	PluginsDir    = "plugins"
	KeyFile       = "release.pub"
)

// Bounds on what a release directory may make the installer copy: a
// plugin is a Go binary (10-30 MB), and nobody ships hundreds.
const (
	maxPluginSize = 256 << 20
	maxPlugins    = 64
)

// IsRelease reports whether dir looks like a release directory: it has
// the broker's manifest.
func IsRelease(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, BrokerPath+attest.SigSuffix))
	return err == nil
}

// Installed is what Install put into the state directory.
type Installed struct {
	Key        *attest.PublicKey
	KeyPath    string            // STATE/trust/release-ID.pub
	Brokers    []attest.Identity // the release's two builds (BrokerPath, RPCPath), verified; their manifests in STATE/manifests
	Collectors []attest.Identity // verified for this binary's collectors
	Gate       attest.Identity   // the kernel gate, verified for this binary's
	Plugins    []attest.Identity // installed in STATE/plugins
}

// Install makes state trust the key in pubPath and, when dir is not
// empty, installs the release in dir: the broker's manifest (under its
// digest, where attest.Measure finds it whatever the binary is named),
// the collectors' manifests and the plugins with theirs. The collectors
// must be the running binary's (their digests are compiled in), so the
// install is done by the release's own tracebroker. It is idempotent;
// what it replaces is replaced by rename, whole.
func Install(state, pubPath, dir string) (*Installed, error) {
	pub, err := attest.LoadPublicKey(pubPath)
	if err != nil {
		return nil, err
	}
	trust := attest.NewTrust(pub)
	stage, err := os.MkdirTemp(state, ".release-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(stage)

	in := &Installed{Key: pub}
	var moves []move // in the order they are made
	if dir != "" {
		m, err := stageRelease(in, stage, state, dir, trust)
		if err != nil {
			return nil, fmt.Errorf("release %s: %w; nothing was installed", dir, err)
		}
		moves = m
	}
	// The key goes last: until it is in place, nothing installed
	// verifies, so an install cut short trusts nothing new.
	pem, err := attest.MarshalPublicKeyPEM(pub)
	if err != nil {
		return nil, err
	}
	keyName := "release-" + pub.ID[:16] + ".pub"
	if err := regfile.WriteAtomic(filepath.Join(stage, keyName), pem, 0o644, true); err != nil {
		return nil, err
	}
	in.KeyPath = filepath.Join(state, hoststate.Trust, keyName)
	moves = append(moves, move{filepath.Join(stage, keyName), in.KeyPath})
	for _, m := range moves {
		if err := os.Rename(m.from, m.to); err != nil {
			return nil, fmt.Errorf("installing %s: %w", m.to, err)
		}
	}
	return in, nil
}

type move struct{ from, to string }

// stageRelease copies what state needs from dir into stage, verifying
// each copy, and returns the renames that install them.
func stageRelease(in *Installed, stage, state, dir string, trust *attest.Trust) ([]move, error) {
	manifests := filepath.Join(state, hoststate.Manifests)
	var moves []move

	// The broker's two builds: their binaries are not installed (the
	// operator puts them where they run), only their manifests, each
	// verified against its binary.
	for _, b := range []string{BrokerPath, RPCPath} {
		sig, err := copyIn(filepath.Join(dir, b+attest.SigSuffix), stage, filepath.Base(b)+".sig", attest.MaxEnvelopeSize, 0o644)
		if err != nil {
			return nil, err
		}
		digest, err := attest.FileDigest(filepath.Join(dir, b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", b, err)
		}
		id, err := verify(sig, digest, trust, attest.RoleBroker, b)
		if err != nil {
			return nil, err
		}
		in.Brokers = append(in.Brokers, id)
		moves = append(moves, move{sig, filepath.Join(manifests, digest+attest.SigSuffix)})
	}

	// The collectors: signed for the digests this binary loads.
	for _, s := range collector.Programs() {
		obj := filepath.Join(CollectorsDir, collector.ObjectFile(s.Name))
		got, err := attest.FileDigest(filepath.Join(dir, obj))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", obj, err)
		}
		if got != s.Digest() {
			return nil, fmt.Errorf("%s is not this tracebroker's collector %s (sha256 %s, this binary's %s): run the release's own bin/tracebroker", obj, s.Name, got, s.Digest())
		}
		name := collector.ObjectFile(s.Name) + attest.SigSuffix
		sig, err := copyIn(filepath.Join(dir, obj+attest.SigSuffix), stage, name, attest.MaxEnvelopeSize, 0o644)
		if err != nil {
			return nil, err
		}
		id, err := verify(sig, s.Digest(), trust, attest.RoleCollector, obj)
		if err != nil {
			return nil, err
		}
		in.Collectors = append(in.Collectors, id)
		moves = append(moves, move{sig, filepath.Join(manifests, name)})
	}

	// The kernel gate: signed for the digest this binary enforces.
	gateObj := filepath.Join(GateDir, lsmgate.ObjectFile)
	got, err := attest.FileDigest(filepath.Join(dir, gateObj))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", gateObj, err)
	}
	if got != lsmgate.Digest() {
		return nil, fmt.Errorf("%s is not this tracebroker's kernel gate (sha256 %s, this binary's %s): run the release's own bin/tracebroker", gateObj, got, lsmgate.Digest())
	}
	gateSig, err := copyIn(filepath.Join(dir, gateObj+attest.SigSuffix), stage, lsmgate.ObjectFile+attest.SigSuffix, attest.MaxEnvelopeSize, 0o644)
	if err != nil {
		return nil, err
	}
	if in.Gate, err = verify(gateSig, lsmgate.Digest(), trust, attest.RoleGate, gateObj); err != nil {
		return nil, err
	}
	moves = append(moves, move{gateSig, lsmgate.ManifestPath(manifests)})

	// The plugins, binary and manifest, each verified as copied.
	names, err := pluginNames(filepath.Join(dir, PluginsDir))
	if err != nil {
		return nil, err
	}
	plugins := filepath.Join(state, hoststate.Plugins)
	for _, name := range names {
		rel := filepath.Join(PluginsDir, name)
		bin, err := copyIn(filepath.Join(dir, rel), stage, "plugin-"+name, maxPluginSize, 0o755)
		if err != nil {
			return nil, err
		}
		sig, err := copyIn(filepath.Join(dir, rel+attest.SigSuffix), stage, "plugin-"+name+attest.SigSuffix, attest.MaxEnvelopeSize, 0o644)
		if err != nil {
			return nil, err
		}
		digest, err := attest.FileDigest(bin)
		if err != nil {
			return nil, err
		}
		id, err := verify(sig, digest, trust, attest.RoleGenerator, rel)
		if err != nil {
			return nil, err
		}
		id.Path = filepath.Join(plugins, name)
		in.Plugins = append(in.Plugins, id)
		// The binary before its manifest: in between, the old
		// manifest does not verify the new binary, and it is refused.
		moves = append(moves, move{bin, id.Path}, move{sig, id.Path + attest.SigSuffix})
	}
	return moves, nil
}

func verify(sigPath, digest string, trust *attest.Trust, role attest.Role, what string) (attest.Identity, error) {
	env, err := os.ReadFile(sigPath)
	if err != nil {
		return attest.Identity{}, err
	}
	id, err := attest.VerifyManifest(env, digest, trust, role)
	if err != nil {
		return id, fmt.Errorf("%s: %w", what, err)
	}
	return id, nil
}

// pluginNames lists the plugins of a release: every file but manifests
// and dot files. A plugin that is not a regular file is refused rather
// than skipped, so that what is installed is what the directory shows.
func pluginNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, attest.SigSuffix) || strings.HasPrefix(name, ".") {
			continue
		}
		if !e.Type().IsRegular() {
			return nil, fmt.Errorf("%s/%s is not a regular file", PluginsDir, name)
		}
		names = append(names, name)
	}
	if len(names) > maxPlugins {
		return nil, fmt.Errorf("%s holds %d plugins, more than %d", PluginsDir, len(names), maxPlugins)
	}
	sort.Strings(names)
	return names, nil
}

// copyIn copies a regular file of at most limit bytes into stage as
// name, and returns the copy's path.
func copyIn(src, stage, name string, limit int64, mode os.FileMode) (string, error) {
	in, _, err := regfile.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	dst := filepath.Join(stage, name)
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return "", err
	}
	n, err := io.Copy(out, io.LimitReader(in, limit+1))
	if err == nil && n <= limit {
		// Synced before it is renamed into place: after a crash a
		// file is whole or absent, never an empty plugin or key.
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", src, err)
	}
	if n > limit {
		return "", &regfile.TooLargeError{Path: src, Limit: limit}
	}
	return dst, nil
}
