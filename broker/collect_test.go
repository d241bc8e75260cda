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
