package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
	"github.com/tracebroker/tracebroker/broker/script/compile"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
	"github.com/tracebroker/tracebroker/broker/token"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// getcwdBody is a getcwd probe of this process around body, so that
// anything it loaded would show in newSince.
func getcwdBody(body string) []byte {
	return []byte(strings.TrimSuffix(string(getcwdScript()), "@ = count(); }") + body + " }")
}

// boundsAttacks are item 2's inputs: what a token holder sends to
// kill the daemon or make it allocate without bound.
func boundsAttacks() []struct {
	name string
	req  *pb.TraceRequest
	code string // the refusal's gRPC code, or "" for a trace that ends in a script error
	msg  string // what the refusal or the error says
} {
	const n = 100_000
	src := func(s string) *pb.TraceRequest { return &pb.TraceRequest{Source: []byte(s)} }
	tooLarge := fmt.Sprintf("program is too large (more than %d expressions, statements and probes)", syntax.MaxNodes)
	tooDeep := fmt.Sprintf("program is nested too deeply (more than %d levels)", syntax.MaxDepth)
	params := map[string]string{}
	for i := range 65 {
		params[fmt.Sprint(i)] = "v"
	}
	return []struct {
		name string
		req  *pb.TraceRequest
		code string
		msg  string
	}{
		{"item2/plus_chain_100k", &pb.TraceRequest{Source: getcwdBody("@x = 1" + strings.Repeat(" + 1", n) + ";")}, "", tooLarge},
		{"item2/and_chain_100k", &pb.TraceRequest{Source: getcwdBody("@x = 1" + strings.Repeat(" && 1", n) + ";")}, "", tooLarge},
		{"item2/ternary_chain_100k", &pb.TraceRequest{Source: getcwdBody("@x = " + strings.Repeat("1 ? 1 : ", n) + "1;")}, "", tooDeep},
		{"item2/if_else_chain_100k", &pb.TraceRequest{Source: getcwdBody(strings.Repeat("if(1){}else ", n) + "{}")}, "", tooDeep},
		{"item2/statements_100k", &pb.TraceRequest{Source: getcwdBody(strings.Repeat("@x = 1; ", n))}, "", tooLarge},
		{"item2/parentheses_100k", src("BEGIN { @x = " + strings.Repeat("(", n) + "1" + strings.Repeat(")", n) + "; }"), "", tooDeep},
		{"item2/unary_100k", src("BEGIN { @x = " + strings.Repeat("!", n) + "1; }"), "", tooDeep},
		{"item2/index_chain_100k", src("BEGIN { @x = args" + strings.Repeat("[0]", n) + "; }"), "", tooDeep},
		{"item2/probes_100k", src(strings.Repeat("BEGIN, ", n) + "END { }"), "", tooLarge},
		{"item2/wildcard_probes", src("tracepoint:*:* { @ = count(); }"), "", fmt.Sprintf("at most %d may attach", compile.MaxProbes)},
		{"item2/block_times_probes", src("tracepoint:syscalls:* { " + strings.Repeat("$x = 1; ", compile.MaxCheckWork/700/3) + "}"), "", "program is too large: its blocks, once for each probe they attach to"},
		{"item2/instructions", src(`BEGIN { $a = "x"; ` + strings.Repeat("@x = $a == $a; ", compile.MaxInsns/250) + "}"), "", fmt.Sprintf("program is too large: its code passes %d instructions", compile.MaxInsns)},
		{"item2/error_per_statement", &pb.TraceRequest{Source: getcwdBody(strings.Repeat("nosuch(); ", syntax.MaxNodes/4))}, "", "too many errors emitted, stopping now"},
		{"item2/script_over_limit", src("BEGIN { exit(); } //" + strings.Repeat("x", 2<<20)), "InvalidArgument", "larger than 2097152 (serve --max-script-bytes)"},
		{"item2/message_over_grpc_limit", src("BEGIN { exit(); } //" + strings.Repeat("x", 8<<20)), "ResourceExhausted", "the request is larger than the broker daemon takes (8388638 bytes; the limit is "},
		{"item2/name_over_limit", &pb.TraceRequest{Name: strings.Repeat("n", 4097), Source: []byte("BEGIN { exit(); }")}, "InvalidArgument", "name of 4097 bytes is larger than 4096"},
		{"item2/generator_name_over_limit", &pb.TraceRequest{Generator: strings.Repeat("g", 256)}, "InvalidArgument", "generator name of 256 bytes is larger than 255"},
		{"item2/params_over_limit", &pb.TraceRequest{Generator: "opensnoop", Params: params}, "InvalidArgument", "65 generator parameters, more than 64"},
		{"item2/param_value_over_limit", &pb.TraceRequest{Generator: "opensnoop", Params: map[string]string{"path": strings.Repeat("/", 4097)}}, "InvalidArgument", "a parameter value of 4097 bytes is larger than 4096"},
	}
}

// TestAttacksBounds: a token holder's deep, long and large requests
// are each refused with a clear error, quickly (BenchmarkAttacksBounds)
// and with nothing loaded, and the daemon serves the next request.
func TestAttacksBounds(t *testing.T) {
	needKernel(t)
	d := startDaemon(t, daemonOpts{configure: func(_ *testDaemon, c *Config) { c.Limits.MaxSource = 2 << 20 }})
	tok := d.token(t, token.IssueOptions{Subject: "mallory", Scope: "trace gen:* probe:tracepoint:syscalls:sys_enter_getcwd"})
	for _, tt := range boundsAttacks() {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := kerneltest.LoadedIDs(t)
			r := d.start(t, tok, tt.req)
			r.wait(t)
			var msg string
			if tt.code == "" {
				var ee *ExitError
				if !errors.As(r.err, &ee) || ee.Status != 1 {
					t.Fatalf("err = %v (%T), want the trace to end with a script error; stdout %q", r.err, r.err, r.stdout.String())
				}
				msg = ee.Message
			} else {
				var ce *CallError
				if !errors.As(r.err, &ce) || ce.Code != tt.code {
					t.Fatalf("err = %v (%T), want a refusal %s", r.err, r.err, tt.code)
				}
				msg = ce.Message
			}
			if !strings.Contains(msg, tt.msg) {
				t.Errorf("error %q, want %q", msg, tt.msg)
			}
			// The error quotes at most 20 lines of the script, each cut
			// to 1 KiB.
			if len(msg) > 64<<10 {
				t.Errorf("error of %d bytes", len(msg))
			}
			t.Logf("%.300s", msg)
			if r.stdout.Len() > 0 {
				t.Errorf("stdout = %q", r.stdout.String())
			}
			if left := newSince(t, before); len(left) > 0 {
				t.Errorf("programs loaded: %v", left)
			}
		})
	}
	// The daemon is up and counts exactly.
	r := d.start(t, tok, &pb.TraceRequest{Source: getcwdScript()})
	d.attached(t, 1, r)
	kerneltest.Syscalls(5, 0)
	close(r.interrupt)
	r.wait(t)
	if r.err != nil || !strings.HasSuffix(r.stdout.String(), "\n@: 5\n") {
		t.Errorf("after the attacks: err %v, stdout %q", r.err, r.stdout.String())
	}
}

// BenchmarkAttacksBounds: how long the daemon takes to refuse each of
// item 2's inputs, request to Exit, and what it allocates doing it.
func BenchmarkAttacksBounds(b *testing.B) {
	needKernel(b)
	d := startDaemon(b, daemonOpts{configure: func(_ *testDaemon, c *Config) { c.Limits.MaxSource = 2 << 20 }})
	c := benchClient(b, d, "trace probe:tracepoint:syscalls:sys_enter_getcwd")
	for _, tt := range boundsAttacks() {
		if tt.code != "" {
			continue
		}
		b.Run(tt.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, err := c.Trace(context.Background(), nil, tt.req, io.Discard, io.Discard)
				var ee *ExitError
				if !errors.As(err, &ee) {
					b.Fatalf("err = %v", err)
				}
			}
		})
	}
}
