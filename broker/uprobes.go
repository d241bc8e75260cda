package broker

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// uprobeFiles opens the files of one trace's uprobes, each once, for
// the compiler (symbols, addresses, uaddr) and the executor (attaching
// through the open file): what was checked is what is probed.
type uprobeFiles struct {
	scope   *uprobe.Scope
	written map[string]*uprobe.Target // by the path as written
	byName  map[string]*uprobe.Target // by Target.Path
	// refused is the scope's first refusal: the compiler makes every
	// error a script error, and a refusal must stay itself.
	refused error
	// pid is -p's process, whose files a usdt probe without a file
	// searches.
	pid int
	// dwarf is each file's debug info, by Target.Path (uprobedwarf.go).
	dwarf map[string]debugInfo
}

func newUprobeFiles(scope *uprobe.Scope) *uprobeFiles {
	return &uprobeFiles{scope: scope, written: map[string]*uprobe.Target{}, byName: map[string]*uprobe.Target{}}
}

// open opens the file a uprobe names, once per trace.
func (u *uprobeFiles) open(written string) (*uprobe.Target, error) {
	t, err := u.openFound(written)
	if errors.Is(err, uprobe.ErrNotAllowed) && u.refused == nil {
		u.refused = err
	}
	return t, err
}

// openFound is open for a file the broker found (a pattern's match, a
// process's mapped file), which the caller did not name: its refusal is
// not kept to be the trace's error (which would name it).
func (u *uprobeFiles) openFound(written string) (*uprobe.Target, error) {
	if t := u.written[written]; t != nil {
		return t, nil
	}
	t, err := uprobe.OpenTarget(u.inProcess(written), u.scope)
	if err != nil {
		return nil, err
	}
	// Two spellings of one file are one target; one name for two files
	// (it changed between the opens) would let a probe be judged by
	// one and attached to the other.
	if seen := u.byName[t.Path()]; seen != nil {
		same := seen.Same(t)
		t.Close()
		if !same {
			return nil, fmt.Errorf("uprobe target file %s changed while the script was compiled: try again", seen.Path())
		}
		t = seen
	}
	u.written[written], u.byName[t.Path()] = t, t
	return t, nil
}

// named is the target probes call path (Target.Path).
func (u *uprobeFiles) named(path string) (*uprobe.Target, error) {
	if t := u.byName[path]; t != nil {
		return t, nil
	}
	return u.open(path)
}

// Resolve is the compiler's uprobe resolution (compile.Uprobes).
func (u *uprobeFiles) Resolve(target, fn string) ([]compile.UprobeTarget, error) {
	t, err := u.open(target)
	if err != nil {
		return nil, err
	}
	if fn != "" && !strings.ContainsAny(fn, "*?[") && (isAddress(fn) || strings.Contains(fn, "+")) {
		// An address, or FUNC+OFFSET: one place in the file.
		off, err := t.FuncOffset(fn)
		if err != nil {
			return nil, err
		}
		return []compile.UprobeTarget{{Path: t.Path(), Func: fn, Offset: off, Binary: t}}, nil
	}
	syms, err := t.Match(fn)
	if err != nil {
		return nil, err
	}
	out := make([]compile.UprobeTarget, len(syms))
	for i, s := range syms {
		out[i] = compile.UprobeTarget{Path: t.Path(), Func: s.Name, Offset: s.Offset, Binary: t}
	}
	return out, nil
}

// keep closes the targets no probe of prog attaches through; prog
// holds the others (Program.Close).
func (u *uprobeFiles) keep(prog *program.Program) {
	used := map[program.Binary]bool{}
	if prog != nil {
		for _, p := range prog.Probes {
			if p.Binary != nil {
				used[p.Binary] = true
			}
		}
	}
	for _, t := range u.byName {
		if !used[t] {
			t.Close()
		}
	}
}

// bindProbes makes every probe of prog one whose name is where it
// attaches (Probe.CheckName), and every uprobe one that attaches through
// its file opened once — a generator's program (a plugin's eBPF) names
// paths the broker has not opened yet: they are opened under the same
// scope as a script's, and named by what was opened. A uprobe's function
// must be at its offset in that file.
func bindProbes(prog *program.Program, scope *uprobe.Scope) (err error) {
	files := newUprobeFiles(scope)
	defer func() {
		if err == nil {
			files.keep(prog)
		} else {
			files.keep(nil)
		}
	}()
	for _, p := range prog.Probes {
		if err := p.CheckName(); err != nil {
			return err
		}
		if p.Kind != program.Uprobe && p.Kind != program.Uretprobe {
			continue
		}
		fn := p.Func()
		t, _ := p.Binary.(*uprobe.Target)
		switch {
		case p.Binary == nil:
			if t, err = files.open(p.Path); err != nil {
				return err
			}
			p.Binary, p.Path, p.Name = t, t.Path(), p.Kind.String()+":"+t.Path()+":"+fn
		case t == nil:
			return fmt.Errorf("%s: the file was not opened by the broker", p.Name)
		}
		if p.UprobeMulti() {
			if err := checkMultiOffsets(t, p); err != nil {
				return err
			}
			continue
		}
		off, err := t.FuncOffset(fn)
		if err != nil || off != p.Offset {
			return &program.NameError{Name: p.Name, Is: fmt.Sprintf("%s at offset %#x of %s", p.Kind, p.Offset, p.Path)}
		}
	}
	return nil
}

// checkMultiOffsets: every function of a uprobe.multi probe is one its
// pattern matches in the file, at its offset there, so that what the
// probe is judged by (its functions' names) is where it attaches.
func checkMultiOffsets(t *uprobe.Target, p *program.Probe) error {
	syms, err := t.Match(p.Func())
	if err != nil {
		return err
	}
	at := make(map[string]uint64, len(syms))
	for _, s := range syms {
		at[s.Name] = s.Offset
	}
	for i, f := range p.Funcs {
		if off, ok := at[f]; !ok || off != p.Offsets[i] {
			return &program.NameError{Name: p.Name, Is: fmt.Sprintf("%s on %s at offset %#x of %s", p.Kind, f, p.Offsets[i], p.Path)}
		}
	}
	return nil
}

// isAddress: a uprobe's FUNC is an address (0x... or decimal digits).
func isAddress(fn string) bool {
	if strings.HasPrefix(fn, "0x") {
		return true
	}
	_, err := strconv.ParseUint(fn, 10, 64)
	return err == nil
}
