// Package recording is the file format of `tracebroker record`: the
// events interpreter mode's collectors copied, with what a later replay
// needs to compile a script against them (the probes, their tracepoint
// formats and uprobe targets) and without the kernel or any privilege.
//
// # Format, version 2
//
// A recording is written where it will be read, as it is made: a
// recorder killed at any moment leaves a file that reads up to its last
// whole chunk of records. It is, in order (integers little-endian):
//
//	magic     8 bytes: "TBREC2\n\x00"
//	hlen      u32: the header's length, at most MaxHeader
//	hcrc      u32: CRC-32C (Castagnoli) of the header
//	header    hlen bytes of JSON: Header, version 2
//	chunks    each written with one write(2):
//	            n     u32: the body's length, 24 to MaxChunk
//	            crc   u32: CRC-32C of the body
//	            body  kind u32, count u32, lost u64, mono u64, then
//	                  kind 1 (records): count bpf/collector records (each
//	                    its size first, at most collector.MaxRecord
//	                    bytes; its probe field indexes Header.Probes)
//	                  kind 2 (end): nothing more; count is every record
//	                    of the file, and the file ends here
//	          lost is the count of events lost so far (the ring buffer
//	          had no room), mono the monotonic clock when the chunk was
//	          written.
//
// The recorder writes a chunk when it holds FlushSize bytes of records
// and at least every FlushInterval, so a killed recorder loses at most
// that much. A chunk that is not whole (the file ends inside it, or its
// checksum fails: a write torn by a crash) ends the readable part: a
// reader returns every record before it and says where and why the
// recording was cut short. A reader never returns a record of a chunk
// whose checksum it has not checked. Nothing in a recording is trusted:
// every size is checked before it is used.
//
// # Format, version 1
//
// Written by tracebroker before chunks, and still read: magic
// "TBREC1\n\x00", hlen, the header (version 1), the records back to
// back, and a 16-byte trailer (u32 16, u16 0xffff, u16 0, u64 lost). A
// version 1 recording cut short has no trailer; a record the file ends
// inside is dropped.
package recording

import (
	"encoding/base64"
	"fmt"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

const (
	// Magic starts every recording this tracebroker writes; MagicV1
	// the recordings of version 1.
	Magic   = "TBREC2\n\x00"
	MagicV1 = "TBREC1\n\x00"
	// Version is the format written.
	Version = 2
	// MaxHeader bounds the header: its probes, at a few hundred bytes
	// each, and the struct types the script read (MaxTypes).
	MaxHeader = 4 << 20
	// MaxProbes bounds the recorded probes: a program's attach points,
	// each function of its uprobe.multi probes one (compile.MaxProbes
	// and program.MaxUprobeFuncs).
	MaxProbes = compile.MaxProbes + program.MaxUprobeFuncs
	// MaxCPUs is the most CPUs a recording's host may have had: Linux's
	// largest NR_CPUS. What a replay allocates for them is bounded when
	// it starts (broker's maxInterpMapBytes).
	MaxCPUs = 8192
	// FlushSize and FlushInterval bound what a killed recorder loses.
	FlushSize     = 1 << 20
	FlushInterval = time.Second
	// MaxChunk bounds a chunk's body: a reader allocates no more.
	MaxChunk = 2 << 20

	chunkHead   = 8  // n, crc
	chunkFixed  = 24 // kind, count, lost, mono
	kindRecords = 1
	kindEnd     = 2
	endSize     = chunkHead + chunkFixed

	// Version 1's trailer.
	trailerProbe = 0xffff
	trailerSize  = 16
)

// MaxChunk holds FlushSize of records and the largest record after them.
var _ [MaxChunk - chunkFixed - FlushSize - collector.MaxRecord]struct{}

// Header describes a recording.
type Header struct {
	Version int       `json:"version"`
	Created time.Time `json:"created"`
	// Broker is the tracebroker that recorded (version 2).
	Broker string `json:"broker,omitempty"`
	Host   string `json:"host,omitempty"`
	Kernel string `json:"kernel,omitempty"`
	// CPUs is how many CPUs the recording host had: per-CPU maps of a
	// replay keep this many copies.
	CPUs int `json:"cpus"`
	// StartNs is the monotonic clock when recording started: elapsed
	// counts from it in a replay.
	StartNs uint64 `json:"start_ns"`
	// Cpid is the pid of the command recorded with -c, for cpid.
	Cpid int `json:"cpid,omitempty"`
	// Script is what was recorded for: its probes, and what it reads.
	Script Script  `json:"script"`
	Probes []Probe `json:"probes"`
	// Types are the kernel's struct types the script read through, raw
	// BTF in base64 (types.go).
	Types string `json:"types,omitempty"`
}

type Script struct {
	Name   string `json:"name"`
	Source string `json:"source"`
	// Args are the script's positional parameters ($1, $2, ...): the
	// recording copied what the script compiled with them reads.
	Args []string `json:"args,omitempty"`
}

// Probe is one recorded attach point and what its events carry.
type Probe struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Category string `json:"category,omitempty"`
	Event    string `json:"event,omitempty"`
	Path     string `json:"path,omitempty"`
	Func     string `json:"func,omitempty"`
	Offset   uint64 `json:"offset,omitempty"`
	// Funcs are a kprobe.multi probe's functions.
	Funcs []string `json:"funcs,omitempty"`
	// Multi, for a uprobe, names the uprobe.multi probe it is a
	// function of: the probe's name (KIND:PATH:PATTERN). Each function
	// of one is a recorded probe of its own (Name KIND:PATH:FUNC), as
	// the collectors attach them, each with its own events.
	Multi   string              `json:"multi,omitempty"`
	CtxLen  int                 `json:"ctx_len"`
	Strings []program.CtxString `json:"strings,omitempty"`
	// KStack and UStack say the records carry the event's stacks.
	KStack bool `json:"kstack,omitempty"`
	UStack bool `json:"ustack,omitempty"`
	// KReads and Task say the records carry kernel reads and the
	// current task (collector.Probe.Reads and Task).
	KReads []program.KRead `json:"kreads,omitempty"`
	Task   bool            `json:"task,omitempty"`
	// Fields are a tracepoint's format (or a tp_btf's arguments), for
	// compiling scripts against the recording.
	Fields []compile.Field `json:"fields,omitempty"`
	// Ret is a kfunc/kretfunc's return value (Fields are its
	// arguments); nil: void, or another kind of probe.
	Ret *compile.Field `json:"ret,omitempty"`
}

// check bounds what a header claims; version is the file's format.
func (h *Header) check(version int) error {
	switch {
	case h.Version != version:
		return fmt.Errorf("recording header of version %d in a file of version %d", h.Version, version)
	case len(h.Probes) == 0 || len(h.Probes) > MaxProbes:
		return fmt.Errorf("recording of %d probes (1 to %d)", len(h.Probes), MaxProbes)
	case h.CPUs < 1 || h.CPUs > MaxCPUs:
		return fmt.Errorf("recording of %d CPUs (1 to %d)", h.CPUs, MaxCPUs)
	case base64.StdEncoding.DecodedLen(len(h.Types)) > MaxTypes:
		return fmt.Errorf("recorded types of %d bytes, at most %d", base64.StdEncoding.DecodedLen(len(h.Types)), MaxTypes)
	}
	for i, p := range h.Probes {
		if p.CtxLen < 0 || p.CtxLen > collector.MaxContext || len(p.Strings) > collector.MaxStrings {
			return fmt.Errorf("recorded probe %d (%s): context of %d bytes and %d strings", i, p.Name, p.CtxLen, len(p.Strings))
		}
		if err := collector.CheckReads(p.KReads, p.CtxLen); err != nil {
			return fmt.Errorf("recorded probe %d (%s): %w", i, p.Name, err)
		}
		if len(p.Funcs) > compile.MaxKprobeFuncs {
			return fmt.Errorf("recorded probe %d (%s): %d functions, at most %d", i, p.Name, len(p.Funcs), compile.MaxKprobeFuncs)
		}
	}
	return checkKprobeFuncs(h.Probes)
}

// The recorded kernel: what the compiler asks of the kernel, answered
// from the header, so a script compiles against a recording with no
// tracefs, BTF or binaries at hand.

// Tracepoints answers for the recorded tracepoints.
func (h *Header) Tracepoints() compile.Tracepoints { return recordedTPs{h} }

type recordedTPs struct{ h *Header }

func (t recordedTPs) Match(category, name string) ([][2]string, error) {
	var out [][2]string
	seen := map[[2]string]bool{} // a tracepoint two probes were on, once
	for _, p := range t.h.Probes {
		if p.Kind != program.Tracepoint.String() {
			continue
		}
		okc, _ := path.Match(category, p.Category)
		okn, _ := path.Match(name, p.Event)
		if tp := [2]string{p.Category, p.Event}; okc && okn && !seen[tp] {
			seen[tp] = true
			out = append(out, tp)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("tracepoint %s:%s is not in the recording", category, name)
	}
	return out, nil
}

func (t recordedTPs) Fields(category, name string) ([]compile.Field, error) {
	for _, p := range t.h.Probes {
		if p.Kind == program.Tracepoint.String() && p.Category == category && p.Event == name {
			return p.Fields, nil
		}
	}
	return nil, fmt.Errorf("tracepoint %s:%s is not in the recording", category, name)
}

// BTFTracepoints answers for the recorded tp_btf probes.
func (h *Header) BTFTracepoints() compile.BTFTracepoints { return recordedBTF{h} }

type recordedBTF struct{ h *Header }

func (t recordedBTF) Match(pattern string) ([]string, error) {
	var out []string
	for _, p := range t.h.Probes {
		if ok, _ := path.Match(pattern, p.Event); ok && p.Kind == program.TpBTF.String() {
			out = append(out, p.Event)
		}
	}
	sort.Strings(out)
	return slices.Compact(out), nil
}

func (t recordedBTF) Args(name string) ([]compile.Field, error) {
	for _, p := range t.h.Probes {
		if p.Kind == program.TpBTF.String() && p.Event == name {
			return p.Fields, nil
		}
	}
	return nil, fmt.Errorf("tp_btf:%s is not in the recording", name)
}

// Uprobes answers for the recorded uprobes.
func (h *Header) Uprobes() compile.Uprobes { return recordedUprobes{h} }

// UprobeMulti says whether the recording host attached uprobes with
// uprobe.multi links (a recorded uprobe was a function of one), so that
// a script compiles to the probes, and is bounded as, it was recorded
// with (compile.Options.UprobeMulti).
func (h *Header) UprobeMulti() bool {
	for _, p := range h.Probes {
		if p.Multi != "" {
			return true
		}
	}
	return false
}

type recordedUprobes struct{ h *Header }

func (u recordedUprobes) Resolve(target, fn string) ([]compile.UprobeTarget, error) {
	var out []compile.UprobeTarget
	seen := map[compile.UprobeTarget]bool{}
	for _, p := range u.h.Probes {
		if p.Kind != program.Uprobe.String() && p.Kind != program.Uretprobe.String() {
			continue
		}
		if p.Path != target && filepath.Base(p.Path) != target {
			continue
		}
		if ok, _ := path.Match(fn, p.Func); !ok {
			continue
		}
		t := compile.UprobeTarget{Path: p.Path, Func: p.Func, Offset: p.Offset}
		if !seen[t] {
			seen[t] = true
			out = append(out, t)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("uprobe %s:%s is not in the recording", target, fn)
	}
	return out, nil
}
