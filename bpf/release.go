package bpf

import (
	"golang.org/x/sys/unix"

	"github.com/tracebroker/tracebroker/internal/detach"
)

// Closing a perf event that carries a tracepoint program waits for RCU
// grace periods: 50-100 ms here, more than everything else a one-liner
// does. The probes are stopped before this point (Session.Stop), so the
// waiting can happen in a helper process that outlives the command
// (detach.InBackground).

// RunReleaseHelper must be called first thing in main. In the helper
// process it closes the inherited attachments and exits.
func RunReleaseHelper() { detach.RunHelper() }

// ReleaseName is the name (comm) of the forked copy that releases a few
// attachments.
const ReleaseName = detach.ReleaseName

// DetachInBackground hands every attachment to a helper process that
// closes them, and closes this process's copies, which is quick while the
// helper still holds them. If the helper cannot start, it detaches in place.
func (s *Session) DetachInBackground() error {
	fds := append([]int(nil), s.perfFD...)
	for _, l := range s.links {
		// A kprobe.multi link is a link.RawLink underneath: one
		// descriptor, which the helper can close as well.
		if fd, ok := l.(interface{ FD() int }); ok {
			fds = append(fds, fd.FD())
		}
	}
	err := detach.InBackground(fds, func() {
		for _, fd := range s.perfFD {
			unix.Close(fd)
		}
		for _, l := range s.links {
			l.Close() // the helper's copy holds it; or, one it has none of, in place
		}
	})
	if err != nil {
		s.Detach()
		return nil
	}
	s.perfFD, s.links = nil, nil
	return nil
}
