// Package btsuite runs bpftrace's own runtime test suite (bpftrace
// 0.17's tests/runtime, vendored in testdata/bpftrace-0.17) against a
// bpftrace command line, with the upstream engine's semantics: its
// runtime/engine/parser.py reads the files, its runner.py decides what
// passes. Where this package differs from the engine it says why.
package btsuite

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// A Test is one test of the suite, as the engine's TestStruct holds it.
type Test struct {
	Suite string // the file's name: "basic", "probe", ...
	Name  string
	Line  int // where the test starts in its file
	Nth   int // 2 for the second test of a name in its suite, ...

	Run    string // a shell command line with {{BPFTRACE}}, or
	Prog   string // a program run as bpftrace -e 'PROG'
	Expect string // a Python regular expression searched in the output

	Timeout int // seconds, from when the probes are attached
	Before  string
	After   string

	MinKernel, MaxKernel string
	Requires             []string // shell commands that must succeed
	Env                  [][2]string
	Arch                 []string
	Features             []string // REQUIRES_FEATURE names
	NotFeatures          []string // REQUIRES_FEATURE !names
	WillFail             bool     // a non-zero exit is expected
}

// ID is the name the engine reports and filters by, suite.name, made
// unique: the suite names a few tests twice (probe.uprobe_offset), and
// the second of a name is suite.name#2.
func (t Test) ID() string {
	if t.Nth > 1 {
		return fmt.Sprintf("%s.%s#%d", t.Suite, t.Name, t.Nth)
	}
	return t.Suite + "." + t.Name
}

// knownFeatures are the REQUIRES_FEATURE names the engine accepts.
var knownFeatures = map[string]bool{
	"loop": true, "btf": true, "kfunc": true, "probe_read_kernel": true,
	"dpath": true, "uprobe_refcount": true, "signal": true, "iter:task": true,
	"iter:task_file": true, "libpath_resolv": true, "dwarf": true, "aot": true,
	"kprobe_multi": true, "skboutput": true,
}

// Parse reads one suite file as parser.py reads it: tests are separated
// by empty lines; a line starting with '#' is skipped (and, as there, is
// not the end of the file that closes the last test); each line is a
// directive and its words, joined by single spaces. machine is uname's
// (x86_64, aarch64): a test whose ARCH does not name it is dropped, as
// the engine drops it, uncounted.
func Parse(suite string, data []byte, machine string) ([]Test, error) {
	var (
		tests []Test
		lines []string
		start int
	)
	raw := splitLines(data)
	for i, line := range raw {
		if strings.HasPrefix(line, "#") {
			continue
		}
		if line != "\n" {
			if len(lines) == 0 {
				start = i + 1
			}
			lines = append(lines, line)
		}
		if line == "\n" || i == len(raw)-1 {
			if len(lines) > 0 {
				t, err := parseTest(suite, start, lines)
				if err != nil {
					return nil, err
				}
				if len(t.Arch) == 0 || contains(t.Arch, strings.ToLower(machine)) {
					tests = append(tests, t)
				}
				lines = lines[:0]
			}
		}
	}
	return tests, nil
}

// splitLines is Python's readlines: each line keeps its "\n".
func splitLines(data []byte) []string {
	var out []string
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			out = append(out, string(data))
			break
		}
		out = append(out, string(data[:i+1]))
		data = data[i+1:]
	}
	return out
}

func parseTest(suite string, start int, lines []string) (Test, error) {
	t := Test{Suite: suite, Line: start, Timeout: -1}
	at := func(i int) string { return fmt.Sprintf("%s:%d", suite, start+i) }
	for i, l := range lines {
		words := strings.Fields(l)
		if len(words) == 0 {
			// parser.py fails here too (an IndexError).
			return Test{}, fmt.Errorf("%s: a line of blanks inside a test", at(i))
		}
		val := strings.Join(words[1:], " ")
		switch words[0] {
		case "NAME":
			t.Name = val
		case "RUN":
			t.Run = val
		case "PROG":
			t.Prog = val
		case "EXPECT":
			t.Expect = val
		case "TIMEOUT":
			n, err := strconv.Atoi(strings.TrimSpace(val))
			if err != nil {
				return Test{}, fmt.Errorf("%s: TIMEOUT %q is not a number", at(i), val)
			}
			t.Timeout = n
		case "BEFORE":
			t.Before = val
		case "AFTER":
			t.After = val
		case "MIN_KERNEL":
			t.MinKernel = val
		case "MAX_KERNEL":
			t.MaxKernel = val
		case "REQUIRES":
			t.Requires = append(t.Requires, val)
		case "ENV":
			for _, e := range strings.Fields(val) {
				k, v, ok := strings.Cut(e, "=")
				if !ok || strings.Contains(v, "=") {
					return Test{}, fmt.Errorf("%s: ENV %q is not NAME=VALUE", at(i), e)
				}
				t.Env = append(t.Env, [2]string{k, v})
			}
		case "ARCH":
			t.Arch = nil
			for _, a := range strings.Split(val, "|") {
				t.Arch = append(t.Arch, strings.TrimSpace(a))
			}
		case "REQUIRES_FEATURE":
			for _, f := range strings.Split(val, " ") {
				f = strings.TrimSpace(f)
				name, neg := strings.CutPrefix(f, "!")
				if !knownFeatures[name] {
					return Test{}, fmt.Errorf("%s: %q is invalid for REQUIRES_FEATURE", at(i), f)
				}
				if neg {
					t.NotFeatures = appendNew(t.NotFeatures, name)
				} else {
					t.Features = appendNew(t.Features, name)
				}
			}
		case "WILL_FAIL":
			t.WillFail = true
		default:
			return Test{}, fmt.Errorf("%s: field %s is unknown", at(i), words[0])
		}
	}
	switch {
	case t.Name == "":
		return Test{}, fmt.Errorf("%s: test NAME is required", at(0))
	case t.Run == "" && t.Prog == "":
		return Test{}, fmt.Errorf("%s: test %s: RUN or PROG is required", at(0), t.Name)
	case t.Run != "" && t.Prog != "":
		return Test{}, fmt.Errorf("%s: test %s: RUN and PROG both specified", at(0), t.Name)
	case t.Expect == "":
		return Test{}, fmt.Errorf("%s: test %s: EXPECT is required", at(0), t.Name)
	case t.Timeout < 0:
		return Test{}, fmt.Errorf("%s: test %s: TIMEOUT is required", at(0), t.Name)
	}
	if _, err := compileExpect(t.Expect, true); err != nil {
		return Test{}, fmt.Errorf("%s: test %s: %v", at(0), t.Name, err)
	}
	return t, nil
}

func appendNew(s []string, v string) []string {
	if contains(s, v) {
		return s
	}
	return append(s, v)
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Load reads every suite file under dir/runtime as the engine's read_all
// does (skipping engine/, scripts/, outputs/ and dot files), sorted as
// main.py runs them: by suite, then by name.
func Load(dir, machine string) ([]Test, error) {
	var tests []Test
	root := filepath.Join(dir, "runtime")
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case "engine", "scripts", "outputs":
				return filepath.SkipDir
			}
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		ts, err := Parse(d.Name(), data, machine)
		if err != nil {
			return err
		}
		tests = append(tests, ts...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	sort.SliceStable(tests, func(i, j int) bool {
		if tests[i].Suite != tests[j].Suite {
			return tests[i].Suite < tests[j].Suite
		}
		return tests[i].Name < tests[j].Name
	})
	seen := map[string]int{}
	for i := range tests {
		k := tests[i].Suite + "\x00" + tests[i].Name
		seen[k]++
		if seen[k] > 1 {
			tests[i].Nth = seen[k]
		}
	}
	return tests, nil
}
