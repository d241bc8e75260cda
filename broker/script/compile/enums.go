package compile

import (
	"github.com/cilium/ebpf/btf"

	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// An identifier that names nothing else is an enum constant, as in
// bpftrace 0.17: the script's own enums first, then the kernel's (through
// its BTF). Its value is fixed when the script is compiled; its type is
// int64 (sizeof 8), as bpftrace types it.

// EnumValues is implemented by a Types that knows the kernel's enum
// constants.
type EnumValues interface {
	EnumValue(name string) (int64, bool)
}

// EnumValue looks name up in the script's enums, then in the next types'.
func (s scriptTypes) EnumValue(name string) (int64, bool) {
	for _, t := range s.defined {
		if e, ok := t.(*btf.Enum); ok {
			for _, v := range e.Values {
				if v.Name == name {
					return int64(v.Value), true
				}
			}
		}
	}
	if ev, ok := s.next.(EnumValues); ok {
		return ev.EnumValue(name)
	}
	return 0, false
}

// enumIdent types an enum constant; ok is false when name is none.
func (c *compiler) enumIdent(e *syntax.Ident) (ty, bool) {
	ev, ok := c.opts.Types.(EnumValues)
	if !ok {
		return ty{}, false
	}
	v, ok := ev.EnumValue(e.Name)
	if !ok {
		return ty{}, false
	}
	if c.enumConsts == nil {
		c.enumConsts = map[*syntax.Ident]int64{}
	}
	c.enumConsts[e] = v
	return tInt, true
}

// enumValue loads an enum constant; ok is false for other identifiers.
func (g *gen) enumValue(e *syntax.Ident) bool {
	v, ok := g.c.enumConsts[e]
	if ok {
		g.loadConst(rAcc, v)
	}
	return ok
}
