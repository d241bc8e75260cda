package compile

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/script/ctypes"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// defineTypes reads the script's C definitions (struct Foo { ... }) and
// puts them before the kernel's types: a script's struct task_struct is
// the one it reads, as in bpftrace, where clang sees the script's
// definitions first.
func (c *compiler) defineTypes() {
	if len(c.file.Defs) == 0 {
		return
	}
	defined := ctypes.Types{}
	kernel := c.opts.Types
	resolve := func(kind, name string) btf.Type {
		if kernel == nil {
			return nil
		}
		t, err := kernel.Type(kind, name)
		if err != nil {
			return nil
		}
		return t
	}
	for _, d := range c.file.Defs {
		if err := ctypes.ParseResolving(d.Text, defined, resolve); err != nil {
			var ce *ctypes.Error
			if errors.As(err, &ce) {
				at := d.PosAt(ce.Off)
				c.note(&syntax.Error{From: at, To: d.PosAt(ce.Off + 1), Msg: ce.Msg, Clang: true})
			} else {
				c.errorf(d.From, d.To, "%v", err)
			}
		}
	}
	c.opts.Types = scriptTypes{defined: defined, next: c.opts.Types}
}

// scriptTypes are the script's own types, then the kernel's.
type scriptTypes struct {
	defined ctypes.Types
	next    Types
}

func (s scriptTypes) Type(kind, name string) (btf.Type, error) {
	if t, ok := s.defined[kind+" "+name]; ok {
		return t, nil
	}
	if s.next == nil {
		return nil, fmt.Errorf("%s %s: %w", kind, name, btf.ErrNotFound)
	}
	return s.next.Type(kind, name)
}
