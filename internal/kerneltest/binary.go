package kerneltest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// BinaryEnv names a tracebroker command built beforehand. vmtest builds
// it on the host and sets it in the guest, where a go build under
// qemu's TCG takes minutes.
const BinaryEnv = "TRACEBROKER_TEST_BIN"

// Binary is the tracebroker command for a test to run: BinaryEnv's, or
// else pkg (the path of ./cmd/tracebroker from the test's package)
// built into the test's temporary directory.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		if _, err := os.Stat(bin); err != nil {
			t.Fatalf("%s: %v", BinaryEnv, err)
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "tracebroker")
	if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}
