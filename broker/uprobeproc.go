package broker

import (
	"path/filepath"
	"strings"

	"github.com/tracebroker/tracebroker/bpf/uprobe"
)

// inProcess is the path a uprobe's absolute file names for the -p
// process, as bpftrace 0.17 reads it: when the process sees other mounts
// than ours (a container's mount namespace, or a chroot), the file at
// that path in its view, reached through /proc/PID/root, which is then
// what probes call it (uprobe:/proc/PID/root/PATH:FUNC, as bpftrace
// names them). The kernel lets us open /proc/PID/root only with the
// rights ptrace needs over the process.
//
// Never under a scope (a token holder of the daemon): the scope judges
// paths in the daemon's view of the files, so a path read in another
// view would be judged as one file and probed as another; there the
// path stays the daemon's, as before.
func (u *uprobeFiles) inProcess(written string) string {
	if u.pid <= 0 || u.scope != nil || !filepath.IsAbs(written) || strings.HasPrefix(written, "/proc/") {
		return written
	}
	root, same := uprobe.ProcessRoot(u.pid)
	if same {
		return written
	}
	return root + filepath.Clean(written)
}
