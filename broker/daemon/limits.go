package daemon

import (
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// RequestLimits bounds what one trace request may carry, each field
// checked before anything else reads the request (the compiler bounds
// what a script may build: syntax.MaxNodes, compile.MaxProbes and the
// rest). A zero field takes its default.
type RequestLimits struct {
	// MaxSource bounds the script (default 256 KiB: bpftrace's tools
	// are under 10 KiB).
	MaxSource int
	// MaxName bounds the script's name (default 4096, PATH_MAX).
	MaxName int
	// MaxGenerator bounds a generator's name (default 255, NAME_MAX: it
	// is a plugin's file name).
	MaxGenerator int
	// MaxParams bounds a generator's parameters (default 64), each key
	// to MaxParamKey bytes (default 128) and each value to MaxParamValue
	// (default 4096); a script's positional parameters, each one a
	// value, are bounded alike.
	MaxParams, MaxParamKey, MaxParamValue int
}

// DefaultRequestLimits are the limits of a zero RequestLimits.
var DefaultRequestLimits = RequestLimits{
	MaxSource:     256 << 10,
	MaxName:       4096,
	MaxGenerator:  255,
	MaxParams:     64,
	MaxParamKey:   128,
	MaxParamValue: 4096,
}

// maxSourceLimit is the most MaxSource may be: a request is one gRPC
// message, and the daemon holds a few of them at once.
const maxSourceLimit = 64 << 20

// withDefaults fills the zero fields, and refuses a negative one or a
// MaxSource over maxSourceLimit.
func (l RequestLimits) withDefaults() (RequestLimits, error) {
	d := DefaultRequestLimits
	for _, f := range []struct {
		v    *int
		def  int
		name string
	}{
		{&l.MaxSource, d.MaxSource, "script size"},
		{&l.MaxName, d.MaxName, "name size"},
		{&l.MaxGenerator, d.MaxGenerator, "generator name size"},
		{&l.MaxParams, d.MaxParams, "parameter count"},
		{&l.MaxParamKey, d.MaxParamKey, "parameter name size"},
		{&l.MaxParamValue, d.MaxParamValue, "parameter value size"},
	} {
		switch {
		case *f.v < 0:
			return l, fmt.Errorf("request limits: negative %s %d", f.name, *f.v)
		case *f.v == 0:
			*f.v = f.def
		}
	}
	if l.MaxSource > maxSourceLimit {
		return l, fmt.Errorf("request limits: a script of %d bytes is more than the daemon takes (%d)", l.MaxSource, maxSourceLimit)
	}
	return l, nil
}

// messageSize is what gRPC may receive at most: the largest request
// the limits allow, with a margin for its encoding and its numbers, and
// at least maxRequestSize, so that a request somewhat over a limit is
// refused by check, with a clear reason and an audit record, rather
// than by gRPC.
func (l RequestLimits) messageSize() int {
	// A request carries a generator's parameters or a script's
	// positional ones, never both; the margin covers either.
	return max(maxRequestSize, l.MaxSource+l.MaxName+l.MaxGenerator+l.MaxParams*(l.MaxParamKey+l.MaxParamValue+16)+64<<10)
}

// check refuses a request that passes a limit, saying which and how to
// raise it, without repeating what it carried.
func (l RequestLimits) check(req *pb.TraceRequest) error {
	tooLarge := func(what string, n, limit int, flag string) error {
		return status.Errorf(codes.InvalidArgument, "%s of %d bytes is larger than %d (serve --%s)", what, n, limit, flag)
	}
	switch {
	case len(req.GetSource()) > l.MaxSource:
		return tooLarge("script", len(req.GetSource()), l.MaxSource, "max-script-bytes")
	case len(req.GetName()) > l.MaxName:
		return tooLarge("name", len(req.GetName()), l.MaxName, "max-name-bytes")
	case len(req.GetGenerator()) > l.MaxGenerator:
		return tooLarge("generator name", len(req.GetGenerator()), l.MaxGenerator, "max-generator-bytes")
	case len(req.GetParams()) > l.MaxParams:
		return status.Errorf(codes.InvalidArgument, "%d generator parameters, more than %d (serve --max-params)", len(req.GetParams()), l.MaxParams)
	case len(req.GetArgs()) > l.MaxParams:
		return status.Errorf(codes.InvalidArgument, "%d positional parameters, more than %d (serve --max-params)", len(req.GetArgs()), l.MaxParams)
	}
	for _, a := range req.GetArgs() {
		if len(a) > l.MaxParamValue {
			return tooLarge("a positional parameter", len(a), l.MaxParamValue, "max-param-value-bytes")
		}
	}
	for k, v := range req.GetParams() {
		if len(k) > l.MaxParamKey {
			return tooLarge("a parameter name", len(k), l.MaxParamKey, "max-param-key-bytes")
		}
		if len(v) > l.MaxParamValue {
			return tooLarge("a parameter value", len(v), l.MaxParamValue, "max-param-value-bytes")
		}
	}
	return nil
}
