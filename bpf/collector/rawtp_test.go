package collector_test

import (
	"testing"

	"github.com/tracebroker/tracebroker/bpf/collector"
)

// rawCollectors runs test with each raw tracepoint collector: the one
// that takes its probe index from the attach cookie, where the kernel
// gives raw tracepoints cookies, and the one loaded per probe that
// reads it from a map of its own, which kernels before 6.10 get and
// which runs on any kernel.
func rawCollectors(t *testing.T, test func(*testing.T)) {
	t.Run("cookie", func(t *testing.T) {
		if !collector.RawTracepointCookies() {
			t.Skip("this kernel's raw tracepoints have no attach cookie (bpf_get_attach_cookie in a raw tracepoint program: Linux 6.10)")
		}
		test(t)
	})
	t.Run("index", func(t *testing.T) {
		t.Setenv(collector.NoRawTracepointCookiesEnv, "1")
		test(t)
	})
}
