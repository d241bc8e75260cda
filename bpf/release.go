package bpf

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/detach"
)

// Closing a perf event that carries a tracepoint program waits for RCU
// grace periods: 50-100 ms here, more than everything else a one-liner
// does. The probes are stopped before this point (Session.Stop), so the
// waiting can happen in a helper process that outlives the command.
const releaseEnv = "TRACEBROKER_RELEASE_FDS"

// RunReleaseHelper must be called first thing in main. In the helper
// process it closes the inherited attachments and exits.
func RunReleaseHelper() {
	n, err := strconv.Atoi(os.Getenv(releaseEnv))
	if err != nil {
		return
	}
	detach.All(n, func(i int) { unix.Close(3 + i) })
	os.Exit(0)
}

// DetachInBackground hands every attachment to a helper process that
// closes them, and closes this process's copies, which is quick while the
// helper still holds them. If the helper cannot start, it detaches in place.
func (s *Session) DetachInBackground() error {
	if len(s.perfFD) == 0 {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		s.Detach()
		return nil
	}
	files := make([]*os.File, len(s.perfFD))
	for i, fd := range s.perfFD {
		files[i] = os.NewFile(uintptr(fd), "perf_event")
	}
	cmd := exec.Command(self)
	cmd.Env = []string{fmt.Sprintf("%s=%d", releaseEnv, len(files))}
	cmd.ExtraFiles = files
	// Its own session: a terminal's Ctrl-C must not kill it half-way, and
	// nothing waits for it.
	cmd.SysProcAttr = &unix.SysProcAttr{Setsid: true}
	startErr := cmd.Start()
	if startErr == nil {
		go cmd.Wait()
	}
	for _, f := range files {
		f.Close()
	}
	s.perfFD = nil
	return nil
}
