package object

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/tracebroker/tracebroker/broker/program"
)

const objectsDir = "../../testdata/objects"

func readObject(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(objectsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseObjects reads each test object into the probes bpftrace would
// name, the maps printed and the record types.
func TestParseObjects(t *testing.T) {
	for _, tc := range []struct {
		file    string
		probes  []string
		printed []string
		records map[string]string // map -> record type name
	}{
		{"opensnoop.bpf.o", []string{"tracepoint:syscalls:sys_enter_openat"}, []string{"opens"}, map[string]string{"events": "event"}},
		{"libccount.bpf.o", []string{
			"rawtracepoint:sys_enter",
			"uprobe:/lib/x86_64-linux-gnu/libc.so.6:strverscmp",
			"uretprobe:/lib/x86_64-linux-gnu/libc.so.6:strverscmp",
		}, []string{"calls", "getppids"}, map[string]string{"returns": "ret", "args": "arg"}},
		{"kopens.bpf.o", []string{"kfunc:vmlinux:do_sys_openat2", "kprobe:do_sys_openat2"}, []string{"fentry_opens", "kprobe_opens"}, map[string]string{}},
		// .rodata, its const volatile parameters, is not printed.
		{"opencount.bpf.o", []string{"tracepoint:syscalls:sys_enter_openat"}, []string{"opens", "total"}, map[string]string{}},
		{"hugemap.bpf.o", []string{"tracepoint:syscalls:sys_enter_openat"}, []string{"huge"}, map[string]string{}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			p, err := Parse(tc.file, readObject(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, pr := range p.Probes {
				names = append(names, pr.Name)
				if len(pr.Insns) == 0 || p.Object.Spec.Programs[p.Object.Progs[i]] == nil {
					t.Errorf("probe %s: %d instructions, program %q", pr.Name, len(pr.Insns), p.Object.Progs[i])
				}
				if pr.Reads&program.ReadsContext == 0 {
					t.Errorf("probe %s: reads %v, want context at least", pr.Name, pr.Reads)
				}
			}
			if got, want := strings.Join(names, " "), strings.Join(tc.probes, " "); got != want {
				t.Errorf("probes %s, want %s", got, want)
			}
			if got, want := strings.Join(p.Object.Printed, " "), strings.Join(tc.printed, " "); got != want {
				t.Errorf("printed maps %s, want %s", got, want)
			}
			if len(p.Object.Records) != len(tc.records) {
				t.Errorf("records %v, want %v", p.Object.Records, tc.records)
			}
			for m, typ := range tc.records {
				if rt := p.Object.Records[m]; rt == nil || rt.TypeName() != typ {
					t.Errorf("records of %s: %v, want %s", m, rt, typ)
				}
			}
			if p.Object.License != "GPL" {
				t.Errorf("license %q", p.Object.License)
			}
		})
	}
}

// TestParsePerfEventArray: a perf event array's record type is taken
// from its declaration, which the kernel would refuse, and the map is
// made what the kernel wants: an fd per CPU.
func TestParsePerfEventArray(t *testing.T) {
	p, err := Parse("libccount.bpf.o", readObject(t, "libccount.bpf.o"))
	if err != nil {
		t.Fatal(err)
	}
	m := p.Object.Spec.Maps["returns"]
	if m.Type != ebpf.PerfEventArray || m.Value != nil || m.KeySize != 4 || m.ValueSize != 4 || m.MaxEntries != 0 {
		t.Errorf("returns map %+v", m)
	}
}

func TestParseRefuses(t *testing.T) {
	refused := readObject(t, "refused.bpf.o")
	for _, tc := range []struct {
		name string
		data []byte
		err  string
	}{
		{"pinned map", refused, "pinned by name"},
		{"not ELF", []byte("tracepoint:syscalls:sys_enter_openat {}"), "not an ELF file"},
		{"truncated", readObject(t, "opensnoop.bpf.o")[:200], "opensnoop"},
		{"too large", append([]byte("\x7fELF"), make([]byte, MaxSize)...), "at most"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("opensnoop.bpf.o", tc.data)
			var oe *Error
			if err == nil || !errors.As(err, &oe) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Parse = %v, want an *Error with %q", err, tc.err)
			}
		})
	}
}

// TestSections: libbpf's section names, and what is not a tracing
// program's.
func TestSections(t *testing.T) {
	for _, tc := range []struct {
		sec  string
		typ  ebpf.ProgramType
		name string // or the error's words
		err  bool
	}{
		{"tracepoint/sched/sched_switch", ebpf.TracePoint, "tracepoint:sched:sched_switch", false},
		{"tp/sched/sched_switch", ebpf.TracePoint, "tracepoint:sched:sched_switch", false},
		{"tracepoint/sched", ebpf.TracePoint, "tracepoint/CATEGORY/NAME", true},
		{"tracepoint/a/b/c", ebpf.TracePoint, "tracepoint/CATEGORY/NAME", true},
		{"raw_tp/sys_enter", ebpf.RawTracepoint, "rawtracepoint:sys_enter", false},
		{"raw_tracepoint/", ebpf.RawTracepoint, "names no tracepoint", true},
		{"tp_btf/sched_switch", ebpf.Tracing, "tp_btf:sched_switch", false},
		{"fentry/vfs_read", ebpf.Tracing, "kfunc:vmlinux:vfs_read", false},
		{"fexit/vfs_read", ebpf.Tracing, "kretfunc:vmlinux:vfs_read", false},
		{"kprobe/vfs_read", ebpf.Kprobe, "kprobe:vfs_read", false},
		{"kprobe/vfs_read+16", ebpf.Kprobe, "kprobe:vfs_read+16", false},
		{"kretprobe/vfs_read+16", ebpf.Kprobe, "has no offset", true},
		{"kprobe/", ebpf.Kprobe, "names no function", true},
		{"uprobe//bin/bash:readline", ebpf.Kprobe, "uprobe:/bin/bash:readline", false},
		{"uretprobe//bin/bash:readline", ebpf.Kprobe, "uretprobe:/bin/bash:readline", false},
		{"uprobe/bash:readline", ebpf.Kprobe, "not an absolute path", true},
		{"uprobe", ebpf.Kprobe, "PATH:FUNCTION", true},
		{"uprobe//bin/bash:", ebpf.Kprobe, "PATH:FUNCTION", true},
		{"uprobe//bin/bash:f+x", ebpf.Kprobe, "not a number", true},
		{"perf_event", ebpf.PerfEvent, "profile:hz:99", false},
		{"xdp", ebpf.XDP, "tracebroker runs tracing programs", true},
		{"socket", ebpf.SocketFilter, "tracebroker runs tracing programs", true},
		{"lsm/bpf", ebpf.LSM, "tracebroker runs tracing programs", true},
		{"kprobe/x", ebpf.XDP, "tracebroker runs tracing programs", true}, // a type the section does not give
	} {
		t.Run(tc.sec, func(t *testing.T) {
			pr, err := probe(&ebpf.ProgramSpec{SectionName: tc.sec, Type: tc.typ})
			switch {
			case tc.err && (err == nil || !strings.Contains(err.Error(), tc.name)):
				t.Errorf("probe = %v, %v; want an error with %q", pr, err, tc.name)
			case !tc.err && err != nil:
				t.Errorf("probe: %v", err)
			case !tc.err && pr.Name != tc.name:
				t.Errorf("probe %s, want %s", pr.Name, tc.name)
			}
		})
	}
}

// FuzzParse: whatever the bytes, Parse returns a Program or an *Error,
// and never panics (cilium/ebpf's ELF reader included).
func FuzzParse(f *testing.F) {
	for _, n := range []string{"opensnoop.bpf.o", "libccount.bpf.o", "kopens.bpf.o", "refused.bpf.o", "opencount.bpf.o", "hugemap.bpf.o"} {
		f.Add(readObject(f, n))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse("fuzz.o", data)
		if err != nil {
			var oe *Error
			if !errors.As(err, &oe) {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		if len(p.Probes) == 0 || len(p.Probes) != len(p.Object.Progs) {
			t.Fatalf("%d probes, %d programs", len(p.Probes), len(p.Object.Progs))
		}
	})
}
