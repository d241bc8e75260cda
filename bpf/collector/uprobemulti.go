package collector

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/broker/program"
)

// Uprobes of one uprobe.multi link (Probe.Multi) are probes of their
// own, each with its index as its cookie, so that a record says which
// function fired: the uprobe collector's code, unchanged (what
// administrators signed), loaded once more with the expected attach
// type uprobe.multi links take, and attached to all of them at once.
//
// That program gets a scratch map of its own. The kernel runs a
// uprobe.multi link's program under RCU with migration disabled, not
// under bpf_prog_active as it runs perf uprobes and kprobes, so a
// kprobe in an interrupt may run the kprobe collector in the middle of
// it on the same CPU: the scratch value the uprobe and kprobe
// collectors share would be built by both at once.

func needUprobeMulti(probes []Probe) bool {
	for _, p := range probes {
		if p.Multi != 0 {
			return true
		}
	}
	return false
}

// checkMulti: the probes of one uprobe.multi link are uprobes, or
// uretprobes, of one file, for one process.
func checkMulti(probes []Probe) error {
	first := map[int]int{}
	for i, p := range probes {
		if p.Multi == 0 {
			continue
		}
		if p.Kind != program.Uprobe && p.Kind != program.Uretprobe {
			return fmt.Errorf("collector: probe %d (%s): only uprobes attach with uprobe.multi links", i, p)
		}
		if p.RefCtrOffset != 0 {
			return fmt.Errorf("collector: probe %d (%s): a USDT semaphore on a uprobe.multi link", i, p)
		}
		j, ok := first[p.Multi]
		if !ok {
			first[p.Multi] = i
			continue
		}
		q := probes[j]
		if p.uret() != q.uret() || p.Path != q.Path || p.AttachPath != q.AttachPath || p.PID != q.PID || p.Block != q.Block {
			return fmt.Errorf("collector: probes %d (%s) and %d (%s) share uprobe.multi link %d but not their kind, file, process and block", j, q, i, p, p.Multi)
		}
	}
	return nil
}

// loadUprobeMulti loads the uprobe collector's code once more for
// uprobe.multi links, with a scratch map of its own and the session's
// other maps.
func (s *Session) loadUprobeMulti(cs *ebpf.CollectionSpec, sp Spec) error {
	scratch, err := ebpf.NewMap(cs.Maps[scratchMap])
	if err != nil {
		return fmt.Errorf("collector: the uprobe.multi collector's scratch map: %w", err)
	}
	prog, err := s.loadCopy(sp, map[string]*ebpf.Map{scratchMap: scratch}, ebpf.AttachTraceUprobeMulti, "")
	if err != nil {
		scratch.Close()
		return err
	}
	s.umulti, s.umScratch = prog, scratch
	return nil
}

// attachUprobeMulti attaches the probes of p's uprobe.multi link, p the
// first of them: one link on each one's offset, with its index as its
// cookie.
func (s *Session) attachUprobeMulti(p Probe) error {
	if s.umulti == nil {
		return errors.New("the uprobe collector was not loaded for uprobe.multi links")
	}
	m := uprobe.Multi{Path: p.Path, Name: p.Path, Ret: p.uret(), PID: p.PID}
	if p.AttachPath != "" {
		m.Path = p.AttachPath
	}
	for i, q := range s.probes {
		if q.Multi == p.Multi {
			name := q.Func
			if name == "" {
				name = fmt.Sprintf("%#x", q.Offset)
			}
			m.Funcs, m.Offsets, m.Cookies = append(m.Funcs, name), append(m.Offsets, q.Offset), append(m.Cookies, uint64(i))
		}
	}
	l, err := m.Attach(s.umulti)
	if err != nil {
		return err
	}
	s.links = append(s.links, l)
	return nil
}
