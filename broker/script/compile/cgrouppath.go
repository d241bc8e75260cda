package compile

import (
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// cgroup_path(id[, filter]) is resolved by the host when it is printed,
// as bpftrace resolves it: the program stores the id, the broker finds
// the cgroup directories with that inode in the hierarchies mounted on
// the host (broker/cgrouppath.go). It names host paths, so a token holder
// needs read:kernel for it, as for cat().

// cgroupPathCall types cgroup_path(): the filter, a glob over the
// hierarchies' names, travels in the type as a strftime format does.
func (c *compiler) cgroupPathCall(in *instance, e *syntax.Call) ty {
	t := ty{k: kBlob, blob: program.CgroupPath, size: 8}
	switch len(e.Args) {
	case 1, 2:
	case 0:
		c.errorf(e.From, e.To, "cgroup_path() requires at least one argument (0 provided)")
		return t
	default:
		c.errorf(e.From, e.To, "cgroup_path() takes up to 2 arguments (%d provided)", len(e.Args))
		return t
	}
	if at := c.expr(in, e.Args[0]); !computable(at) {
		c.errorf(e.Args[0].Pos(), e.Args[0].End(), "cgroup_path() only supports integer arguments (%s provided)", typeClass(at))
	}
	if len(e.Args) == 2 {
		lit, ok := unparen(e.Args[1]).(*syntax.StrLit)
		if !ok {
			c.errorf(e.Args[1].Pos(), e.Args[1].End(), "cgroup_path() expects a string literal as second argument (%s provided)", typeClass(c.expr(in, e.Args[1])))
			return t
		}
		in.types[e.Args[1]] = tStr(len(lit.Value) + 1)
		t.format = lit.Value
	}
	return t
}

// cgroupPathInto stores the id; the host prints the paths.
func (g *gen) cgroupPathInto(e *syntax.Call, off int16) {
	g.rd.sites = append(g.rd.sites, pendingRead{site: e, class: program.ReadsKernel,
		what: "cgroup_path() names the host's cgroup directories"})
	g.intExpr(e.Args[0])
	g.emit(asm.StoreMem(asm.R10, off, rAcc, asm.DWord))
}
