package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestReplayCLI replays a recording from testdata as nobody: no
// privilege, no kernel support. The expectations were checked against
// the live trace in interpreter mode when the recording was made
// (testdata/recordings/README.md says how).
func TestReplayCLI(t *testing.T) {
	dir := kerneltest.SharedDir(t)
	bin, rec := filepath.Join(dir, "tracebroker"), filepath.Join(dir, "cat.tbrec")
	if err := copyPair(bin); err != nil {
		t.Fatal(err)
	}
	if err := copyFile("../../testdata/recordings/cat.tbrec", rec, 0o644); err != nil {
		t.Fatal(err)
	}
	golden := func(name string) string {
		b, err := os.ReadFile("../../testdata/recordings/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	uid := 0
	if os.Getuid() == 0 {
		uid = nobody
	}
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr *regexp.Regexp
	}{
		{"the recorded script", []string{"replay", rec}, 0, golden("cat.out"), regexp.MustCompile(`^$`)},
		{"what a version 1 recording holds", []string{"replay", "--info", "cat.tbrec"}, 0, golden("cat.info"), regexp.MustCompile(`^$`)},
		{"another script, as JSON", []string{"replay", "-f", "json", rec, "-e", `tracepoint:syscalls:sys_enter_openat /pid == cpid/ { @[comm] = count(); }`}, 0, golden("cat-count.json"), regexp.MustCompile(`^$`)},
		{"a probe not recorded", []string{"replay", rec, "-e", `tracepoint:syscalls:sys_enter_close { @ = count(); }`}, 1, "",
			regexp.MustCompile(`tracepoint not found: syscalls:sys_enter_close|is not in the recording`)},
		{"not a recording", []string{"replay", bin}, 1, "", regexp.MustCompile(`^ERROR: .*not a recording \(no TBREC magic\): make one with tracebroker record\n$`)},
		{"no such file", []string{"replay", filepath.Join(dir, "nosuch")}, 1, "", regexp.MustCompile(`^ERROR: open .*nosuch: no such file or directory\n$`)},
		{"record needs -o", []string{"record", "-e", `tracepoint:syscalls:sys_enter_close {}`}, 1, "", regexp.MustCompile(`^ERROR: no output file: use -o FILE\n$`)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := (&errorsEnv{dir: dir, tracebroker: bin}).runAs(t, uid, tc.args...)
			if r.code != tc.code || r.stdout != tc.stdout || !tc.stderr.MatchString(r.stderr) {
				t.Errorf("exit %d\nstdout %q\nstderr %q\nwant exit %d, stdout %q, stderr matching %s", r.code, r.stdout, r.stderr, tc.code, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestCollectorsCLI: the collectors' objects export for signing, and
// verify once signed.
func TestCollectorsCLI(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if r := tracebroker(t, "init", "--state", state); r.code != 0 {
		t.Fatal(r.stderr)
	}
	r := tracebroker(t, "collectors", "list", "--state", state, "--trust", testPub)
	if r.code != 0 || strings.Count(r.stdout, "refused: collector") != len(collector.Programs()) {
		t.Fatalf("unsigned list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	signCollectors(t, state)
	r = tracebroker(t, "collectors", "list", "--state", state, "--trust", testPub)
	if r.code != 0 || strings.Count(r.stdout, "verified: signed by ") != len(collector.Programs()) {
		t.Fatalf("signed list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
