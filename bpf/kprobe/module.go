package kprobe

import "fmt"

// InModule refuses a kprobe whose program says its functions are
// module's when the kernel does not list them so. The kernel attaches a
// kprobe, or a kprobe.multi link, by bare function name, whatever module
// the program names: a probe named kprobe:MODULE:vfs_read (a plugin's
// raw program, which a token scope probe:kprobe:MODULE:* admits) would
// otherwise fire on the kernel's own vfs_read. A script's probes are
// matched in the module when compiled; this holds programs handed over
// whole to the same.
func InModule(module string, names []string) error {
	funcs, err := Functions()
	if err != nil {
		return err
	}
	return inModule(funcs, module, names)
}

func inModule(funcs []Func, module string, names []string) error {
	have := map[string]bool{}
	for _, f := range funcs {
		if f.Module == module {
			have[f.Name] = true
		}
	}
	for _, n := range names {
		if !have[n] {
			return fmt.Errorf("%s is not a traceable function of module %s (is the module loaded?)", n, module)
		}
	}
	return nil
}

// Names are a probe's functions: its one function (event) or its many.
func Names(event string, funcs []string) []string {
	if len(funcs) > 0 {
		return funcs
	}
	return []string{event}
}
