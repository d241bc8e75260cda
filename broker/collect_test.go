package broker

import (
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// TestUnusedFields: the collector leaves out exactly the header fields
// whose helpers a probe's program never calls.
func TestUnusedFields(t *testing.T) {
	const all = collector.OmitKtime | collector.OmitIDs | collector.OmitCgroup | collector.OmitComm
	for _, tc := range []struct {
		body string
		omit collector.Fields
	}{
		{`@ = count();`, all},
		{`@[pid, tid, cpu] = count();`, all},
		{`@[comm] = count();`, all &^ collector.OmitComm},
		{`@ = nsecs;`, all &^ collector.OmitKtime},
		{`@ = elapsed;`, all &^ collector.OmitKtime},
		{`@ = uid;`, all &^ collector.OmitIDs},
		{`@ = gid;`, all &^ collector.OmitIDs},
		{`@ = cgroup;`, all &^ collector.OmitCgroup},
		{`if (pid > 1) { printf("%s %d %d %d\n", comm, uid, cgroup, nsecs); }`, 0},
	} {
		prog, _, err := Compile(&Request{Name: "stdin", Source: []byte("interval:s:1 { " + tc.body + " }")})
		if err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if got := unusedFields(prog.Probes[0]); got != tc.omit {
			t.Errorf("%s: omits %#x, want %#x", tc.body, got, tc.omit)
		}
	}
}

// TestCollectorBuffer: the collectors' ring buffer grows with the
// largest map a script asks for, 64 bytes a key, from the default to a
// bound; the events ring buffer is not a map of keys.
func TestCollectorBuffer(t *testing.T) {
	for _, tc := range []struct {
		keys, want int
	}{
		{0, collector.DefaultBufferSize}, // bpftrace's 4096 keys
		{65536, collector.DefaultBufferSize},
		{100000, 8 << 20},
		{1000000, 64 << 20},
		{10000000, 256 << 20},
	} {
		prog, _, err := Compile(&Request{Name: "stdin", MaxMapKeys: tc.keys,
			Source: []byte(`interval:s:1 { @[pid] = count(); printf("%d\n", pid); }`)})
		if err != nil {
			t.Fatal(err)
		}
		if got := collectorBuffer(prog); got != tc.want {
			t.Errorf("%d keys: a %d MiB buffer, want %d MiB", tc.keys, got>>20, tc.want>>20)
		}
	}
}
