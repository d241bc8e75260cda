package interp

import (
	"bytes"
	"encoding/hex"
	"errors"
	"testing"

	"github.com/cilium/ebpf"
)

// FuzzRun feeds arbitrary bytecode through the verifier and runs what
// passes against a context, an array, a hash map and a ring buffer. No
// input may panic, hang (the budget is small) or touch memory outside
// its regions: the context sits between guard bytes that must survive.
// Seeded with the conformance suite, whose programs mutate into valid
// neighbours.
//
//	go test ./interp -run '^$' -fuzz FuzzRun -fuzztime 1m
func FuzzRun(f *testing.F) {
	for _, c := range loadConformance(f) {
		code, _ := hex.DecodeString(c.Program)
		mem, _ := hex.DecodeString(c.Memory)
		f.Add(code, mem)
	}
	f.Add(exit0, []byte{})
	f.Fuzz(func(t *testing.T, code, ctx []byte) {
		if len(code) > 64<<10 || len(ctx) > 4096 {
			return
		}
		arr, _ := NewMap(&ebpf.MapSpec{Name: "arr", Type: ebpf.Array, KeySize: 4, ValueSize: 16, MaxEntries: 4}, MapOptions{CPUs: 2})
		h, _ := NewMap(&ebpf.MapSpec{Name: "h", Type: ebpf.Hash, KeySize: 4, ValueSize: 8, MaxEntries: 4}, MapOptions{CPUs: 2})
		rb, _ := NewMap(&ebpf.MapSpec{Name: "rb", Type: ebpf.RingBuf, MaxEntries: 256}, MapOptions{CPUs: 2})
		p, err := Load(code, Options{Maps: []*Map{arr, h, rb}, Args: 2, WritableContext: true, Budget: 20000})
		if err != nil {
			var ve *VerifyError
			if !errors.As(err, &ve) {
				t.Fatalf("Load error of type %T: %v", err, err)
			}
			if p != nil {
				t.Fatal("Program returned with an error")
			}
			return
		}
		guard := bytes.Repeat([]byte{0xa5}, 64)
		buf := append(append(append([]byte{}, guard...), ctx...), guard...)
		view := buf[64 : 64+len(ctx) : 64+len(ctx)]
		for cpu := uint32(0); cpu < 2; cpu++ { // runs share the maps, as concurrent ones would
			_, err := p.Run(&Env{CPU: cpu}, view)
			if err != nil {
				var re *RunError
				if !errors.As(err, &re) {
					t.Fatalf("Run error of type %T: %v", err, err)
				}
			}
		}
		if !bytes.Equal(buf[:64], guard) || !bytes.Equal(buf[64+len(ctx):], guard) {
			t.Fatal("a write escaped the context")
		}
	})
}
