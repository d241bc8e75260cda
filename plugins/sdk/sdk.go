// Package sdk is what a generator plugin's author imports. A generator
// turns parameters into a trace program — usually a script in
// tracebroker's (bpftrace's) language — and runs as its own process,
// started by the broker over hashicorp/go-plugin, so a crash cannot take
// the broker down and its signed binary is the program's source of
// authority.
//
// A complete generator:
//
//	type countOpens struct{}
//
//	func (countOpens) Describe() (sdk.Info, error) {
//		return sdk.Info{
//			Name: "countopens", Version: "1.0.0",
//			Description: "count openat calls per process",
//			Params: []sdk.Param{{Name: "pid", Type: sdk.Int, Help: "only this process"}},
//		}, nil
//	}
//
//	func (countOpens) Generate(ctx context.Context, p sdk.Params) (sdk.Output, error) {
//		filter := ""
//		if pid, ok, err := p.Int("pid"); err != nil {
//			return sdk.Output{}, err
//		} else if ok {
//			filter = fmt.Sprintf("/pid == %d/", pid)
//		}
//		return sdk.Output{Script: "tracepoint:syscalls:sys_enter_openat " + filter + " { @[comm] = count(); }"}, nil
//	}
//
//	func main() { sdk.Serve(countOpens{}) }
//
// The SDK is a Go module of its own, github.com/tracebroker/tracebroker/plugins/sdk,
// tagged plugins/sdk/vX.Y.Z with each release: a plugin's module requires
// it alone and gets go-plugin, gRPC, protobuf and hclog, none of the
// broker's dependencies. A complete plugin in a module of its own is
// example/opencount. A generator that returns its own eBPF describes what
// it emits with package schema.
package sdk

import (
	"context"
	"fmt"
	"strconv"
	"time"
)

// Generator is implemented by every plugin.
type Generator interface {
	// Describe says what the generator is and which parameters it takes.
	// The host calls it to list plugins and to check parameters before
	// Generate.
	Describe() (Info, error)
	// Generate returns the program for the given parameters, which the
	// host has checked against Describe's declarations and completed with
	// their defaults.
	Generate(ctx context.Context, p Params) (Output, error)
}

// Info describes a generator.
type Info struct {
	Name        string // what `run --gen NAME` and `gen:NAME` scopes use
	Version     string
	Description string
	Params      []Param
	// Fixed says the plugin ships fixed bytecode: Generate returns the
	// same eBPF instructions (Output.Program) whatever the parameters,
	// which choose only where they attach. Its programs are then judged
	// as a package's (the plugin binary, signed, carries them), not as
	// programs generated from source. It is the signer's claim, as the
	// plugin's code is.
	Fixed bool
}

// ParamType is the type of a parameter's value.
type ParamType string

const (
	String   ParamType = "string"
	Int      ParamType = "int"
	Bool     ParamType = "bool"
	Duration ParamType = "duration" // Go syntax: 500ms, 5s, 1m
)

// Param declares one parameter.
type Param struct {
	Name     string
	Type     ParamType
	Default  string // "" means no default: the parameter is absent unless given
	Help     string
	Required bool
}

// Params are the parameters of one Generate call, as text keyed by name.
// Only declared parameters are present: given ones, and defaults.
type Params map[string]string

// String returns a parameter's text.
func (p Params) String(name string) (string, bool) {
	v, ok := p[name]
	return v, ok
}

// Int returns an integer parameter; ok is false when it is absent.
func (p Params) Int(name string) (v int64, ok bool, err error) {
	s, ok := p[name]
	if !ok {
		return 0, false, nil
	}
	v, err = strconv.ParseInt(s, 0, 64)
	if err != nil {
		return 0, true, fmt.Errorf("parameter %s: %q is not an integer", name, s)
	}
	return v, true, nil
}

// Bool returns a boolean parameter; absent is false.
func (p Params) Bool(name string) (bool, error) {
	s, ok := p[name]
	if !ok {
		return false, nil
	}
	v, err := strconv.ParseBool(s)
	if err != nil {
		return false, fmt.Errorf("parameter %s: %q is not a boolean", name, s)
	}
	return v, nil
}

// Duration returns a duration parameter; ok is false when it is absent.
func (p Params) Duration(name string) (d time.Duration, ok bool, err error) {
	s, ok := p[name]
	if !ok {
		return 0, false, nil
	}
	d, err = time.ParseDuration(s)
	if err != nil {
		return 0, true, fmt.Errorf("parameter %s: %q is not a duration (500ms, 5s, 1m)", name, s)
	}
	return d, true, nil
}

// Output is what a generator produced: a script (the usual case), or for
// advanced authors a program already in eBPF.
type Output struct {
	// Script is tracebroker (bpftrace) language source. The broker
	// compiles it exactly as it compiles `run -e`.
	Script string
	// Program, when Script is empty, is raw instructions with the map
	// specs and probes they need, and the schema the broker prints
	// their events and maps with.
	Program *Program
}

// Program is a generator's own eBPF program (its wire form:
// plugins/sdk/proto/generator.proto). Besides
// its own maps it declares the three every program has, as the script
// compiler makes them: "events" (RingBuf), "map_errors" (PerCPUArray,
// u32 -> u64, one entry per Schema map and one more) and "config"
// (Array, u32 -> schema.ConfigSize bytes, one entry). The host checks
// all of it before the broker sees it (plugins.Generated.RawProgram).
type Program struct {
	Probes []Probe
	Maps   []Map
	// Schema is a schema.Schema as JSON: the printf formats and map
	// layouts the broker decodes events and maps with.
	Schema []byte
}

// Probe is one attach point and its code.
type Probe struct {
	// Kind is "BEGIN", "END", "tracepoint", "rawtracepoint", "interval",
	// "profile", "uprobe", "uretprobe".
	Kind string
	// Name is the probe as bpftrace names it, e.g.
	// "tracepoint:syscalls:sys_enter_openat": the name the other fields
	// give it (uprobe:PATH:FUNC with FUNC the function at Offset, or
	// 0xADDR; interval:ms:10 with PeriodNs 10000000). Scopes, the
	// gatekeeper and the audit judge a probe by its name, so the broker
	// refuses a program whose names are not where it attaches.
	Name     string
	Category string // tracepoint
	Event    string // tracepoint, rawtracepoint
	PeriodNs uint64 // interval, profile
	Path     string // uprobe
	Offset   uint64 // uprobe: file offset
	// Insns is the bytecode, little-endian, 8 bytes a slot; map loads
	// (lddw with src 1, a map's address, or src 2, an address in the
	// value of a one-element Array) name their map in MapRefs.
	Insns []byte
	// MapRefs maps the slot index of a map-loading lddw (its first
	// slot: the byte offset in Insns divided by 8, an lddw taking two
	// slots) to the name of the map it loads. Every map load has one.
	MapRefs map[uint32]string
}

// Map is a BPF map a Program uses.
type Map struct {
	Name       string
	Type       string // cilium/ebpf's MapType names: "Hash", "PerCPUHash", "RingBuf", "Array", ...
	KeySize    uint32
	ValueSize  uint32
	MaxEntries uint32
}
