// Command rawread is a test generator whose raw eBPF reads kernel memory:
// a BEGIN probe that copies 8 bytes at the start of the kernel's direct
// map with probe_read_kernel, then exits. Nobody knows what raw eBPF
// reads but by its helpers, so a token without read:kernel must not run
// it. With user=true it reads user memory at addr instead, which in
// BEGIN is the broker's own: that needs read:kernel too.
package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"

	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/plugins/sdk"
)

// directMap is where x86-64 maps all physical memory into the kernel's
// address space (without KASLR of the direct map).
var directMap uint64 = 0xffff888000000000

type rawread struct{}

func (rawread) Describe() (sdk.Info, error) {
	return sdk.Info{Name: "rawread", Version: "0", Params: []sdk.Param{
		{Name: "user", Type: sdk.Bool, Help: "read user memory at addr"},
		{Name: "addr", Type: sdk.Int, Help: "the user address"},
	}}, nil
}

func (rawread) Generate(_ context.Context, p sdk.Params) (sdk.Output, error) {
	addr, read := directMap, asm.FnProbeReadKernel
	if user, err := p.Bool("user"); err != nil {
		return sdk.Output{}, err
	} else if user {
		a, _, err := p.Int("addr")
		if err != nil {
			return sdk.Output{}, err
		}
		addr, read = uint64(a), asm.FnProbeReadUser
	}
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R10),                // slot 0
		asm.Add.Imm(asm.R1, -8),                     // slot 1
		asm.Mov.Imm(asm.R2, 8),                      // slot 2
		asm.LoadImm(asm.R3, int64(addr), asm.DWord), // slots 3-4
		read.Call(), // slot 5
		asm.Mov.Imm(asm.R6, int32(program.EventExit)), // slot 6
		asm.StoreMem(asm.R10, -16, asm.R6, asm.DWord), // slot 7
		asm.LoadMapPtr(asm.R1, 0),                     // slots 8-9: events
		asm.Mov.Reg(asm.R2, asm.R10),                  // slot 10
		asm.Add.Imm(asm.R2, -16),                      // slot 11
		asm.Mov.Imm(asm.R3, 8),                        // slot 12
		asm.Mov.Imm(asm.R4, 0),                        // slot 13
		asm.FnRingbufOutput.Call(),                    // slot 14
		asm.Mov.Imm(asm.R0, 0),                        // slot 15
		asm.Return(),                                  // slot 16
	}
	var code bytes.Buffer
	if err := insns.Marshal(&code, binary.LittleEndian); err != nil {
		return sdk.Output{}, err
	}
	schema, err := json.Marshal(program.Schema{})
	if err != nil {
		return sdk.Output{}, err
	}
	return sdk.Output{Program: &sdk.Program{
		Probes: []sdk.Probe{{Kind: "BEGIN", Name: "BEGIN", Insns: code.Bytes(), MapRefs: map[uint32]string{8: "events"}}},
		Maps: []sdk.Map{
			{Name: "events", Type: "RingBuf", MaxEntries: 1 << 16},
			{Name: "map_errors", Type: "PerCPUArray", KeySize: 4, ValueSize: 8, MaxEntries: 1},
			{Name: "config", Type: "Array", KeySize: 4, ValueSize: program.ConfigSize, MaxEntries: 1},
		},
		Schema: schema,
	}}, nil
}

func main() { sdk.Serve(rawread{}) }
