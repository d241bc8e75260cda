package broker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/broker/recording"
)

// TestRecordArgs: a recording keeps the positional parameters its script
// was compiled with ($1 in a probe's spec chose what was recorded), and a
// replay of the recorded script compiles it with them; a script given to
// replay takes its own.
func TestRecordArgs(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	f := newFixture(t)
	script := `tracepoint:syscalls:sys_enter_$1 /pid == cpid/ { @[str($2)] = count(); }`
	args := []string{"getcwd", "calls"}
	rec := filepath.Join(t.TempDir(), "rec.tbrec")
	var stderr bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := Record(ctx, RecordRequest{Request: Request{Name: "args.bt", Source: []byte(script), Args: args, Command: f.expand("EXE get 6 0"), Collectors: testCollectors(t), Stderr: &stderr}, Output: rec})
	if err != nil {
		t.Fatalf("record: %v\n%s", err, stderr.String())
	}
	rd, c, err := recording.Open(rec)
	if err != nil {
		t.Fatal(err)
	}
	h := rd.Header()
	c.Close()
	if len(h.Script.Args) != 2 || h.Script.Args[0] != "getcwd" || h.Script.Args[1] != "calls" {
		t.Fatalf("recorded args %q, want %q", h.Script.Args, args)
	}
	for _, tt := range []struct {
		name, src string
		args      []string
		want      string
	}{
		{"recorded", h.Script.Source, h.Script.Args, "@[calls]: 6\n"},
		{"its own", `tracepoint:syscalls:sys_enter_getcwd /pid == cpid/ { @[$1 + 1] = count(); }`, []string{"41"}, "@[42]: 6\n"},
		// Without them, $1 is empty: the spec names no recorded probe.
		{"none", h.Script.Source, nil, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, rstderr bytes.Buffer
			err := Replay(ctx, ReplayRequest{Recording: rec, Name: "args.bt", Source: []byte(tt.src), Args: tt.args, Quiet: true, Stdout: &out, Stderr: &rstderr})
			if tt.want == "" {
				if err == nil {
					t.Fatalf("replay without the parameters ran: %q", out.String())
				}
				return
			}
			if err != nil {
				t.Fatalf("replay: %v\n%s", err, rstderr.String())
			}
			if got := out.String(); got != "\n\n"+tt.want {
				t.Errorf("replay = %q, want %q", got, "\n\n"+tt.want)
			}
		})
	}
}

// TestMapKeysEnv: BPFTRACE_MAP_KEYS_MAX sizes the maps as in bpftrace,
// and what bpftrace refuses is refused.
func TestMapKeysEnv(t *testing.T) {
	for _, tt := range []struct {
		val     string
		set     bool
		want    int
		ok, err bool
	}{
		{set: false},
		{val: "1000000", set: true, want: 1000000, ok: true},
		{val: "0", set: true, err: true},
		{val: "-5", set: true, err: true},
		{val: "lots", set: true, err: true},
		{val: "", set: true, err: true},
	} {
		if tt.set {
			t.Setenv("BPFTRACE_MAP_KEYS_MAX", tt.val)
		} else {
			t.Setenv("BPFTRACE_MAP_KEYS_MAX", "")
			os.Unsetenv("BPFTRACE_MAP_KEYS_MAX")
		}
		n, ok, err := MapKeysEnv()
		if n != tt.want || ok != tt.ok || (err != nil) != tt.err {
			t.Errorf("BPFTRACE_MAP_KEYS_MAX=%q (set %v): %d %v %v, want %d %v error %v", tt.val, tt.set, n, ok, err, tt.want, tt.ok, tt.err)
		}
	}
}
