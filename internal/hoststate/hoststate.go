// Package hoststate owns the layout of a host's state directory
// (/var/lib/tracebroker): every directory the other commands read or
// write, made by `tracebroker init` with its mode, and the error that
// names a missing one and the fix.
package hoststate

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/tracebroker/tracebroker/attest"
	"github.com/tracebroker/tracebroker/internal/securedir"
)

// The state directory's parts. Host key, broker.json and audit.log are
// files in the top directory.
const (
	Trust        = attest.TrustDir     // release keys this host trusts (*.pub)
	Manifests    = attest.ManifestsDir // manifests kept apart from their files: the broker's, the collectors'
	Issuers      = "issuers"           // token issuers' public keys (*.pub)
	Plugins      = "plugins"           // generator plugins and their NAME.sig
	Attestations = "attestations"      // the daemon's program attestations
)

// dirs are made in this order, each with its mode. Attestations are
// 0750 as the attestation store makes its sources/: an auditors' group
// may read them.
var dirs = []struct {
	name string
	mode os.FileMode
}{
	{Trust, 0o700},
	{Manifests, 0o700},
	{Issuers, 0o700},
	{Plugins, 0o700},
	{Attestations, 0o750},
}

// Made is a directory Init made or found.
type Made struct {
	Path    string
	Created bool
}

// Init makes state (0700; its parent is made if missing) and each part
// of it. What exists is kept, and refused if it is a symbolic link,
// another user's or writable by others (securedir.Ensure): release keys
// and plugins are trusted for being there.
func Init(state string) ([]Made, error) {
	if err := os.MkdirAll(filepath.Dir(state), 0o755); err != nil {
		return nil, err
	}
	created, err := securedir.Ensure(state, 0o700, -1)
	if err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	made := []Made{{state, created}}
	for _, d := range dirs {
		p := filepath.Join(state, d.name)
		created, err := securedir.Ensure(p, d.mode, -1)
		if err != nil {
			return made, fmt.Errorf("state directory: %w", err)
		}
		made = append(made, Made{p, created})
	}
	return made, nil
}

// NeedDir returns nil if dir exists, else an error naming what is
// missing (what) and how to make it: `tracebroker init`, with --state
// when state is not the default.
func NeedDir(state, dir, what string) error {
	_, err := os.Stat(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return &MissingError{Path: dir, What: what, State: state}
}

// MissingError is a part of the state directory that is not there.
type MissingError struct {
	Path, What, State string
}

// DefaultState is where init makes the state unless told otherwise; a
// fix names --state only for another.
const DefaultState = attest.DefaultStateDir

func (e *MissingError) Error() string {
	return fmt.Sprintf("%s %s does not exist: run `%s`", e.What, e.Path, InitCommand(e.State))
}

// InitCommand is the command that makes state.
func InitCommand(state string) string {
	if state == "" || filepath.Clean(state) == DefaultState {
		return "tracebroker init"
	}
	return "tracebroker init --state " + state
}
