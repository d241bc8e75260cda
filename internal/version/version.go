// Package version says which build of tracebroker this is: what signed
// manifests name and attestations record.
package version

import (
	"runtime/debug"
	"sync"
)

// Version is set at release time:
//
//	go build -ldflags "-X github.com/tracebroker/tracebroker/internal/version.Version=v0.3.0"
//
// Unset, String falls back to the VCS revision Go stamps into the build.
var Version string

var fallback = sync.OnceValue(func() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	rev, dirty := "", false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	if rev == "" {
		return "devel"
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if dirty {
		rev += "-dirty"
	}
	return "devel-" + rev
})

// String is the version of this build.
func String() string {
	if Version != "" {
		return Version
	}
	return fallback()
}
