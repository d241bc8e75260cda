package compile

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

func TestSoftwareProbes(t *testing.T) {
	tests := []struct {
		src    string
		name   string // the probe's name, or
		event  string
		sample uint64
		err    string // its error
	}{
		{src: `software:faults:1 { @ = count(); }`, name: "software:faults:1", event: "page-faults", sample: 1},
		{src: `s:cs:5 { @ = count(); }`, name: "software:cs:5", event: "context-switches", sample: 5},
		{src: `software:page-faults { @ = count(); }`, name: "software:page-faults", event: "page-faults", sample: 100},
		{src: `software:cpu-clock { @ = count(); }`, name: "software:cpu-clock", event: "cpu-clock", sample: 1000000},
		{src: `software:major-faults:1_000 { @ = count(); }`, name: "software:major-faults:1_000", event: "major-faults", sample: 1000},
		{src: `software:nope:1 { }`, err: "stdin:1:1-16: ERROR: nope is not a software probe"},
		{src: `software:page-*:1 { }`, err: "wildcards are not allowed for hardware probe type"},
		{src: `software:faults:0 { }`, err: `software probe count must be a positive integer, got "0"`},
		{src: `software:faults:x { }`, err: `software probe count must be a positive integer, got "x"`},
		{src: `software:faults:1:2 { }`, err: "software probe can only have an integer count"},
	}
	for _, tt := range tests {
		t.Run(tt.src, func(t *testing.T) {
			prog, _, err := compileString(t, tt.src)
			if tt.err != "" {
				l, ok := err.(syntax.ErrorList)
				if !ok {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				if got := l.Format("stdin", []byte(tt.src)); !strings.Contains(got, tt.err) {
					t.Errorf("got\n%s\nwant %q", got, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			p := prog.Probes[0]
			if p.Kind != program.Software || p.Name != tt.name || p.Event != tt.event || p.Sample != tt.sample {
				t.Errorf("probe %v %q event %q every %d, want software %q event %q every %d", p.Kind, p.Name, p.Event, p.Sample, tt.name, tt.event, tt.sample)
			}
			if err := p.CheckName(); err != nil {
				t.Errorf("CheckName: %v", err)
			}
		})
	}
}
