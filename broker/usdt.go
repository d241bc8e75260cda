package broker

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/bpf/usdt"
	"github.com/tracebroker/tracebroker/broker/script/compile"
)

// ResolveUSDT is the compiler's usdt resolution (compile.USDT): the
// probe sites of the file named (a path, a name found through $PATH, a
// glob), or with no file those of every file the -p process maps,
// whose provider and name match. Each file is opened once and under the
// trace's uprobe scope, as a uprobe's is.
func (u *uprobeFiles) ResolveUSDT(path, provider, name string) ([]compile.USDTTarget, error) {
	fromProcess := path == "" || path == "*"
	// Files a pattern or a process named, not the caller: under a
	// scope, one it refuses is passed over as if it were not there, for
	// its refusal would name it — the program of another user's
	// process, a file in a directory the caller cannot list — and a
	// pattern matching nothing is no different from one matching only
	// refused files.
	found := fromProcess || strings.ContainsAny(path, "*?[")
	files, err := usdt.Spec{Path: path, Provider: provider, Name: name}.Files(u.pid)
	if err != nil {
		if u.scope != nil && found && errors.Is(err, usdt.ErrNoMatch) {
			return nil, nil
		}
		return nil, err
	}
	var out []compile.USDTTarget
	for _, file := range files {
		open := u.open
		if found {
			open = u.openFound
		}
		t, err := open(file.Open)
		if err != nil {
			if found && errors.Is(err, uprobe.ErrNotAllowed) {
				continue
			}
			if fromProcess && !errors.Is(err, uprobe.ErrNotAllowed) {
				continue // a mapped file that is gone, or not an ELF file
			}
			return nil, err
		}
		var probes []usdt.Probe
		if err := t.Read(func(f *os.File, _ int64) (err error) {
			probes, err = usdt.Read(f)
			return err
		}); err != nil {
			if fromProcess {
				continue
			}
			return nil, fmt.Errorf("%s: %w", file.Path, err)
		}
		for _, p := range probes {
			if !uprobe.MatchName(provider, p.Provider) || !uprobe.MatchName(name, p.Name) {
				continue
			}
			off, err := t.AddressOffset(p.Addr)
			if err != nil {
				return nil, fmt.Errorf("usdt %s:%s in %s: %w", p.Provider, p.Name, file.Path, err)
			}
			var ref uint64
			if p.Semaphore != 0 {
				if ref, err = t.AddressOffset(p.Semaphore); err != nil {
					return nil, fmt.Errorf("usdt %s:%s in %s: its semaphore: %w", p.Provider, p.Name, file.Path, err)
				}
			}
			out = append(out, compile.USDTTarget{
				Path: t.Path(), Written: file.Path, Provider: p.Provider, Name: p.Name,
				Addr: p.Addr, Offset: off, RefCtr: ref, Args: p.Args, ArgErr: p.ArgErr, Binary: t,
			})
		}
	}
	return out, nil
}
