package gatekeeper

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeRoot builds a file system with the given files (path -> content;
// a ".gz" file is gzipped unless its content starts with "raw:") and
// modes.
func fakeRoot(t *testing.T, files map[string]string, modes map[string]os.FileMode) string {
	root := t.TempDir()
	for path, content := range files {
		full := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		data := []byte(content)
		if raw, ok := strings.CutPrefix(content, "raw:"); ok {
			data = []byte(raw)
		} else if strings.HasSuffix(path, ".gz") {
			var b bytes.Buffer
			z := gzip.NewWriter(&b)
			z.Write(data)
			z.Close()
			data = b.Bytes()
		}
		mode := os.FileMode(0o644)
		if m, ok := modes[path]; ok {
			mode = m
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestDetectPlatform(t *testing.T) {
	const (
		sysctl = "proc/sys/net/core/bpf_jit_enable"
		procgz = "proc/config.gz"
		boot   = "boot/config-6.1.0-test"
	)
	alwaysOn := "CONFIG_BPF_JIT=y\nCONFIG_BPF_JIT_ALWAYS_ON=y\n"
	notSet := "CONFIG_BPF_JIT=y\n# CONFIG_BPF_JIT_ALWAYS_ON is not set\n"
	tests := []struct {
		name    string
		hvci    string
		files   map[string]string
		modes   map[string]os.FileMode
		want    Platform
		wantErr string
	}{
		{"JIT on, always on from /proc/config.gz", "auto", map[string]string{sysctl: "1\n", procgz: alwaysOn}, nil,
			Platform{JITAvailable: true}, ""},
		{"JIT on with dumps, interpreter kept", "off", map[string]string{sysctl: "2\n", procgz: notSet}, nil,
			Platform{JITAvailable: true, KernelInterpreter: true}, ""},
		{"JIT off", "auto", map[string]string{sysctl: "0\n", procgz: notSet}, nil,
			Platform{KernelInterpreter: true}, ""},
		{"no JIT compiled in", "auto", map[string]string{procgz: "CONFIG_BPF_SYSCALL=y\n"}, nil,
			Platform{KernelInterpreter: true}, ""},
		{"HVCI forced on", "on", map[string]string{sysctl: "1\n", procgz: notSet}, nil,
			Platform{HVCI: true, JITAvailable: true, KernelInterpreter: true}, ""},
		{"empty hvci is auto", "", map[string]string{sysctl: "1\n", procgz: notSet}, nil,
			Platform{JITAvailable: true, KernelInterpreter: true}, ""},
		{"config from /boot", "auto", map[string]string{sysctl: "1\n", boot: alwaysOn}, nil,
			Platform{JITAvailable: true}, ""},
		{"/proc/config.gz wins over /boot", "auto", map[string]string{sysctl: "1\n", procgz: notSet, boot: alwaysOn}, nil,
			Platform{JITAvailable: true, KernelInterpreter: true}, ""},
		{"corrupt config.gz falls back to /boot", "auto", map[string]string{sysctl: "1\n", procgz: "raw:not gzip", boot: alwaysOn}, nil,
			Platform{JITAvailable: true}, ""},
		{"no config: read-only sysctl at 1 means always on", "auto", map[string]string{sysctl: "1\n"}, map[string]os.FileMode{sysctl: 0o444},
			Platform{JITAvailable: true}, ""},
		{"no config: writable sysctl says nothing", "auto", map[string]string{sysctl: "1\n"}, nil,
			Platform{JITAvailable: true, KernelInterpreter: true}, ""},
		{"no config: read-only sysctl at 0 is not always on", "auto", map[string]string{sysctl: "0\n"}, map[string]os.FileMode{sysctl: 0o444},
			Platform{KernelInterpreter: true}, ""},
		{"bad hvci", "yes", nil, nil, Platform{}, `hvci "yes": want auto, on or off`},
		{"garbage sysctl", "auto", map[string]string{sysctl: "on\n"}, nil, Platform{}, `"on" is not a number`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := fakeRoot(t, tt.files, tt.modes)
			got, err := detectPlatform(tt.hvci, root, "6.1.0-test")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("detectPlatform = %+v, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("detectPlatform = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestDetectPlatformHere checks the machine the tests run on against
// its own kernel configuration, when it can be read.
func TestDetectPlatformHere(t *testing.T) {
	p, err := DetectPlatform("auto")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("platform: %+v", p)
	if p.HVCI {
		t.Error("HVCI on Linux")
	}
	b, err := os.ReadFile("/proc/sys/net/core/bpf_jit_enable")
	if err != nil {
		t.Skip("no bpf_jit_enable:", err)
	}
	if want := strings.TrimSpace(string(b)) != "0"; p.JITAvailable != want {
		t.Errorf("JITAvailable = %v with bpf_jit_enable %s", p.JITAvailable, b)
	}
	if set, known := kernelConfig("/", release(t), "CONFIG_BPF_JIT_ALWAYS_ON"); known && p.KernelInterpreter == set {
		t.Errorf("KernelInterpreter = %v with CONFIG_BPF_JIT_ALWAYS_ON %v", p.KernelInterpreter, set)
	}
}

func release(t *testing.T) string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		t.Skip(err)
	}
	return strings.TrimSpace(string(b))
}
