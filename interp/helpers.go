package interp

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	_ "unsafe" // go:linkname

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// HelperFunc implements one helper. It gets r1-r5 and returns r0; an
// error stops the program (use it for what the kernel's verifier would
// have refused, like a bad pointer; runtime failures the kernel reports
// to the program, like a full map, are negative errno results).
type HelperFunc func(c Call, r1, r2, r3, r4, r5 uint64) (uint64, error)

// Helper is one entry of a helper table. ID is the kernel's helper
// number, so the same bytecode calls the same function here and in the
// kernel; Args is how many of r1-r5 it reads, which the verifier checks
// are written before the call.
type Helper struct {
	ID   asm.BuiltinFunc
	Name string
	Args int
	Fn   HelperFunc
	// Void marks a helper that returns nothing (the kernel's RET_VOID):
	// r0 is unreadable after the call, as in the kernel's verifier.
	Void bool
}

// maxHelperID bounds the dense helper table.
const maxHelperID = 1 << 12

func (p *Program) setHelpers(hs []Helper) error {
	top := 0
	for _, h := range hs {
		if h.ID <= 0 || h.ID >= maxHelperID || h.Fn == nil || h.Args < 0 || h.Args > 5 {
			return fmt.Errorf("interp: invalid helper table entry %d (%s)", h.ID, h.Name)
		}
		top = max(top, int(h.ID))
	}
	p.helpers = make([]HelperFunc, top+1)
	p.helperArgs = make([]int, top+1)
	p.helperVoid = make([]bool, top+1)
	for _, h := range hs {
		if p.helpers[h.ID] != nil {
			return fmt.Errorf("interp: helper %d (%s) is in the table twice", h.ID, h.Name)
		}
		p.helpers[h.ID], p.helperArgs[h.ID], p.helperVoid[h.ID] = h.Fn, h.Args, h.Void
	}
	return nil
}

// Call is what a helper may reach of the run that called it.
type Call struct{ m *machine }

// Env is the caller's execution context for this run.
func (c Call) Env() *Env { return c.m.env }

// Mem returns n bytes at addr if the program may read them (or write
// them), else an error naming the address.
func (c Call) Mem(addr, n uint64, write bool) ([]byte, error) {
	if n == 0 {
		return nil, nil
	}
	if b := c.m.mem(addr, n, write); b != nil {
		return b, nil
	}
	return nil, c.m.fault(addr, n, write)
}

// Map returns the map a map handle (the result of a map load) names.
func (c Call) Map(handle uint64) (*Map, int, error) {
	idx := (handle >> mapIdxShift) & (maxMaps - 1)
	if handle>>tagShift != tagMapHandle || handle&mapOffMask != 0 || idx >= uint64(len(c.m.prog.maps)) {
		return nil, 0, fmt.Errorf("%#x is not a map (%s)", handle, c.m.describe(handle))
	}
	return c.m.prog.maps[idx], int(idx), nil
}

// cpu is the CPU whose copy a per-CPU map access uses.
func (c Call) cpu(m *Map) (uint32, error) {
	if m.ncpu == 1 {
		return 0, nil
	}
	if cpu := c.m.env.CPU; cpu < m.ncpu {
		return cpu, nil
	}
	return 0, fmt.Errorf("cpu %d has no copy in per-CPU map %q (%d CPUs)", c.m.env.CPU, m.name, m.ncpu)
}

// DefaultHelpers is the table programs get unless Options gives one:
// maps, time, the current task (from Env), safe memory reads, ring
// buffers and trace_printk.
func DefaultHelpers() []Helper {
	return []Helper{
		{ID: asm.FnMapLookupElem, Name: "map_lookup_elem", Args: 2, Fn: helperLookup},
		{ID: asm.FnMapUpdateElem, Name: "map_update_elem", Args: 4, Fn: helperUpdate},
		{ID: asm.FnMapDeleteElem, Name: "map_delete_elem", Args: 2, Fn: helperDelete},
		{ID: asm.FnMapLookupPercpuElem, Name: "map_lookup_percpu_elem", Args: 3, Fn: helperLookupPercpu},
		{ID: asm.FnProbeRead, Name: "probe_read", Args: 3, Fn: helperProbeRead},
		{ID: asm.FnProbeReadKernel, Name: "probe_read_kernel", Args: 3, Fn: helperProbeRead},
		{ID: asm.FnProbeReadUser, Name: "probe_read_user", Args: 3, Fn: helperProbeRead},
		{ID: asm.FnProbeReadStr, Name: "probe_read_str", Args: 3, Fn: helperProbeReadStr},
		{ID: asm.FnProbeReadKernelStr, Name: "probe_read_kernel_str", Args: 3, Fn: helperProbeReadStr},
		{ID: asm.FnProbeReadUserStr, Name: "probe_read_user_str", Args: 3, Fn: helperProbeReadStr},
		{ID: asm.FnKtimeGetNs, Name: "ktime_get_ns", Args: 0, Fn: helperKtime},
		{ID: asm.FnKtimeGetBootNs, Name: "ktime_get_boot_ns", Args: 0, Fn: helperClock(unix.CLOCK_BOOTTIME)},
		{ID: asm.FnKtimeGetCoarseNs, Name: "ktime_get_coarse_ns", Args: 0, Fn: helperClock(unix.CLOCK_MONOTONIC_COARSE)},
		{ID: asm.FnTracePrintk, Name: "trace_printk", Args: 2, Fn: helperTracePrintk},
		{ID: asm.FnGetPrandomU32, Name: "get_prandom_u32", Args: 0, Fn: helperPrandom},
		{ID: asm.FnGetSmpProcessorId, Name: "get_smp_processor_id", Args: 0, Fn: helperCPU},
		{ID: asm.FnGetNumaNodeId, Name: "get_numa_node_id", Args: 0, Fn: helperZero},
		{ID: asm.FnGetCurrentPidTgid, Name: "get_current_pid_tgid", Args: 0, Fn: helperPidTgid},
		{ID: asm.FnGetAttachCookie, Name: "get_attach_cookie", Args: 1, Fn: helperCookie},
		{ID: asm.FnGetCurrentUidGid, Name: "get_current_uid_gid", Args: 0, Fn: helperUidGid},
		{ID: asm.FnGetCurrentComm, Name: "get_current_comm", Args: 2, Fn: helperComm},
		{ID: asm.FnGetCurrentCgroupId, Name: "get_current_cgroup_id", Args: 0, Fn: helperCgroup},
		{ID: asm.FnGetCurrentTask, Name: "get_current_task", Args: 0, Fn: helperTask},
		{ID: asm.FnRingbufOutput, Name: "ringbuf_output", Args: 4, Fn: helperRingbufOutput},
		{ID: asm.FnRingbufReserve, Name: "ringbuf_reserve", Args: 3, Fn: helperRingbufReserve},
		{ID: asm.FnRingbufSubmit, Name: "ringbuf_submit", Args: 2, Fn: helperRingbufSubmit, Void: true},
		{ID: asm.FnRingbufDiscard, Name: "ringbuf_discard", Args: 2, Fn: helperRingbufDiscard, Void: true},
		{ID: asm.FnRingbufQuery, Name: "ringbuf_query", Args: 2, Fn: helperRingbufQuery},
	}
}

func (c Call) mapKey(r1, r2 uint64) (*Map, int, []byte, error) {
	m, idx, err := c.Map(r1)
	if err != nil {
		return nil, 0, nil, err
	}
	if m.typ == ebpf.RingBuf {
		return nil, 0, nil, fmt.Errorf("map %q is a ring buffer: it has no keys", m.name)
	}
	key, err := c.Mem(r2, uint64(m.keySize), false)
	return m, idx, key, err
}

func helperLookup(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	m, idx, key, err := c.mapKey(r1, r2)
	if err != nil {
		return 0, err
	}
	cpu, err := c.cpu(m)
	if err != nil {
		return 0, err
	}
	e := m.lookupEntry(key)
	if e == noEntry {
		return 0, nil
	}
	return mapValueAddr(idx, uint64(e)*uint64(m.ncpu)+uint64(cpu), m.shift), nil
}

func helperLookupPercpu(c Call, r1, r2, r3, _, _ uint64) (uint64, error) {
	m, idx, key, err := c.mapKey(r1, r2)
	if err != nil {
		return 0, err
	}
	if r3 >= uint64(m.ncpu) {
		return 0, nil
	}
	e := m.lookupEntry(key)
	if e == noEntry {
		return 0, nil
	}
	return mapValueAddr(idx, uint64(e)*uint64(m.ncpu)+r3, m.shift), nil
}

func helperUpdate(c Call, r1, r2, r3, r4, _ uint64) (uint64, error) {
	m, _, key, err := c.mapKey(r1, r2)
	if err != nil {
		return 0, err
	}
	val, err := c.Mem(r3, uint64(m.valueSize), false)
	if err != nil {
		return 0, err
	}
	cpu, err := c.cpu(m)
	if err != nil {
		return 0, err
	}
	return errno(m.update(key, val, r4, cpu)), nil
}

func helperDelete(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	m, _, key, err := c.mapKey(r1, r2)
	if err != nil {
		return 0, err
	}
	return errno(m.delete(key)), nil
}

const efault = 14

// helperProbeRead copies from any region the program could read itself
// (there is no other memory here); like the kernel, a bad source zeroes
// the destination and returns -EFAULT instead of stopping the program.
func helperProbeRead(c Call, r1, r2, r3, _, _ uint64) (uint64, error) {
	dst, err := c.Mem(r1, r2, true)
	if err != nil {
		return 0, err
	}
	src := c.m.mem(r3, r2, false)
	if src == nil && r2 > 0 {
		clear(dst)
		return negErrno(efault), nil
	}
	copy(dst, src)
	return 0, nil
}

// readable is the longest readable run at addr, up to n bytes.
func (c Call) readable(addr, n uint64) []byte {
	lo, hi := uint64(0), n // mem(addr, k) succeeds for every k up to some limit
	for lo < hi {
		mid := hi - (hi-lo)/2
		if c.m.mem(addr, mid, false) != nil {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		return nil
	}
	return c.m.mem(addr, lo, false)
}

func helperProbeReadStr(c Call, r1, r2, r3, _, _ uint64) (uint64, error) {
	if r2 == 0 {
		return 0, nil
	}
	dst, err := c.Mem(r1, r2, true)
	if err != nil {
		return 0, err
	}
	src := c.readable(r3, r2)
	n := bytes.IndexByte(src, 0)
	switch {
	case n >= 0: // the whole string and its NUL
		copy(dst, src[:n+1])
		return uint64(n + 1), nil
	case uint64(len(src)) == r2: // truncated to fit, still terminated
		copy(dst, src[:r2-1])
		dst[r2-1] = 0
		return r2, nil
	}
	clear(dst) // ran off the region before a NUL
	return negErrno(efault), nil
}

func helperKtime(c Call, _, _, _, _, _ uint64) (uint64, error) {
	if f := c.m.env.Ktime; f != nil {
		return f(), nil
	}
	return uint64(nanotime()), nil
}

// nanotime is the runtime's CLOCK_MONOTONIC read through the vDSO: the
// same clock as the kernel's ktime_get_ns at a fraction of the cost of
// the clock_gettime system call.
//
//go:linkname nanotime runtime.nanotime
func nanotime() int64

func helperClock(id int32) HelperFunc {
	return func(Call, uint64, uint64, uint64, uint64, uint64) (uint64, error) {
		return clock(id), nil
	}
}

func clock(id int32) uint64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(id, &ts); err != nil {
		return 0
	}
	return uint64(ts.Nano())
}

func helperPrandom(Call, uint64, uint64, uint64, uint64, uint64) (uint64, error) {
	return uint64(rand.Uint32()), nil
}

func helperCPU(c Call, _, _, _, _, _ uint64) (uint64, error) {
	return uint64(c.m.env.CPU), nil
}

func helperZero(Call, uint64, uint64, uint64, uint64, uint64) (uint64, error) { return 0, nil }

// helperCookie is bpf_get_attach_cookie: the event's attachment's
// cookie, from Env (a uprobe.multi function's index).
func helperCookie(c Call, _, _, _, _, _ uint64) (uint64, error) { return c.m.env.Cookie, nil }

func helperPidTgid(c Call, _, _, _, _, _ uint64) (uint64, error) {
	e := c.m.env
	return uint64(e.TGID)<<32 | uint64(e.PID), nil
}

func helperUidGid(c Call, _, _, _, _, _ uint64) (uint64, error) {
	e := c.m.env
	return uint64(e.GID)<<32 | uint64(e.UID), nil
}

func helperCgroup(c Call, _, _, _, _, _ uint64) (uint64, error) { return c.m.env.Cgroup, nil }

func helperTask(c Call, _, _, _, _, _ uint64) (uint64, error) { return c.m.env.Task, nil }

func helperComm(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	if r2 == 0 {
		return negErrno(22), nil
	}
	dst, err := c.Mem(r1, r2, true)
	if err != nil {
		return 0, err
	}
	comm := c.m.env.Comm[:]
	if i := bytes.IndexByte(comm, 0); i >= 0 {
		comm = comm[:i]
	}
	clear(dst)
	copy(dst[:len(dst)-1], comm)
	return 0, nil
}

func (c Call) ring(handle uint64) (*Map, error) {
	m, _, err := c.Map(handle)
	if err != nil {
		return nil, err
	}
	if m.typ != ebpf.RingBuf {
		return nil, fmt.Errorf("map %q is not a ring buffer", m.name)
	}
	return m, nil
}

func helperRingbufOutput(c Call, r1, r2, r3, r4, _ uint64) (uint64, error) {
	m, err := c.ring(r1)
	if err != nil {
		return 0, err
	}
	data, err := c.Mem(r2, r3, false)
	if err != nil {
		return 0, err
	}
	if r4&^(ringNoWakeup|ringForceWakeup) != 0 {
		return errno(errInval), nil
	}
	if !m.ringOutput(data, r4) {
		return errno(errNoSpc), nil
	}
	return 0, nil
}

func helperRingbufReserve(c Call, r1, r2, r3, _, _ uint64) (uint64, error) {
	m, err := c.ring(r1)
	if err != nil {
		return 0, err
	}
	mc := c.m
	if r3 != 0 || r2 > uint64(m.maxEntries) || len(mc.resv) == cap(mc.resv) {
		return 0, nil
	}
	seq, buf, ok := m.ringReserve(int(r2))
	if !ok {
		return 0, nil
	}
	mc.resv = append(mc.resv, reservation{ring: m, seq: seq, buf: buf, live: true})
	return resvBase | uint64(len(mc.resv)-1)<<32, nil
}

func (c Call) reservation(addr uint64) (*reservation, error) {
	n := (addr >> 32) & 0xffffff
	if addr>>tagShift != tagResv || uint32(addr) != 0 || n >= uint64(len(c.m.resv)) || !c.m.resv[n].live {
		return nil, fmt.Errorf("%#x is not a live ring-buffer reservation (%s)", addr, c.m.describe(addr))
	}
	return &c.m.resv[n], nil
}

func helperRingbufSubmit(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	r, err := c.reservation(r1)
	if err != nil {
		return 0, err
	}
	r.live = false
	r.ring.ringFinish(r.seq, true, r2)
	return 0, nil
}

func helperRingbufDiscard(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	r, err := c.reservation(r1)
	if err != nil {
		return 0, err
	}
	r.live = false
	r.ring.ringFinish(r.seq, false, r2)
	return 0, nil
}

func helperRingbufQuery(c Call, r1, r2, _, _, _ uint64) (uint64, error) {
	m, err := c.ring(r1)
	if err != nil {
		return 0, err
	}
	return m.ringQuery(r2), nil
}

// helperTracePrintk formats like the kernel's bpf_trace_printk: a
// NUL-terminated format of at most fmt_size bytes and up to three
// arguments, %s reading a string the program may read.
func helperTracePrintk(c Call, r1, r2, r3, r4, r5 uint64) (uint64, error) {
	f, err := c.Mem(r1, r2, false)
	if err != nil {
		return 0, err
	}
	if len(f) == 0 || f[len(f)-1] != 0 {
		return negErrno(22), nil
	}
	s, err := formatPrintk(c, f[:bytes.IndexByte(f, 0)], [3]uint64{r3, r4, r5})
	if err != nil {
		return negErrno(22), nil
	}
	if w := c.m.env.Printk; w != nil {
		_, _ = w.Write([]byte(s))
	}
	return uint64(len(s)), nil
}
