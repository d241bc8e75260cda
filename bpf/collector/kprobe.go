package collector

import (
	"errors"
	"fmt"
	"io"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/broker/program"
)

// The kprobe collector (KprobeName) is a kind of its own with the
// uprobe collector's code: both are BPF_PROG_TYPE_KPROBE programs whose
// context is x86-64's pt_regs, copied whole, with the strings behind its
// registers read as each probe's config says (a kprobe's with
// bpf_probe_read_kernel_str). Its scratch value is the uprobe
// collector's: kprobe, kprobe.multi and uprobe programs all run under
// bpf_prog_active, so that one never interrupts another on a CPU; and
// the scratch map keeps the size it had before this collector, so that
// the objects (and digests) of the other collectors stay what
// administrators signed.

// numScratch is how many scratch values the scratch map has.
const numScratch = int(kindPerf) + 1

// scratchKey is the scratch value collector k builds its records in.
func scratchKey(k kind) kind {
	if k == kindKprobe {
		return kindUprobe
	}
	return k
}

// multiProgram is the collection's name for the kprobe collector loaded
// for kprobe.multi links.
const multiProgram = KprobeName + "_multi"

func needMulti(probes []Probe) bool {
	for _, p := range probes {
		if (p.Kind == program.Kprobe || p.Kind == program.Kretprobe) && len(p.Funcs) > 0 {
			return true
		}
	}
	return false
}

// checkKprobe: a kprobe is on one function (at an offset, for a kprobe)
// or on many, named.
func checkKprobe(p Probe) error {
	switch {
	case len(p.Funcs) == 0 && p.Event == "":
		return errors.New("a kprobe needs a function")
	case len(p.Funcs) > 0 && (p.Event != "" || p.Offset != 0):
		return errors.New("a kprobe on many functions has no function or offset of its own")
	case p.Kind == program.Kretprobe && p.Offset != 0:
		return errors.New("a kretprobe has no offset")
	}
	for _, f := range p.Funcs {
		if f == "" {
			return errors.New("an empty function name")
		}
	}
	return nil
}

func kprobeString(p Probe) string {
	switch {
	case len(p.Funcs) > 0:
		return fmt.Sprintf("%s:%s (and %d more)", p.Kind, p.Funcs[0], len(p.Funcs)-1)
	case p.Offset != 0:
		return fmt.Sprintf("%s:%s+%d", p.Kind, p.Event, p.Offset)
	}
	return fmt.Sprintf("%s:%s", p.Kind, p.Event)
}

// attachKprobe attaches the kprobe collector to p's function (a perf
// link with the cookie), or to its functions with one kprobe.multi link
// whose cookie is the same for each.
func (s *Session) attachKprobe(p Probe, cookie uint64) (io.Closer, error) {
	ret := p.Kind == program.Kretprobe
	if err := s.modules.Check(p.Category, kprobe.Names(p.Event, p.Funcs)); err != nil {
		return nil, err
	}
	if err := kprobe.CheckOffset(p.Event, p.Offset); err != nil {
		return nil, err
	}
	if len(p.Funcs) == 0 {
		// The PMU's perf event, then a perf link carrying the cookie:
		// link.Kprobe refuses MODULE:FUNC, which a module's function
		// needs (kprobe.Symbol).
		fd, err := kprobe.Open(kprobe.Symbol(p.Category, p.Event), p.Offset, ret)
		if err != nil {
			return nil, err
		}
		defer unix.Close(fd)
		return linkPerfEvent(fd, s.progs[kindKprobe], cookie)
	}
	if s.multi == nil {
		return nil, errors.New("the kprobe collector was not loaded for kprobe.multi links")
	}
	cookies := make([]uint64, len(p.Funcs))
	for i := range cookies {
		cookies[i] = cookie
	}
	attach := link.KprobeMulti
	if ret {
		attach = link.KretprobeMulti
	}
	l, err := attach(s.multi, link.KprobeMultiOptions{Symbols: p.Funcs, Cookies: cookies})
	if errors.Is(err, link.ErrNotSupported) {
		return nil, fmt.Errorf("this kernel has no kprobe.multi links (CONFIG_FPROBE): %w", err)
	}
	return l, err
}
