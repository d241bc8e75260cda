// Command raw is a test generator with raw eBPF output: a BEGIN probe
// that reads the config map's value directly and loads a user map's
// address, as the script compiler's programs do.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
	"github.com/tracebroker/tracebroker/plugins/testdata/plugins/internal/mark"
)

type raw struct{}

func (raw) Describe() (sdk.Info, error) { return sdk.Info{Name: "raw", Version: "0"}, nil }

func (raw) Generate(context.Context, sdk.Params) (sdk.Output, error) {
	insns := asm.Instructions{
		asm.LoadMapValue(asm.R1, 0, program.ConfigStopped), // slots 0-1: &config[16]
		asm.LoadMem(asm.R2, asm.R1, 0, asm.DWord),          // slot 2
		asm.LoadMapPtr(asm.R1, 0),                          // slots 3-4: m0
		asm.Mov.Imm(asm.R0, 0),                             // slot 5
		asm.Return(),                                       // slot 6
	}
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return sdk.Output{}, err
	}
	schema, err := json.Marshal(program.Schema{
		Formats: []*program.Format{{Fmt: "hello %d\n", Args: []program.Arg{{Type: program.Type{Kind: program.Int, Size: 8}, Offset: 16}}, Size: 24}},
		Maps:    []*program.Map{{Name: "@calls", BPF: "m0", Value: program.Type{Kind: program.Int, Size: 8}, Agg: program.Count}},
	})
	if err != nil {
		return sdk.Output{}, err
	}
	return sdk.Output{Program: &sdk.Program{
		Probes: []sdk.Probe{{Kind: "BEGIN", Name: "BEGIN", Insns: code.Bytes(), MapRefs: map[uint32]string{0: "config", 3: "m0"}}},
		Maps: []sdk.Map{
			{Name: "events", Type: "RingBuf", MaxEntries: 1 << 16},
			{Name: "m0", Type: "PerCPUHash", KeySize: 8, ValueSize: 8, MaxEntries: 16},
			{Name: "map_errors", Type: "PerCPUArray", KeySize: 4, ValueSize: 8, MaxEntries: 2},
			{Name: "config", Type: "Array", KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1},
		},
		Schema: schema,
	}}, nil
}

func main() {
	mark.Started()
	sdk.Serve(raw{})
}
