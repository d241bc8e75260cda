package bpf_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/tracebroker/tracebroker/bpf"
	"github.com/tracebroker/tracebroker/broker"
	"github.com/tracebroker/tracebroker/broker/program"
	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

func needKernel(t testing.TB) {
	t.Helper()
	if err := bpf.Supported(); err != nil {
		t.Skipf("kernel tracing unavailable: %v", err)
	}
}

func lockKernel(t testing.TB) { kerneltest.Lock(t) }

// compileScript compiles src against the running kernel, as the broker does.
func compileScript(t testing.TB, src string, maxKeys int) *program.Program {
	t.Helper()
	prog, _, err := broker.Compile(&broker.Request{Name: "stdin", Source: []byte(src), MaxMapKeys: maxKeys})
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return prog
}

// mapID finds a user map by its script name.
func mapID(t *testing.T, p *program.Program, name string) int {
	t.Helper()
	for i, m := range p.Schema.Maps {
		if m.Name == name {
			return i
		}
	}
	t.Fatalf("no map %s in %v", name, p.Schema.Maps)
	return -1
}

// entries renders a snapshot of a count or plain map as "key=value"
// strings, in the snapshot's (key) order.
func entries(t *testing.T, s *bpf.Session, id int) []string {
	t.Helper()
	snap, err := s.Snapshot(id)
	if err != nil {
		t.Fatalf("snapshot: %v", err)
	}
	var out []string
	for _, e := range snap.Decoded() {
		var keys []string
		for _, k := range e.Keys {
			if k.Type.Kind == program.String {
				keys = append(keys, k.Str)
			} else {
				keys = append(keys, fmt.Sprint(k.Int))
			}
		}
		out = append(out, fmt.Sprintf("%s=%d", strings.Join(keys, ","), e.Value.Int))
	}
	return out
}

// closeAndCheck closes s and checks that this process holds no more file
// descriptors than it did when objs began (before Load), and that the kernel unloaded
// the programs at once and the maps (which the programs reference) soon
// after: a map outlives the last program using it by an RCU grace period.
// The check is by id, not by counting everything loaded, so that the other
// test binaries that `go test ./...` runs meanwhile do not disturb it.
func closeAndCheck(t *testing.T, s *bpf.Session, objs *kerneltest.Objects) {
	t.Helper()
	var progs []ebpf.ProgramID
	maps := map[ebpf.MapID]bool{}
	for _, p := range s.Programs() {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, ok := info.ID()
		if !ok {
			t.Fatal("program info has no id")
		}
		progs = append(progs, id)
		ids, ok := info.MapIDs()
		if !ok {
			t.Fatal("program info has no map ids")
		}
		for _, m := range ids {
			maps[m] = true
		}
	}
	if len(progs) == 0 || len(maps) == 0 {
		t.Fatalf("session has %d programs using %d maps", len(progs), len(maps))
	}
	s.Close()
	// At once: the garbage collector would close leaked ones eventually.
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after Close: %v", h)
	}
	// The kernel frees a program or map once nothing holds it, but a
	// tracing link's last hold on its program goes after an RCU grace
	// period, which a busy machine makes long: a while, then.
	left := map[string]bool{}
	for _, id := range progs {
		left[fmt.Sprintf("program %d", id)] = true
	}
	for id := range maps {
		left[fmt.Sprintf("map %d", id)] = true
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(left) > 0 {
		for what := range left {
			var id uint32
			var err error
			if _, err = fmt.Sscanf(what, "program %d", &id); err == nil {
				var p *ebpf.Program
				if p, err = ebpf.NewProgramFromID(ebpf.ProgramID(id)); err == nil {
					p.Close()
				}
			} else {
				fmt.Sscanf(what, "map %d", &id)
				var m *ebpf.Map
				if m, err = ebpf.NewMapFromID(ebpf.MapID(id)); err == nil {
					m.Close()
				}
			}
			if errors.Is(err, os.ErrNotExist) {
				delete(left, what)
			} else if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		}
		if len(left) > 0 && time.Now().After(deadline) {
			var what []string
			for w := range left {
				what = append(what, w)
			}
			slices.Sort(what)
			t.Fatalf("still loaded 5s after Close: %v", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// loadedNamed returns the ids of the loaded programs with one of names.
func loadedNamed(t *testing.T, names ...string) []ebpf.ProgramID {
	t.Helper()
	var out []ebpf.ProgramID
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if errors.Is(err, os.ErrNotExist) {
			return out
		}
		if err != nil {
			t.Fatalf("BPF_PROG_GET_NEXT_ID: %v", err)
		}
		id = next
		p, err := ebpf.NewProgramFromID(id)
		if err != nil {
			continue // gone meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err == nil && slices.Contains(names, info.Name) {
			out = append(out, id)
		}
	}
}

// TestAttachRollsBack: when a probe cannot be attached, or the context
// ends (the client that asked is gone), Attach fails naming it and
// detaches the ones it had attached, so they no longer fire; Close then
// unloads every program.
func TestAttachRollsBack(t *testing.T) {
	needKernel(t)
	src := fmt.Sprintf(`tracepoint:syscalls:sys_enter_getcwd, tracepoint:syscalls:sys_enter_getcpu /pid == %d/ { @[probe] = count(); }`, os.Getpid())
	missing := func(p *program.Probe) {
		p.Event = "sys_enter_nosuch"
		p.Name = "tracepoint:syscalls:sys_enter_nosuch"
	}
	tests := []struct {
		name    string
		mutate  func(p *program.Program)
		wantErr string // "" if Attach must succeed
		want    []string
		// cancel ends the context after this many probes are attached
		// (0: never).
		cancel int
	}{
		{
			name:   "all exist",
			mutate: func(p *program.Program) {},
			want:   []string{"tracepoint:syscalls:sys_enter_getcpu=2", "tracepoint:syscalls:sys_enter_getcwd=3"},
		},
		{
			// getcwd is attached first, then rolled back.
			name:    "second missing",
			mutate:  func(p *program.Program) { missing(p.Probes[1]) },
			wantErr: "attach tracepoint:syscalls:sys_enter_nosuch: ",
		},
		{
			name:    "first missing",
			mutate:  func(p *program.Program) { missing(p.Probes[0]) },
			wantErr: "attach tracepoint:syscalls:sys_enter_nosuch: ",
		},
		{
			name:    "client gone before",
			mutate:  func(p *program.Program) {},
			cancel:  -1,
			wantErr: "attach: context canceled",
		},
		{
			name:    "client gone halfway",
			mutate:  func(p *program.Program) {},
			cancel:  1,
			wantErr: "attach: context canceled",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lockKernel(t)
			prog := compileScript(t, src, 0)
			if len(prog.Probes) != 2 || prog.Probes[0].Event != "sys_enter_getcwd" || prog.Probes[1].Event != "sys_enter_getcpu" {
				t.Fatalf("unexpected probes: %+v", prog.Probes)
			}
			tc.mutate(prog)
			objs := kerneltest.Track(t)
			s, err := bpf.Load(prog, bpf.Options{})
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			defer s.Close()
			if n := len(s.Programs()); n != 2 {
				t.Errorf("Load made %d programs, want 2", n)
			}
			ctx := context.Background()
			if tc.cancel != 0 {
				c, cancel := context.WithCancel(ctx)
				ctx = c
				if tc.cancel < 0 {
					cancel()
				} else {
					ctx = &cancelAfter{Context: c, n: tc.cancel, cancel: cancel}
				}
			}
			err = s.Attach(ctx)
			if tc.cancel > 0 && ctx.(*cancelAfter).n > 0 {
				t.Errorf("the context was asked %d times fewer than after %d probes", ctx.(*cancelAfter).n, tc.cancel)
			}
			wantAttached := 2
			if tc.wantErr != "" {
				wantAttached = 0
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) {
					t.Errorf("Attach: %v, want an error starting with %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Attach: %v", err)
			}
			if err != nil {
				t.Logf("Attach: %v", err)
			}
			if n := s.Attached(); n != wantAttached {
				t.Errorf("Attached() = %d, want %d", n, wantAttached)
			}
			// What is attached counts these calls; what was rolled back
			// must not.
			kerneltest.Syscalls(3, 2)
			if got := entries(t, s, mapID(t, prog, "@")); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("@ = %q, want %q", got, tc.want)
			}
			closeAndCheck(t, s, objs)
			s.Close() // twice is harmless
		})
	}
}

// TestSessionMaps: Snapshot, Clear and MapErrors on a loaded session, with
// the map contents written by BEGIN through Session.Run.
func TestSessionMaps(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	// Two keys fit in @a: @a[3] is dropped and counted, every run.
	prog := compileScript(t, `BEGIN { @a[1] = 10; @a[2] = 20; @a[3] = 30; @c = count(); @c = count(); }`, 2)
	a, c := mapID(t, prog, "@a"), mapID(t, prog, "@c")
	objs := kerneltest.Track(t)
	s, err := bpf.Load(prog, bpf.Options{})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	defer s.Close()
	errs := func() []uint64 { e := s.MapErrors(); return []uint64{e[a], e[c]} }
	check := func(step string, wantA, wantC []string, wantErrs []uint64) {
		t.Helper()
		if got := entries(t, s, a); !reflect.DeepEqual(got, wantA) {
			t.Errorf("%s: @a = %q, want %q", step, got, wantA)
		}
		if got := entries(t, s, c); !reflect.DeepEqual(got, wantC) {
			t.Errorf("%s: @c = %q, want %q", step, got, wantC)
		}
		if got := errs(); !reflect.DeepEqual(got, wantErrs) {
			t.Errorf("%s: map errors (@a, @c) = %v, want %v", step, got, wantErrs)
		}
	}
	check("loaded", nil, nil, []uint64{0, 0})
	if err := s.Run(program.Begin); err != nil {
		t.Fatalf("Run(Begin): %v", err)
	}
	check("after BEGIN", []string{"1=10", "2=20"}, []string{"=2"}, []uint64{1, 0})
	if err := s.Clear(a); err != nil {
		t.Fatalf("Clear(@a): %v", err)
	}
	check("after clear(@a)", nil, []string{"=2"}, []uint64{1, 0})
	if err := s.Clear(a); err != nil {
		t.Fatalf("Clear of an empty map: %v", err)
	}
	if err := s.Run(program.Begin); err != nil {
		t.Fatalf("Run(Begin): %v", err)
	}
	check("after second BEGIN", []string{"1=10", "2=20"}, []string{"=4"}, []uint64{2, 0})
	if err := s.Clear(c); err != nil {
		t.Fatalf("Clear(@c): %v", err)
	}
	check("after clear(@c)", []string{"1=10", "2=20"}, nil, []uint64{2, 0})
	// END does not exist in this program: running it does nothing.
	if err := s.Run(program.End); err != nil {
		t.Errorf("Run(End): %v", err)
	}
	closeAndCheck(t, s, objs)
}

// TestLoadRejected: a program the verifier refuses fails Load with the
// probe's name and leaves nothing loaded (the other probe's program
// included).
func TestLoadRejected(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	prog := compileScript(t, `BEGIN { @a = 1; } END { @a = 2; }`, 0)
	if prog.Probes[0].Kind != program.Begin || prog.Probes[1].Kind != program.End {
		t.Fatalf("unexpected probes: %+v", prog.Probes)
	}
	// Names no other process uses (BEGIN and END name their programs
	// after the probe), to find this test's leftovers among everything
	// loaded on the machine: the BEGIN program is loaded, then closed
	// when END's fails, between any two looks a sampler could take.
	begin, end := fmt.Sprintf("tb%d_b", os.Getpid()), fmt.Sprintf("tb%d_e", os.Getpid())
	prog.Probes[0].Name, prog.Probes[1].Name = begin, end
	// END returns without setting r0: the verifier rejects it.
	prog.Probes[1].Insns = asm.Instructions{asm.Return()}
	objs := kerneltest.Track(t)
	s, err := bpf.Load(prog, bpf.Options{})
	if err == nil {
		s.Close()
		t.Fatal("Load succeeded, want a verifier error")
	}
	t.Logf("Load: %v", err)
	if want := "the kernel verifier rejected the program for " + end + ": "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load: %v, want it to start with %q", err, want)
	}
	if !strings.Contains(err.Error(), "R0 !read_ok") {
		t.Errorf("Load: %v, want the verifier log's reason", err)
	}
	for _, h := range objs.HeldBySelf(t) {
		t.Errorf("after the failed Load: %v", h)
	}
	if left := loadedNamed(t, begin, end); len(left) > 0 {
		t.Errorf("programs left loaded after a failed Load: %v", left)
	}
}

// cancelAfter is a context that ends once Err has been asked n times:
// Attach asks it before each probe, so it ends after n are attached.
type cancelAfter struct {
	context.Context
	n      int
	cancel func()
}

func (c *cancelAfter) Err() error {
	if c.n--; c.n < 0 {
		c.cancel()
	}
	return c.Context.Err()
}
