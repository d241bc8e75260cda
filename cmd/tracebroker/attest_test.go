package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestAttestCLI walks the release flow as a user does: a release key,
// the broker signed for its role, verified, refused for the wrong role
// or when changed, measured running; then a host's state directory, a
// run that attests its programs, and the offline check of those.
func TestAttestCLI(t *testing.T) {
	dir := t.TempDir()
	rel := filepath.Join(dir, "release")
	other := filepath.Join(dir, "other")
	state := filepath.Join(dir, "state")
	bin := filepath.Join(dir, "tracebroker")
	b, err := os.ReadFile(binary)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name   string
		args   []string
		code   int
		stdout *regexp.Regexp
		stderr string
	}{
		{"keygen", []string{"attest", "keygen", "--out", rel}, 0, regexp.MustCompile(`key id: [0-9a-f]{64}\n$`), ""},
		{"keygen refuses to overwrite", []string{"attest", "keygen", "--out", rel}, 1, nil, "exists"},
		{"another key", []string{"attest", "keygen", "--out", other}, 0, nil, ""},
		{"sign", []string{"attest", "sign", "--key", rel + ".key", "--role", "broker", "--version", "v9.9.9", bin}, 0, regexp.MustCompile(`tracebroker\.sig \(key [0-9a-f]{64}\)\n$`), ""},
		{"sign needs a role", []string{"attest", "sign", "--key", rel + ".key", bin}, 1, nil, `--role "": want one of broker, generator, collector, policy, program, gate, package, repository`},
		{"verify", []string{"attest", "verify", "--trust", rel + ".pub", "--role", "broker", bin}, 0, regexp.MustCompile(`verified: yes\nsigner: +[0-9a-f]{64}\nrole: +broker\nname: +tracebroker\nversion: +v9.9.9\nform: +artifact\ncovers: +this file.s bytes\n$`), ""},
		{"wrong role", []string{"attest", "verify", "--trust", rel + ".pub", "--role", "policy", bin}, 1, nil, "wrong role"},
		{"untrusted key", []string{"attest", "verify", "--trust", other + ".pub", bin}, 1, nil, "untrusted key"},
		{"init", []string{"init", "--state", state}, 0, regexp.MustCompile(`^host key created: [0-9a-f]{64}\n`), ""},
		{"init again keeps the key", []string{"init", "--state", state}, 0, regexp.MustCompile(`^host key exists: `), ""},
	}
	for _, s := range steps {
		r := tracebroker(t, s.args...)
		if r.code != s.code || s.stdout != nil && !s.stdout.MatchString(r.stdout) || !strings.Contains(r.stderr, s.stderr) {
			t.Fatalf("%s: exit %d\nstdout: %s\nstderr: %s", s.name, r.code, r.stdout, r.stderr)
		}
	}
	if fi, err := os.Stat(rel + ".key"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("release.key mode: %v %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(state, "host.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("host.key mode: %v %v", fi.Mode(), err)
	}

	// The signed copy measures itself: unverified until the host trusts
	// the release key, verified after.
	measure := func() result {
		r := tracebrokerAt(t, bin, "attest", "measure", "--state", state)
		if r.code != 0 {
			t.Fatalf("measure: %d %s", r.code, r.stderr)
		}
		return r
	}
	if r := measure(); !strings.Contains(r.stdout, "verified: no: untrusted key") || !strings.Contains(r.stdout, "path:     "+bin+"\n") {
		t.Fatalf("measure before trust:\n%s", r.stdout)
	}
	pub, _ := os.ReadFile(rel + ".pub")
	os.WriteFile(filepath.Join(state, "trust", "release.pub"), pub, 0o644)
	if r := measure(); !strings.Contains(r.stdout, "verified: yes") || !strings.Contains(r.stdout, "version:  v9.9.9") {
		t.Fatalf("measure after trust:\n%s", r.stdout)
	}

	// A changed binary no longer matches its manifest.
	changed := filepath.Join(dir, "changed")
	os.WriteFile(changed, append(b, 0), 0o755)
	sig, _ := os.ReadFile(bin + ".sig")
	os.WriteFile(changed+".sig", sig, 0o644)
	if r := tracebroker(t, "attest", "verify", "--trust", rel+".pub", changed); r.code != 1 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Fatalf("changed binary: %d %s", r.code, r.stderr)
	}

	require(t, needKernel) // takes the kernel lock too
	att := filepath.Join(dir, "att")
	r := tracebrokerAt(t, bin, "run", "--state", state, "--attest-dir", att, "-e", `BEGIN { printf("hi\n"); exit(); } END { printf("bye\n"); }`)
	if r.code != 0 || r.stdout != "Attaching 2 probes...\nhi\nbye\n\n\n" {
		t.Fatalf("attested run: %d %q %s", r.code, r.stdout, r.stderr)
	}
	files, _ := filepath.Glob(filepath.Join(att, "*BEGIN.dsse.json"))
	if len(files) != 1 {
		t.Fatalf("attestations: %v", files)
	}
	host := filepath.Join(state, "host.pub")
	r = tracebroker(t, "attest", "verify-program", "--trust", host, files[0])
	for _, want := range []string{"program:   BEGIN (", "source:    script stdin", "generator: tracebroker-script", "broker:    " + bin, "verified=true", "requester: uid 0"} {
		if r.code != 0 || !strings.Contains(r.stdout, want) {
			t.Fatalf("verify-program: %d, want %q in\n%s%s", r.code, want, r.stdout, r.stderr)
		}
	}
	// The source kept beside the attestations is checked against the
	// signed digest: found, given, missing, or not the one signed.
	if !strings.Contains(r.stdout, "text:      "+att+"/sources/sha256-") || !strings.Contains(r.stdout, ", matches its digest\n") {
		t.Fatalf("verify-program does not check the kept source:\n%s", r.stdout)
	}
	srcs, _ := filepath.Glob(filepath.Join(att, "sources", "sha256-*"))
	if len(srcs) != 1 {
		t.Fatalf("kept sources: %v", srcs)
	}
	otherSrc := filepath.Join(dir, "other.bt")
	os.WriteFile(otherSrc, []byte(`BEGIN { exit(); }`), 0o644)
	if r := tracebroker(t, "attest", "verify-program", "--trust", host, "--source", otherSrc, files[0]); r.code != 1 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Fatalf("verify-program --source of another script: %d %s", r.code, r.stderr)
	}
	kept, _ := os.ReadFile(srcs[0])
	os.WriteFile(srcs[0], append(kept, '\n'), 0o640)
	if r := tracebroker(t, "attest", "verify-program", "--trust", host, files[0]); r.code != 1 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Fatalf("verify-program of an edited kept source: %d %s", r.code, r.stderr)
	}
	os.Remove(srcs[0])
	if r := tracebroker(t, "attest", "verify-program", "--trust", host, files[0]); r.code != 0 || !strings.Contains(r.stdout, "text:      not at hand") {
		t.Fatalf("verify-program without the kept source: %d %s%s", r.code, r.stdout, r.stderr)
	}
	if r := tracebroker(t, "attest", "verify-program", "--trust", rel+".pub", files[0]); r.code != 1 || !strings.Contains(r.stderr, "untrusted key") {
		t.Fatalf("verify-program with the wrong key: %d %s", r.code, r.stderr)
	}
	if r := tracebroker(t, "attest", "verify-program", "--trust", host, "--program", "b7000000000000009500000000000000", files[0]); r.code != 1 || !strings.Contains(r.stderr, "digest mismatch") {
		t.Fatalf("verify-program with another program: %d %s", r.code, r.stderr)
	}
	// Without the host key, a run asked to attest does not start.
	r = tracebrokerAt(t, bin, "run", "--state", filepath.Join(dir, "nostate"), "--attest-dir", att, "-e", `BEGIN { printf("hi\n"); exit(); }`)
	if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, "run tracebroker init") {
		t.Fatalf("run without a host key: %d %q %s", r.code, r.stdout, r.stderr)
	}
}
