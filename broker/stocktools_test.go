package broker

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebroker/tracebroker/bpf/kprobe"
)

// stockToolsDir holds bpftrace 0.17's tools as Debian's bpftrace 0.17.0
// package ships them (/usr/sbin/*.bt).
const stockToolsDir = "../testdata/bpftrace-0.17/tools"

// stockToolFailures are the tools that may fail to compile on a kernel,
// with the error they must fail with and why: each is bpftrace's own
// outcome on that kernel too, or a missing kernel feature.
var stockToolFailures = map[string]struct {
	err *regexp.Regexp
	why string
}{
	// bpftrace 0.17 fails alike where /proc/kallsyms has no avenrun.
	"loads": {regexp.MustCompile(`Failed to resolve kernel symbol: avenrun`), "kernel without the avenrun symbol"},
	// glibc 2.34 moved pthread_create into libc; libpthread.so.0 is a
	// stub. bpftrace 0.17 drops the probe silently and traces nothing.
	// Neither name the tools list is a traceable function on 6.1 and
	// later (bpftrace 0.17's tools fail alike; later bpftrace's trace
	// block:block_io_start instead).
	"biolatency": {bioStart, "kernel without blk_account_io_start or __blk_account_io_start"},
	"biosnoop":   {bioStart, "kernel without blk_account_io_start or __blk_account_io_start"},
	"biostacks":  {bioStart, "kernel without blk_account_io_start or __blk_account_io_start"},
	// Kernel functions that a module has (md, xfs) or that a kernel
	// renamed: not there to trace, for bpftrace 0.17 as for us.
	"mdflush": {regexp.MustCompile(`md_flush_request is not traceable`), "the md module is not loaded"},
	"xfsdist": {regexp.MustCompile(`xfs_file_\w+ is not traceable`), "the xfs module is not loaded"},
	"swapin":  {regexp.MustCompile(`swap_readpage is not traceable`), "kernel that renamed swap_readpage to swap_read_folio (6.10 and later)"},
	// Linux 6.14 renamed cfs_rq's nr_running to nr_queued; bpftrace
	// 0.17 fails alike there.
	"runqlen":     {regexp.MustCompile(`'struct cfs_rq' does not contain a field named 'nr_running'`), "kernel whose cfs_rq has no nr_running (6.14 and later)"},
	"threadsnoop": {regexp.MustCompile(`Could not resolve symbol: \S*libpthread\.so\.0:pthread_create`), "libpthread without pthread_create (glibc 2.34 and later)"},
}

// TestStockTools compiles every stock tool of bpftrace 0.17 against the
// running kernel, as `tracebroker run TOOL.bt` would: each compiles, or
// fails only for what the kernel or the host lacks (kprobes, a library),
// or as bpftrace itself fails there (stockToolFailures).
func TestStockTools(t *testing.T) {
	needKernel(t)
	tools, err := filepath.Glob(filepath.Join(stockToolsDir, "*.bt"))
	if err != nil || len(tools) == 0 {
		t.Fatalf("no tools in %s: %v", stockToolsDir, err)
	}
	noKprobes := kprobe.Supported()
	for _, path := range tools {
		name := strings.TrimSuffix(filepath.Base(path), ".bt")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			req := &Request{Name: path, Source: src}
			prog, _, err := Compile(req)
			if err == nil {
				prog.Close()
				if f, ok := stockToolFailures[name]; ok {
					t.Logf("compiles here, where it may fail (%s)", f.why)
				}
				return
			}
			msg := err.Error()
			switch f, ok := stockToolFailures[name]; {
			case noKprobes != nil && kprobesMissing.MatchString(msg):
				t.Skipf("needs kprobes: %v", noKprobes)
			case strings.Contains(msg, "does not exist or is not executable"):
				t.Skipf("a library it traces is not installed: %s", firstLine(msg))
			case ok && f.err.MatchString(msg):
				t.Skipf("%s: %s", f.why, firstLine(msg))
			default:
				var se *ScriptError
				if errors.As(err, &se) {
					msg = se.Error()
				}
				t.Errorf("does not compile:\n%s", msg)
			}
		})
	}
}

var bioStart = regexp.MustCompile(`none of the probe's 2 attach points resolved; the first: blk_account_io_start is not traceable`)

var kprobesMissing = regexp.MustCompile(`k(ret)?probe probes are not available`)

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
