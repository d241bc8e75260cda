package daemon

import (
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/tracebroker/tracebroker/broker/daemon/proto"
)

// Ranges of the numeric fields of a TraceRequest.
const (
	// MaxDurationMs bounds duration_ms: 30 days. Far below where
	// milliseconds overflow a time.Duration (292 years), so no value
	// that passes can wrap into a negative duration and slip under a
	// token's max_duration.
	MaxDurationMs = int64(30 * 24 * time.Hour / time.Millisecond)
	// MaxPID is Linux's PID_MAX_LIMIT: no process has a larger id.
	MaxPID = 1 << 22
)

// validateNumbers checks the range of every number in the request,
// before anything else is done with it: a value out of range is an
// InvalidArgument that says the range.
func validateNumbers(req *pb.TraceRequest) error {
	if d := req.GetDurationMs(); d < 0 || d > MaxDurationMs {
		return status.Errorf(codes.InvalidArgument, "duration_ms %d is out of range: 0 (no limit) to %d (30 days)", d, MaxDurationMs)
	}
	if p := req.GetPid(); p < 0 || p > MaxPID {
		return status.Errorf(codes.InvalidArgument, "pid %d is out of range: 0 (none) to %d", p, MaxPID)
	}
	return nil
}
