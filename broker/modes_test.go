package broker

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
)

// The modes every end-to-end test runs in, with the same expectation.
var modes = []Mode{ModeJIT, ModeInterp}

var (
	signOnce      sync.Once
	signedTrust   collector.Trust
	signedErr     error
	collectorsDir string
)

// testKeyPath is absolute: some tests change directory.
var testKeyPath, _ = filepath.Abs("../attest/testdata/test-only-release.key")

// testCollectors is a Trust under which the collectors verify: each
// exported and signed for role collector with the test-only release key,
// as an administrator signs a release's.
func testCollectors(t testing.TB) collector.Trust {
	t.Helper()
	signOnce.Do(func() {
		// Parsed, not loaded: a checkout leaves the test-only key 0644,
		// which LoadPrivateKey rightly refuses.
		pem, err := os.ReadFile(testKeyPath)
		if err != nil {
			signedErr = err
			return
		}
		key, err := attest.ParsePrivateKeyPEM(pem)
		if err != nil {
			signedErr = err
			return
		}
		dir, err := os.MkdirTemp("", "tbcollectors")
		if err != nil {
			signedErr = err
			return
		}
		collectorsDir = dir
		for _, s := range collector.Programs() {
			var b bytes.Buffer
			if err := collector.WriteObject(&b, s.Name); err != nil {
				signedErr = err
				return
			}
			path := filepath.Join(dir, collector.ObjectFile(s.Name))
			if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
				signedErr = err
				return
			}
			if _, err := attest.SignArtifact(path, key, attest.ArtifactPredicate{Role: attest.RoleCollector, Name: s.Name, Version: "test"}); err != nil {
				signedErr = err
				return
			}
		}
		signedTrust = collector.Trust{Keys: attest.NewTrust(key.Public()), ManifestDir: dir}
	})
	if signedErr != nil {
		t.Fatalf("signing the collectors: %v", signedErr)
	}
	return signedTrust
}
