package daemon

import (
	"errors"
	"fmt"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/status"

	"github.com/tracebroker/tracebroker/broker"
	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/recording"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
)

// fuzzKernel is the kernel the request path compiles against in
// FuzzRequest: a recording's header holds kernel facts without a
// kernel. It has two syscall tracepoints, more tracepoints than a
// program may attach to (many:*), a uprobe and a tp_btf.
func fuzzKernel() compile.Options {
	h := &recording.Header{Probes: []recording.Probe{
		{Kind: program.Tracepoint.String(), Category: "syscalls", Event: "sys_enter_getcwd", Fields: []compile.Field{
			{Name: "__syscall_nr", Type: "int", Offset: 8, Size: 4, Signed: true, Kind: compile.FieldInt},
			{Name: "buf", Type: "char *", Offset: 16, Size: 8, Kind: compile.FieldPtr},
			{Name: "size", Type: "unsigned long", Offset: 24, Size: 8, Kind: compile.FieldInt},
		}},
		{Kind: program.Tracepoint.String(), Category: "syscalls", Event: "sys_enter_openat", Fields: []compile.Field{
			{Name: "dfd", Type: "int", Offset: 16, Size: 8, Signed: true, Kind: compile.FieldInt},
			{Name: "filename", Type: "const char *", Offset: 24, Size: 8, Kind: compile.FieldPtr},
			{Name: "flags", Type: "int", Offset: 32, Size: 8, Kind: compile.FieldInt},
		}},
		{Kind: program.Uprobe.String(), Path: "/usr/bin/work", Func: "work", Offset: 0x1100},
		{Kind: program.TpBTF.String(), Event: "sched_switch", Fields: []compile.Field{
			{Name: "preempt", Type: "bool", Offset: 0, Size: 1, Kind: compile.FieldInt},
			{Name: "prev", Type: "struct task_struct *", Offset: 8, Size: 8, Kind: compile.FieldPtr},
		}},
	}}
	for i := range compile.MaxProbes + 10 {
		h.Probes = append(h.Probes, recording.Probe{Kind: program.Tracepoint.String(), Category: "many", Event: fmt.Sprintf("tp%d", i),
			Fields: []compile.Field{{Name: "v", Type: "long", Offset: 8, Size: 8, Signed: true, Kind: compile.FieldInt}}})
	}
	return compile.Options{Tracepoints: h.Tracepoints(), Uprobes: h.Uprobes(), BTFTracepoints: h.BTFTracepoints()}
}

// fuzzSeeds are deep and wide requests, at and past every bound.
func fuzzSeeds() []string {
	seeds := []string{
		`tracepoint:syscalls:sys_enter_getcwd /pid == 1/ { @[comm] = count(); printf("%s %d\n", str(args->buf), args->size); }`,
		`uprobe:/usr/bin/work:work { @[ustack] = count(); } tp_btf:sched_switch { @s = sum(args.preempt); }`,
		`BEGIN { $a = "x"; if ($a == "y" && pid > 1 || !(cpu < 2)) { printf("%s\n", $a); } else if (1) { exit(); } }`,
		"tracepoint:many:* { @[probe] = count(); }",
		"tracepoint:many:tp1* { " + strings.Repeat("$x = args->v; ", 200) + "}",
		`BEGIN { $a = "x"; ` + strings.Repeat("@x = $a == $a; ", 400) + "}",
	}
	for _, op := range []string{" + ", " && ", " || ", " < "} {
		seeds = append(seeds, "BEGIN { @x = pid"+strings.Repeat(op+"pid", 3000)+"; }")
	}
	for _, n := range []int{syntax.MaxDepth - 2, syntax.MaxDepth + 2} {
		seeds = append(seeds,
			"BEGIN { @x = "+strings.Repeat("(", n)+"1"+strings.Repeat(")", n)+"; }",
			"BEGIN { @x = "+strings.Repeat("pid ? 1 : ", n)+"2; }",
			"BEGIN { "+strings.Repeat("if (pid) { ", n)+strings.Repeat("} ", n)+"}",
			"BEGIN { "+strings.Repeat("if (pid) {} else ", n)+"{} }",
			"BEGIN { @x = "+strings.Repeat("!-~", n/3)+"1; }",
		)
	}
	// A chain of variables, each assigned from the last: the read
	// classes' fixpoint once took their number squared (8 s for 10,000).
	var chain strings.Builder
	chain.WriteString("BEGIN { $v0 = 1; ")
	for i := 1; i < 10_000; i++ {
		fmt.Fprintf(&chain, "$v%d = $v%d; ", i, i-1)
	}
	return append(seeds,
		chain.String()+"}",
		"BEGIN { "+strings.Repeat("@x = 1; ", 3000)+"}",
		strings.Repeat("BEGIN, ", 2000)+"END {}",
		"tracepoint:syscalls:sys_enter_getcwd { "+strings.Repeat("nosuch(); ", 2000)+"}",
		"BEGIN { printf(\"\x1b]0;title\x07\"); \xff\xfe }",
	)
}

// FuzzRequest runs what the daemon runs on a token holder's request
// before anything reaches the kernel — the request's limits and scopes,
// the uprobe precheck, parsing, checking, code generation, the probe
// scope check, the error text sent back — against fake kernel facts.
// It must never panic, need more than 64 MB of stack (Go's overflow is
// fatal: the run dies with the input), or take more than 5 s.
func FuzzRequest(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add("stdin", []byte(s), "", "", "")
	}
	f.Add("x\x1b[2J.bt", []byte("BEGIN { exit(); }"), "", "", "")
	f.Add("", []byte(nil), "opensnoop", "path", strings.Repeat("/", 5000))
	debug.SetMaxStack(64 << 20)
	limits, err := RequestLimits{}.withDefaults()
	if err != nil {
		f.Fatal(err)
	}
	s := &Server{cfg: Config{Limits: limits}}
	scopes, err := token.ParseScopes("trace gen:open* probe:tracepoint:syscalls:* probe:uprobe:/usr/bin/*:*")
	if err != nil {
		f.Fatal(err)
	}
	tok := &token.Token{Subject: "fuzz", Scopes: scopes}
	opts := fuzzKernel()
	f.Fuzz(func(t *testing.T, name string, src []byte, gen, key, value string) {
		req := &pb.TraceRequest{Name: name, Source: src, Generator: gen}
		if key != "" || value != "" {
			req.Params = map[string]string{key: value}
		}
		done := make(chan struct{})
		timer := time.AfterFunc(5*time.Second, func() {
			panic(fmt.Sprintf("the request path takes more than 5 s on name %q, source %q", name, src))
		})
		go func() {
			defer close(done)
			requestPath(t, s, tok, req, opts)
		}()
		<-done
		timer.Stop()
	})
}

// requestPath is the daemon's path for req up to the kernel.
func requestPath(t *testing.T, s *Server, tok *token.Token, req *pb.TraceRequest, opts compile.Options) {
	if err := s.authorizeRequest(Caller{Unix: true, UID: 1000}, tok, req); err != nil {
		if _, ok := status.FromError(err); !ok {
			t.Errorf("refusal %v is not a gRPC status", err)
		}
		return
	}
	if req.GetGenerator() != "" {
		return // a plugin generates the script: not this target's business
	}
	name := req.GetName()
	if name == "" {
		name = "stdin"
	}
	file, err := syntax.Parse(name, req.GetSource())
	var prog *program.Program
	if err == nil {
		prog, _, err = compile.Compile(file, opts)
	}
	if err != nil {
		var l syntax.ErrorList
		if !errors.As(err, &l) {
			t.Fatalf("error %T %v is not an ErrorList", err, err)
		}
		// What the client gets back, and the audit record: bounded.
		text := broker.ErrorText(&broker.ScriptError{Name: name, Src: req.GetSource(), List: l})
		if len(text) > 64<<10 {
			t.Fatalf("an error text of %d bytes", len(text))
		}
		return
	}
	n := 0
	for _, p := range prog.Probes {
		n += len(p.Insns)
	}
	if len(prog.Probes) > compile.MaxProbes || n > compile.MaxInsns {
		t.Fatalf("%d probes, %d instructions", len(prog.Probes), n)
	}
	authorizeProbes(tok)(prog)
}
