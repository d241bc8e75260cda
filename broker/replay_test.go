package broker

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// openatFields is sys_enter_openat's format on the project's kernel.
var openatFields = []compile.Field{
	{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: compile.FieldInt},
	{Name: "dfd", Type: "int", Offset: 16, Size: 8, Kind: compile.FieldInt},
	{Name: "filename", Type: "const char *", Offset: 24, Size: 8, Kind: compile.FieldPtr},
	{Name: "flags", Type: "int", Offset: 32, Size: 8, Kind: compile.FieldInt},
	{Name: "mode", Type: "umode_t", Offset: 40, Size: 8, Kind: compile.FieldInt},
}

type opened struct {
	comm string
	pid  uint32
	cpu  uint32
	path string // "" : the collector could not read it
}

// writeRecording makes a recording of sys_enter_openat events as the
// collector would have copied them, and getcwd events that no string
// comes with.
func writeRecording(t *testing.T, events []opened, trailer, strs bool) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rec.tbrec")
	h := &recording.Header{Version: recording.Version, CPUs: 4, StartNs: 1_000_000_000,
		Script: recording.Script{Name: "opens.bt", Source: `tracepoint:syscalls:sys_enter_openat { printf("%s %s\n", comm, str(args->filename)); }`},
		Probes: []recording.Probe{
			{Name: "tracepoint:syscalls:sys_enter_getcwd", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_getcwd", CtxLen: 32,
				Fields: []compile.Field{{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: compile.FieldInt}}},
			{Name: "tracepoint:syscalls:sys_enter_openat", Kind: "tracepoint", Category: "syscalls", Event: "sys_enter_openat", CtxLen: 48,
				Strings: []program.CtxString{{Off: 24, User: true}}, Fields: openatFields},
		}}
	if !strs {
		h.Probes[1].Strings = nil
	}
	w, err := recording.Create(path, h, 0)
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	for i, e := range events {
		r := collector.Record{Probe: 1, Ktime: 1_000_000_000 + uint64(i)*1000, TGID: e.pid, PID: e.pid, CPU: e.cpu, Context: make([]byte, 48)}
		copy(r.Comm[:], e.comm)
		addr := uint64(0x7ffd0000 + 0x100*i)
		binary.LittleEndian.PutUint32(r.Context[8:], 257)
		binary.LittleEndian.PutUint64(r.Context[24:], addr)
		s := collector.String{Addr: addr}
		if e.path != "" {
			s.Data = append([]byte(e.path), 0)
		}
		if strs {
			r.Strings = []collector.String{s}
		}
		buf = collector.Encode(buf[:0], &r)
		if err := w.Write(buf); err != nil {
			t.Fatal(err)
		}
		// A chunk per record, as a slow recording's flushes write them.
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		g := collector.Record{Probe: 0, Ktime: r.Ktime + 1, TGID: e.pid, PID: e.pid, CPU: e.cpu, Context: make([]byte, 32)}
		copy(g.Comm[:], e.comm)
		if err := w.Write(collector.Encode(nil, &g)); err != nil {
			t.Fatal(err)
		}
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	if trailer {
		if err := w.Close(7); err != nil {
			t.Fatal(err)
		}
		return path
	}
	// Cut short: as if the recorder died in the middle of a record.
	if err := w.Close(0); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	b = b[:len(b)-32-20] // the end chunk, and the last record's chunk torn
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestReplay(t *testing.T) {
	events := []opened{{"cat", 10, 0, "/etc/hostname"}, {"ls", 11, 3, "/"}, {"cat", 10, 1, "/etc/passwd"}, {"vim", 12, 2, ""}}
	rec := writeRecording(t, events, true, true)
	for _, tt := range []struct {
		name, script, format string
		stdout, stderr       string
	}{
		{"the recorded script", "", "text",
			"Attaching 1 probe...\ncat /etc/hostname\nls /\ncat /etc/passwd\nvim \nLost 7 events\n\n\n",
			""},
		{"maps and per-CPU counts", `tracepoint:syscalls:sys_enter_openat { @[comm] = count(); @c[cpu] = count(); } tracepoint:syscalls:sys_enter_getcwd { @g = count(); }`, "text",
			"Attaching 2 probes...\nLost 7 events\n\n\n@[ls]: 1\n@[vim]: 1\n@[cat]: 2\n@c[0]: 1\n@c[1]: 1\n@c[2]: 1\n@c[3]: 1\n@g: 4\n",
			""},
		{"one recorded probe, two blocks", `t:syscalls:sys_enter_openat /pid == 10/ { @a = count(); } tracepoint:syscalls:sys_enter_openat { @b = count(); } END { printf("end\n"); }`, "text",
			"Attaching 3 probes...\nend\nLost 7 events\n\n\n@a: 2\n@b: 4\n", ""},
		{"json", `tracepoint:syscalls:sys_enter_openat /comm == "ls"/ { printf("%s\n", str(args->filename)); exit(); }`, "json",
			`{"type": "attached_probes", "data": {"probes": 1}}` + "\n" + `{"type": "printf", "data": "/\n"}` + "\n" + `{"type": "lost_events", "data": {"events": 7}}` + "\n\n\n",
			""},
		{"elapsed from the recording's start", `tracepoint:syscalls:sys_enter_openat /elapsed < 2500/ { @ = count(); }`, "text",
			"Attaching 1 probe...\nLost 7 events\n\n\n@: 3\n", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			rr := ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(tt.script), Format: tt.format, Stdout: &stdout, Stderr: &stderr}
			if tt.script == "" {
				rd, c, err := recording.Open(rec)
				if err != nil {
					t.Fatal(err)
				}
				rr.Name, rr.Source = rd.Header().Script.Name, []byte(rd.Header().Script.Source)
				c.Close()
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := Replay(ctx, rr); err != nil {
				t.Fatalf("Replay: %v\nstderr: %s", err, stderr.String())
			}
			if stdout.String() != tt.stdout {
				t.Errorf("stdout:\n%q\nwant:\n%q", stdout.String(), tt.stdout)
			}
			if got := stderr.String(); !strings.Contains(got, tt.stderr) {
				t.Errorf("stderr %q does not contain %q", got, tt.stderr)
			}
		})
	}
}

// TestReplayLimits: what a recording cannot answer is said, never made
// up.
func TestReplayLimits(t *testing.T) {
	events := []opened{{"cat", 10, 0, "/etc/hostname"}, {"ls", 11, 3, "/"}}
	for _, tt := range []struct {
		name, script string
		trailer      bool
		strs         bool
		stdout       string
		err, stderr  string
	}{
		{name: "a probe not recorded", script: `tracepoint:syscalls:sys_enter_close { @ = count(); }`, trailer: true, strs: true,
			err: "tracepoint syscalls:sys_enter_close is not in the recording"},
		{name: "a string not captured", script: `tracepoint:syscalls:sys_enter_openat { printf("[%s]\n", str(args->filename)); }`, trailer: true,
			stdout: "Attaching 1 probe...\n[]\n[]\nLost 7 events\n\n\n", stderr: "WARNING: 2 reads of memory or stacks the collector did not copy returned nothing"},
		{name: "cut short", script: `tracepoint:syscalls:sys_enter_openat { @ = count(); }`, trailer: false, strs: true,
			stdout: "Attaching 1 probe...\n\n\n@: 2\n", stderr: "was cut short after event 3, 0s after it started: the file ends inside chunk 4 at byte 1579; 3 events replayed\n"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := writeRecording(t, events, tt.trailer, tt.strs)
			var stdout, stderr bytes.Buffer
			err := Replay(context.Background(), ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(tt.script), Stdout: &stdout, Stderr: &stderr})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Replay: %v", err)
			}
			if tt.stdout != "" && stdout.String() != tt.stdout {
				t.Errorf("stdout %q, want %q", stdout.String(), tt.stdout)
			}
			if !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.stderr)
			}
		})
	}
}
