package daemon

import (
	"strings"
	"testing"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

func TestRequestLimits(t *testing.T) {
	l, err := RequestLimits{MaxSource: 100}.withDefaults()
	if err != nil || l.MaxSource != 100 || l.MaxName != DefaultRequestLimits.MaxName || l.MaxParams != DefaultRequestLimits.MaxParams {
		t.Fatalf("withDefaults = %+v, %v", l, err)
	}
	if l.messageSize() < maxRequestSize {
		t.Errorf("gRPC takes %d bytes, less than %d", l.messageSize(), maxRequestSize)
	}
	for _, bad := range []RequestLimits{{MaxName: -1}, {MaxSource: maxSourceLimit + 1}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	big, _ := RequestLimits{MaxSource: 16 << 20}.withDefaults()
	if big.messageSize() <= 16<<20 {
		t.Errorf("a limit of 16 MiB and a gRPC limit of %d", big.messageSize())
	}
	for _, tt := range []struct {
		req *pb.TraceRequest
		err string
	}{
		{&pb.TraceRequest{Source: make([]byte, 100)}, ""},
		{&pb.TraceRequest{Source: make([]byte, 101)}, "script of 101 bytes is larger than 100"},
		{&pb.TraceRequest{Name: strings.Repeat("x", 4096)}, ""},
		{&pb.TraceRequest{Name: strings.Repeat("\x1b", 4097)}, "name of 4097 bytes"},
		{&pb.TraceRequest{Generator: strings.Repeat("g", 256)}, "generator name of 256 bytes"},
		{&pb.TraceRequest{Params: map[string]string{strings.Repeat("k", 129): ""}}, "parameter name of 129 bytes"},
		{&pb.TraceRequest{Params: map[string]string{"k": strings.Repeat("v", 4097)}}, "parameter value of 4097 bytes"},
		{&pb.TraceRequest{Args: make([]string, 64)}, ""},
		{&pb.TraceRequest{Args: make([]string, 65)}, "65 positional parameters, more than 64"},
		{&pb.TraceRequest{Args: []string{"1", strings.Repeat("\x1b", 4097)}}, "positional parameter of 4097 bytes"},
	} {
		err := l.check(tt.req)
		if (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
			t.Errorf("check: %v, want %q", err, tt.err)
		}
		// A refusal never repeats what it refuses.
		if err != nil && strings.Contains(err.Error(), "\x1b") {
			t.Errorf("%q", err)
		}
	}
}
