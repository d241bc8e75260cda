package attest

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
)

// DefaultStateDir is where a host keeps its attestation key and the
// release keys it trusts.
const DefaultStateDir = "/var/lib/tracebroker"

// A state directory:
//
//	host.key, host.pub   the host attestation key (tracebroker init)
//	trust/*.pub          release keys this host trusts for broker,
//	                     plugin, collector and policy manifests
//	manifests/           manifests kept apart from the files they sign
const (
	hostKeyName = "host"
	// TrustDir and ManifestsDir are the state directory's parts that
	// attest reads (internal/hoststate names the others).
	TrustDir     = "trust"
	ManifestsDir = "manifests"
)

// Init creates the host attestation key of a state directory, which
// internal/hoststate.Init has made with its parts (refusing planted
// links and directories others may write, which a MkdirAll here would
// not). It is idempotent: an existing key is kept and returned with
// created false.
func Init(dir string) (pub *PublicKey, created bool, err error) {
	if k, err := LoadHostKey(dir); err == nil {
		return k.Public(), false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, err
	}
	k, err := GenerateKey()
	if err != nil {
		return nil, false, err
	}
	if err := WriteKeyPair(filepath.Join(dir, hostKeyName), k); err != nil {
		return nil, false, err
	}
	return k.Public(), true, nil
}

// LoadHostKey reads the host attestation key of a state directory.
func LoadHostKey(dir string) (*PrivateKey, error) {
	k, err := LoadPrivateKey(filepath.Join(dir, hostKeyName+".key"))
	if err != nil {
		return nil, fmt.Errorf("host attestation key: %w (run tracebroker init)", err)
	}
	return k, nil
}

// HostPublicKeyPath is where Init writes the host's public key, the one
// an auditor needs to check its attestations.
func HostPublicKeyPath(dir string) string { return filepath.Join(dir, hostKeyName+".pub") }

// StateTrust is the set of release keys a state directory trusts: every
// trust/*.pub. None is an empty set, which verifies nothing.
func StateTrust(dir string) (*Trust, error) {
	paths, err := filepath.Glob(filepath.Join(dir, TrustDir, "*.pub"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	return LoadTrust(paths...)
}

// StateManifestDir is the state directory's manifest directory.
func StateManifestDir(dir string) string { return filepath.Join(dir, ManifestsDir) }
