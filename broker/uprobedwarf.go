package broker

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/internal/dwarfargs"
)

// The compiler's view of uprobes' binaries' DWARF (compile.DebugInfo):
// each file's read once per trace, through the file the probes attach
// to, or its separate debug file when the binary has no DWARF of its
// own.

type debugInfo struct {
	info *dwarfargs.Info
	err  error
}

// Params is compile.DebugInfo's.
func (u *uprobeFiles) Params(path, fn string) ([]dwarfargs.Param, error) {
	info, err := u.debugInfo(path)
	if err != nil {
		return nil, err
	}
	return info.Params(fn)
}

// Type is compile.DebugInfo's.
func (u *uprobeFiles) Type(path, kind, name string) (btf.Type, error) {
	info, err := u.debugInfo(path)
	if err != nil {
		return nil, err
	}
	return info.Type(kind, name)
}

func (u *uprobeFiles) debugInfo(path string) (*dwarfargs.Info, error) {
	if d, ok := u.dwarf[path]; ok {
		return d.info, d.err
	}
	info, err := u.readDebugInfo(path)
	if u.dwarf == nil {
		u.dwarf = map[string]debugInfo{}
	}
	u.dwarf[path] = debugInfo{info, err}
	return info, err
}

func (u *uprobeFiles) readDebugInfo(path string) (*dwarfargs.Info, error) {
	t, err := u.named(path)
	if err != nil {
		return nil, err
	}
	var info *dwarfargs.Info
	err = t.Read(func(f *os.File, _ int64) error {
		info, err = dwarfargs.Load(f)
		return err
	})
	if !errors.Is(err, dwarfargs.ErrNoDebugInfo) {
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return info, nil
	}
	dbg := t.DebugFile()
	if dbg == "" {
		return nil, err
	}
	f, ferr := os.Open(dbg)
	if ferr != nil {
		return nil, err
	}
	defer f.Close()
	info, derr := dwarfargs.Load(f)
	if derr != nil {
		if errors.Is(derr, dwarfargs.ErrNoDebugInfo) {
			return nil, derr
		}
		return nil, fmt.Errorf("%s: %w", dbg, derr)
	}
	return info, nil
}

// noRecordedDebug answers a replay's compiler: a recording holds the
// registers a uprobe's parameters are in, not the binary's DWARF that
// names and types them.
type noRecordedDebug struct{}

func (noRecordedDebug) Params(path, fn string) ([]dwarfargs.Param, error) {
	return nil, fmt.Errorf("a recording holds no debug info of %s: a replay reads %s's parameters as arg0-arg5, not by name", path, fn)
}

func (noRecordedDebug) Type(path, kind, name string) (btf.Type, error) {
	return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
}
