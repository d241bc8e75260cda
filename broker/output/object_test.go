package output

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
)

func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }

// TestObjectPrinter: an object's lines in text and JSON. Records name
// their map only when there are several; a map's elements are sorted by
// value, per-CPU counts summed, and an empty map prints nothing.
func TestObjectPrinter(t *testing.T) {
	key := &btf.Struct{Name: "key", Size: 12, Members: []btf.Member{{Name: "pid", Type: u32}, {Name: "comm", Type: comm, Offset: 32}}}
	k := func(pid uint32, c string) []byte {
		b := le32(pid)
		return append(b, append([]byte(c), make([]byte, 8-len(c))...)...)
	}
	entries := []program.RawEntry{
		{Key: k(2, "cat"), Vals: [][]byte{le64(5), le64(2)}},
		{Key: k(1, "sh"), Vals: [][]byte{le64(1), le64(0)}},
	}
	ev := append(le32(42, uint32(0xffffffff)), "bash\x00xyz"...)
	for _, tc := range []struct {
		json    bool
		records int
		want    string
	}{
		{false, 1, "Attaching 2 probes...\n{ .pid = 42, .ret = -1, .comm = \"bash\" }\nLost 3 events\n\n@opens[1, sh]: 1\n@opens[2, cat]: 7\n"},
		{false, 2, "Attaching 2 probes...\nevents: { .pid = 42, .ret = -1, .comm = \"bash\" }\nLost 3 events\n\n@opens[1, sh]: 1\n@opens[2, cat]: 7\n"},
		{true, 1, `{"type": "attached_probes", "data": {"probes": 2}}
{"type": "record", "data": {"map": "events", "value": {"pid": 42, "ret": -1, "comm": "bash"}}}
{"type": "lost_events", "data": {"events": 3}}
{"type": "map", "data": {"name": "opens", "entries": [{"key": {"pid": 1, "comm": "sh"}, "value": 1}, {"key": {"pid": 2, "comm": "cat"}, "value": 7}]}}
`},
	} {
		var b bytes.Buffer
		p := NewObjectPrinter(&b, tc.json, tc.records)
		p.AttachedProbes(2)
		p.Record("events", event, ev)
		p.Lost(3)
		p.Map("empty", key, u64, nil)
		p.Map("opens", key, u64, entries)
		if got := b.String(); got != tc.want || p.Err() != nil {
			t.Errorf("json=%v records=%d:\n%s\nwant:\n%s (err %v)", tc.json, tc.records, got, tc.want, p.Err())
		}
	}
}
