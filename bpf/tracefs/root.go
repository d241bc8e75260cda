package tracefs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"golang.org/x/sys/unix"
)

const (
	tracefsPath = "/sys/kernel/tracing"
	// Kernels before 4.1, and setups that only mount debugfs, expose
	// tracefs here (debugfs auto-mounts it on access).
	debugfsTracingPath = "/sys/kernel/debug/tracing"
)

var root struct {
	mu   sync.Mutex
	path string // set once found; failures are not cached so a later mount is picked up
}

// Root returns the tracefs mount point: /sys/kernel/tracing, else
// /sys/kernel/debug/tracing, whichever has an events directory. When
// neither does, Root mounts tracefs at /sys/kernel/tracing, as a fresh
// machine or container often has it unmounted; that needs root
// (CAP_SYS_ADMIN), and the error says so when it fails. A successful answer
// is cached; a failure is not, so a caller may retry after fixing the
// system.
func Root() (string, error) {
	root.mu.Lock()
	defer root.mu.Unlock()
	if root.path != "" {
		return root.path, nil
	}
	p, err := findRoot([]string{tracefsPath, debugfsTracingPath}, mountTracefs)
	if err != nil {
		return "", err
	}
	root.path = p
	return p, nil
}

func mountTracefs(target string) error {
	return unix.Mount("nodev", target, "tracefs", 0, "")
}

// findRoot is Root without the cache and with the mount injected, so the
// search order and error wording can be tested without being root.
func findRoot(candidates []string, mount func(string) error) (string, error) {
	var denied error
	for _, c := range candidates {
		ok, err := hasEvents(c)
		if ok {
			return c, nil
		}
		if err != nil && denied == nil {
			denied = err
		}
	}
	if denied != nil {
		// Mounting cannot help when tracefs is there but unreadable, and
		// "not mounted" would send the user down the wrong path.
		return "", fmt.Errorf("tracefs is not accessible: %w; run as root", denied)
	}
	target := candidates[0]
	if err := mount(target); err != nil {
		return "", fmt.Errorf("tracefs is not mounted at %s and mounting it failed: %w; run as root or mount it (mount -t tracefs nodev %s)", target, err, target)
	}
	if ok, err := hasEvents(target); !ok {
		if err == nil {
			err = errors.New("no events directory after mounting")
		}
		return "", fmt.Errorf("tracefs mounted at %s but is unusable: %w", target, err)
	}
	return target, nil
}

// hasEvents reports whether dir is a usable tracefs. A permission error is
// returned so it can be told apart from "nothing mounted here".
func hasEvents(dir string) (bool, error) {
	fi, err := os.Stat(filepath.Join(dir, "events"))
	if err == nil {
		return fi.IsDir(), nil
	}
	if errors.Is(err, fs.ErrPermission) {
		return false, err
	}
	return false, nil
}

// eventsDir is where every lookup in this package starts.
func eventsDir() (string, error) {
	r, err := Root()
	if err != nil {
		return "", err
	}
	return filepath.Join(r, "events"), nil
}
