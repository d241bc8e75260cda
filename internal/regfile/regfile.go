// Package regfile opens, reads and writes files that must be regular
// files: keys, manifests, policies, plugins, debug files. A named pipe or
// a device planted at such a path must be refused, not block the open
// until a writer comes or feed a read that never ends; and what is
// written is seen whole or not at all.
package regfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is wrapped by Open's error for anything but a regular
// file.
var ErrNotRegular = errors.New("not a regular file")

// Open opens path read-only and refuses anything but a regular file.
// O_NONBLOCK makes opening a FIFO return at once, so that it can be
// refused; regular files ignore the flag.
func Open(path string) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", path, ErrNotRegular)
	}
	return f, fi, nil
}

// TooLargeError is a file longer than its reader's limit.
type TooLargeError struct {
	Path  string
	Limit int64
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s: larger than %d bytes", e.Path, e.Limit)
}

// ReadAll reads at most limit bytes of f; more is a *TooLargeError.
func ReadAll(f *os.File, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, &TooLargeError{Path: f.Name(), Limit: limit}
	}
	return b, nil
}

// ReadFile reads a regular file of at most limit bytes.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, _, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadAll(f, limit)
}

// WriteAtomic writes path through a temporary file in the same
// directory, so a reader sees all of data or none. With exclusive, an
// existing path is an error instead of being replaced.
func WriteAtomic(path string, data []byte, mode os.FileMode, exclusive bool) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = tmp.Chmod(mode); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		// A hard link fails if path exists; the temporary name goes.
		err = os.Link(tmp.Name(), path)
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}
