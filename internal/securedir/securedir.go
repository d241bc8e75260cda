// Package securedir makes the directories root's daemon trusts — the
// state directory and its parts, the socket's runtime directory — or
// checks the ones that exist. What is in such a directory is trusted
// (release keys, plugins, the socket clients dial), so one that another
// user owns or may write, or a symbolic link planted where it should be,
// is refused, never followed: its mode and group are set through a
// descriptor opened with O_NOFOLLOW, so nothing else is ever changed.
package securedir

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// Error is a directory refused, with the fix.
type Error struct {
	Path   string
	Reason string
	Fix    string
}

func (e *Error) Error() string {
	if e.Fix == "" {
		return fmt.Sprintf("%s: %s", e.Path, e.Reason)
	}
	return fmt.Sprintf("%s: %s: %s", e.Path, e.Reason, e.Fix)
}

// Ensure makes dir with mode (and group gid unless gid < 0) if it does
// not exist; its parent must. An existing dir is checked, not changed: it
// must be a directory, not a symbolic link, owned by this process's
// effective uid, and writable by nobody else (a sticky directory
// excepted, where others cannot replace what this process made).
// created says whether dir was made.
func Ensure(dir string, mode os.FileMode, gid int) (created bool, err error) {
	switch err := os.Mkdir(dir, mode); {
	case err == nil:
		created = true
	case errors.Is(err, fs.ErrExist):
	case errors.Is(err, fs.ErrNotExist):
		return false, &Error{Path: dir, Reason: "cannot be created: its parent directory does not exist"}
	default:
		return false, err
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) {
			return false, fmt.Errorf("%s: %w", dir, err)
		}
		// O_NOFOLLOW has refused; Lstat only names what was there.
		if fi, lerr := os.Lstat(dir); lerr == nil && fi.Mode()&fs.ModeSymlink != 0 {
			return false, &Error{Path: dir, Reason: "is a symbolic link: refused (a link planted here would point root's files elsewhere)", Fix: "remove it, or name the directory it leads to"}
		}
		return false, &Error{Path: dir, Reason: "exists and is not a directory", Fix: "remove it"}
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, fmt.Errorf("%s: %w", dir, err)
	}
	if euid := os.Geteuid(); int(st.Uid) != euid {
		return false, &Error{Path: dir, Reason: fmt.Sprintf("is owned by uid %d, not by uid %d (this process): refused", st.Uid, euid),
			Fix: "remove it and run again, or chown it after checking what is in it"}
	}
	if created {
		// Mkdir's mode went through the umask, and the group is the
		// creator's: both are set on what was opened, never by name.
		if gid >= 0 {
			if err := unix.Fchown(fd, -1, gid); err != nil {
				return true, fmt.Errorf("%s: group %d: %w", dir, gid, err)
			}
		}
		if err := unix.Fchmod(fd, uint32(mode.Perm())); err != nil {
			return true, fmt.Errorf("%s: %w", dir, err)
		}
		return true, nil
	}
	if st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
		return false, &Error{Path: dir, Reason: fmt.Sprintf("is writable by others than its owner (mode %04o): refused, anyone could have put files there", st.Mode&0o7777),
			Fix: "check what is in it, then chmod go-w it"}
	}
	return false, nil
}
