package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestObjectsCLI signs an object, a package and a repository the way an
// administrator would, verifies each, and runs them: under the strict
// default only what a trusted key signed, each form saying what signed
// it; a tampered package refused whatever the default.
func TestObjectsCLI(t *testing.T) {
	require(t, needKernel)
	dir := t.TempDir()
	data, err := os.ReadFile("../../testdata/objects/opensnoop.bpf.o")
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "vendor")
	obj := filepath.Join(dir, "opensnoop.bpf.o")
	os.WriteFile(obj, data, 0o644)
	pkgDir := filepath.Join(dir, "pkg")
	os.MkdirAll(pkgDir, 0o755)
	os.WriteFile(filepath.Join(pkgDir, "opensnoop.bpf.o"), data, 0o644)
	os.WriteFile(filepath.Join(pkgDir, "app.json"), []byte("{}\n"), 0o644)
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(filepath.Join(repo, "net"), 0o755)
	os.WriteFile(filepath.Join(repo, "net", "opensnoop.bpf.o"), data, 0o644)
	unsigned := filepath.Join(dir, "unsigned.bpf.o")
	os.WriteFile(unsigned, data, 0o644)
	strict := []string{"run", "--default", "strict", "--trust", key + ".pub", "-v", "-c", "/bin/true"}
	steps := []struct {
		name   string
		args   []string
		code   int
		stdout *regexp.Regexp
		stderr string
	}{
		{"keygen", []string{"attest", "keygen", "--out", key}, 0, nil, ""},
		{"sign the object", []string{"attest", "sign", "--key", key + ".key", "--role", "program", obj}, 0, regexp.MustCompile(`opensnoop\.bpf\.o\.sig \(key [0-9a-f]{64}\)`), ""},
		{"sign the package", []string{"attest", "sign", "--key", key + ".key", "--role", "package", "--version", "1.2", pkgDir}, 0, regexp.MustCompile(`pkg/package\.sig`), ""},
		{"sign the repository", []string{"attest", "sign", "--key", key + ".key", "--role", "repository", repo}, 0, regexp.MustCompile(`repo/repository\.sig`), ""},
		{"verify the object", []string{"attest", "verify", "--trust", key + ".pub", obj}, 0, regexp.MustCompile(`role: +program\n(.|\n)*form: +artifact\ncovers: +this eBPF object's bytes: the program alone\n$`), ""},
		{"verify the package", []string{"attest", "verify", "--trust", key + ".pub", pkgDir}, 0, regexp.MustCompile(`version: +1\.2\nform: +package\ncovers: +every member of the package \(2\), and nothing else\n  sha256:[0-9a-f]{64}  app\.json\n  sha256:[0-9a-f]{64}  opensnoop\.bpf\.o\n$`), ""},
		{"verify a repository file", []string{"attest", "verify", "--trust", key + ".pub", filepath.Join(repo, "net", "opensnoop.bpf.o")}, 0, regexp.MustCompile(`form: +repository file\ncovers: +this file, as net/opensnoop\.bpf\.o in the index of the repository .*repo \(1 files\)\n$`), ""},
		{"run the object", append(strict, obj), 0, regexp.MustCompile(`^Attaching 1 probe\.\.\.\n`), "its own signature, by "},
		{"run the package's member", append(strict, "--package", pkgDir), 0, regexp.MustCompile(`^Attaching 1 probe\.\.\.\n`), "strict default: its package is signed by trusted key"},
		{"run the repository's file", append(strict, filepath.Join(repo, "net", "opensnoop.bpf.o")), 0, regexp.MustCompile(`^Attaching 1 probe\.\.\.\n`), "strict default: its repository's index is signed by trusted key"},
		{"strict refuses the unsigned", append(strict, unsigned), 1, nil, "the gatekeeper denied tracepoint:syscalls:sys_enter_openat: the strict default admits only"},
		{"--sig needs an object", []string{"run", "--sig", "x.sig", "-e", "BEGIN { exit(); }"}, 1, nil, "--sig goes with an eBPF object"},
		{"--package takes no script", []string{"run", "--package", pkgDir, "-e", "BEGIN { exit(); }"}, 1, nil, "--package PKG runs one of its objects"},
		{"no such member", []string{"run", "--package", pkgDir, "nosuch.bpf.o"}, 1, nil, "no member nosuch.bpf.o (eBPF objects: opensnoop.bpf.o)"},
	}
	for _, s := range steps {
		r := tracebroker(t, s.args...)
		if r.code != s.code || s.stdout != nil && !s.stdout.MatchString(r.stdout) || !strings.Contains(r.stderr, s.stderr) {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", s.name, r.code, r.stdout, r.stderr)
		}
	}
	// The attestation of a package's program says what signed it, and
	// the variables set.
	state, att := filepath.Join(dir, "state"), filepath.Join(dir, "att")
	if r := tracebroker(t, "init", "--state", state); r.code != 0 {
		t.Fatalf("init: %s", r.stderr)
	}
	if r := tracebroker(t, "run", "--state", state, "--attest-dir", att, "--trust", key+".pub", "-q", "-c", "/bin/true", "--package", pkgDir); r.code != 0 {
		t.Fatalf("run --attest-dir: %s", r.stderr)
	}
	envs, _ := filepath.Glob(filepath.Join(att, "*.json"))
	if len(envs) != 1 {
		t.Fatalf("attestations: %v", envs)
	}
	r := tracebroker(t, "attest", "verify-program", "--trust", filepath.Join(state, "host.pub"), envs[0])
	if r.code != 0 || !regexp.MustCompile(`source: +object .*pkg:opensnoop\.bpf\.o \(sha256:[0-9a-f]{64}\)\ngenerator: +object \nsigned: +package pkg by [0-9a-f]{64}\n`).MatchString(r.stdout) {
		t.Fatalf("verify-program: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// A member changed after signing: refused, even under loose as root.
	os.WriteFile(filepath.Join(pkgDir, "app.json"), []byte("{\"x\": 1}\n"), 0o644)
	r = tracebroker(t, "run", "--trust", key+".pub", "-c", "/bin/true", "--package", pkgDir)
	if r.code != 1 || !strings.Contains(r.stderr, "the package does not verify: digest mismatch: member app.json is") || r.stdout != "" {
		t.Fatalf("tampered package: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
}
