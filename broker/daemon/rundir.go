package daemon

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/tracebroker/tracebroker/internal/securedir"
)

// PrepareSocketDir makes the socket's directory as systemd's
// RuntimeDirectory would when it is missing (a fresh host, a reboot
// without the unit): owned by this process, and with a socket group,
// group group and mode 0750, so that the group's members can reach the
// socket and nobody else can; 0755 without one. An existing directory is
// used as it is if it is sound, and refused if it is a symbolic link,
// another user's, or writable by others (securedir.Ensure).
func PrepareSocketDir(socket, group string) error {
	dir := filepath.Dir(socket)
	mode, gid := 0o755, -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return err
		}
		mode, gid = 0o750, g
	}
	if _, err := securedir.Ensure(dir, os.FileMode(mode), gid); err != nil {
		return fmt.Errorf("the socket's directory: %w", err)
	}
	return nil
}
