package attest

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestFIFOManifestRefused: a named pipe where a key, manifest or artifact
// should be is refused at once rather than blocking the open.
func TestFIFOManifestRefused(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"key.key", "key.pub", "f.sig", "f"} {
		if err := syscall.Mkfifo(filepath.Join(dir, name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := LoadPrivateKey(filepath.Join(dir, "key.key")); err == nil {
			t.Error("fifo key loaded")
		}
		if _, err := LoadPublicKey(filepath.Join(dir, "key.pub")); err == nil {
			t.Error("fifo pub loaded")
		}
		if _, err := FileDigest(filepath.Join(dir, "f")); err == nil {
			t.Error("fifo hashed")
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("blocked on a named pipe")
	}
}
