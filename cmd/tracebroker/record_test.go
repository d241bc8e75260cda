package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
	"github.com/tracebroker/tracebroker/internal/recordingtest"
)

// signedState is a fresh state directory that trusts the test-only
// release key, with the collectors signed by it: what record needs.
func signedState(t *testing.T) string {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	if r := tracebroker(t, "init", "--state", state); r.code != 0 {
		t.Fatal(r.stderr)
	}
	if err := copyFile(testPub, filepath.Join(state, "trust", "release.pub"), 0o644); err != nil {
		t.Fatal(err)
	}
	signCollectors(t, state)
	return state
}

// signCollectors exports the collectors, signs them with the test-only
// key and puts their manifests in state.
func signCollectors(t *testing.T, state string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "out")
	os.Mkdir(out, 0o755)
	if r := tracebroker(t, "collectors", "export", out); r.code != 0 || strings.Count(r.stdout, ".bpf sha256:") != len(collector.Programs()) {
		t.Fatalf("export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	objs, _ := filepath.Glob(filepath.Join(out, "*.bpf"))
	for _, o := range objs {
		if r := tracebroker(t, "attest", "sign", "--key", testKey, "--role", "collector", o); r.code != 0 {
			t.Fatal(r.stderr)
		}
		if err := copyFile(o+".sig", filepath.Join(state, "manifests", filepath.Base(o)+".sig"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRecordKilled is the README's recorder killed with SIGKILL: a
// workload makes N events while record runs; once the file shows all N
// the recorder is killed. The recording replays exactly N and says it
// was cut short, and where; replay --info says what it holds. The
// README's openat recording fills chunks with every process's opens;
// getcpu, which only the test calls, never fills one: its events reach
// the file by the flush every second alone.
func TestRecordKilled(t *testing.T) {
	require(t, needKernel)
	state := signedState(t)
	const n = 50
	dir := t.TempDir()
	marker := filepath.Join(dir, "marker")
	if err := os.WriteFile(marker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, script, replay string
		work                 func(t *testing.T)
		match                func(*collector.Record) bool
	}{
		{
			name:   "cat opens a file",
			script: `tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }`,
			replay: fmt.Sprintf(`tracepoint:syscalls:sys_enter_openat /str(args->filename) == "%s"/ { @ = count(); }`, marker),
			work: func(t *testing.T) {
				cat := exec.Command("/bin/cat", strings.Fields(strings.Repeat(marker+" ", n))...)
				if out, err := cat.CombinedOutput(); err != nil {
					t.Fatalf("cat: %v %s", err, out)
				}
			},
			match: func(r *collector.Record) bool {
				return len(r.Strings) > 0 && string(bytes.TrimRight(r.Strings[0].Data, "\x00")) == marker
			},
		},
		{
			name:   "getcpu, flushed by time",
			script: `tracepoint:syscalls:sys_enter_getcpu { @ = count(); }`,
			replay: fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcpu /pid == %d/ { @ = count(); }`, os.Getpid()),
			work:   func(*testing.T) { kerneltest.Syscalls(0, n) },
			match:  func(r *collector.Record) bool { return int(r.TGID) == os.Getpid() },
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "opens.tbrec")
			recorder := exec.Command(binary, "record", "-o", rec, "-e", tc.script, "--state", state)
			stderr, err := recorder.StderrPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := recorder.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			var rest bytes.Buffer
			started := make(chan string, 1)
			go func() {
				br := bufio.NewReader(stderr)
				line, _ := br.ReadString('\n')
				started <- line
				io.Copy(&rest, br)
				exited <- recorder.Wait()
			}()
			t.Cleanup(func() { recorder.Process.Kill() })
			select {
			case line := <-started:
				if want := "Recording 1 probe to " + rec + "...\n"; line != want {
					t.Fatalf("record printed %q, want %q", line, want)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("record had not attached after 30s")
			}
			tc.work(t)
			// The events reach the file with a flush: wait until it
			// holds all of them.
			deadline := time.Now().Add(30 * time.Second)
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			for got := 0; got != n; <-tick.C {
				if got = recordingtest.Count(t, rec, tc.match); got > n || time.Now().After(deadline) {
					t.Fatalf("the recording shows %d events of %d", got, n)
				}
			}
			if err := recorder.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			if err := <-exited; err == nil || !strings.Contains(err.Error(), "killed") {
				t.Fatalf("record: %v, want killed; stderr %q", err, rest.String())
			}

			r := tracebroker(t, "replay", rec, "-e", tc.replay)
			warning := regexp.MustCompile(`^WARNING: the recording ` + regexp.QuoteMeta(rec) + ` was cut short after event (\d+), [0-9.]+m?s after it started, at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC: the file ends after chunk \d+, without its end: its recorder was killed, or is still writing it; (\d+) events replayed\n$`)
			m := warning.FindStringSubmatch(r.stderr)
			if want := fmt.Sprintf("Attaching 1 probe...\n\n\n@: %d\n", n); r.code != 0 || r.stdout != want || m == nil || m[1] != m[2] {
				t.Fatalf("replay: exit %d\nstdout %q\nstderr %q\nwant exit 0, %q, a warning matching %s", r.code, r.stdout, r.stderr, want, warning)
			}
			events := m[1]

			r = tracebroker(t, "replay", "--info", rec)
			probe := strings.Fields(tc.script)[0]
			for _, want := range []string{
				"format:    version 2, recorded by tracebroker ",
				"events:    " + events + ", 0 lost\n",
				"status:    cut short after event " + events + ", ",
				"\n" + probe + "  " + events + "\n",
				"\nThe script, stdin:\n" + tc.script + "\n",
			} {
				if !strings.Contains(r.stdout, want) {
					t.Errorf("replay --info: no %q in\n%s%s", want, r.stdout, r.stderr)
				}
			}
			r = tracebroker(t, "replay", "--info", "--json", rec)
			var info recording.Info
			if err := json.Unmarshal([]byte(r.stdout), &info); err != nil {
				t.Fatalf("replay --info --json: %v\n%s%s", err, r.stdout, r.stderr)
			}
			fi, _ := os.Stat(rec)
			if fmt.Sprint(info.Events) != events || info.Probes[0].Events != info.Events || info.Complete || info.CutShort == "" ||
				info.Version != recording.Version || info.Script.Source != tc.script || info.Size != fi.Size() || !info.End.After(info.Start) {
				t.Errorf("replay --info --json: %+v", info)
			}
		})
	}
}

// TestRecordOutput: record refuses an -o that is not a file of its own
// before anything is attached, and the messages count in bpftrace's
// words.
func TestRecordOutput(t *testing.T) {
	require(t, needKernel)
	state := signedState(t)
	dir := t.TempDir()
	link := filepath.Join(dir, "link.tbrec")
	if err := os.Symlink(filepath.Join(dir, "target"), link); err != nil {
		t.Fatal(err)
	}
	two := `tracepoint:syscalls:sys_enter_getcwd, tracepoint:syscalls:sys_enter_getcpu { }`
	for _, tt := range []struct {
		name   string
		args   []string
		code   int
		stderr *regexp.Regexp
	}{
		{"item6/symlink_at_output", []string{"record", "-o", link, "-d", "1ms", "-e", two, "--state", state}, 1,
			regexp.MustCompile(`^ERROR: ` + regexp.QuoteMeta(link) + ` is a symbolic link: a recording is not written through one; give the file's own path\n$`)},
		{"two probes, a duration", []string{"record", "-o", filepath.Join(dir, "two.tbrec"), "-d", "1ms", "-e", two, "--state", state}, 0,
			regexp.MustCompile(`^Recording 2 probes to .*two.tbrec\.\.\.\nRecorded \d+ events? \(\d+ bytes\) to .*two.tbrec\n$`)},
		{"--json without --info", []string{"replay", "--json", link}, 1, regexp.MustCompile(`^ERROR: --json goes with --info; a replay's output is -f json\n$`)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := tracebroker(t, tt.args...)
			if r.code != tt.code || !tt.stderr.MatchString(r.stderr) {
				t.Errorf("exit %d, stderr %q; want %d, %s", r.code, r.stderr, tt.code, tt.stderr)
			}
		})
	}
	if _, err := os.Lstat(filepath.Join(dir, "target")); err == nil {
		t.Error("record wrote through the symbolic link")
	}
}
