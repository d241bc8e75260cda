package collector

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestRawTracepointCookiesProbe: the probe's answer is the kernel's
// verdict on the collector that takes the cookie, loaded with the
// session's maps.
func TestRawTracepointCookiesProbe(t *testing.T) {
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
	kerneltest.Lock(t)
	cs := &ebpf.CollectionSpec{Maps: map[string]*ebpf.MapSpec{}, Programs: map[string]*ebpf.ProgramSpec{}}
	for _, m := range mapLayouts {
		ms := &ebpf.MapSpec{Name: m.kernelName, Type: m.typ, KeySize: m.key, ValueSize: m.value, MaxEntries: m.entries}
		if ms.MaxEntries == 0 {
			ms.MaxEntries = uint32(os.Getpagesize()) // the ring buffer; one config
		}
		cs.Maps[m.name] = ms
	}
	sp := build(kindRawTracepoint)
	cs.Programs[sp.Name] = &ebpf.ProgramSpec{Name: sp.Name, Type: sp.Type, Instructions: sp.Instructions, License: "GPL"}
	coll, err := ebpf.NewCollection(cs)
	if err == nil {
		coll.Close()
	}
	if have := rawTPCookies(); have != (err == nil) {
		t.Errorf("the probe says raw tracepoint cookies: %v; loading %s: %v", have, sp.Name, err)
	}
}
