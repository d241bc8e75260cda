// Command misnamed is a test generator of raw eBPF whose one probe is
// named and attached as its parameters say, so that a test can name a
// probe one thing and attach it to another: the broker must judge the
// probe by where it attaches, or refuse it.
package main

import (
	"bytes"
	"context"
	"encoding/binary"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

type misnamed struct{}

func (misnamed) Describe() (sdk.Info, error) {
	return sdk.Info{Name: "misnamed", Version: "0", Params: []sdk.Param{
		{Name: "kind", Type: sdk.String, Default: "tracepoint"},
		{Name: "name", Type: sdk.String, Required: true, Help: "the probe's name"},
		{Name: "category", Type: sdk.String},
		{Name: "event", Type: sdk.String},
		{Name: "path", Type: sdk.String},
		{Name: "offset", Type: sdk.Int},
		{Name: "period", Type: sdk.Int},
	}}, nil
}

func (misnamed) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	var code bytes.Buffer
	insns := asm.Instructions{asm.Mov.Imm(asm.R0, 0), asm.Return()}
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return sdk.Output{}, err
	}
	pr := sdk.Probe{Insns: code.Bytes()}
	pr.Kind, _ = p.String("kind")
	pr.Name, _ = p.String("name")
	pr.Category, _ = p.String("category")
	pr.Event, _ = p.String("event")
	pr.Path, _ = p.String("path")
	off, _, err := p.Int("offset")
	if err != nil {
		return sdk.Output{}, err
	}
	period, _, err := p.Int("period")
	if err != nil {
		return sdk.Output{}, err
	}
	pr.Offset, pr.PeriodNs = uint64(off), uint64(period)
	return sdk.Output{Program: &sdk.Program{
		Probes: []sdk.Probe{pr},
		Maps: []sdk.Map{
			{Name: "events", Type: "RingBuf", MaxEntries: 1 << 16},
			{Name: "map_errors", Type: "PerCPUArray", KeySize: 4, ValueSize: 8, MaxEntries: 1},
			{Name: "config", Type: "Array", KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1},
		},
	}}, nil
}

func main() { sdk.Serve(misnamed{}) }
