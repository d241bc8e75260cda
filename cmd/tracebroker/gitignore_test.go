package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestGitignore: .gitignore keeps keys and built plugins out of the tree
// (the README's recipes make them there) without hiding a tracked file,
// such as a test-only key in testdata.
func TestGitignore(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("no git")
	}
	top, err := exec.Command("git", "rev-parse", "--show-toplevel").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	root := strings.TrimSpace(string(top))
	ls := exec.Command("git", "ls-files")
	ls.Dir = root
	tracked, err := ls.Output()
	if err != nil {
		t.Fatal(err)
	}
	check := func(paths string) string {
		c := exec.Command("git", "check-ignore", "--no-index", "--stdin")
		c.Dir = root
		c.Stdin = strings.NewReader(paths)
		out, err := c.Output()
		// Status 1: nothing ignored.
		if ee, ok := err.(*exec.ExitError); err != nil && !(ok && ee.ExitCode() == 1) {
			t.Fatalf("git check-ignore: %v", err)
		}
		return string(out)
	}
	if ignored := check(string(tracked)); ignored != "" {
		t.Errorf("tracked files that .gitignore ignores:\n%s", ignored)
	}
	made := "release.key\nissuer.key\nplugins/opensnoop\nplugins/opensnoop.sig\nbin/tracebroker\nattest/testdata/real.key\n"
	if ignored := check(made); ignored != made {
		t.Errorf("ignored:\n%s\nwant:\n%s", ignored, made)
	}
}
