package btsuite

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// What tests need of the kernel without a REQUIRES line for it.
const (
	needKprobes     = "kprobes"
	needWatchpoints = "watchpoints"
	needDebugfs     = "debugfs"
)

var (
	kprobeProbe     = regexp.MustCompile(`(^|[^\w$.])(kprobe|kretprobe|kr|k):`)
	kfuncProbe      = regexp.MustCompile(`(^|[^\w$.])(kfunc|kretfunc|fentry|fexit|f|fr):`)
	iterProbe       = regexp.MustCompile(`(^|[^\w$.])iter:(\w+)`)
	watchpointProbe = regexp.MustCompile(`(^|[^\w$.])(watchpoint|asyncwatchpoint):`)
	listFlag        = regexp.MustCompile(`\s-l\b|\s-lv\b`)
	scriptArg       = regexp.MustCompile(`runtime/scripts/[\w.-]+\.bt`)
)

// needs reads what t runs (its program, its command line, the scripts
// it names) for the probe kinds a kernel may lack: Lacks' names, and
// Features' names (kfunc, iter:task) that a test uses without a
// REQUIRES_FEATURE line for them.
func (e *Env) needs(t Test) []string {
	text := t.Prog + "\n" + t.Run
	for _, s := range scriptArg.FindAllString(t.Run, -1) {
		if b, err := os.ReadFile(filepath.Join(e.Dir, s)); err == nil {
			text += "\n" + string(b)
		}
	}
	var out []string
	// A listing expected to show kprobes needs them as much as a
	// trace of one.
	if kprobeProbe.MatchString(text) || listFlag.MatchString(t.Run) && strings.Contains(t.Expect, "kprobe") {
		out = append(out, needKprobes)
	}
	if kfuncProbe.MatchString(text) {
		out = append(out, "kfunc")
	}
	for _, m := range iterProbe.FindAllStringSubmatch(text, -1) {
		out = append(out, "iter:"+m[2])
	}
	if watchpointProbe.MatchString(text) {
		out = append(out, needWatchpoints)
	}
	if strings.Contains(text, "/sys/kernel/debug/") {
		out = append(out, needDebugfs)
	}
	return out
}
