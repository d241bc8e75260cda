package broker

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tracebroker/tracebroker/internal/kerneltest"
)

// TestSavedStore: the saved strings stay within their bounds in entries
// and bytes, the oldest out first, a string saved again at the same
// address replacing the old one and counting as new; every string dropped
// is counted.
func TestSavedStore(t *testing.T) {
	type put struct {
		tgid uint32
		addr uint64
		s    string
	}
	for _, tc := range []struct {
		name           string
		entries, bytes int
		puts           []put
		kept, gone     []put // kept: get returns s; gone: get returns nil
		evicted        uint64
	}{
		{"within", 4, 100, []put{{1, 0x1000, "a\x00"}, {2, 0x1000, "b\x00"}}, []put{{1, 0x1000, "a\x00"}, {2, 0x1000, "b\x00"}}, []put{{3, 0x1000, ""}, {1, 0x2000, ""}}, 0},
		{"entries", 2, 100, []put{{1, 0x1000, "a\x00"}, {1, 0x2000, "b\x00"}, {1, 0x3000, "c\x00"}}, []put{{1, 0x2000, "b\x00"}, {1, 0x3000, "c\x00"}}, []put{{1, 0x1000, ""}}, 1},
		{"bytes", 10, 8, []put{{1, 0x1000, "abcd\x00"}, {1, 0x2000, "efgh\x00"}}, []put{{1, 0x2000, "efgh\x00"}}, []put{{1, 0x1000, ""}}, 1},
		{"replaced, newest", 2, 100, []put{{1, 0x1000, "a\x00"}, {1, 0x2000, "b\x00"}, {1, 0x1000, "new\x00"}, {1, 0x3000, "c\x00"}}, []put{{1, 0x1000, "new\x00"}, {1, 0x3000, "c\x00"}}, []put{{1, 0x2000, ""}}, 1},
		{"replaced, bytes follow", 10, 10, []put{{1, 0x1000, "abcdefgh\x00"}, {1, 0x1000, "a\x00"}, {1, 0x2000, "bcdefg\x00"}}, []put{{1, 0x1000, "a\x00"}, {1, 0x2000, "bcdefg\x00"}}, nil, 0},
		{"a failed copy replaces", 4, 100, []put{{1, 0x1000, "a\x00"}, {1, 0x1000, ""}}, []put{{1, 0x1000, ""}}, nil, 0},
		{"larger than all", 10, 4, []put{{1, 0x1000, "abcdefgh\x00"}}, nil, []put{{1, 0x1000, ""}}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newSavedStore(tc.entries, tc.bytes)
			for _, p := range tc.puts {
				b := []byte(p.s)
				s.put(p.tgid, p.addr, b)
				clear(b) // the store keeps a copy
			}
			for _, p := range tc.kept {
				if got, ok := s.get(p.tgid, p.addr); string(got) != p.s || !ok {
					t.Errorf("get(%d, %#x) = %q, want %q", p.tgid, p.addr, got, p.s)
				}
			}
			for _, p := range tc.gone {
				if got, ok := s.get(p.tgid, p.addr); ok {
					t.Errorf("get(%d, %#x) = %q, want nothing", p.tgid, p.addr, got)
				}
			}
			if s.evicted != tc.evicted || s.len() > tc.entries || s.bytes > tc.bytes || s.len()+len(s.free) != len(s.nodes) {
				t.Errorf("evicted %d (want %d), %d entries, %d bytes, %d nodes, %d free", s.evicted, tc.evicted, s.len(), s.bytes, len(s.nodes), len(s.free))
			}
		})
	}
}

// TestSavedPointerUprobe: gethostlatency's pattern, a uprobe's string
// argument saved at the call and read at the return, prints the string in
// both modes and in a replay of a recording; pointer arithmetic on the
// saved pointer prints what it points to in JIT mode and is refused in
// interpreter mode, naming the read.
func TestSavedPointerUprobe(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	bin := buildWorkload(t)
	const save = `uprobe:BIN:greet { @s[tid] = arg0; } `
	for _, tc := range []struct {
		name, script, want, refused string
	}{
		{"saved", save + `uretprobe:BIN:greet /@s[tid]/ { printf("%s|\n", str(@s[tid])); delete(@s[tid]); }`, "Attaching 2 probes...\nhello uprobe|\n\n\n\n", ""},
		{"through variables", `uprobe:BIN:greet { $p = arg0; @s[tid] = $p; } uretprobe:BIN:greet { $q = @s[tid]; printf("%s|\n", str($q, 5)); delete(@s[tid]); }`, "Attaching 2 probes...\nhello|\n\n\n\n", ""},
		{"arithmetic", save + `uretprobe:BIN:greet /@s[tid]/ { printf("%s|\n", str(@s[tid] + 6)); delete(@s[tid]); }`, "Attaching 2 probes...\nuprobe|\n\n\n\n", "str(@s[tid] + 6) (pointer arithmetic on a pointer @s saved at another probe"},
	} {
		script := strings.ReplaceAll(tc.script, "BIN", bin)
		for _, mode := range modes {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				out, stderr, err := runScript(t, Request{Source: []byte(script), Command: bin + " 3", Mode: mode, Collectors: testCollectors(t)})
				if mode == ModeInterp && tc.refused != "" {
					if err == nil || !strings.Contains(err.Error(), tc.refused) || out != "" {
						t.Fatalf("err %v, output %q; want a refusal with %q", err, out, tc.refused)
					}
					return
				}
				if err != nil {
					t.Fatalf("run: %v\n%s", err, stderr)
				}
				if out != tc.want || stderr != "" {
					t.Fatalf("output %q, stderr %q; want %q and no warning", out, stderr, tc.want)
				}
			})
		}
		if tc.refused != "" {
			continue
		}
		t.Run(tc.name+"/replay", func(t *testing.T) {
			rec := filepath.Join(t.TempDir(), "rec.tbrec")
			var stderr bytes.Buffer
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := Record(ctx, RecordRequest{Request: Request{Name: "stdin", Source: []byte(script), Command: bin + " 3", Collectors: testCollectors(t), Stderr: &stderr}, Output: rec}); err != nil {
				t.Fatalf("record: %v\n%s", err, stderr.String())
			}
			var out, rstderr bytes.Buffer
			if err := Replay(ctx, ReplayRequest{Recording: rec, Name: "stdin", Source: []byte(script), Stdout: &out, Stderr: &rstderr}); err != nil {
				t.Fatalf("replay: %v\n%s", err, rstderr.String())
			}
			if out.String() != tc.want || rstderr.Len() != 0 {
				t.Errorf("replay %q, stderr %q; want %q", out.String(), rstderr.String(), tc.want)
			}
		})
	}
}

// BenchmarkSavedStore is the cost the store adds to an event that saves
// a string and to one that reads it back (opensnoop's entry and exit):
// "evict", each string new and the store full, so that each put also
// evicts; "replace", a few threads' buffers saved over and over.
func BenchmarkSavedStore(b *testing.B) {
	for _, bc := range []struct {
		name string
		keys uint64
	}{{"evict", 1 << 20}, {"replace", 16}} {
		b.Run(bc.name, func(b *testing.B) {
			s := newSavedStore(1<<10, 1<<20)
			str := []byte("/usr/lib/locale/C.utf8/LC_MESSAGES\x00")
			b.ReportAllocs()
			i := uint64(0)
			for b.Loop() {
				i++
				k := i % bc.keys
				s.put(uint32(k%64), 0x7f0000000000+k*64, str)
				if _, ok := s.get(uint32(k%64), 0x7f0000000000+k*64); !ok {
					b.Fatal("lost")
				}
			}
		})
	}
}

// farC passes its callee a string in a page of its own, 2 MiB into
// .rodata, that nothing has read before the call: not yet in the
// process's page tables when the call begins, where a probe cannot fault
// it in; the callee reads it, so it is there at the return.
const farC = `static const char far[4 << 20] = {[2 << 20] = 'f', 'a', 'r', 0};
__attribute__((noinline)) int touch(const char *s) { return *(volatile const char *)s; }
int main(void) { return touch(far + (2 << 20)) == 'f' ? 0 : 1; }
`

// TestSavedPointerNotPaged: a saved pointer whose memory is not paged in
// where it is taken. JIT mode reads it at the return, when it is;
// interpreter mode could copy nothing at the call, prints nothing, and
// says so at the end rather than silently.
func TestSavedPointerNotPaged(t *testing.T) {
	needKernel(t)
	lockKernel(t)
	bin := kerneltest.CC(t, "the workload", "far", farC, "-O1")
	script := strings.ReplaceAll(`uprobe:BIN:touch { @s[tid] = arg0; } uretprobe:BIN:touch /@s[tid]/ { printf("%s|\n", str(@s[tid])); delete(@s[tid]); }`, "BIN", bin)
	for _, tc := range []struct {
		mode        Mode
		want, warns string
	}{
		{ModeJIT, "Attaching 2 probes...\nfar|\n\n\n\n", ""},
		{ModeInterp, "Attaching 2 probes...\n|\n\n\n\n", "WARNING: 1 reads of strings behind pointers saved at another probe returned nothing"},
	} {
		out, stderr, err := runScript(t, Request{Source: []byte(script), Command: bin, Mode: tc.mode, Collectors: testCollectors(t)})
		if err != nil {
			t.Fatalf("%s: %v\n%s", tc.mode, err, stderr)
		}
		if out != tc.want || !strings.Contains(stderr, tc.warns) || (tc.warns == "") != (stderr == "") {
			t.Errorf("%s: output %q, stderr %q; want %q and %q", tc.mode, out, stderr, tc.want, tc.warns)
		}
	}
}
