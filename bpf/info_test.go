package bpf

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// bpftraceInfoKeys is bpftrace 0.17's --info, each line up to its value:
// tools that read the report find every key where bpftrace puts it.
const bpftraceInfoKeys = `System
  OS:
  Arch:

Build
  version:
  LLVM:
  unsafe uprobe:
  bfd:
  libdw (DWARF support):

Kernel helpers
  probe_read:
  probe_read_str:
  probe_read_user:
  probe_read_user_str:
  probe_read_kernel:
  probe_read_kernel_str:
  get_current_cgroup_id:
  send_signal:
  override_return:
  get_boot_ns:
  dpath:
  skboutput:

Kernel features
  Instruction limit:
  Loop support:
  btf:
  map batch:
  uprobe refcount (depends on Build:bcc bpf_attach_uprobe refcount):

Map types
  hash:
  percpu hash:
  array:
  percpu array:
  stack_trace:
  perf_event_array:

Probe types
  kprobe:
  tracepoint:
  perf_event:
  kfunc:
  iter:task:
  iter:task_file:
  kprobe_multi:
  raw_tp_special:
`

func TestInfoLayout(t *testing.T) {
	var b bytes.Buffer
	if err := WriteInfo(&b, InfoBuild{Version: "v1"}); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(b.String(), "\n")
	want := strings.Split(bpftraceInfoKeys, "\n")
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(got), len(want), b.String())
	}
	yesNo := regexp.MustCompile(`^ (yes|no)$`)
	for i, w := range want {
		g := got[i]
		if !strings.HasPrefix(g, w) {
			t.Errorf("line %d: %q, want it to start with %q", i+1, g, w)
			continue
		}
		v := strings.TrimPrefix(g, w)
		switch {
		case !strings.HasPrefix(w, "  "):
			if v != "" {
				t.Errorf("heading %q has %q after it", w, v)
			}
		case w == "  OS:" || w == "  Arch:" || w == "  version:" || w == "  Instruction limit:":
			if len(v) < 2 {
				t.Errorf("%s has no value", w)
			}
		case !yesNo.MatchString(v):
			t.Errorf("%s %q, want yes or no", w, v)
		}
	}
	// What this process can do is probed: as root, the ring buffers
	// every trace needs, and BEGIN's test runs, are there.
	if os.Geteuid() == 0 && Supported() == nil {
		for _, line := range []string{"  hash: yes", "  perf_event: yes", "  raw_tp_special: yes", "  tracepoint: yes"} {
			if !strings.Contains(b.String(), line+"\n") {
				t.Errorf("no %q in\n%s", line, b.String())
			}
		}
	}
}
