package kerneltest

import (
	"os"
	"strconv"
	"time"
)

// SlowEnv names the factor by which a test stretches the bounds that
// are real promises about time (a run ends within its duration and a
// grace period; a tool answers within a limit), on a machine where
// everything takes longer: the vmtest harness sets it for guests under
// qemu's software emulation (TCG), which run 5 to 20 times slower than
// the host. Tests wait on events, never on this; unset is 1.
const SlowEnv = "TRACEBROKER_SLOW"

// Slow is d stretched by TRACEBROKER_SLOW, a whole number of at least 1
// (anything else counts as 1).
func Slow(d time.Duration) time.Duration {
	n, err := strconv.Atoi(os.Getenv(SlowEnv))
	if err != nil || n < 1 {
		return d
	}
	return d * time.Duration(n)
}
