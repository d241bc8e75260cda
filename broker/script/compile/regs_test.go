package compile

import (
	"strconv"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

func TestRegOffset(t *testing.T) {
	for _, tt := range []struct {
		name string
		want int
	}{
		{"r15", 0}, {"bx", 40}, {"ax", 80}, {"di", 112}, {"orig_ax", 120}, {"ip", 128}, {"sp", 152}, {"ss", 160},
		{"rsp", -1}, {"r1", -1}, {"", -1},
	} {
		if got := regOffset(tt.name); got != tt.want {
			t.Errorf("regOffset(%q) = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// regsTypes has the context structs ctx is typed as.
func regsTypes() fakeTypes {
	u64 := &btf.Int{Name: "long unsigned int", Size: 8}
	var regs []btf.Member
	for i, r := range x86Regs {
		regs = append(regs, btf.Member{Name: r, Type: u64, Offset: btf.Bits(64 * i)})
	}
	ptRegs := &btf.Struct{Name: "pt_regs", Size: 168, Members: regs}
	perf := &btf.Struct{Name: "bpf_perf_event_data", Size: 184, Members: []btf.Member{
		{Name: "regs", Type: ptRegs, Offset: 0},
		{Name: "sample_period", Type: u64, Offset: 168 * 8},
		{Name: "addr", Type: u64, Offset: 176 * 8},
	}}
	return fakeTypes{"struct pt_regs": ptRegs, "struct bpf_perf_event_data": perf}
}

func compileRegs(t *testing.T, src string) (*program.Program, error) {
	t.Helper()
	f, err := syntax.Parse("stdin", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	prog, _, err := Compile(f, Options{Tracepoints: fakeTracepoints{}, Uprobes: fakeUprobes{}, Kprobes: fakeKprobes{multi: true}, Types: regsTypes()})
	return prog, err
}

// ctxLoads lists the loads a probe makes from its context register
// (r9) as "SIZE@OFF".
func ctxLoads(p *program.Probe) []string {
	var out []string
	for _, ins := range p.Insns {
		if ins.OpCode.Class().IsLoad() && ins.OpCode.Mode() == asm.MemMode && ins.Src == rCtx {
			out = append(out, ins.OpCode.Size().String()+"@"+strconv.Itoa(int(ins.Offset)))
		}
	}
	return out
}

// TestRegAndCtx: reg() and ctx's fields are loaded from the context at
// pt_regs's offsets (the verifier rewrites a perf event's), and what
// only the kernel can run is named for interpreter mode.
func TestRegAndCtx(t *testing.T) {
	for _, tt := range []struct {
		name, src  string
		loads      []string
		kernelOnly string
	}{
		{"reg sp in a uprobe", `u:/bin/work:add_one { @ = reg("sp"); }`, []string{"DWord@152"}, ""},
		{"reg ip in a kprobe", `k:vfs_read { @ = reg("ip"); }`, []string{"DWord@128"}, ""},
		{"reg in an interval", `i:ms:1 { @ = reg("ax") + reg("r15"); }`, []string{"DWord@80", "DWord@0"}, ""},
		{"ctx registers of a perf event", `i:ms:1 { @ = ctx->regs.sp + ctx->sample_period; }`, []string{"DWord@152", "DWord@168"}, ""},
		{"ctx in a kprobe", `k:vfs_read { @ = ctx->di; }`, []string{"DWord@112"}, ""},
		{"ctx cast", `struct x { unsigned long x; } i:ms:1 { @ = ((struct x *)ctx)->x; }`, nil, "ctx (the kernel's context pointer"},
		{"ctx printed", `k:vfs_read { printf("%p\n", ctx); }`, nil, "ctx (the kernel's context pointer"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compileRegs(t, tt.src)
			if err != nil {
				t.Fatal(err)
			}
			probe := p.Probes[0]
			got := ctxLoads(probe)
			if tt.loads != nil && strings.Join(got, " ") != strings.Join(tt.loads, " ") {
				t.Errorf("context loads %v, want %v", got, tt.loads)
			}
			if !strings.HasPrefix(probe.KernelOnly, tt.kernelOnly) || (tt.kernelOnly == "") != (probe.KernelOnly == "") {
				t.Errorf("KernelOnly %q, want %q", probe.KernelOnly, tt.kernelOnly)
			}
		})
	}
}

func TestRegAndCtxErrors(t *testing.T) {
	for _, tt := range []struct{ src, want string }{
		{`BEGIN { @ = reg("foo"); }`, "stdin:1:13-23: ERROR: reg can not be used with \"BEGIN\" probes"},
		{`i:ms:1 { @ = reg("foo"); }`, "stdin:1:14-24: ERROR: 'foo' is not a valid register on this architecture (x86_64)"},
		{`i:ms:1 { @ = reg(1); }`, "reg() expects a string literal (integer provided)"},
		{`i:ms:1 { @ = reg(); }`, "reg() requires one argument (0 provided)"},
		{`t:syscalls:sys_enter_openat { @ = reg("sp"); }`, "reg can not be used with \"tracepoint\" probes"},
		{`BEGIN { @ = ctx; }`, "stdin:1:13-16: ERROR: invalid program type"},
		{`t:syscalls:sys_enter_openat { @ = ctx; }`, "ctx cannot be used in tracepoint probes: use args instead"},
		{`i:ms:1 { @ = ctx->nosuch; }`, "Struct/union of type 'struct bpf_perf_event_data' does not contain a field named 'nosuch'"},
	} {
		_, err := compileRegs(t, tt.src)
		l, ok := err.(syntax.ErrorList)
		if !ok {
			t.Fatalf("%s: error %T %v, want %q", tt.src, err, err, tt.want)
		}
		if got := l.Format("stdin", []byte(tt.src)); !strings.Contains(got, tt.want) {
			t.Errorf("got\n%s\nwant it to contain\n%s", got, tt.want)
		}
	}
}
