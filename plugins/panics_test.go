package plugins

import "testing"

func TestPanicFilter(t *testing.T) {
	// A fatal panic as the runtime writes it, between the plugin's own
	// lines: only the panic and its dump are the stack.
	lines := []struct {
		line  string
		stack bool
	}{
		{"starting", false},
		{"panic: runtime error: index out of range [3] with length 3 [recovered]", true},
		{"\tpanic: again", true},
		{"", true},
		{"goroutine 7 [running]:", true},
		{"main.f({0x1, 0x2})", true},
		{"\t/src/main.go:12 +0x1d", true},
		{"created by main.main in goroutine 1", true},
		{"...additional frames elided...", true},
		{"exit status 2", true},
		{"a line of its own", false},
		{"\tindented, but no stack", false},
	}
	var f panicFilter
	for _, l := range lines {
		if got := f.stackLine(l.line); got != l.stack {
			t.Errorf("stackLine(%q) = %v, want %v", l.line, got, l.stack)
		}
	}
	if want := "runtime error: index out of range [3] with length 3"; f.msg != want {
		t.Errorf("message %q, want %q", f.msg, want)
	}
}

func TestPanicked(t *testing.T) {
	for _, tc := range []struct{ method, msg, want string }{
		{"", "runtime error: index out of range [3] with length 3",
			"plugin opensnoop panicked: runtime error: index out of range [3] with length 3 (stack at debug level)"},
		{"Generate", "generator panicked in Generate: boom (at main.g.Generate /src/main.go:9)",
			"plugin opensnoop panicked: boom (in Generate at main.g.Generate /src/main.go:9; stack at debug level)"},
		{"Describe", "generator panicked in Describe: two\nlines",
			`plugin opensnoop panicked: two\nlines (in Describe; stack at debug level)`},
	} {
		if got := panicked("opensnoop", tc.method, tc.msg).Error(); got != tc.want {
			t.Errorf("panicked(%q, %q) = %q, want %q", tc.method, tc.msg, got, tc.want)
		}
	}
}
