// Package version says which build of tracebroker this is: what signed
// manifests name and attestations record.
package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"time"
)

// Version is set at release time:
//
//	go build -ldflags "-X github.com/tracebroker/tracebroker/internal/version.Version=v0.3.0"
//
// Unset, the build is named by the VCS revision Go stamps into it.
var Version string

// Info is what a build knows of itself.
type Info struct {
	Version   string    // a release's (-ldflags) or the module's version; "" for a development build
	Revision  string    // vcs.revision, "" when the build has none
	Time      time.Time // vcs.time: the revision's commit time
	Modified  bool      // vcs.modified: built from a tree with changes
	GoVersion string    // the toolchain's, e.g. go1.26.8
}

// revLen is how much of a revision names it: as git's short form.
const revLen = 7

// Name is the build's version: the release's, or for a development
// build "devel-" and its revision ("devel-abc1234+dirty"). Only a build
// with neither (go test's binaries, a tree without git) is "devel".
func (i Info) Name() string {
	if i.Version != "" {
		return i.Version
	}
	if i.Revision == "" {
		return "devel"
	}
	return "devel-" + i.short()
}

func (i Info) short() string {
	r := i.Revision
	if len(r) > revLen {
		r = r[:revLen]
	}
	if i.Modified {
		r += "+dirty"
	}
	return r
}

// Long is what `tracebroker version` prints: the name and, in
// parentheses, the revision, its date and the Go that built it:
//
//	tracebroker v0.3.0 (abc1234, 2026-12-05, go1.26.8)
//	tracebroker devel-abc1234+dirty (abc1234+dirty, 2026-12-05, go1.26.8)
//	tracebroker devel (no VCS revision in this build, go1.26.8)
func (i Info) Long() string {
	var parts []string
	if i.Revision != "" {
		parts = append(parts, i.short())
	} else {
		parts = append(parts, "no VCS revision in this build")
	}
	if !i.Time.IsZero() {
		parts = append(parts, i.Time.UTC().Format(time.DateOnly))
	}
	if i.GoVersion != "" {
		parts = append(parts, i.GoVersion)
	}
	return "tracebroker " + i.Name() + " (" + strings.Join(parts, ", ") + ")"
}

// FromBuildInfo reads what Go stamped into the binary; release is the
// -ldflags Version, which wins over the module's.
func FromBuildInfo(bi *debug.BuildInfo, ok bool, release string) Info {
	i := Info{Version: release, GoVersion: runtime.Version()}
	if !ok {
		return i
	}
	if bi.GoVersion != "" {
		i.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			i.Revision = s.Value
		case "vcs.time":
			i.Time, _ = time.Parse(time.RFC3339, s.Value)
		case "vcs.modified":
			i.Modified = s.Value == "true"
		}
	}
	// A module built as a dependency (go install ...@v0.3.0) has its
	// version; the main module of a checkout has "(devel)" or, since Go
	// 1.24, a pseudo-version made of the revision, which Name says
	// better.
	if v := bi.Main.Version; i.Version == "" && v != "" && v != "(devel)" && !isPseudo(v) {
		i.Version = v
	}
	return i
}

// isPseudo reports a pseudo-version (v0.0.0-20261205120000-abcdef123456,
// perhaps +dirty): a revision, not a release.
func isPseudo(v string) bool {
	v, _, _ = strings.Cut(v, "+")
	parts := strings.Split(v, "-")
	if len(parts) < 3 {
		return false
	}
	ts, rev := parts[len(parts)-2], parts[len(parts)-1]
	ts = ts[strings.LastIndexByte(ts, '.')+1:]
	return len(ts) == 14 && len(rev) == 12 && isDigits(ts)
}

func isDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

var current = sync.OnceValue(func() Info {
	bi, ok := debug.ReadBuildInfo()
	return FromBuildInfo(bi, ok, Version)
})

// Current is this build's.
func Current() Info { return current() }

// String is the version of this build (Info.Name).
func String() string { return current().Name() }
