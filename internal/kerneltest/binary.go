package kerneltest

import (
	"fmt"
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
// built into the test's temporary directory. It is the pair make builds:
// tracebroker with -tags norpc, and beside it tracebroker-rpc
// (RPCBinary), which runs its serve, trace, sessions, plugins and --gen.
func Binary(t testing.TB, pkg string) string {
	t.Helper()
	if bin := os.Getenv(BinaryEnv); bin != "" {
		for _, p := range []string{bin, RPCBinary(bin)} {
			if _, err := os.Stat(p); err != nil {
				t.Fatalf("%s: %v", BinaryEnv, err)
			}
		}
		return bin
	}
	bin := filepath.Join(t.TempDir(), "tracebroker")
	if err := BuildPair(pkg, bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// RPCBinary is the whole build beside bin, the lean tracebroker.
func RPCBinary(bin string) string { return filepath.Join(filepath.Dir(bin), "tracebroker-rpc") }

// BuildPair builds pkg into bin with -tags norpc and, whole, into
// RPCBinary(bin).
func BuildPair(pkg, bin string) error {
	for _, b := range []struct{ out, tags string }{{bin, "norpc"}, {RPCBinary(bin), ""}} {
		cmd := exec.Command("go", "build", "-tags="+b.tags, "-o", b.out, pkg)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as make builds them: static
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build -tags=%s %s: %v\n%s", b.tags, pkg, err, out)
		}
	}
	return nil
}
