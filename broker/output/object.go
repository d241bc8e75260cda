package output

import (
	"io"
	"slices"
	"sort"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
)

// ObjectPrinter prints what a precompiled eBPF object emits, which has
// no printf formats: its records as they come and its maps at the end,
// decoded by their BTF types, as text or JSON. The attached and lost
// lines are the script printers'.
type ObjectPrinter struct {
	w     io.Writer
	f     format
	json  bool
	multi bool // more than one record map: each text record names its map
	buf   []byte
	err   error
}

// NewObjectPrinter prints to w, as JSON or text, for an object with
// recordMaps ring buffers and perf event arrays.
func NewObjectPrinter(w io.Writer, json bool, recordMaps int) *ObjectPrinter {
	p := &ObjectPrinter{w: w, f: textFormat{}, json: json, multi: recordMaps > 1}
	if json {
		p.f = jsonFormat{}
	}
	return p
}

func (p *ObjectPrinter) write() {
	if p.err == nil && len(p.buf) > 0 {
		_, p.err = p.w.Write(p.buf)
	}
	p.buf = p.buf[:0]
}

// Err is the first write error.
func (p *ObjectPrinter) Err() error { return p.err }

// AttachedProbes is bpftrace's "Attaching N probes...".
func (p *ObjectPrinter) AttachedProbes(n int) {
	p.buf = p.f.attachedProbes(p.buf, n)
	p.write()
}

// Lost reports records the object's buffers had no room for.
func (p *ObjectPrinter) Lost(n uint64) {
	p.buf = p.f.lost(p.buf, n)
	p.write()
}

// Record prints one record of map m, of type t: {"type": "record",
// "data": {"map": M, "value": V}} in JSON; in text, the value, after its
// map's name when the object has more than one record map.
func (p *ObjectPrinter) Record(m string, t btf.Type, data []byte) {
	v := Decode(t, data)
	if p.json {
		p.buf = append(p.buf, `{"type": "record", "data": {"map": `...)
		p.buf = AppendJSON(p.buf, m)
		p.buf = append(p.buf, `, "value": `...)
		p.buf = AppendJSON(p.buf, v)
		p.buf = append(p.buf, "}}\n"...)
	} else {
		if p.multi {
			p.buf = append(p.buf, m...)
			p.buf = append(p.buf, ": "...)
		}
		p.buf = AppendText(p.buf, v)
		p.buf = append(p.buf, '\n')
	}
	p.write()
}

// Map prints a map's elements (one value per CPU for a per-CPU map) as
// bpftrace prints its maps at exit: a blank line, then @NAME[KEY]: VALUE
// per element, sorted by value when values are integers (ascending,
// bpftrace's order), else by key; per-CPU integers are summed. An empty
// map prints nothing, as in bpftrace.
func (p *ObjectPrinter) Map(name string, key, value btf.Type, entries []program.RawEntry) {
	type row struct {
		key, val     Decoded
		keyText      []byte
		num          uint64
		numeric, neg bool
	}
	if len(entries) == 0 {
		return
	}
	sumPerCPU := PerCPUSummer(value)
	rows := make([]row, 0, len(entries))
	for _, e := range entries {
		var val Decoded
		switch {
		case len(e.Vals) == 1:
			val = Decode(value, e.Vals[0])
		default:
			if sum, ok := sumPerCPU(e.Vals); ok {
				val = Decode(value, sum)
			} else {
				per := make([]Decoded, len(e.Vals))
				for i, v := range e.Vals {
					per[i] = Decode(value, v)
				}
				val = per
			}
		}
		r := row{key: Decode(key, e.Key), val: val}
		r.keyText = AppendKeyText(nil, r.key)
		switch v := val.(type) {
		case uint64:
			r.num, r.numeric = v, true
		case int64:
			r.num, r.numeric, r.neg = uint64(v), true, v < 0
		}
		rows = append(rows, r)
	}
	numeric := !slices.ContainsFunc(rows, func(r row) bool { return !r.numeric })
	sort.SliceStable(rows, func(i, j int) bool {
		a, b := rows[i], rows[j]
		if numeric {
			if a.neg != b.neg {
				return a.neg
			}
			if a.num != b.num {
				return a.num < b.num
			}
		}
		return string(a.keyText) < string(b.keyText)
	})
	if p.json {
		p.buf = append(p.buf, `{"type": "map", "data": {"name": `...)
		p.buf = AppendJSON(p.buf, name)
		p.buf = append(p.buf, `, "entries": [`...)
		for i, r := range rows {
			if i > 0 {
				p.buf = append(p.buf, ", "...)
			}
			p.buf = append(p.buf, `{"key": `...)
			p.buf = AppendJSON(p.buf, r.key)
			p.buf = append(p.buf, `, "value": `...)
			p.buf = AppendJSON(p.buf, r.val)
			p.buf = append(p.buf, '}')
		}
		p.buf = append(p.buf, "]}}\n"...)
	} else {
		p.buf = append(p.buf, '\n')
		for _, r := range rows {
			p.buf = append(p.buf, '@')
			p.buf = append(p.buf, name...)
			p.buf = append(p.buf, '[')
			p.buf = append(p.buf, r.keyText...)
			p.buf = append(p.buf, "]: "...)
			p.buf = AppendText(p.buf, r.val)
			p.buf = append(p.buf, '\n')
		}
	}
	p.write()
}
