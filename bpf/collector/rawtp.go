package collector

import (
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// Raw tracepoints have attach cookies only since Linux 6.10: before, a
// raw tracepoint program cannot tell which of its attachments fired, so
// one program cannot serve them all. There the raw tracepoints are
// served by tb_coll_rawtpix, the raw tracepoint collector with one
// difference: it reads the probe's index from a map of its own instead
// of the cookie. It is loaded once per raw tracepoint, each instance with
// its own index map (frozen: user space cannot change it afterwards) and
// its own scratch value. Its own scratch, since two instances are two
// programs, and the kernel keeps a raw tracepoint program from
// recursing only into itself: one instance may interrupt another on
// the same CPU halfway through a record. The records are those of the
// cookie collector, byte for byte; the object is signed as every
// collector is (make sign, a release, init --trust), and the broker
// loads it only where the kernel lacks raw tracepoint cookies.
//
// The instance's maps come after the shared ones in its map table.
const (
	// probeMap is an array of one u64: the probe's index.
	probeMap = "collector_probe"
	// ownScratchMap is a per-CPU array of one scratchSize-byte value:
	// scratchMap's value for this instance alone.
	ownScratchMap = "collector_own_scratch"
)

var instanceLayouts = []mapLayout{
	{probeMap, "tb_coll_probe", ebpf.Array, 2, "BPF_MAP_TYPE_ARRAY", 4, 8, 1},
	{ownScratchMap, "tb_coll_oscratch", ebpf.PerCPUArray, 6, "BPF_MAP_TYPE_PERCPU_ARRAY", 4, scratchSize, 1},
}

// MaxRawTracepointInstances bounds the raw tracepoints of a session
// where each is a program of its own (no cookies): each instance costs a
// verifier pass and its own per-CPU scratch value (MaxRecord bytes per
// CPU), which a script of the compiler's MaxProbes raw tracepoints would
// multiply a thousandfold. bpftrace's scripts use a few.
const MaxRawTracepointInstances = 64

// probeIndex emits r0 = the instance's probe index, for the code that
// takes the cookie otherwise.
func probeIndex(g *gen) {
	g.lookup(probeMap, 0)
	g.Emit(asm.LoadMem(asm.R0, asm.R0, 0, asm.DWord))
}

// NoRawTracepointCookiesEnv, set to 1, makes RawTracepointCookies answer
// false on any kernel, so that the collector older kernels get runs on
// this one (the tests use it).
const NoRawTracepointCookiesEnv = "TRACEBROKER_NO_RAWTP_COOKIES"

var rawTPCookies = sync.OnceValue(func() bool {
	return features.HaveProgramHelper(ebpf.RawTracepoint, asm.FnGetAttachCookie) == nil
})

// RawTracepointCookies reports whether the running kernel gives raw
// tracepoint programs their attach cookie (bpf_get_attach_cookie, Linux
// 6.10: the helper and the cookie of BPF_RAW_TRACEPOINT_OPEN came
// together). The kernel is asked once; any error is a no, which costs
// one program load per raw tracepoint and nothing else.
func RawTracepointCookies() bool {
	if os.Getenv(NoRawTracepointCookiesEnv) == "1" {
		return false
	}
	return rawTPCookies()
}

// loadInstance loads the indexed raw tracepoint collector for probe
// index i: the session's maps, and maps of its own. The program holds
// its maps; their descriptors are closed here.
func (s *Session) loadInstance(sp Spec, i int, p Probe) (*ebpf.Program, error) {
	own := map[string]*ebpf.Map{}
	defer func() {
		for _, m := range own {
			m.Close()
		}
	}()
	for _, l := range instanceLayouts {
		m, err := ebpf.NewMap(&ebpf.MapSpec{Name: l.kernelName, Type: l.typ, KeySize: l.key, ValueSize: l.value, MaxEntries: l.entries})
		if err != nil {
			return nil, fmt.Errorf("collector: creating %s: %w", l.name, err)
		}
		own[l.name] = m
	}
	if err := own[probeMap].Put(uint32(0), uint64(i)); err != nil {
		return nil, fmt.Errorf("collector: writing the probe index: %w", err)
	}
	if err := own[probeMap].Freeze(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
		return nil, fmt.Errorf("collector: freezing the probe index: %w", err)
	}
	var attach ebpf.AttachType
	var to string
	if at, ok := attachTypes[sp.kind]; ok {
		attach, to = at.typ, p.Event
	}
	return s.loadCopy(sp, own, attach, to)
}
