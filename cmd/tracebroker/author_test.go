package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestPluginAuthor is the plugin author's path of the README, "Writing a
// generator in your own module": the template plugin
// (plugins/sdk/example/opencount/main.go, the file the README quotes)
// built in a module outside this repository, which requires the SDK
// module alone; its dependencies are a plugin's, not the broker's; then
// signed, described and run, with an exact count.
//
// The one difference from the README: the module reaches the SDK by a
// replace to this checkout instead of a release tag, checked against
// the SDK's own go.sum.
func TestPluginAuthor(t *testing.T) {
	sdkDir, err := filepath.Abs("../../plugins/sdk")
	if err != nil {
		t.Fatal(err)
	}
	mod := t.TempDir()
	src, err := os.ReadFile(filepath.Join(sdkDir, "example/opencount/main.go"))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := os.ReadFile(filepath.Join(sdkDir, "go.sum"))
	if err != nil {
		t.Fatal(err)
	}
	gomod := "module example.com/opencount\n\ngo 1.26.0\n\n" +
		"require github.com/tracebroker/tracebroker/plugins/sdk v0.0.0-00010101000000-000000000000\n\n" +
		"replace github.com/tracebroker/tracebroker/plugins/sdk => " + sdkDir + "\n"
	for name, data := range map[string][]byte{"main.go": src, "go.sum": sum, "go.mod": []byte(gomod)} {
		if err := os.WriteFile(filepath.Join(mod, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	goCmd := func(args ...string) string {
		t.Helper()
		c := exec.Command("go", args...)
		c.Dir = mod
		// GOPROXY as the caller has it: on a fresh machine the module
		// cache lacks the go.mod files of the SDK's graph that the
		// broker's module does not share (older versions, test
		// dependencies of dependencies), and the build and go list
		// -m all fetch them, as they do for the README's reader.
		c.Env = append(os.Environ(), "GOFLAGS=-mod=mod -buildvcs=false", "GOWORK=off")
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	// README: go build -o plugins/opencount .
	plugins := filepath.Join(mod, "plugins")
	goCmd("build", "-o", "plugins/opencount", ".")
	// README: go list -m all
	deps := goCmd("list", "-m", "all")
	if !strings.Contains(deps, "github.com/hashicorp/go-plugin ") {
		t.Errorf("go list -m all lacks go-plugin:\n%s", deps)
	}
	for _, broker := range []string{"github.com/cilium/ebpf", "github.com/spf13/cobra", "github.com/golang-jwt/jwt"} {
		if strings.Contains(deps, broker) {
			t.Errorf("a plugin's module depends on %s, a dependency of the broker:\n%s", broker, deps)
		}
	}

	// README: tracebroker attest sign --key release.key --role generator plugins/opencount
	if r := tracebroker(t, "attest", "sign", "--key", testKey, "--role", "generator", filepath.Join(plugins, "opencount")); r.code != 0 {
		t.Fatalf("attest sign: %s", r.stderr)
	}
	// README: tracebroker plugins describe opencount --plugin-dir plugins --trust release.pub
	r := tracebroker(t, "plugins", "describe", "opencount", "--plugin-dir", plugins, "--trust", testPub)
	signer := "9a82517f9af19416" // the test-only key's id
	want := "opencount 1.0.0 (signed by " + signer + ")\n" +
		"count openat() calls per process name, for paths under a prefix\n\n" +
		"PARAMETER  TYPE    REQUIRED  DEFAULT  HELP\n" +
		"prefix     string  yes       -        count only paths that start with this prefix\n\n" +
		"Usage:\n  tracebroker run --gen opencount --param prefix=STRING\n"
	if r.code != 0 || r.stdout != want {
		t.Fatalf("plugins describe: exit %d\n%s\nwant:\n%s\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}

	// README: tracebroker run --gen opencount --param prefix=/etc/ --plugin-dir plugins --trust release.pub -c 'cat …'
	require(t, needKernel)
	files := t.TempDir()
	for _, f := range []string{"a", "b"} {
		if err := os.WriteFile(filepath.Join(files, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	objs := kerneltest.Track(t)
	r = tracebroker(t, "run", "--gen", "opencount", "--param", "prefix="+files+"/", "--plugin-dir", plugins, "--trust", testPub,
		"-c", "cat "+files+"/a "+files+"/b "+files+"/a")
	if want := "Attaching 1 probe...\n\n\n@[cat]: 3\n"; r.code != 0 || r.stdout != want {
		t.Errorf("run --gen opencount: exit %d, stdout %q, want %q\nstderr: %s", r.code, r.stdout, want, r.stderr)
	}
	objs.ExpectReleased(t, 10*time.Second)
}
