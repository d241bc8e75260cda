package plugins

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestPluginLogBounded(t *testing.T) {
	var buf syncBuffer
	o := newPluginLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "spam", "spam")
	w := o.writer("stderr")
	line := strings.Repeat("y", 99) + "\n"
	for range 2000 { // 200 KB
		fmt.Fprint(w, line)
	}
	fmt.Fprint(w, strings.Repeat("z", 3*maxLineLen)) // no newline: cut into lines, the rest flushed by close
	o.close()
	logged := buf.String()
	if n := len(logged); n > 2*maxLogBytes {
		t.Errorf("%d bytes logged for 200 KB of plugin output", n)
	}
	if !strings.Contains(logged, "plugin output dropped: more than the log's limit per launch") {
		t.Errorf("no message about the dropped output:\n%s", logged[len(logged)-500:])
	}
	err := o.decorate(crashed{errors.New("plugin spam: exited")})
	if got := strings.Count(err.Error(), "\n\t"); got != tailLines {
		t.Errorf("%d tail lines in %q, want %d", got, err, tailLines)
	}
	if len(err.Error()) > tailLines*(tailLineLen+10)+100 {
		t.Errorf("decorated error is %d bytes", len(err.Error()))
	}
	if plain := o.decorate(errors.New("plugin spam: bad params")); plain.Error() != "plugin spam: bad params" {
		t.Errorf("an error of the plugin's own got the tail: %q", plain)
	}
}

func TestHclogAdapterRouting(t *testing.T) {
	var buf syncBuffer
	o := newPluginLog(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})), "p", "p-bin")
	root := o.hclog()
	root.Warn("internal warning", "k", 1)
	root.Named("p-bin").Debug("a line the plugin printed")
	root.Named("p-bin").Error("[ERROR] it failed", "timestamp", "2026-01-01")
	root.Named("p-bin").Error("panic: oops")
	root.Named("p-bin").Error("goroutine 1 [running]:")
	root.Named("stdio").Error("stdio trouble")
	want := []string{
		`level=DEBUG msg="go-plugin: internal warning" plugin=p k=1`,
		`level=INFO msg="a line the plugin printed" plugin=p stream=stderr`,
		`level=ERROR msg="[ERROR] it failed" plugin=p stream=stderr` + "\n",
		// A panic is the call's error, in one line; its lines are for
		// debugging.
		`level=DEBUG msg="panic: oops" plugin=p stream=stderr`,
		`level=DEBUG msg="goroutine 1 [running]:" plugin=p stream=stderr`,
		`level=DEBUG msg="go-plugin: stdio trouble" plugin=p`,
	}
	for _, w := range want {
		if !strings.Contains(buf.String(), w) {
			t.Errorf("log lacks %q:\n%s", w, &buf)
		}
	}
}
