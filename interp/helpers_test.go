package interp

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// stackWord ends a program returning the 8 stack bytes at r10+off, for
// helpers whose effect is in memory.
func stackWord(off int16) asm.Instructions {
	return asm.Instructions{asm.LoadMem(asm.R0, asm.R10, off, asm.DWord), asm.Return()}
}

// TestCurrentTask: the task helpers, and the attach cookie, report
// what Env says.
func TestCurrentTask(t *testing.T) {
	env := &Env{CPU: 3, PID: 101, TGID: 100, UID: 1000, GID: 50, Ktime: func() uint64 { return 123456789 }, Cookie: 1017}
	copy(env.Comm[:], "bash")
	tests := []struct {
		name  string
		insns asm.Instructions
		want  uint64
	}{
		{"pid_tgid", asm.Instructions{asm.FnGetCurrentPidTgid.Call(), asm.Return()}, 100<<32 | 101},
		{"uid_gid", asm.Instructions{asm.FnGetCurrentUidGid.Call(), asm.Return()}, 50<<32 | 1000},
		{"cpu", asm.Instructions{asm.FnGetSmpProcessorId.Call(), asm.Return()}, 3},
		{"ktime", asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Return()}, 123456789},
		// The context is the helper's argument, as in the kernel.
		{"attach cookie", asm.Instructions{asm.FnGetAttachCookie.Call(), asm.Return()}, 1017},
		{"comm", append(asm.Instructions{
			asm.StoreImm(asm.R10, -8, -1, asm.Word), asm.StoreImm(asm.R10, -4, -1, asm.Word),
			asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8), asm.Mov.Imm(asm.R2, 8),
			asm.FnGetCurrentComm.Call()}, stackWord(-8)...),
			binary.LittleEndian.Uint64([]byte("bash\x00\x00\x00\x00"))},
		{"comm truncated", append(asm.Instructions{
			asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -8), asm.Mov.Imm(asm.R2, 3),
			asm.FnGetCurrentComm.Call()}, stackWord(-8)...),
			binary.LittleEndian.Uint64([]byte("ba\x00\x00\x00\x00\x00\x00"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, tt.insns, nil, Options{})
			r0, err := p.Run(env, nil)
			if err != nil || r0 != tt.want {
				t.Fatalf("r0 = %#x (%v), want %#x", r0, err, tt.want)
			}
		})
	}
}

// TestKtimeClock: without Env.Ktime the helper reads CLOCK_MONOTONIC,
// the clock the kernel's ktime_get_ns reads.
func TestKtimeClock(t *testing.T) {
	p := load(t, asm.Instructions{asm.FnKtimeGetNs.Call(), asm.Return()}, nil, Options{})
	var before, after unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &before)
	r0, err := p.Run(nil, nil)
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &after)
	if err != nil || r0 < uint64(before.Nano()) || r0 > uint64(after.Nano()) {
		t.Fatalf("ktime %d not within [%d, %d] (%v)", r0, before.Nano(), after.Nano(), err)
	}
}

// TestProbeRead: reads from memory the program owns succeed; anything
// else is -EFAULT with the destination zeroed, and the program goes on.
func TestProbeRead(t *testing.T) {
	ctx := []byte("hello, world\x00tail")
	read := func(fn asm.BuiltinFunc, src asm.Instructions, size int32) asm.Instructions {
		insns := asm.Instructions{
			asm.StoreImm(asm.R10, -16, -1, asm.Word), asm.StoreImm(asm.R10, -12, -1, asm.Word),
			asm.StoreImm(asm.R10, -8, -1, asm.Word), asm.StoreImm(asm.R10, -4, -1, asm.Word),
			asm.Mov.Reg(asm.R6, asm.R1),
		}
		insns = append(insns, src...) // sets r3
		return append(insns,
			asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, -16), asm.Mov.Imm(asm.R2, size),
			fn.Call(),
			asm.LoadMem(asm.R0, asm.R10, -16, asm.DWord),
			asm.Return(),
		)
	}
	fromCtx := asm.Instructions{asm.Mov.Reg(asm.R3, asm.R6)}
	fromNull := asm.Instructions{asm.Mov.Imm(asm.R3, 0)}
	fromCtxEnd := asm.Instructions{asm.Mov.Reg(asm.R3, asm.R6), asm.Add.Imm(asm.R3, 13)}
	le := func(s string) uint64 { return binary.LittleEndian.Uint64([]byte(s)) }
	tests := []struct {
		name  string
		insns asm.Instructions
		want  uint64 // first 8 bytes of the destination
		ret   int64  // helper result
	}{
		{"kernel", read(asm.FnProbeReadKernel, fromCtx, 8), le("hello, w"), 0},
		{"user", read(asm.FnProbeReadUser, fromCtx, 5), le("hello\xff\xff\xff"), 0},
		{"null", read(asm.FnProbeReadKernel, fromNull, 8), 0, -14},
		{"past the end", read(asm.FnProbeReadKernel, fromCtxEnd, 8), 0, -14},
		{"str", read(asm.FnProbeReadKernelStr, fromCtx, 16), le("hello, w"), 13},
		{"str truncated", read(asm.FnProbeReadUserStr, fromCtx, 6), le("hello\x00\xff\xff"), 6},
		{"str runs off the region", read(asm.FnProbeReadKernelStr, fromCtxEnd, 16), 0, -14},
		{"str null", read(asm.FnProbeReadStr, fromNull, 16), 0, -14},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := load(t, tt.insns, nil, Options{})
			var ret uint64
			r0, err := p.Run(&Env{Step: func(pc int, r *[11]uint64) {
				if p.insns[pc].op == opLdxDW { // r0 still holds the helper's result
					ret = r[0]
				}
			}}, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r0 != tt.want || int64(ret) != tt.ret {
				t.Fatalf("dst %q ret %d, want %q %d", v64(r0), int64(ret), v64(tt.want), tt.ret)
			}
		})
	}
	// The destination must be the program's to write: that is a verifier
	// matter in the kernel, so here it stops the program.
	p := load(t, asm.Instructions{asm.Mov.Imm(asm.R1, 0), asm.Mov.Imm(asm.R2, 8), asm.Mov.Reg(asm.R3, asm.R10), asm.FnProbeReadKernel.Call(), asm.Return()}, nil, Options{})
	if _, err := p.Run(nil, nil); err == nil || !strings.Contains(err.Error(), "write of 8 bytes at 0x0: NULL") {
		t.Fatalf("bad destination: %v", err)
	}
}

// TestRingbuf: output, reserve/submit/discard, the reader, and the
// kernel's answers when the ring is full.
func TestRingbuf(t *testing.T) {
	rb := mustMap(t, &ebpf.MapSpec{Name: "rb", Type: ebpf.RingBuf, MaxEntries: 64})
	maps := map[string]*Map{"rb": rb}
	output := asm.Instructions{
		asm.StoreImm(asm.R10, -8, 0x04030201, asm.Word),
		asm.StoreImm(asm.R10, -4, 0x08070605, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference("rb"),
		asm.Mov.Reg(asm.R2, asm.R10), asm.Add.Imm(asm.R2, -8),
		asm.Mov.Imm(asm.R3, 8), asm.Mov.Imm(asm.R4, 0),
		asm.FnRingbufOutput.Call(),
		asm.Return(),
	}
	p := load(t, output, maps, Options{})
	// 64 bytes hold three 8-byte records with their 8-byte headers: as in
	// the kernel, the producer never gets a whole ring ahead of the reader.
	for i := 0; i < 4; i++ {
		r0, err := p.Run(nil, nil)
		want := uint64(0)
		if i == 3 {
			want = negErrno(11) // -EAGAIN
		}
		if err != nil || r0 != want {
			t.Fatalf("output %d: %d %v, want %d", i, int64(r0), err, int64(want))
		}
	}
	for i := 0; i < 3; i++ {
		rec, ok := rb.ReadRecord()
		if !ok || !bytes.Equal(rec, []byte{1, 2, 3, 4, 5, 6, 7, 8}) {
			t.Fatalf("record %d: % x %v", i, rec, ok)
		}
	}
	if _, ok := rb.ReadRecord(); ok {
		t.Fatal("a fourth record")
	}
	select {
	case <-rb.Ready():
	case <-time.After(time.Second):
		t.Fatal("no notification")
	}

	reserve := func(size int32, then ...asm.Instruction) asm.Instructions {
		return append(asm.Instructions{
			asm.LoadMapPtr(asm.R1, 0).WithReference("rb"),
			asm.Mov.Imm(asm.R2, size), asm.Mov.Imm(asm.R3, 0),
			asm.FnRingbufReserve.Call(),
			asm.JNE.Imm(asm.R0, 0, "got"),
			asm.Mov.Imm(asm.R0, 99),
			asm.Return(),
			asm.Mov.Reg(asm.R1, asm.R0).WithSymbol("got"),
			asm.StoreImm(asm.R1, 0, 0x2a, asm.Word),
		}, then...)
	}
	submit := load(t, reserve(4, asm.Mov.Imm(asm.R2, 0), asm.FnRingbufSubmit.Call(), asm.Mov.Imm(asm.R0, 0), asm.Return()), maps, Options{})
	if r0, err := submit.Run(nil, nil); err != nil || r0 != 0 {
		t.Fatalf("reserve+submit: %d %v", r0, err)
	}
	if rec, ok := rb.ReadRecord(); !ok || !bytes.Equal(rec, []byte{0x2a, 0, 0, 0}) {
		t.Fatalf("submitted record % x %v", rec, ok)
	}
	discard := load(t, reserve(4, asm.Mov.Imm(asm.R2, 0), asm.FnRingbufDiscard.Call(), asm.Mov.Imm(asm.R0, 0), asm.Return()), maps, Options{})
	if _, err := discard.Run(nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok := rb.ReadRecord(); ok {
		t.Fatal("a discarded record was delivered")
	}
	if r0, err := load(t, reserve(65, asm.Return()), maps, Options{}).Run(nil, nil); err != nil || r0 != 99 {
		t.Fatalf("oversized reserve: %d %v, want NULL", r0, err)
	}
	leak := load(t, reserve(4, asm.Mov.Imm(asm.R0, 0), asm.Return()), maps, Options{})
	if _, err := leak.Run(nil, nil); err == nil || !strings.Contains(err.Error(), "neither submitted nor discarded") {
		t.Fatalf("leaked reservation: %v", err)
	}
	// The leaked reservation was discarded; its space comes back when the
	// reader passes it, and three outputs fit again.
	if _, ok := rb.ReadRecord(); ok {
		t.Fatal("a leaked reservation was delivered")
	}
	for i := 0; i < 3; i++ {
		if r0, err := p.Run(nil, nil); err != nil || r0 != 0 {
			t.Fatalf("after leak, output %d: %d %v", i, int64(r0), err)
		}
	}
	useAfterSubmit := load(t, reserve(4, asm.Mov.Reg(asm.R6, asm.R1), asm.Mov.Imm(asm.R2, 0), asm.FnRingbufSubmit.Call(),
		asm.StoreImm(asm.R6, 0, 1, asm.Word), asm.Mov.Imm(asm.R0, 0), asm.Return()), maps, Options{})
	for i := 0; i < 3; i++ {
		rb.ReadRecord()
	}
	if _, err := useAfterSubmit.Run(nil, nil); err == nil || !strings.Contains(err.Error(), "ring-buffer reservation") {
		t.Fatalf("write after submit: %v", err)
	}
}

// TestTracePrintk: the kernel's subset of printf, to Env.Printk.
func TestTracePrintk(t *testing.T) {
	tests := []struct {
		format string
		args   []int64
		want   string
	}{
		{"n=%d\n", []int64{-5}, "n=-5\n"},
		{"%u %x %X", []int64{-1, 255, 255}, "4294967295 ff FF"},
		{"%ld %llu %lx", []int64{-5, -1, 1 << 40}, "-5 18446744073709551615 10000000000"},
		{"[%5d|%-4d|%04x]", []int64{42, 7, 10}, "[   42|7   |000a]"},
		{"%c%c", []int64{'o', 'k'}, "ok"},
		{"100%%", nil, "100%"},
		{"%px", []int64{0x1234}, "0000000000001234"},
	}
	for _, tt := range tests {
		t.Run(tt.format, func(t *testing.T) {
			fmtBytes := append([]byte(tt.format), 0)
			insns := asm.Instructions{}
			for len(fmtBytes)%4 != 0 {
				fmtBytes = append(fmtBytes, 0)
			}
			base := -int16(len(fmtBytes))
			for i := 0; i < len(fmtBytes); i += 4 {
				insns = append(insns, asm.StoreImm(asm.R10, base+int16(i), int64(int32(binary.LittleEndian.Uint32(fmtBytes[i:]))), asm.Word))
			}
			insns = append(insns, asm.Mov.Reg(asm.R1, asm.R10), asm.Add.Imm(asm.R1, int32(base)), asm.Mov.Imm(asm.R2, int32(len(tt.format)+1)))
			for i, a := range tt.args {
				insns = append(insns, asm.LoadImm(asm.R3+asm.Register(i), a, asm.DWord))
			}
			insns = append(insns, asm.FnTracePrintk.Call(), asm.Return())
			p := load(t, insns, nil, Options{})
			var out bytes.Buffer
			r0, err := p.Run(&Env{Printk: &out}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want || r0 != uint64(len(tt.want)) {
				t.Fatalf("printed %q (r0 %d), want %q", out.String(), r0, tt.want)
			}
		})
	}
}
