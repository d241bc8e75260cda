// Command hostile is a test generator of raw eBPF that does what a token
// holder's scopes never grant, on tracepoint:syscalls:sys_enter_getcwd
// (a probe the holder may use), for the events of the process its pid
// parameter names:
//
//	do=signal  sends it signal sig (bpf_send_signal): a side effect on
//	           whatever process the probe fires in;
//	do=count   counts its getcwd calls in @calls, so that a test can see
//	           whether a raw program sees the events of that process
//	           (the broker daemon's own are hidden from token holders).
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

type hostile struct{}

func (hostile) Describe() (sdk.Info, error) {
	return sdk.Info{Name: "hostile", Version: "0", Params: []sdk.Param{
		{Name: "do", Type: sdk.String, Required: true, Help: "signal or count"},
		{Name: "pid", Type: sdk.Int, Required: true, Help: "the process whose getcwd calls it acts on"},
		{Name: "sig", Type: sdk.Int, Default: "12", Help: "the signal do=signal sends"},
	}}, nil
}

func (hostile) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	do, _ := p.String("do")
	pid, _, err := p.Int("pid")
	if err != nil {
		return sdk.Output{}, err
	}
	sig, _, err := p.Int("sig")
	if err != nil {
		return sdk.Output{}, err
	}
	// r0 = the current process's pid; not the one asked for: out.
	insns := asm.Instructions{
		asm.FnGetCurrentPidTgid.Call(),
		asm.RSh.Imm(asm.R0, 32),
		asm.JNE.Imm(asm.R0, int32(pid), "out"),
	}
	refs := map[uint32]string{}
	var schema program.Schema
	switch do {
	case "signal":
		insns = append(insns,
			asm.Mov.Imm(asm.R1, int32(sig)),
			asm.FnSendSignal.Call(),
		)
	case "count":
		// @calls = count(): key 0 of a per-CPU hash, one more each time.
		insns = append(insns,
			asm.Mov.Imm(asm.R1, 0),
			asm.StoreMem(asm.R10, -8, asm.R1, asm.DWord),
			asm.Mov.Imm(asm.R1, 1),
			asm.StoreMem(asm.R10, -16, asm.R1, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -8),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "new"),
			asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
			asm.Add.Imm(asm.R1, 1),
			asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
			asm.Ja.Label("out"),
			asm.LoadMapPtr(asm.R1, 0).WithSymbol("new"),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -8),
			asm.Mov.Reg(asm.R3, asm.R10),
			asm.Add.Imm(asm.R3, -16),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnMapUpdateElem.Call(),
		)
		schema.Maps = []*program.Map{{Name: "@calls", BPF: "m0", Value: program.Type{Kind: program.Int, Size: 8}, Agg: program.Count}}
	default:
		return sdk.Output{}, fmt.Errorf("do=%q: signal or count", do)
	}
	insns = append(insns, asm.Mov.Imm(asm.R0, 0).WithSymbol("out"), asm.Return())
	// Every map load is of m0, at its first slot.
	slot := uint32(0)
	for _, ins := range insns {
		if ins.IsLoadFromMap() {
			refs[slot] = "m0"
		}
		slot += uint32(ins.Size() / asm.InstructionSize)
	}
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return sdk.Output{}, err
	}
	sch, err := json.Marshal(schema)
	if err != nil {
		return sdk.Output{}, err
	}
	return sdk.Output{Program: &sdk.Program{
		Probes: []sdk.Probe{{Kind: "tracepoint", Name: "tracepoint:syscalls:sys_enter_getcwd", Category: "syscalls", Event: "sys_enter_getcwd",
			Insns: code.Bytes(), MapRefs: refs}},
		Maps: []sdk.Map{
			{Name: "events", Type: "RingBuf", MaxEntries: 1 << 16},
			{Name: "m0", Type: "PerCPUHash", KeySize: 8, ValueSize: 8, MaxEntries: 16},
			{Name: "map_errors", Type: "PerCPUArray", KeySize: 4, ValueSize: 8, MaxEntries: 2},
			{Name: "config", Type: "Array", KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1},
		},
		Schema: sch,
	}}, nil
}

func main() { sdk.Serve(hostile{}) }
