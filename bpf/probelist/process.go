package probelist

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
	"github.com/tracebroker/tracebroker/bpf/usdt"
)

// writeProcess lists what bpftrace 0.17's -l -p PID lists for pattern,
// and says whether pattern was one it lists for a process: with no
// pattern (or "*"), the functions of the process's program and the USDT
// probes of every file it maps; with uprobe:* the program's functions. The program is named as bpftrace names it,
// through the process's root: /proc/PID/root/PATH, which is where it is
// opened too, so that a program in another mount namespace (a
// container's) is the file the process runs. Opening /proc/PID/root
// needs the rights ptrace needs over the process, which the kernel
// checks: no one lists the files of a process they could not trace.
func writeProcess(w io.Writer, pattern string, pid int) (bool, error) {
	var b bytes.Buffer
	switch provider, rest, _ := strings.Cut(pattern, ":"); {
	case strings.TrimSpace(pattern) == "" || pattern == "*":
		if err := processFuncs(&b, pid, "uprobe", "*"); err != nil {
			return true, err
		}
		if err := usdt.List(&b, "*", pid, uprobe.MatchName); err != nil {
			return true, err
		}
	case provider == "uprobe" || provider == "u" || provider == "uretprobe" || provider == "ur":
		// bpftrace 0.17 lists the program for uprobe:* alone; with a
		// function, the '*' is a file pattern like any other.
		if rest != "" && rest != "*" {
			return false, nil
		}
		long := map[string]string{"u": "uprobe", "ur": "uretprobe"}[provider]
		if long == "" {
			long = provider
		}
		if err := processFuncs(&b, pid, long, "*"); err != nil {
			return true, err
		}
	default:
		return false, nil
	}
	lines := strings.SplitAfter(b.String(), "\n")
	slices.Sort(lines)
	for _, l := range slices.Compact(lines) {
		if _, err := io.WriteString(w, l); err != nil {
			return true, err
		}
	}
	return true, nil
}

// processFuncs lists the functions of process pid's program matching fn.
func processFuncs(w io.Writer, pid int, provider, fn string) error {
	path, err := ProcessProgram(pid)
	if err != nil {
		return err
	}
	if provider == "uretprobe" {
		return uprobe.ListRet(w, path, fn)
	}
	return uprobe.List(w, path, fn)
}

// ProcessProgram is the file process pid runs, as bpftrace names it for
// -p: /proc/PID/root followed by the path the process sees
// (/proc/PID/exe), which reaches the file in the process's mount
// namespace.
func ProcessProgram(pid int) (string, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	exe, err := os.Readlink(dir + "/exe")
	if err != nil {
		return "", fmt.Errorf("process %d: %w", pid, err)
	}
	if strings.HasSuffix(exe, " (deleted)") || !strings.HasPrefix(exe, "/") {
		return "", fmt.Errorf("process %d: its program %q is gone", pid, exe)
	}
	return dir + "/root" + exe, nil
}
