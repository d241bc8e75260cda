package collector_test

import (
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// TestDecodeEntries checks the bounds Decode holds a record's entries
// to: MaxStrings strings of MaxString bytes, then a kernel and a user
// stack of MaxStackFrames frames, MaxEntries entries in all.
func TestDecodeEntries(t *testing.T) {
	str := collector.String{Addr: 0x1000, Data: []byte(strings.Repeat("s", collector.MaxString-1) + "\x00")}
	long := collector.String{Addr: 0x1000, Data: make([]byte, collector.MaxString+1)}
	kstack := collector.String{Addr: collector.KStackAddr, Data: make([]byte, 8*collector.MaxStackFrames)}
	ustack := collector.String{Addr: collector.UStackAddr, Data: make([]byte, 8*collector.MaxStackFrames)}
	strs := func(n int, more ...collector.String) []collector.String {
		var out []collector.String
		for range n {
			out = append(out, str)
		}
		return append(out, more...)
	}
	tests := []struct {
		name    string
		entries []collector.String
		wantErr string
	}{
		{name: "strings", entries: strs(collector.MaxStrings)},
		{name: "strings and stacks", entries: strs(collector.MaxStrings, kstack, ustack)},
		{name: "kernel stack", entries: strs(3, kstack)},
		{name: "user stack", entries: strs(collector.MaxStrings, ustack)},
		{name: "empty stacks", entries: strs(0, collector.String{Addr: collector.KStackAddr}, collector.String{Addr: collector.UStackAddr})},
		{name: "a failed read of a marker's address", entries: strs(1, collector.String{Addr: collector.UStackAddr}, str)},
		{name: "strings, task, reads and stacks", entries: append(strs(collector.MaxStrings, collector.String{Addr: collector.TaskAddr, Data: make([]byte, 8)}), strs(collector.MaxSteps, kstack, ustack)...)},
		{name: "more than MaxEntries", entries: strs(collector.MaxStrings+1+collector.MaxSteps+1, kstack, ustack), wantErr: "record with 60 entries, at most 59"},
		{name: "more than MaxStrings and reads", entries: strs(collector.MaxStrings+1+collector.MaxSteps+1, ustack), wantErr: "record with 58 strings and reads, at most 57"},
		{name: "stacks out of order", entries: strs(collector.MaxStrings+1+collector.MaxSteps, ustack, kstack), wantErr: "record with 58 strings and reads"},
		{name: "a stack not last", entries: strs(1, kstack, str), wantErr: "string 1 of 1016 bytes, at most 256"},
		{name: "a long string", entries: strs(1, long), wantErr: "string 1 of 257 bytes, at most 256"},
		{name: "a long stack", entries: strs(0, collector.String{Addr: collector.KStackAddr, Data: make([]byte, 8*collector.MaxStackFrames+8)}), wantErr: "short record: entry 0 of 1024 bytes"},
		{name: "a stack of part of a frame", entries: strs(0, collector.String{Addr: collector.UStackAddr, Data: make([]byte, 300)}), wantErr: "string 0 of 300 bytes"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := collector.Encode(nil, &collector.Record{Probe: 1, Context: make([]byte, collector.MaxContext), Strings: tc.entries})
			var r collector.Record
			err := collector.Decode(b, &r)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Decode = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if len(b) > collector.MaxRecord {
				t.Errorf("a record of %d bytes, MaxRecord is %d", len(b), collector.MaxRecord)
			}
			if len(r.Strings) != len(tc.entries) {
				t.Fatalf("%d entries, want %d", len(r.Strings), len(tc.entries))
			}
			for i, e := range r.Strings {
				if e.Addr != tc.entries[i].Addr || len(e.Data) != len(tc.entries[i].Data) {
					t.Errorf("entry %d: %#x, %d bytes", i, e.Addr, len(e.Data))
				}
			}
		})
	}
	// The longest record is MaxRecord bytes: the task's entry is 8
	// bytes, every other entry as long as it gets.
	task := collector.String{Addr: collector.TaskAddr, Data: make([]byte, 8)}
	b := collector.Encode(nil, &collector.Record{Context: make([]byte, collector.MaxContext), Strings: append(strs(collector.MaxStrings, task), strs(collector.MaxSteps, kstack, ustack)...)})
	if len(b) != collector.MaxRecord {
		t.Errorf("the longest record is %d bytes, MaxRecord %d", len(b), collector.MaxRecord)
	}
}
