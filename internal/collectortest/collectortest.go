// Package collectortest gives tests collectors that verify: each one
// exported and signed for role collector with the test-only release key
// (attest/testdata), as an administrator signs a release's.
package collectortest

import (
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf/collector"
)

var (
	once  sync.Once
	trust collector.Trust
	err   error
)

// Signed is a Trust under which every collector verifies. The manifests
// live in a directory made once per test binary.
func Signed(t testing.TB) collector.Trust {
	t.Helper()
	once.Do(func() { trust, err = sign() })
	if err != nil {
		t.Fatalf("signing the collectors: %v", err)
	}
	return trust
}

func sign() (collector.Trust, error) {
	_, here, _, _ := runtime.Caller(0)
	// Parsed, not loaded: a checkout leaves the test-only key 0644,
	// which LoadPrivateKey rightly refuses.
	pem, err := os.ReadFile(filepath.Join(filepath.Dir(here), "../../attest/testdata/test-only-release.key"))
	if err != nil {
		return collector.Trust{}, err
	}
	key, err := attest.ParsePrivateKeyPEM(pem)
	if err != nil {
		return collector.Trust{}, err
	}
	dir, err := os.MkdirTemp("", "tbcollectors")
	if err != nil {
		return collector.Trust{}, err
	}
	for _, s := range collector.Programs() {
		var b bytes.Buffer
		if err := collector.WriteObject(&b, s.Name); err != nil {
			return collector.Trust{}, err
		}
		path := filepath.Join(dir, collector.ObjectFile(s.Name))
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			return collector.Trust{}, err
		}
		if _, err := attest.SignArtifact(path, key, attest.ArtifactPredicate{Role: attest.RoleCollector, Name: s.Name, Version: "test"}); err != nil {
			return collector.Trust{}, err
		}
	}
	return collector.Trust{Keys: attest.NewTrust(key.Public()), ManifestDir: dir}, nil
}
