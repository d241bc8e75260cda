package kerneltest

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// The kinds of kernel object a process can hold that keep BPF programs
// and maps loaded, as /proc/PID/fd names them (anon_inode:KIND), and the
// memory mapping of a map (a ring buffer reader's) that holds it too.
const (
	KindProgram   = "bpf-prog"
	KindMap       = "bpf-map"
	KindLink      = "bpf_link"
	KindPerfEvent = "[perf_event]"
	KindMapping   = "mapping of bpf-map"
)

// Object is a BPF object, or a perf event, that a test's processes hold
// or left loaded.
type Object struct {
	Kind string
	ID   uint32 // 0 for a perf event or a mapping: the kernel gives them no id
	// Name is the kernel's name of a program or map (its first 15
	// bytes), "" where there is none or it could not be read.
	Name string
	// PID is the test's process that holds the object, Cmd its command
	// line; 0 for one that stayed loaded with no process of the test
	// holding it.
	PID int
	Cmd string
}

func (o Object) String() string {
	var b strings.Builder
	b.WriteString(o.Kind)
	if o.ID != 0 {
		fmt.Fprintf(&b, " %d", o.ID)
	}
	if o.Name != "" {
		fmt.Fprintf(&b, " (%s)", o.Name)
	}
	if o.PID != 0 {
		fmt.Fprintf(&b, " held by pid %d %s", o.PID, o.Cmd)
	} else {
		b.WriteString(" still loaded, though no process of the test holds it itself")
	}
	return b.String()
}

// cmdline is pid's command line, cut to its first three arguments.
func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if len(args) > 3 {
		args = append(args[:3], "...")
	}
	return fmt.Sprintf("%q", args)
}

// Objects is what one test's processes hold in the kernel: this process
// and every process it started, their children included (a trace's
// release helper, the CLI's, a daemon's), which stay the test's when their
// parent exits (Track makes this process their subreaper). It is how a
// leak check sees only what the test itself did, however many other
// tracers load and unload programs on the machine meanwhile, whatever
// their names.
//
// Two ways an object can be left:
//   - held: a process of the test still holds a descriptor (or memory
//     mapping) it did not hold at Track. Exact, and what every leak of a
//     Go object that was not closed looks like.
//   - loaded: a program or map that a process of the test held at some
//     point (a sampler looks every few milliseconds while the test runs)
//     is still loaded although none of them holds it now: pinned, or
//     handed to a process outside the test.
type Objects struct {
	base        map[string]int // heldKey counts at Track
	baseIDs     map[string]bool
	mu          sync.Mutex
	seen        map[idKey]bool // programs and maps seen held since Track
	stop, done  chan struct{}
	stopOnce    sync.Once
	sampleEvery time.Duration
}

type idKey struct {
	kind string
	id   uint32
}

// probeMu serialises the samplers with the checks that open objects by
// id to read their names, so that no sampler takes a check's own
// descriptor for one the test created.
var probeMu sync.Mutex

var subreaper sync.Once

// Track starts tracking what this test's processes hold in the kernel;
// the sampler stops when the test ends. Left and Held say what was left.
func Track(t testing.TB) *Objects {
	t.Helper()
	subreaper.Do(func() {
		// Orphans of the test's processes (the CLI's release helper
		// outlives the CLI) become this process's children, so they
		// stay in the tree that is checked.
		if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
			t.Logf("kerneltest: PR_SET_CHILD_SUBREAPER: %v (orphans of the test's processes are not checked)", err)
		}
	})
	o := &Objects{seen: map[idKey]bool{}, baseIDs: map[string]bool{},
		stop: make(chan struct{}), done: make(chan struct{}), sampleEvery: 10 * time.Millisecond}
	probeMu.Lock()
	held := heldByTree()
	probeMu.Unlock()
	o.base = counts(held)
	for _, h := range held {
		if h.ID != 0 {
			o.baseIDs[h.key()] = true
		}
	}
	go o.sample()
	t.Cleanup(o.Stop)
	return o
}

// Stop ends the sampling; Left and Held still work.
func (o *Objects) Stop() {
	o.stopOnce.Do(func() { close(o.stop) })
	<-o.done
}

// sample records the programs and maps the test's processes hold, until
// Stop. Its period grows with its cost, so that a process holding
// thousands of descriptors does not spend a core on being watched.
func (o *Objects) sample() {
	defer close(o.done)
	for {
		start := time.Now()
		o.Observe()
		wait := max(o.sampleEvery, 5*time.Since(start))
		select {
		case <-o.stop:
			return
		case <-time.After(wait):
		}
	}
}

// Observe records the programs and maps the test's processes hold now.
// The sampler calls it; a test can too, where it knows its objects are
// alive, to be independent of the sampler's timing.
func (o *Objects) Observe() {
	probeMu.Lock()
	held := heldByTree()
	probeMu.Unlock()
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, h := range held {
		if (h.Kind == KindProgram || h.Kind == KindMap) && !o.baseIDs[h.key()] {
			o.seen[idKey{h.Kind, h.ID}] = true
		}
	}
}

// Seen returns the programs and maps the test's processes have been seen
// to hold since Track.
func (o *Objects) Seen() []Object {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []Object
	for k := range o.seen {
		out = append(out, Object{Kind: k.kind, ID: k.id})
	}
	sortObjects(out)
	return out
}

// Held returns what the test's processes hold now that they did not hold
// at Track, without waiting: right after a run that detaches
// synchronously, nothing.
func (o *Objects) Held(t testing.TB) []Object {
	t.Helper()
	probeMu.Lock()
	defer probeMu.Unlock()
	return o.excess(heldByTree())
}

// HeldBySelf is Held for this process alone: what a run that hands its
// attachments to a helper process must no longer hold once it returns.
func (o *Objects) HeldBySelf(t testing.TB) []Object {
	t.Helper()
	probeMu.Lock()
	defer probeMu.Unlock()
	return o.excess(heldBy(os.Getpid()))
}

// excess returns the objects of held beyond the base counts, named.
func (o *Objects) excess(held []Object) []Object {
	n := map[string]int{}
	var out []Object
	for _, h := range held {
		k := h.key()
		n[k]++
		if n[k] > o.base[k] {
			h.Name, h.Cmd = objectName(h.Kind, h.ID), cmdline(h.PID)
			out = append(out, h)
		}
	}
	sortObjects(out)
	return out
}

// Left returns what the test left, once the kernel and the test's helper
// processes have had wait to release it: what its processes still hold
// (Held), then the programs and maps they were seen to hold that are
// still loaded. The kernel frees a program a little after its last
// descriptor closes (an RCU grace period; a map one more), and a release
// helper takes about as long to close what it was handed, longer on a
// busy machine: wait bounds how long a check that fails takes, not how
// long one that passes does.
func (o *Objects) Left(t testing.TB, wait time.Duration) []Object {
	t.Helper()
	o.Observe()
	deadline := time.Now().Add(wait)
	for {
		left := o.left()
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (o *Objects) left() []Object {
	probeMu.Lock()
	defer probeMu.Unlock()
	held := heldByTree()
	out := o.excess(held)
	holding := map[string]bool{}
	for _, h := range held {
		holding[h.key()] = true
	}
	o.mu.Lock()
	seen := make([]idKey, 0, len(o.seen))
	for k := range o.seen {
		seen = append(seen, k)
	}
	o.mu.Unlock()
	for _, k := range seen {
		obj := Object{Kind: k.kind, ID: k.id}
		if holding[obj.key()] || !loaded(k) {
			continue // counted as held, or gone
		}
		obj.Name = objectName(k.kind, k.id)
		out = append(out, obj)
	}
	sortObjects(out)
	return out
}

// ExpectReleased fails the test if Left(wait) finds anything.
func (o *Objects) ExpectReleased(t testing.TB, wait time.Duration) {
	t.Helper()
	if left := o.Left(t, wait); len(left) > 0 {
		t.Errorf("%v after the run, the test left %d BPF objects:\n\t%s", wait, len(left), describe(left))
	}
}

// describe lists objs one a line.
func describe(objs []Object) string {
	s := make([]string, len(objs))
	for i, o := range objs {
		s[i] = o.String()
	}
	return strings.Join(s, "\n\t")
}

// Programs returns the ids of the programs named name (as the kernel
// cuts names, to 15 bytes) among objs.
func Programs(objs []Object, name string) []uint32 {
	var ids []uint32
	for _, o := range objs {
		if o.Kind == KindProgram && o.Name == name {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

func (o Object) key() string {
	if o.ID == 0 {
		return o.Kind
	}
	return o.Kind + " " + strconv.FormatUint(uint64(o.ID), 10)
}

func counts(held []Object) map[string]int {
	n := map[string]int{}
	for _, h := range held {
		n[h.key()]++
	}
	return n
}

func sortObjects(objs []Object) {
	slices.SortFunc(objs, func(a, b Object) int {
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		if a.ID != b.ID {
			return int(a.ID) - int(b.ID)
		}
		return a.PID - b.PID
	})
}

// loaded reports whether the kernel still has a program or map, without
// opening it: the next id from one below it is its own.
func loaded(k idKey) bool {
	switch k.kind {
	case KindProgram:
		next, err := ebpf.ProgramGetNextID(ebpf.ProgramID(k.id - 1))
		return err == nil && uint32(next) == k.id
	case KindMap:
		next, err := ebpf.MapGetNextID(ebpf.MapID(k.id - 1))
		return err == nil && uint32(next) == k.id
	}
	return false
}

// objectName reads a program's or map's name; "" if it is gone or has
// none. The caller holds probeMu: this opens the object.
func objectName(kind string, id uint32) string {
	switch kind {
	case KindProgram:
		p, err := ebpf.NewProgramFromID(ebpf.ProgramID(id))
		if err != nil {
			return ""
		}
		defer p.Close()
		if info, err := p.Info(); err == nil {
			return info.Name
		}
	case KindMap:
		m, err := ebpf.NewMapFromID(ebpf.MapID(id))
		if err != nil {
			return ""
		}
		defer m.Close()
		if info, err := m.Info(); err == nil {
			return info.Name
		}
	}
	return ""
}

// tree returns this process and all its descendants.
func tree() []int {
	pids := []int{os.Getpid()}
	for i := 0; i < len(pids); i++ {
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pids[i]))
		for _, task := range tasks {
			b, _ := os.ReadFile(task)
			for _, f := range strings.Fields(string(b)) {
				if pid, err := strconv.Atoi(f); err == nil && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
		}
	}
	return pids
}

func heldByTree() []Object {
	var out []Object
	for _, pid := range tree() {
		out = append(out, heldBy(pid)...)
	}
	return out
}

// heldBy lists the BPF objects and perf events pid holds a descriptor
// to, and its memory mappings of maps. A process that exits meanwhile
// holds nothing.
func heldBy(pid int) []Object {
	var out []Object
	dir := fmt.Sprintf("/proc/%d/", pid)
	fds, _ := os.ReadDir(dir + "fd")
	for _, fd := range fds {
		target, err := os.Readlink(dir + "fd/" + fd.Name())
		if err != nil {
			continue // closed meanwhile
		}
		kind, ok := strings.CutPrefix(target, "anon_inode:")
		if !ok || !strings.HasPrefix(kind, "bpf") && kind != KindPerfEvent {
			continue
		}
		obj := Object{Kind: kind, PID: pid}
		idField := map[string]string{KindProgram: "prog_id", KindMap: "map_id", KindLink: "link_id"}[kind]
		if idField != "" {
			info, _ := os.ReadFile(dir + "fdinfo/" + fd.Name())
			for _, line := range strings.Split(string(info), "\n") {
				if k, v, _ := strings.Cut(line, ":"); k == idField {
					id, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 32)
					obj.ID = uint32(id)
				}
			}
		}
		out = append(out, obj)
	}
	maps, _ := os.ReadFile(dir + "maps")
	for _, line := range strings.Split(string(maps), "\n") {
		if strings.HasSuffix(line, " anon_inode:bpf-map") {
			out = append(out, Object{Kind: KindMapping, PID: pid})
		}
	}
	return out
}

// trackers finds the Objects behind the snapshot LoadedIDs returned, for
// LeftLoaded.
var trackers sync.Map // the progs map's pointer -> *Objects

// LoadedIDs starts tracking the BPF objects of this test's processes
// (Track) and returns the ids of the programs and maps they hold now, to
// pass to LeftLoaded.
func LoadedIDs(t testing.TB) (progs, maps map[uint32]bool) {
	t.Helper()
	o := Track(t)
	progs, maps = map[uint32]bool{}, map[uint32]bool{}
	for k := range o.baseIDs {
		kind, id, _ := strings.Cut(k, " ")
		n, _ := strconv.ParseUint(id, 10, 32)
		switch kind {
		case KindProgram:
			progs[uint32(n)] = true
		case KindMap:
			maps[uint32(n)] = true
		}
	}
	key := reflect.ValueOf(progs).Pointer()
	trackers.Store(key, o)
	t.Cleanup(func() { trackers.Delete(key) })
	return progs, maps
}

// LeftLoaded returns the programs named name (as the kernel shortens
// names, to 15 bytes) that the test's processes created since LoadedIDs
// returned before and still hold or left loaded, once they have had wait
// to go (see Objects.Left). Programs of other processes on the machine do
// not count, whatever their names.
func LeftLoaded(t testing.TB, before map[uint32]bool, name string, wait time.Duration) []uint32 {
	t.Helper()
	v, ok := trackers.Load(reflect.ValueOf(before).Pointer())
	if !ok {
		t.Fatal("kerneltest.LeftLoaded: before is not a snapshot LoadedIDs returned in this test")
	}
	o := v.(*Objects)
	o.Observe()
	deadline := time.Now().Add(wait)
	for {
		left := Programs(o.left(), name)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}
