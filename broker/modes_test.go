package broker

import (
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
	"github.com/tracebroker/tracebroker/internal/collectortest"
)

// The modes every end-to-end test runs in, with the same expectation.
var modes = []Mode{ModeJIT, ModeInterp}

// testCollectors is a Trust under which the collectors verify.
func testCollectors(t testing.TB) collector.Trust { return collectortest.Signed(t) }
