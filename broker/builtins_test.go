package broker

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestTime: time() prints the wall clock when the event is printed and
// strftime() converts nsecs (monotonic) to wall-clock time, in both
// output formats.
func TestTime(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	script := `BEGIN { time("%Y-%m-%d\n"); printf("%s\n", strftime("%Y-%m-%d %H", nsecs)); exit(); }`
	day := time.Now().Format("2006-01-02")
	hour := time.Now().Format("2006-01-02 15")
	for _, tc := range []struct{ format, want string }{
		{"text", "Attaching 1 probe...\n" + day + "\n" + hour + "\n\n\n"},
		{"json", `{"type": "attached_probes", "data": {"probes": 1}}` + "\n" +
			`{"type": "time", "data": "` + day + `\n"}` + "\n" +
			`{"type": "printf", "data": "` + hour + `\n"}` + "\n\n\n"},
	} {
		out, stderr, err := runScript(t, Request{Source: []byte(script), Format: tc.format})
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
		if out != tc.want {
			t.Errorf("%s output %q, want %q", tc.format, out, tc.want)
		}
	}
}

// TestSignal: signal() needs --unsafe, and with it the traced child dies
// of SIGKILL at its first getcwd: exactly one call is counted of the 5 it
// would make.
func TestSignal(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @ = count(); signal("KILL"); }`
	if _, _, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 5 0")}); err == nil ||
		!strings.Contains(err.Error(), "signal() is an unsafe function being used in safe mode") {
		t.Fatalf("without --unsafe: %v", err)
	}
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 5 0"), Unsafe: true})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	if want := "Attaching 1 probe...\n\n\n@: 1\n"; out != want {
		t.Fatalf("output %q, want %q", out, want)
	}
}

// TestStacksJSON: a stack key in JSON is its text as a map key, with the
// 4-space indent bpftrace uses there.
func TestStacksJSON(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[kstack(1)] = count(); }`
	out, stderr, err := runScript(t, Request{Source: []byte(script), Command: f.expand("EXE get 3 0"), Format: "json"})
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, stderr)
	}
	re := regexp.MustCompile(`(?m)^\{"type": "map", "data": \{"@": \{"\\n    perf_syscall_enter\+\d+\\n": 3\}\}\}$`)
	if !haveSyscallKernelStacks(t) {
		// bpftrace 0.17's output on 6.1.
		re = regexp.MustCompile(`(?m)^\{"type": "map", "data": \{"@": \{"": 3\}\}\}$`)
	}
	if !re.MatchString(out) {
		t.Fatalf("output:\n%s", out)
	}
}

// TestPointerKeys: a pointer used as a map key prints in hex, as
// bpftrace prints it, in text and JSON; the same pointer as a value stays
// decimal.
func TestPointerKeys(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_openat /pid == cpid && str(args->filename) == "FILE"/ { @[args->filename] = count(); @v = args->filename; }`
	for _, tc := range []struct{ format, key, value string }{
		{"text", `(?m)^@\[0x[0-9a-f]+\]: \d+$`, `(?m)^@v: [1-9]\d*$`},
		{"json", `"0x[0-9a-f]+": \d+`, `\{"@v": [1-9]\d*\}`},
	} {
		out, stderr, err := runScript(t, Request{Source: []byte(f.expand(script)), Command: f.expand("EXE open FILE 2"), Format: tc.format})
		if err != nil {
			t.Fatalf("Run: %v\n%s", err, stderr)
		}
		for _, re := range []string{tc.key, tc.value} {
			if !regexp.MustCompile(re).MatchString(out) {
				t.Errorf("%s output does not match %s:\n%s", tc.format, re, out)
			}
		}
	}
}
