package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAsBpftrace: through a link named bpftrace, the binary answers as
// bpftrace does what bpftrace answers without tracing, with its words:
// bpftrace's own test suite and scripts that wrap bpftrace check them.
func TestAsBpftrace(t *testing.T) {
	link := filepath.Join(t.TempDir(), "bpftrace")
	if err := os.Symlink(binary, link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		args   []string
		stdin  string
		code   int
		stdout string // a prefix
		stderr string // contained
	}{
		{name: "version", args: []string{"--version"}, stdout: "bpftrace v0.17.0 (tracebroker "},
		{name: "V", args: []string{"-V"}, stdout: "bpftrace v0.17.0 (tracebroker "},
		{name: "help", args: []string{"-h"}, stdout: "USAGE:\n    bpftrace [options] filename\n"},
		{name: "no arguments", stdout: "USAGE:\n"},
		{name: "bad flag", args: []string{"-idonotexist"}, code: 1, stderr: "unknown shorthand flag: 'i' in -idonotexist\nUSAGE:\n"},
		{name: "pid not a number", args: []string{"-p", "a1111", "file.bt"}, code: 1, stderr: "ERROR: pid 'a1111' is not a valid decimal number\n"},
		{name: "pid out of range", args: []string{"-p", "5000000", "file.bt"}, code: 1, stderr: "ERROR: pid '5000000' out of valid pid range [1,4194304]\n"},
		{name: "pid zero", args: []string{"-p", "0", "file.bt"}, code: 1, stderr: "ERROR: pid '0' out of valid pid range [1,4194304]\n"},
		{name: "missing file", args: []string{"nonexistent.bt"}, code: 1, stderr: "ERROR: failed to open file 'nonexistent.bt': No such file or directory\n"},
		{name: "bad format", args: []string{"-f", "jsonx", "-e", "BEGIN { exit(); }"}, code: 1, stderr: "ERROR: Invalid output format \"jsonx\"\n"},
		{name: "bad list pattern", args: []string{"-l", `\n`}, code: 1, stderr: "ERROR: invalid character '\\' in the pattern"},
		{name: "a script on stdin, with errors named stdin", args: []string{"-"}, stdin: "BEGIN { nosuch(); }", code: 1, stderr: "stdin:1:9-15: ERROR: Unknown function: nosuch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(link, tc.args...)
			cmd.Stdin = strings.NewReader(tc.stdin)
			var stdout, stderr strings.Builder
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code != tc.code || !strings.HasPrefix(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit %d, stdout starting %q, stderr with %q", code, stdout.String(), stderr.String(), tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestSIGUSR1PrintsMaps: SIGUSR1 prints every map and the run goes on,
// as bpftrace does; the maps are printed again at the end.
func TestSIGUSR1PrintsMaps(t *testing.T) {
	require(t, needKernel)
	cmd := exec.Command(binary, "run", "-e", `BEGIN { @scalar = 5; @b[1] = 2; } interval:ms:1500 { exit(); }`)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if l, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(l, "Attaching") {
		t.Fatalf("first line %q, %v", l, err)
	}
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(r)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if got := string(rest); strings.Count(got, "@scalar: 5\n") != 2 || strings.Count(got, "@b[1]: 2\n") != 2 || strings.Index(got, "@b[1]") > strings.Index(got, "@scalar") {
		t.Errorf("output %q: want every map, by name, on SIGUSR1 and again at the end", got)
	}
}
