package ring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// The bpf_ringbuf_output flags.
const (
	noWakeup    = 1
	forceWakeup = 2
)

// producer writes numbered records to a ring buffer of its own: each run
// of its program takes the next number n from a counter and writes a
// record of 8+8*(n%8) bytes, n then n*3 repeated, except that every n
// with n%7 == 3 is reserved and discarded instead. Records that find
// the buffer full are counted (lost); discarded ones are not.
type producer struct {
	rb, state *ebpf.Map
	prog      *ebpf.Program
}

// The state map's entries: the counter, the lost count, the flags.
const (
	stateNext = iota
	stateLost
	stateFlags
)

func newProducer(tb testing.TB, size uint32, flags uint64) *producer {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root: loads BPF programs and maps")
	}
	kerneltest.Lock(tb)
	rb, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rt_ring", Type: ebpf.RingBuf, MaxEntries: size})
	if err != nil {
		tb.Skipf("no ring buffer maps: %v", err)
	}
	tb.Cleanup(func() { rb.Close() })
	state, err := ebpf.NewMap(&ebpf.MapSpec{Name: "rt_state", Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 3})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { state.Close() })
	if err := state.Put(uint32(stateFlags), flags); err != nil {
		tb.Fatal(err)
	}
	lookup := func(key int32) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.R10, -72, int64(key), asm.Word),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, -72),
			asm.LoadMapPtr(asm.R1, state.FD()),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "exit"),
		}
	}
	var ins asm.Instructions
	ins = append(ins, lookup(stateFlags)...)
	ins = append(ins, asm.LoadMem(asm.R9, asm.R0, 0, asm.DWord))
	ins = append(ins, lookup(stateNext)...)
	ins = append(ins,
		asm.Mov.Imm(asm.R6, 1),
		asm.StoreXAdd(asm.R0, asm.R6, asm.DWord), // runs of one program may overlap on two CPUs
		asm.LoadMem(asm.R6, asm.R0, 0, asm.DWord),
		asm.Sub.Imm(asm.R6, 1), // this run's n
		// n%7 == 3: reserve and discard.
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mod.Imm(asm.R1, 7),
		asm.JNE.Imm(asm.R1, 3, "output"),
		asm.LoadMapPtr(asm.R1, rb.FD()),
		asm.Mov.Imm(asm.R2, 16),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"), // lost, but it would not have been read

		asm.StoreMem(asm.R0, 0, asm.R6, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.R0),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufDiscard.Call(),
		asm.Ja.Label("exit"),
		// The record: n, then n*3 in the other words of 64 bytes, of
		// which 8+8*(n%8) are written.
		asm.StoreMem(asm.R10, -64, asm.R6, asm.DWord).WithSymbol("output"),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mul.Imm(asm.R1, 3),
	)
	for off := int16(-56); off < 0; off += 8 {
		ins = append(ins, asm.StoreMem(asm.R10, off, asm.R1, asm.DWord))
	}
	ins = append(ins,
		asm.Mov.Reg(asm.R3, asm.R6),
		asm.And.Imm(asm.R3, 7),
		asm.LSh.Imm(asm.R3, 3),
		asm.Add.Imm(asm.R3, 8),
		asm.LoadMapPtr(asm.R1, rb.FD()),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -64),
		asm.Mov.Reg(asm.R4, asm.R9),
		asm.FnRingbufOutput.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	)
	ins = append(ins, lookup(stateLost)...)
	ins = append(ins,
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{Name: "rt_producer", Type: ebpf.SocketFilter, License: "GPL", Instructions: ins})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { prog.Close() })
	return &producer{rb: rb, state: state, prog: prog}
}

// write runs the program n times.
func (p *producer) write(tb testing.TB, n int) {
	tb.Helper()
	if err := p.run(n); err != nil {
		tb.Fatal(err)
	}
}

// run is write for another goroutine than the test's.
func (p *producer) run(n int) error {
	_, err := p.prog.Run(&ebpf.RunOptions{Data: make([]byte, 14), Repeat: uint32(n)})
	return err
}

func (p *producer) get(tb testing.TB, key uint32) uint64 {
	tb.Helper()
	var v uint64
	if err := p.state.Lookup(key, &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

// check says what is wrong with rec as the producer's record n.
func check(rec []byte, n uint64) string {
	if want := 8 + 8*int(n%8); len(rec) != want {
		return fmt.Sprintf("length %d, want %d", len(rec), want)
	}
	le := binary.LittleEndian
	if got := le.Uint64(rec); got != n {
		return fmt.Sprintf("number %d, want %d", got, n)
	}
	for i := 8; i < len(rec); i += 8 {
		if le.Uint64(rec[i:]) != 3*n {
			return fmt.Sprintf("word %d is not 3n", i/8)
		}
	}
	return ""
}

// next is the number of the record after n: n+1, past the discarded.
func next(n uint64) uint64 {
	n++
	if n%7 == 3 {
		n++
	}
	return n
}

func open(tb testing.TB, p *producer, opts Options) *Reader {
	tb.Helper()
	r, err := NewReader(p.rb, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

// readAll reads until the buffer is empty (a deadline passed).
func readAll(tb testing.TB, r *Reader, want *uint64) int {
	tb.Helper()
	var rec ringbuf.Record
	got := 0
	for {
		err := r.Read(time.Now(), &rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return got
		}
		if err != nil {
			tb.Fatal(err)
		}
		if msg := check(rec.RawSample, *want); msg != "" {
			tb.Fatalf("record %d: %s", *want, msg)
		}
		*want = next(*want)
		got++
	}
}

// TestReadInOrder: every record, in order and intact, across many
// wraps of a one-page buffer, with discarded records skipped.
func TestReadInOrder(t *testing.T) {
	p := newProducer(t, uint32(os.Getpagesize()), 0)
	r := open(t, p, Options{})
	var want uint64
	written, read := 0, 0
	for round := 0; round < 200; round++ {
		// Up to 40 records of at most 72 bytes with their headers: less
		// than a page, so none is lost.
		n := 1 + round%40
		p.write(t, n)
		written += n
		read += readAll(t, r, &want)
		if pend := r.Pending(); pend != 0 {
			t.Fatalf("round %d: Pending = %d after the buffer was read", round, pend)
		}
	}
	if lost := p.get(t, stateLost); lost != 0 {
		t.Fatalf("%d records lost: the test's rounds must fit the buffer", lost)
	}
	discarded := 0
	for n := 0; n < written; n++ {
		if n%7 == 3 {
			discarded++
		}
	}
	if read != written-discarded {
		t.Errorf("read %d records of %d written, %d of them discarded", read, written, discarded)
	}
}

// TestBatch: the consumer's position, which the producer reads at every
// record, is stored once a batch is read, or a sixteenth of the buffer;
// not at every record.
func TestBatch(t *testing.T) {
	const size = 64 << 10
	p := newProducer(t, size, 0)
	r := open(t, p, Options{})
	p.write(t, 100)
	var rec ringbuf.Record
	if err := r.Read(time.Now(), &rec); err != nil {
		t.Fatal(err)
	}
	cons := func() uint64 { return atomic.LoadUint64(r.consPos) }
	prod := atomic.LoadUint64(r.prodPos)
	if c := cons(); c != 0 {
		t.Errorf("after one record of a batch, the consumer position is %d, want 0", c)
	}
	if pend := r.Pending(); pend != int(prod-r.pos) {
		t.Errorf("Pending = %d, want the batch's %d bytes", pend, prod-r.pos)
	}
	want := uint64(1)
	readAll(t, r, &want)
	if c := cons(); c != prod {
		t.Errorf("after the batch, the consumer position is %d, want the producer's %d", c, prod)
	}

	// A batch longer than a sixteenth of the buffer gives space back as
	// it goes: the producer must not find a full buffer behind a reader
	// that has read it.
	p.write(t, 2000) // about 80 KiB: more than the buffer holds
	start := cons()
	for r.pos-start < size/16+100 {
		if err := r.Read(time.Now(), &rec); err != nil {
			t.Fatal(err)
		}
	}
	if c := cons(); c == start {
		t.Errorf("%d bytes into a batch, the consumer position is still %d", r.pos-start, c)
	}
}

// TestWait: a Read for ever returns a record the kernel wakes it for, a
// record written without a wake-up (after Poll), and a record left
// behind a batch too small to read at once (after Linger).
func TestWait(t *testing.T) {
	for _, tc := range []struct {
		name  string
		flags uint64
		opts  Options
	}{
		{"kernel's wake-up", 0, Options{}},
		{"forced wake-up", forceWakeup, Options{}},
		{"no wake-up, poll", noWakeup, Options{Poll: 20 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProducer(t, 64<<10, tc.flags)
			r := open(t, p, tc.opts)
			var rec ringbuf.Record
			want := uint64(0)
			for i := 0; i < 3; i++ {
				readWaiting(t, r, &rec, func() error { return p.run(1) })
				if msg := check(rec.RawSample, want); msg != "" {
					t.Fatalf("record %d: %s", want, msg)
				}
				want = next(want)
			}
		})
	}
	t.Run("linger", func(t *testing.T) {
		// A batch, then one record that is less than MinBatch and wakes
		// nobody: it is read after Linger, though nothing polls.
		p := newProducer(t, 64<<10, noWakeup)
		r := open(t, p, Options{Linger: 10 * time.Millisecond})
		p.write(t, 5)
		want := uint64(0)
		readAll(t, r, &want)
		p.write(t, 1)
		var rec ringbuf.Record
		readWaiting(t, r, &rec, nil)
		if msg := check(rec.RawSample, want); msg != "" {
			t.Fatal(msg)
		}
	})
}

// readWaiting is a Read that waits for ever, with write (if not nil)
// run once it waits. The test fails if the Read still waits after 10 s.
func readWaiting(t *testing.T, r *Reader, rec *ringbuf.Record, write func() error) {
	t.Helper()
	done := make(chan error, 1)
	wrote := make(chan error, 1)
	go func() { done <- r.Read(time.Time{}, rec) }()
	go func() {
		if write == nil {
			wrote <- nil
			return
		}
		time.Sleep(30 * time.Millisecond) // the Read waits by then
		wrote <- write()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		r.Wake() // so that Close, at the test's end, finds it returned
		<-done
		t.Fatal("Read waits on after 10 s")
	}
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}

// TestWake: Wake ends a Read that waits for ever, once the records
// already there are read; the next Read waits again.
func TestWake(t *testing.T) {
	p := newProducer(t, 64<<10, noWakeup)
	r := open(t, p, Options{})
	p.write(t, 3)
	r.Wake()
	var rec ringbuf.Record
	want := uint64(0)
	for i := 0; i < 3; i++ {
		if err := r.Read(time.Time{}, &rec); err != nil {
			t.Fatal(err)
		}
		if msg := check(rec.RawSample, want); msg != "" {
			t.Fatal(msg)
		}
		want = next(want)
	}
	if err := r.Read(time.Time{}, &rec); !errors.Is(err, ErrWoken) {
		t.Fatalf("Read after the records = %v, want ErrWoken", err)
	}
	if err := r.Read(time.Now().Add(50*time.Millisecond), &rec); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the next Read = %v, want a deadline", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		time.Sleep(30 * time.Millisecond)
		r.Wake()
	}()
	if err := r.Read(time.Time{}, &rec); !errors.Is(err, ErrWoken) {
		t.Fatalf("a Read woken while it waits = %v, want ErrWoken", err)
	}
	wg.Wait()
}

// TestClose: Close gives back the mappings, which hold the map: once
// the map's descriptor is closed too, nothing of it stays loaded.
func TestClose(t *testing.T) {
	objs := kerneltest.Track(t)
	p := newProducer(t, 64<<10, 0)
	r, err := NewReader(p.rb, Options{})
	if err != nil {
		t.Fatal(err)
	}
	objs.Observe()
	p.write(t, 2)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Errorf("a second Close: %v", err)
	}
	var rec ringbuf.Record
	if err := r.Read(time.Time{}, &rec); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read after Close = %v, want os.ErrClosed", err)
	}
	if n := r.Pending(); n != 0 {
		t.Errorf("Pending after Close = %d", n)
	}
	r.Wake() // a no-op, not a write to a closed descriptor
	p.prog.Close()
	p.rb.Close()
	p.state.Close()
	if len(objs.Seen()) == 0 {
		t.Fatal("the check saw none of the test's objects: it cannot fail")
	}
	objs.ExpectReleased(t, 10*time.Second)
}

// TestResident: the data pages are mapped once. The kernel maps every
// page of a ring buffer's mapping at mmap, so a mapping of the data
// twice in a row (cilium/ebpf's, this reader's before) costs twice the
// buffer's size in resident memory from the start.
func TestResident(t *testing.T) {
	const size = 16 << 20
	p := newProducer(t, size, 0)
	before := residentBytes(t)
	r := open(t, p, Options{})
	grew := residentBytes(t) - before
	if grew > size+size/4 {
		t.Errorf("a %d MiB ring buffer's reader made %d MiB resident, want at most %d", size>>20, grew>>20, (size+size/4)>>20)
	}
	// Whatever it costs, records that wrap still read whole (TestReadInOrder,
	// TestConcurrent): this one at least.
	p.write(t, 3)
	var rec ringbuf.Record
	if err := r.Read(time.Now(), &rec); err != nil {
		t.Fatal(err)
	}
	t.Logf("resident: +%d KiB for a %d MiB buffer", grew>>10, size>>20)
}

// residentBytes is this process's resident memory (/proc/self/statm).
func residentBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		t.Skipf("no /proc/self/statm: %v", err)
	}
	var total, resident int64
	if _, err := fmt.Sscan(string(b), &total, &resident); err != nil {
		t.Fatal(err)
	}
	return resident * int64(os.Getpagesize())
}

func TestNotARingBuffer(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates a map")
	}
	m, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 8, MaxEntries: 1})
	if err != nil {
		t.Skipf("cannot create maps: %v", err)
	}
	defer m.Close()
	if _, err := NewReader(m, Options{}); err == nil {
		t.Error("NewReader accepted an array")
	}
}

// BenchmarkProducer is what a record costs the program that writes it
// while a reader on another CPU keeps up: this package's reader against
// cilium/ebpf's, which stores the consumer's position for every record.
// ns/op is the producer's time per record; lost/op should be 0.
func BenchmarkProducer(b *testing.B) {
	if runtime.GOMAXPROCS(0) < 2 {
		b.Skip("needs two CPUs: a producer and a reader")
	}
	readers := []struct {
		name string
		run  func(b *testing.B, p *producer, stop *atomic.Bool) int
	}{
		{"reader=ring", func(b *testing.B, p *producer, stop *atomic.Bool) int {
			r := open(b, p, Options{})
			var rec ringbuf.Record
			n := 0
			for !stop.Load() || r.Pending() > 0 {
				if err := r.Read(time.Now().Add(time.Millisecond), &rec); err == nil {
					n++
				}
			}
			return n
		}},
		{"reader=cilium", func(b *testing.B, p *producer, stop *atomic.Bool) int {
			r, err := ringbuf.NewReader(p.rb)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			var rec ringbuf.Record
			n := 0
			for !stop.Load() || r.AvailableBytes() > 0 {
				r.SetDeadline(time.Now().Add(time.Millisecond))
				if err := r.ReadInto(&rec); err == nil {
					n++
				}
			}
			return n
		}},
	}
	for _, rd := range readers {
		b.Run(rd.name, func(b *testing.B) {
			p := newProducer(b, 4<<20, noWakeup)
			var stop atomic.Bool
			read := make(chan int, 1)
			go func() { read <- rd.run(b, p, &stop) }()
			time.Sleep(10 * time.Millisecond) // the reader is waiting
			b.ResetTimer()
			p.write(b, b.N)
			b.StopTimer()
			stop.Store(true)
			<-read
			b.ReportMetric(float64(p.get(b, stateLost))/float64(b.N), "lost/op")
		})
	}
}

// TestConcurrent reads a one-page buffer while another CPU writes to it
// as fast as it can: records may be lost to a full buffer, but each one
// read is whole, and they come in order. A reader that gave a record's
// space back before it had copied the record reads some overwritten.
func TestConcurrent(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("needs two CPUs: a producer and a reader")
	}
	p := newProducer(t, uint32(os.Getpagesize()), noWakeup)
	r := open(t, p, Options{})
	const total = 1000000
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var err error
		for i := 0; i < total/1000 && err == nil; i++ {
			err = p.run(1000)
		}
		done <- err
	}()
	var rec ringbuf.Record
	read := 0
	last := int64(-1)
	for writing := true; ; {
		if writing {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				writing = false
			default:
			}
		}
		err := r.Read(time.Now().Add(time.Millisecond), &rec)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !writing {
				break
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.RawSample) < 8 {
			t.Fatalf("a record of %d bytes", len(rec.RawSample))
		}
		n := binary.LittleEndian.Uint64(rec.RawSample)
		if msg := check(rec.RawSample, n); msg != "" || int64(n) <= last {
			t.Fatalf("record %d after %d: %s", n, last, msg)
		}
		last = int64(n)
		read++
	}
	// More than total ran if a signal interrupted a run of 1,000: the
	// library runs all of them again.
	ran := p.get(t, stateNext)
	lost := p.get(t, stateLost)
	discarded := uint64(0)
	for n := uint64(0); n < ran; n++ {
		if n%7 == 3 {
			discarded++
		}
	}
	if uint64(read)+lost+discarded != ran {
		t.Errorf("read %d + lost %d + discarded %d, want the %d written", read, lost, discarded, ran)
	}
	t.Logf("read %d, lost %d", read, lost)
}
