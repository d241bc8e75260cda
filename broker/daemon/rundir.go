package daemon

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

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
	created, err := securedir.Ensure(dir, os.FileMode(mode), gid)
	if err != nil {
		return fmt.Errorf("the socket's directory: %w", err)
	}
	if created || gid < 0 {
		return nil
	}
	// An existing directory the group cannot search would let the
	// daemon start and every member's connection fail with "permission
	// denied": said now, once, with the fix.
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&0o001 == 0 && (int(st.Gid) != gid || fi.Mode()&0o010 == 0) {
		return fmt.Errorf("the socket's directory %s (mode %04o, group %d) cannot be searched by group %s, whose members could not reach the socket: chgrp %s and chmod g+x it, or remove it and serve makes it", dir, fi.Mode().Perm(), st.Gid, group, group)
	}
	return nil
}
