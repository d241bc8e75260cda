package kprobe

import "fmt"

// Modules checks that a kprobe whose program says its functions are a
// module's attaches only to that module's functions. The kernel
// attaches a kprobe, or a kprobe.multi link, by bare function name,
// whatever module the program names: a probe named
// kprobe:MODULE:vfs_read (a plugin's raw program, which a token scope
// probe:kprobe:MODULE:* admits) would otherwise fire on the kernel's
// own vfs_read. A script's probes are matched in the module when
// compiled; this holds programs handed over whole to the same.
//
// The kernel's list is read once, at the first module's probe (reading
// it takes seconds under emulation), and kept for the Modules' life: a
// session's attach.
type Modules struct {
	funcs []Func
	err   error
	read  bool
}

// Check refuses names (a probe's function, or a kprobe.multi probe's)
// that are not traceable functions of module; a probe of the kernel
// image (module "") is not checked.
func (m *Modules) Check(module string, names []string) error {
	if module == "" {
		return nil
	}
	if !m.read {
		m.funcs, m.err = Functions()
		m.read = true
	}
	if m.err != nil {
		return m.err
	}
	return inModule(m.funcs, module, names)
}

// CheckOffset refuses a kprobe offset that falls outside its function,
// as the compiler refuses a script's: the kernel adds the offset to the
// function's address, so a program handed over whole that is named
// kprobe:vfs_read+4096 (which a scope probe:kprobe:vfs_read* admits)
// would fire in whatever function lies there. A function whose size
// /proc/kallsyms does not tell is left to the kernel.
func CheckOffset(fn string, offset uint64) error {
	if offset == 0 {
		return nil
	}
	return offsetIn(fn, offset, Size)
}

func offsetIn(fn string, offset uint64, size func(string) (uint64, bool)) error {
	if n, ok := size(fn); ok && offset >= n {
		return fmt.Errorf("kprobe %s+%d: the offset is outside the function (%d bytes)", fn, offset, n)
	}
	return nil
}

// InModule is Check with the kernel's list read for one probe.
func InModule(module string, names []string) error {
	return new(Modules).Check(module, names)
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
