package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// pluginDir builds the opensnoop example, and the plugins of the
// packages more names (relative to the repository), into a plugin
// directory, signed with the test-only key for role generator, beside an
// unsigned copy of opensnoop.
func pluginDir(t *testing.T, more ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, pkg := range append([]string{"plugins/examples/opensnoop"}, more...) {
		bin := filepath.Join(dir, filepath.Base(pkg))
		if out, err := exec.Command("go", "build", "-o", bin, "../../"+pkg).CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
		if r := tracebroker(t, "attest", "sign", "--key", testKey, "--role", "generator", bin); r.code != 0 {
			t.Fatalf("attest sign: %s", r.stderr)
		}
	}
	data, err := os.ReadFile(filepath.Join(dir, "opensnoop"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "unsigned"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestPluginsCLI(t *testing.T) {
	dir := pluginDir(t)
	files, err := os.MkdirTemp("", "tbp")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(files)
	if err := os.WriteFile(filepath.Join(files, "known"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	gen := []string{"--plugin-dir", dir, "--trust", testPub}
	tests := []struct {
		name   string
		need   need
		args   []string
		code   int
		stdout *regexp.Regexp
		stderr string
	}{
		{
			name: "list",
			args: append([]string{"plugins", "list"}, gen...),
			stdout: regexp.MustCompile(`^NAME +VERSION +SIGNER +STATUS\n` +
				`opensnoop +\S+ +[0-9a-f]{16} +verified: .+\n` +
				`unsigned +- +- +refused: .*unsigned.*\n$`),
		},
		{
			name:   "run a signed generator",
			need:   needKernel,
			args:   append([]string{"run", "--gen", "opensnoop", "--param", "path=" + files + "/", "-c", "cat " + files + "/known"}, gen...),
			stdout: regexp.MustCompile(`(?m)^\d+ +cat +\d+   0 ` + regexp.QuoteMeta(files) + `/known$`),
		},
		{
			name:   "an unsigned generator never runs",
			args:   append([]string{"run", "--gen", "unsigned"}, gen...),
			code:   1,
			stderr: "unsigned",
		},
		{
			name:   "a parameter the generator does not declare",
			args:   append([]string{"run", "--gen", "opensnoop", "--param", "nosuch=1"}, gen...),
			code:   1,
			stderr: "nosuch",
		},
		{
			name:   "a parameter of the wrong type",
			args:   append([]string{"run", "--gen", "opensnoop", "--param", "pid=abc"}, gen...),
			code:   1,
			stderr: "pid",
		},
		{
			name:   "a generator and a script",
			args:   append([]string{"run", "--gen", "opensnoop", "-e", "BEGIN { exit(); }"}, gen...),
			code:   1,
			stderr: "give a program (-e PROGRAM or FILE) or --gen NAME, not both",
		},
		{
			name: "describe",
			args: append([]string{"plugins", "describe", "opensnoop"}, gen...),
			stdout: regexp.MustCompile(`^opensnoop \S+ \(signed by [0-9a-f]{16}\)\n.+\n\n` +
				`PARAMETER +TYPE +REQUIRED +DEFAULT +HELP\n` +
				`pid +int +no +- +only this process\n(.+\n){3}\n` +
				`Usage:\n  tracebroker run --gen opensnoop \[--param pid=INT\] .*\[--param failed=BOOL\]\n$`),
		},
		{
			name:   "describe as JSON",
			args:   append([]string{"plugins", "describe", "--json", "opensnoop"}, gen...),
			stdout: regexp.MustCompile(`(?s)^\{\n  "name": "opensnoop",.*"params": \[\n    \{\n      "name": "pid",\n      "type": "int",\n      "required": false,\n      "help": "only this process"\n    \},.*\]\n\}\n$`),
		},
		{
			name:   "run --gen NAME --help describes the generator",
			args:   append([]string{"run", "--gen", "opensnoop", "--help"}, gen...),
			stdout: regexp.MustCompile(`(?m)^pid +int +no +- +only this process$`),
		},
		{
			name:   "run --help without --gen is run's help",
			args:   []string{"run", "--help"},
			stdout: regexp.MustCompile(`^Compile a script to eBPF`),
		},
		{
			name:   "an unsigned generator is not started to describe it",
			args:   append([]string{"plugins", "describe", "unsigned"}, gen...),
			code:   1,
			stderr: "plugin unsigned: refused, not started",
		},
		{
			name:   "run --gen NAME --help of no such plugin",
			args:   append([]string{"run", "--gen", "nosuch", "--help"}, gen...),
			code:   1,
			stderr: `no generator plugin "nosuch"`,
		},
		{
			name:   "a parameter without a generator",
			args:   []string{"run", "--param", "a=b", "-e", "BEGIN { exit(); }"},
			code:   1,
			stderr: "--param goes with --gen NAME",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			require(t, tc.need)
			r := tracebroker(t, tc.args...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.stdout != nil && !tc.stdout.MatchString(r.stdout) {
				t.Errorf("stdout does not match %s:\n%s", tc.stdout, r.stdout)
			}
			if !strings.Contains(r.stderr, tc.stderr) {
				t.Errorf("stderr %q does not mention %q", r.stderr, tc.stderr)
			}
		})
	}
}
