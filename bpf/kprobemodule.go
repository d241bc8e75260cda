package bpf

import "github.com/tracebroker/tracebroker/bpf/kprobe"

// checkKprobeModule: a kprobe that names a module attaches only to that
// module's functions (kprobe.InModule).
func checkKprobeModule(module, event string, funcs []string) error {
	if module == "" {
		return nil
	}
	return kprobe.InModule(module, kprobe.Names(event, funcs))
}
