package plugins

import (
	"fmt"
	"log/slog"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/status"
)

// panicFilter follows one source of a plugin's stderr lines and picks
// out a panic: its message, and the goroutine dump after it. A panic is
// reported in one line (the call's error); the dump is for whoever
// debugs the plugin, so it is logged at Debug, not as 25 lines of Info.
type panicFilter struct {
	inStack bool
	msg     string // the first "panic: " or "fatal error: " message
}

// stackLine reports whether line belongs to a panic or its goroutine
// dump, noting the panic's message.
func (f *panicFilter) stackLine(line string) bool {
	switch {
	case strings.HasPrefix(line, "panic: "), strings.HasPrefix(line, "fatal error: "):
		if f.msg == "" {
			_, msg, _ := strings.Cut(line, ": ")
			f.msg = strings.TrimSuffix(msg, " [recovered]")
		}
		f.inStack = true
	case strings.HasPrefix(line, sdkPanicPrefix):
		// The SDK's recovered panic: its message comes back as the
		// call's status; the stack follows.
		f.inStack = true
	case strings.HasPrefix(line, "goroutine ") && strings.HasSuffix(line, "]:"):
		f.inStack = true
	case !f.inStack:
		return false
	case line == "", strings.HasPrefix(line, "\t"), strings.HasPrefix(line, "created by "),
		strings.HasSuffix(line, ")"), strings.HasPrefix(line, "[signal "),
		strings.HasPrefix(line, "...additional frames elided..."), strings.HasPrefix(line, "exit status "):
	default:
		f.inStack = false
		return false
	}
	return true
}

// sdkPanicPrefix starts the message of a panic the SDK recovered in a
// call ("generator panicked in Generate: VALUE (at FUNC FILE:LINE)"),
// on its stderr and in the call's status.
const sdkPanicPrefix = "generator panicked in "

// panicked is the one-line error of a plugin that panicked: in a call,
// recovered by the SDK (msg is the SDK's message), or in a goroutine of
// its own, which ended it (msg is the runtime's "panic: " message and
// method is empty).
func panicked(name, method, msg string) error {
	msg = strings.NewReplacer("\r", `\r`, "\n", `\n`).Replace(bound(msg, 1024))
	where := ""
	if rest, ok := strings.CutPrefix(msg, sdkPanicPrefix); ok {
		method, msg, _ = strings.Cut(rest, ": ")
		if i := strings.LastIndex(msg, " (at "); i >= 0 && strings.HasSuffix(msg, ")") {
			msg, where = msg[:i], " at "+msg[i+len(" (at "):len(msg)-1]
		}
	}
	in := ""
	if method != "" {
		in = "in " + method + where + "; "
	}
	return fmt.Errorf("plugin %s panicked: %s (%sstack at debug level)", name, msg, in)
}

// maxStackLines bounds the stack a plugin's panic status may put in the
// log; the log's per-launch budget bounds the bytes.
const maxStackLines = 256

// logStack logs at Debug the stack that the SDK sends with a recovered
// panic (a DebugInfo detail of the call's status), line by line as
// stderr lines are logged, under the same budget.
func (c *call) logStack(st *status.Status) {
	if c.log == nil {
		return
	}
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.DebugInfo)
		if !ok {
			continue
		}
		lines := info.GetStackEntries()
		if len(lines) > maxStackLines {
			lines = lines[:maxStackLines]
		}
		for _, line := range lines {
			c.log.output(nil, "panic", slog.LevelDebug, line)
		}
	}
}
