package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
	"github.com/tracebroker/tracebroker/broker/program"
)

// attachKprobe attaches a kprobe or kretprobe: one perf event on its
// function (Event at Offset), as uprobes are, or for a probe on many
// functions (Funcs) one kprobe.multi link.
func (s *Session) attachKprobe(pr *program.Probe, prog *ebpf.Program) error {
	ret := pr.Kind == program.Kretprobe
	if err := s.modules.Check(pr.Category, kprobe.Names(pr.Event, pr.Funcs)); err != nil {
		return err
	}
	if err := kprobe.CheckOffset(pr.Event, pr.Offset); err != nil {
		return err
	}
	if len(pr.Funcs) == 0 {
		fd, err := kprobe.Open(kprobe.Symbol(pr.Category, pr.Event), pr.Offset, ret)
		if err != nil {
			return err
		}
		return s.setProgram(fd, prog)
	}
	opts := link.KprobeMultiOptions{Symbols: pr.Funcs}
	attach := link.KprobeMulti
	if ret {
		attach = link.KretprobeMulti
	}
	l, err := attach(prog, opts)
	if errors.Is(err, link.ErrNotSupported) {
		return fmt.Errorf("this kernel has no kprobe.multi links (CONFIG_FPROBE): %w", err)
	}
	if err != nil {
		return fmt.Errorf("kprobe.multi link on %d functions: %w", len(pr.Funcs), err)
	}
	s.links = append(s.links, l)
	return nil
}
