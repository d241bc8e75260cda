package broker

import (
	"context"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/user"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/broker/output"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/elfsym"
	"github.com/tracebroker/tracebroker/internal/symbols"
)

// stackReader reads recorded stacks; the bpf Session is one.
type stackReader interface {
	Stack(name string, id int64) ([]uint64, error)
}

// resolver turns the bytes of host-printed values (stacks, symbols, user
// names, times) into their text when they are printed, as bpftrace does:
// symbols are looked up at print time, a process's maps the first time
// one of its addresses is printed.
type resolver struct {
	stacks stackReader

	user *symbols.User

	mu    sync.Mutex
	users map[uint64]string
	// cgroups finds cgroup_path()'s paths.
	cgroups *cgroupPaths
	// boot converts monotonic nanoseconds (nsecs) to wall-clock time.
	boot time.Time
	// errs receives the errors bpftrace logs while printing (a strftime
	// that fails); nil drops them.
	errs io.Writer
}

func newResolver(stacks stackReader, errs io.Writer) *resolver {
	r := &resolver{stacks: stacks, user: symbols.NewUser(), users: map[uint64]string{}, cgroups: newCgroupPaths(), errs: errs}
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err == nil {
		r.boot = time.Now().Add(-time.Duration(ts.Nano()))
	}
	return r
}

// kernelSymbols reads kallsyms once per process: it takes ~60 ms, and a
// broker that is not a daemon lives for one trace.
var kernelSymbols = sync.OnceValues(func() (*symbols.Kernel, error) { return symbols.LoadKernel("") })

func (r *resolver) kernelSyms() *symbols.Kernel {
	k, _ := kernelSymbols()
	return k
}

// watch keeps reading a traced process's mappings (the -c child's, -p's)
// until ctx ends, so that its user stacks and symbols still resolve when
// the maps are printed after it has exited (bpftrace prints bare
// addresses then). The symbol cache re-reads a process's maps at most
// once a second, and keeps them once the process is gone.
func (r *resolver) watch(ctx context.Context, pid int) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		r.user.Resolve(pid, 0)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// usesUserSymbols reports whether a program prints user stacks or
// symbols, which need the traced process's mappings.
func usesUserSymbols(p *program.Program) bool {
	var user func(t program.Type) bool
	user = func(t program.Type) bool {
		if t.Kind == program.UStack || t.Kind == program.USym {
			return true
		}
		for _, e := range t.Elems {
			if user(e) {
				return true
			}
		}
		return false
	}
	for _, f := range p.Schema.Formats {
		for _, a := range f.Args {
			if user(a.Type) {
				return true
			}
		}
	}
	for _, m := range p.Schema.Maps {
		for _, k := range m.Keys {
			if user(k) {
				return true
			}
		}
		if user(m.Value) {
			return true
		}
	}
	return false
}

// resolve fills in the text of v and of the values inside it.
func (r *resolver) resolve(v *program.Value) {
	switch v.Type.Kind {
	case program.Tuple:
		for i := range v.Elems {
			r.resolve(&v.Elems[i])
		}
	case program.KStack, program.UStack:
		r.stack(v)
	case program.KSym:
		if k := r.kernelSyms(); k != nil {
			v.Str = k.Name(v.Int)
		} else {
			v.Str = fmt.Sprintf("0x%x", v.Int)
		}
	case program.USym:
		v.Str = r.user.Name(int(v.Word(1)), v.Int)
	case program.Username:
		v.Str = r.username(v.Int)
	case program.CgroupPath:
		v.Str = r.cgroups.text(v.Int, v.Type.Format)
	case program.Timestamp:
		var ok bool
		v.Str, ok = output.Timestamp(v.Type.Format, r.boot.Add(time.Duration(v.Int)))
		if !ok && r.errs != nil {
			fmt.Fprintln(r.errs, output.StrftimeFailed)
		}
	}
}

func (r *resolver) stack(v *program.Value) {
	id, pid := int64(v.Int), 0
	if v.Type.Kind == program.UStack {
		id, pid = int64(uint32(v.Int)), int(v.Int>>32)
		if int32(v.Int) < 0 {
			id = -1
		}
	}
	ips, err := r.stacks.Stack(v.Type.StackMap, id)
	if err != nil {
		v.Lines = []string{"[" + err.Error() + "]"}
		return
	}
	if len(ips) > v.Type.Frames {
		ips = ips[:v.Type.Frames]
	}
	v.Lines = make([]string, len(ips))
	for i, ip := range ips {
		if v.Type.Kind == program.UStack {
			v.Lines[i] = r.user.Frame(pid, ip, v.Type.Perf)
			continue
		}
		if k := r.kernelSyms(); k != nil {
			v.Lines[i] = k.Frame(ip, v.Type.Perf)
		} else {
			v.Lines[i] = fmt.Sprintf("0x%x", ip)
		}
	}
}

// username is the name of uid, or the number when no user has it.
func (r *resolver) username(uid uint64) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if name, ok := r.users[uid]; ok {
		return name
	}
	name := strconv.FormatUint(uid, 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	r.users[uid] = name
	return name
}

// hostSymbols answers kaddr() from kallsyms and uaddr() from the ELF
// files of the trace's uprobes, as they were opened.
type hostSymbols struct{ files *uprobeFiles }

func (hostSymbols) KernelAddr(name string) (uint64, error) {
	k, err := kernelSymbols()
	if err != nil {
		return 0, fmt.Errorf("kaddr: %v", err)
	}
	addr, ok := k.Lookup(name)
	if !ok {
		return 0, fmt.Errorf("Failed to resolve kernel symbol: %s", name)
	}
	return addr, nil
}

// UserAddr is the symbol's address and size in a non-PIE executable: in
// a position-independent file the address is only known per process.
func (h hostSymbols) UserAddr(path, name string) (uint64, int, error) {
	t, err := h.files.named(path)
	if err != nil {
		return 0, 0, fmt.Errorf("uaddr: %v", err)
	}
	var addr uint64
	var size int
	err = t.Read(func(f *os.File, fsize int64) error {
		ef, err := elfsym.NewFile(f)
		if err != nil {
			return fmt.Errorf("uaddr: %s: %v", path, err)
		}
		if ef.Type != elf.ET_EXEC {
			return fmt.Errorf("uaddr: %s is position-independent, so the address of %s is only known inside each process", path, name)
		}
		// As bcc, a malformed table ends the search with what came before it.
		syms, _ := elfsym.Read(ef, fsize, nil)
		for _, s := range syms {
			if s.Name == name {
				addr, size = s.Value, int(s.Size)
				return nil
			}
		}
		return fmt.Errorf("Could not resolve symbol: %s:%s", path, name)
	})
	return addr, size, err
}
