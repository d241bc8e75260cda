package broker

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// heldoutWorkloadC is the traced program of the held-out uprobe scripts in
// testdata/uprobe. Every call is known, so every count is exact, and the
// calls are chosen so that no two keys of a value-sorted map tie (bpftrace
// prints ties in the kernel's hash order, which varies from run to run):
//
//	add_one(k)       k times for k = 1..N (N = argv[1], 4 by default)
//	add_two(10*k)    once for k = 1..N
//	add_three(a,b,c) a = -2000,-1000,0,1000,2000, b = 0..-4, c = 250..254
//	negate(x)        x = -3..3: returns 3..-3
//	fact(5)          recursive: fact(5)..fact(1), returning 1,2,6,24,120
//	greet(s)         "hello uprobe" once, "hi" twice, "a longer greeting,
//	                 twenty-nine" three times, from the stack (a uprobe
//	                 cannot fault in a page)
//
// argv[2], if given, is a number of milliseconds to sleep before exiting:
// bpftrace resolves func while the process lives.
const heldoutWorkloadC = `#include <stdlib.h>
#include <unistd.h>
__attribute__((noinline)) int add_one(int x) { return x + 1; }
__attribute__((noinline)) int add_two(int x) { return x + 2; }
__attribute__((noinline)) long add_three(long a, int b, unsigned char c) { return a + b + c; }
__attribute__((noinline)) int negate(int x) { return -x; }
__attribute__((noinline)) int fact(int n) { return n <= 1 ? 1 : n * fact(n - 1); }
__attribute__((noinline)) void greet(const char *s) { __asm__ volatile("" :: "r"(s) : "memory"); }
int main(int argc, char **argv) {
	int n = argc > 1 ? atoi(argv[1]) : 4;
	volatile long sum = 0;
	for (int k = 1; k <= n; k++)
		for (int j = 0; j < k; j++)
			sum += add_one(k);
	for (int k = 1; k <= n; k++)
		sum += add_two(k * 10);
	for (int i = 0; i < 5; i++)
		sum += add_three(i * 1000 - 2000, -i, 250 + i);
	for (int i = -3; i <= 3; i++)
		sum += negate(i);
	sum += fact(5);
	char a[] = "hello uprobe", b[] = "hi", c[] = "a longer greeting, twenty-nine";
	greet(a); greet(b); greet(c); greet(b); greet(c); greet(c);
	if (argc > 2)
		usleep(atoi(argv[2]) * 1000);
	return 0;
}
`

// heldoutWorkload is the built workload: ROOT/bin/work.
type heldoutWorkload struct {
	root, dir, bin string
}

// buildHeldoutWorkload compiles heldoutWorkloadC with gcc (PIE, as
// distributions build) under a short temporary root: probe names hold the
// path, and str() and map keys are bounded.
func buildHeldoutWorkload(t *testing.T) *heldoutWorkload {
	t.Helper()
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("the uprobe workload is built with gcc, which is not installed")
	}
	root, err := os.MkdirTemp("", "tbu")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	w := &heldoutWorkload{root: root, dir: filepath.Join(root, "bin")}
	w.bin = filepath.Join(w.dir, "work")
	if err := os.Mkdir(w.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(root, "work.c")
	if err := os.WriteFile(src, []byte(heldoutWorkloadC), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-O0", "-o", w.bin, src).CombinedOutput(); err != nil {
		t.Fatalf("gcc: %v\n%s", err, out)
	}
	return w
}

// expand replaces BIN (the workload's absolute path) and BINDIR (its
// directory) in scripts, commands and expected output. Scripts that name
// the binary by a relative path (./bin/work) run with the workload's root
// as the working directory, so their probe names are the same every run.
func (w *heldoutWorkload) expand(s string) string {
	return strings.NewReplacer("BINDIR", w.dir, "BIN", w.bin).Replace(s)
}

// unexpand is expand's inverse, for recording bpftrace's output.
func (w *heldoutWorkload) unexpand(s string) string {
	return strings.NewReplacer(w.bin, "BIN", w.dir, "BINDIR").Replace(s)
}

// uprobeCase is one held-out uprobe script of testdata/uprobe: NAME.bt is
// the script, NAME.out what bpftrace 0.17 prints for it, the right answer
// but where a bug of bpftrace's is recorded (bpftraceBug). The script's
// leading "// " lines carry directives, as in testdata/scripts:
//
//	// cmd: BIN 3                the workload started with -c
//	// format: json              the output format
//	// path: BINDIR              prepended to $PATH for the run
//	// known-difference: REASON  tracebroker does not print the right
//	                             answer yet: the check is skipped, saying why
//	// bpftrace-bug: WHY         bpftrace 0.17 does not print it
type uprobeCase struct {
	name, script, cmd, format, path, knownDiff string
	want, outPath                              string
	bug                                        *bpftraceBug
}

func loadUprobeCases(t testing.TB) []uprobeCase {
	t.Helper()
	// Absolute: the tests run in the workload's directory.
	dir, err := filepath.Abs("../testdata/uprobe")
	if err != nil {
		t.Fatal(err)
	}
	scripts, err := filepath.Glob(filepath.Join(dir, "*.bt"))
	if err != nil || len(scripts) == 0 {
		t.Fatalf("no scripts in testdata/uprobe: %v", err)
	}
	var cases []uprobeCase
	for _, path := range scripts {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		tc := uprobeCase{name: strings.TrimSuffix(filepath.Base(path), ".bt"), script: string(src),
			outPath: strings.TrimSuffix(path, ".bt") + ".out"}
		want, err := os.ReadFile(tc.outPath)
		switch {
		case err == nil:
			tc.want = string(want)
		case os.IsNotExist(err) && os.Getenv("TB_RECORD") != "":
			// A new script: TestUprobeSideBySide records it.
		default:
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(src), "\n") {
			d, ok := strings.CutPrefix(line, "// ")
			if !ok {
				break
			}
			key, val, _ := strings.Cut(d, ":")
			if bugDirective(&tc.bug, key, val) {
				continue
			}
			val = strings.TrimSpace(val)
			switch key {
			case "cmd":
				tc.cmd = val
			case "format":
				tc.format = val
			case "path":
				tc.path = val
			case "known-difference":
				tc.knownDiff = val
			}
		}
		if tc.cmd == "" {
			t.Fatalf("%s: no // cmd: directive (the scripts trace the workload started with -c)", path)
		}
		loadBug(t, tc.bug, path)
		cases = append(cases, tc)
	}
	return cases
}

// uprobeEnv loads the cases, builds the workload and makes its root the
// working directory, for the scripts that name it by a relative path.
func uprobeEnv(t *testing.T) ([]uprobeCase, *heldoutWorkload) {
	t.Helper()
	needKernel(t)
	cases := loadUprobeCases(t) // relative to the package directory
	w := buildHeldoutWorkload(t)
	t.Chdir(w.root)
	return cases, w
}

// setup prepares one case's run: its $PATH, script and command.
func (tc *uprobeCase) setup(t *testing.T, w *heldoutWorkload) (script, command string) {
	t.Helper()
	if tc.path != "" {
		t.Setenv("PATH", w.expand(tc.path)+string(os.PathListSeparator)+os.Getenv("PATH"))
	}
	return w.expand(tc.script), w.expand(tc.cmd)
}

func (tc *uprobeCase) run(t *testing.T, mode Mode, script, command string) string {
	t.Helper()
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: command, Format: tc.format, Mode: mode, Collectors: testCollectors(t)})
	if err != nil {
		if tc.knownDiff != "" {
			t.Skipf("known difference from bpftrace: %s\n(tracebroker: %v)", tc.knownDiff, err)
		}
		t.Fatalf("run: %v\n%s", err, stderr)
	}
	return out
}

// TestUprobeSideBySide runs every held-out uprobe script with bpftrace 0.17
// and with tracebroker, both with -c on the same workload binary: the
// stdout of each, bpftrace's "Attaching N probes..." line, the events and
// the map dump, byte for byte, must be what the table records of it
// (checkReference): the same, but where a bug of bpftrace's is recorded.
// TB_RECORD=1 records bpftrace's output as the expectation (NAME.out) that
// TestUprobeScripts checks where bpftrace is absent: TB_RECORD=1 go test
// ./broker/ -run 'UprobeSideBySide/NAME'.
func TestUprobeSideBySide(t *testing.T) {
	bt := kerneltest.Bpftrace017(t)
	cases, w := uprobeEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			script, command := tc.setup(t, w)
			// One at a time: the scripts trace every process of the
			// workload's binary, not only the -c command.
			args := []string{"-e", script, "-c", command}
			if tc.format != "" {
				args = append(args, "-f", tc.format)
			}
			ref := startBpftrace(t, bt, args, nil).output(t)
			want := w.expand(tc.want)
			checkReference(t, ref, want, tc.bug, w.expand, w.unexpand, tc.outPath)
			for _, mode := range modes {
				t.Run(string(mode), func(t *testing.T) {
					tc.check(t, tc.run(t, mode, script, command), want, "bpftrace:\n"+ref)
				})
			}
		})
	}
}

// check compares tracebroker's output with the right answer, want, and
// skips, saying why, where the case records a known difference.
func (tc *uprobeCase) check(t *testing.T, out, want, ref string) {
	t.Helper()
	switch {
	case out == want && tc.knownDiff != "":
		t.Logf("the known difference is gone (remove the directive): %s", tc.knownDiff)
	case out == want:
	case tc.knownDiff != "":
		t.Skipf("known difference: %s\ntracebroker:\n%s\nwant (%s):\n%s", tc.knownDiff, out, filepath.Base(tc.outPath), want)
	default:
		t.Errorf("tracebroker:\n%s\nwant (%s):\n%s\n%s", out, filepath.Base(tc.outPath), want, ref)
	}
}

// TestUprobeScripts checks tracebroker against the recorded right answers
// of the held-out uprobe scripts, so that the check runs where bpftrace is
// not installed. A script with a uprobe wildcard runs with uprobe.multi
// links where the kernel has them, and one uprobe per function too.
func TestUprobeScripts(t *testing.T) {
	cases, w := uprobeEnv(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			script, command := tc.setup(t, w)
			want := w.expand(tc.want)
			for _, mode := range modes {
				t.Run(string(mode), func(t *testing.T) {
					tc.check(t, tc.run(t, mode, script, command), want, "")
				})
			}
			if uprobeWildcard.MatchString(tc.script) && uprobe.HaveMulti() {
				t.Run("one by one", func(t *testing.T) {
					t.Setenv(uprobe.NoMultiEnv, "1")
					for _, mode := range modes {
						t.Run(string(mode), func(t *testing.T) {
							tc.check(t, tc.run(t, mode, script, command), want, "")
						})
					}
				})
			}
		})
	}
}

// uprobeWildcard finds a uprobe or uretprobe whose function is a wildcard.
var uprobeWildcard = regexp.MustCompile(`\bu(ret)?(probe)?:[^:\s]+:[^\s{,]*\*`)
