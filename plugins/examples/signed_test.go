package examples_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/gatekeeper"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/plugins"
	"github.com/tracebroker/tracebroker/plugins/examples/internal/gentest"
)

func TestMain(m *testing.M) {
	gentest.Main(m, map[string]func([]string) error{
		// getcwd N: N getcwd calls, which the Go runtime never makes.
		"getcwd": func(args []string) error {
			n, _ := strconv.Atoi(args[0])
			kerneltest.Syscalls(n, 0)
			return nil
		},
		// open DIR N: open DIR/known N times, then DIR/missing.
		"open": func(args []string) error {
			n, _ := strconv.Atoi(args[1])
			for range n {
				fd, err := unix.Open(filepath.Join(args[0], "known"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
				if err != nil {
					return err
				}
				unix.Close(fd)
			}
			unix.Open(filepath.Join(args[0], "missing"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
			return nil
		},
	})
}

// signedPlugins builds the three examples into a plugin directory and
// signs them for role generator with a key made for the test.
func signedPlugins(t *testing.T) (dir string, trust *attest.Trust) {
	t.Helper()
	dir = t.TempDir()
	key, err := attest.GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"opensnoop", "execsnoop", "syscount"} {
		bin := filepath.Join(dir, name)
		if out, err := exec.Command("go", "build", "-o", bin, "./"+name).CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", name, err, out)
		}
		if _, err := attest.SignArtifact(bin, key, attest.ArtifactPredicate{Role: attest.RoleGenerator, Name: name, Version: "test"}); err != nil {
			t.Fatal(err)
		}
	}
	return dir, attest.NewTrust(key.Public())
}

// TestSignedGenerators runs each example as a signed plugin through the
// host, and its program through the broker and a gatekeeper policy that
// admits only verified generators, against a workload the test starts.
func TestSignedGenerators(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	dir, trust := signedPlugins(t)
	host := &plugins.Host{Dir: dir, Trust: trust}

	list, err := host.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d plugins, want 3", len(list))
	}
	for _, p := range list {
		if !p.Identity.Verified || p.Info == nil || p.Info.Name != p.Name {
			t.Errorf("plugin %s: %+v", p.Name, p)
		}
	}

	// The policy sees the plugin, not the broker, as the generator.
	f, err := syntax.Parse("policy.bt", []byte(`gatekeeper {
		if (req.generator_verified && (req.generator == "opensnoop" || req.generator == "execsnoop" || req.generator == "syscount")) {
			return any;
		}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := compile.Policy(f)
	if err != nil {
		t.Fatal(err)
	}
	p, err := gatekeeper.NewPolicy("generators", pol.Probes[0].Insns, gatekeeper.PolicyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	pf, err := gatekeeper.DetectPlatform("auto")
	if err != nil {
		t.Fatal(err)
	}
	keeper, err := gatekeeper.New(gatekeeper.Config{Default: gatekeeper.DefaultStrict, Platform: pf})
	if err != nil {
		t.Fatal(err)
	}
	keeper.Load(p)

	files := gentest.TempDir(t)
	if err := os.WriteFile(filepath.Join(files, "known"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	exe, comm := gentest.Exe(t), gentest.Comm(t)
	tests := []struct {
		name    string
		params  map[string]string
		command string
		want    []string // regexps over the whole output
	}{
		{
			name:    "syscount",
			params:  map[string]string{"pid": "-1"},
			command: exe + " getcwd 7",
			want:    []string{`^Attaching 2 probes\.\.\.\n`, `(?m)^@syscalls\[79\]: 7$`},
		},
		{
			name:    "opensnoop",
			params:  map[string]string{"path": files + "/"},
			command: fmt.Sprintf("%s open %s 2", exe, files),
			want: []string{
				`(?m)^PID    COMM               FD ERR PATH$`,
				`(?m)^\d+ +` + regexp.QuoteMeta(comm) + ` +\d+   0 ` + regexp.QuoteMeta(files) + `/known\n\d+ +` + regexp.QuoteMeta(comm) + ` +\d+   0 ` + regexp.QuoteMeta(files) + `/known\n\d+ +` + regexp.QuoteMeta(comm) + `  +-1   2 ` + regexp.QuoteMeta(files) + `/missing$`,
			},
		},
		{
			name:    "execsnoop",
			params:  map[string]string{"comm": "sh"},
			command: exe + " getcwd 0",
			want:    []string{`(?m)^\d+ +sh +` + regexp.QuoteMeta(exe) + ` getcwd 0$`},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			kerneltest.Lock(t)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			g, err := host.Generate(ctx, tc.name, tc.params)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			err = broker.Run(ctx, broker.Request{
				Name: "gen:" + tc.name, Source: []byte(g.Output.Script), Command: tc.command,
				Stdout: &stdout, Stderr: &stderr,
				Gate:      &broker.Gate{Keeper: keeper, Request: broker.RequesterRequest(attest.Identity{})},
				Generator: &broker.Generator{Name: g.Info.Name, Version: g.Info.Version, Identity: g.Plugin.Identity, Params: g.Params},
			})
			if err != nil {
				t.Fatalf("run: %v\n%s", err, stderr.String())
			}
			for _, w := range tc.want {
				if !regexp.MustCompile(w).MatchString(stdout.String()) {
					t.Errorf("output does not match %s:\n%s", w, stdout.String())
				}
			}
		})
	}

	// The same programs under the same policy without a verified
	// plugin behind them are refused: the script alone is not enough.
	g, err := host.Generate(context.Background(), "syscount", map[string]string{"top": "1"})
	if err != nil {
		t.Fatal(err)
	}
	err = broker.Run(context.Background(), broker.Request{
		Name: "stdin", Source: []byte(g.Output.Script),
		Gate: &broker.Gate{Keeper: keeper, Request: broker.RequesterRequest(attest.Identity{})},
	})
	if err == nil || !strings.Contains(err.Error(), "the gatekeeper denied") {
		t.Errorf("the script without its plugin: %v", err)
	}
}
