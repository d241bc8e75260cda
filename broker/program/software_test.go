package program

import "testing"

// A software probe's name is what scopes judge: it must say the event
// and the period the probe samples.
func TestSoftwareCheckName(t *testing.T) {
	tests := []struct {
		p  Probe
		ok bool
	}{
		{Probe{Kind: Software, Name: "software:faults:1", Event: "page-faults", Sample: 1}, true},
		{Probe{Kind: Software, Name: "software:page-faults", Event: "page-faults", Sample: 100}, true},
		{Probe{Kind: Software, Name: "software:faults", Event: "page-faults", Sample: 1}, false},
		{Probe{Kind: Software, Name: "software:faults:1", Event: "cpu-clock", Sample: 1}, false},
		{Probe{Kind: Software, Name: "software:nope:1", Event: "nope", Sample: 1}, false},
		{Probe{Kind: Software, Name: "profile:hz:99", Event: "page-faults", Sample: 1}, false},
		{Probe{Kind: Software, Name: "software:faults:1:2", Event: "page-faults", Sample: 1}, false},
	}
	for _, tt := range tests {
		if err := tt.p.CheckName(); (err == nil) != tt.ok {
			t.Errorf("%+v: %v, want ok %v", tt.p, err, tt.ok)
		}
	}
	for _, e := range SoftwareEvents {
		attr := PerfAttr(Software, e.Name, 0, 0, 7)
		if attr.Config != e.Config || attr.Sample != 7 {
			t.Errorf("%s: config %d every %d", e.Name, attr.Config, attr.Sample)
		}
	}
}
