package compile

import (
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/broker/script/syntax"
)

// bpftrace's -k and -kk report failed helper calls at run time, each
// with the script's text that made it: -k the failures a script cannot
// see otherwise (a map update or delete that failed), -kk also those
// that read as 0 (a read of memory that faulted, a lookup of a key
// that is absent). A failure sends EventHelperError through the ring
// buffer, with a site id the host maps to the helper and the text; it
// runs the same in the kernel and in the interpreter.

// at makes e the site of the helper calls generated until the returned
// function restores the one before.
func (g *gen) at(e syntax.Node) func() {
	prev := g.site
	g.site = e
	return func() { g.site = prev }
}

// checkedHelpers are the helpers -k (level 1) or -kk (level 2) checks
// when the code calls them, by bpftrace's names; a failure is a
// negative return. Lookups are checked where a map is read
// (lookupError), not where the code looks up its own slots.
var checkedHelpers = map[asm.BuiltinFunc]struct {
	name  string
	level int
}{
	asm.FnMapUpdateElem:      {"map_update_elem", 1},
	asm.FnMapDeleteElem:      {"map_delete_elem", 1},
	asm.FnSendSignal:         {"send_signal", 1},
	asm.FnGetStackid:         {"get_stackid", 1},
	asm.FnProbeRead:          {"probe_read", 2},
	asm.FnProbeReadStr:       {"probe_read_str", 2},
	asm.FnProbeReadKernel:    {"probe_read_kernel", 2},
	asm.FnProbeReadKernelStr: {"probe_read_kernel_str", 2},
	asm.FnProbeReadUser:      {"probe_read_user", 2},
	asm.FnProbeReadUserStr:   {"probe_read_user_str", 2},
}

// probeReadNames are what bpftrace calls a read in a probe whose
// memory has no address space (BEGIN, END, interval, profile,
// software): bpf_probe_read, whichever helper reads it here.
var probeReadNames = map[asm.BuiltinFunc]string{
	asm.FnProbeReadKernel: "probe_read", asm.FnProbeReadUser: "probe_read",
	asm.FnProbeReadKernelStr: "probe_read_str", asm.FnProbeReadUserStr: "probe_read_str",
}

// checkHelper follows every helper call: a checked one that fails is
// reported.
func (g *gen) checkHelper(fn asm.BuiltinFunc) {
	h, ok := checkedHelpers[fn]
	if !ok || g.site == nil || g.c.opts.HelperErrors < h.level {
		return
	}
	name := h.name
	switch g.in.kind {
	case program.Begin, program.End, program.Interval, program.Profile, program.Software:
		if n, ok := probeReadNames[fn]; ok {
			name = n
		}
	}
	g.helperError(name, false)
}

// lookupError follows a map lookup whose miss reads as 0: -kk reports
// the miss, with 0 as bpftrace does.
func (g *gen) lookupError() {
	if g.site != nil && g.c.opts.HelperErrors >= 2 {
		g.helperError("map_lookup_elem", true)
	}
}

// helperError sends EventHelperError when r0 says the helper just
// called failed (negative in its low 32 bits, or with zero, 0), and
// leaves r0 as it was.
func (g *gen) helperError(helper string, zero bool) {
	from, to := g.site.Pos(), g.site.End()
	id := len(g.c.helperSites)
	g.c.helperSites = append(g.c.helperSites, program.HelperSite{Helper: helper,
		Offset: from.Offset, Line: from.Line, Col: from.Col, EndOffset: to.Offset, EndLine: to.Line, EndCol: to.Col})
	ok := g.newLabel()
	if zero {
		g.emit(asm.JNE.Imm(asm.R0, 0, ok))
	} else {
		g.emit(asm.JSGE.Imm32(asm.R0, 0, ok))
	}
	rec := g.alloc(24)
	g.emit(asm.StoreMem(asm.R10, rec+16, asm.R0, asm.DWord))
	g.loadConst(rTmp, int64(program.EventHelperError))
	g.emit(asm.StoreMem(asm.R10, rec, rTmp, asm.DWord))
	g.loadConst(rTmp, int64(id))
	g.emit(asm.StoreMem(asm.R10, rec+8, rTmp, asm.DWord))
	g.output(rec, 24)
	g.emit(asm.LoadMem(asm.R0, asm.R10, rec+16, asm.DWord))
	g.label(ok)
}
