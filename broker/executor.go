package broker

import (
	"context"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/broker/program"
)

// executor is where a trace's programs run: the kernel, JIT-compiled
// (*bpf.Session), or the interpreter over the events static collectors
// copy (*interpSession). The run loop, and so the output, is the same
// for both.
type executor interface {
	// Configure writes what is known only at run time (start time, -c's
	// pid) where the programs read it.
	Configure(startNs uint64, cpid int) error
	// Run runs the BEGIN or END probes once.
	Run(kind program.ProbeKind) error
	// Attach attaches the probes; ctx ending stops it, detaching what
	// it attached.
	Attach(ctx context.Context) error
	Attached() int
	// Read returns the next output event (printf, exit, print, ...),
	// waiting until deadline; bpf.ErrTimeout when none came.
	Read(deadline time.Time, rec *ringbuf.Record) error
	// Pending is how many bytes of events wait to be read.
	Pending() int
	// Stop makes every probe return at once: what is printed next is
	// final.
	Stop() error
	Snapshot(id int) (*program.MapSnapshot, error)
	Clear(id int) error
	Zero(id int) error
	Stack(name string, id int64) ([]uint64, error)
	MapErrors() []uint64
	// Lost is how many events were dropped for lack of room.
	Lost() uint64
	Detach()
	DetachInBackground() error
	Close()
}
