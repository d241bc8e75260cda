package version

import (
	"runtime/debug"
	"strings"
	"testing"
)

// TestVersion: a build names its release, or its revision; only a build
// with neither says devel, and says why. go test's binaries carry no VCS
// stamp, so the build info is made here.
func TestVersion(t *testing.T) {
	settings := func(kv ...string) []debug.BuildSetting {
		var s []debug.BuildSetting
		for i := 0; i < len(kv); i += 2 {
			s = append(s, debug.BuildSetting{Key: kv[i], Value: kv[i+1]})
		}
		return s
	}
	vcs := settings("vcs", "git", "vcs.revision", "abc1234def5678abc1234def5678abc1234def56", "vcs.time", "2026-12-05T18:04:05Z", "vcs.modified", "false")
	dirty := settings("vcs.revision", "abc1234def5678abc1234def5678abc1234def56", "vcs.time", "2026-12-05T23:59:59-02:00", "vcs.modified", "true")
	for _, tt := range []struct {
		name     string
		bi       *debug.BuildInfo
		ok       bool
		release  string
		wantName string
		wantLong string
	}{
		{"release_ldflags", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true, "v0.3.0",
			"v0.3.0", "tracebroker v0.3.0 (abc1234, 2026-12-05, go1.26.8)"},
		{"checkout", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: vcs}, true, "",
			"devel-abc1234", "tracebroker devel-abc1234 (abc1234, 2026-12-05, go1.26.8)"},
		{"checkout_dirty_time_in_utc", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: dirty}, true, "",
			"devel-abc1234+dirty", "tracebroker devel-abc1234+dirty (abc1234+dirty, 2026-12-06, go1.26.8)"},
		{"pseudo_version_is_a_revision", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261205180405-abc1234def56+dirty"}, Settings: dirty}, true, "",
			"devel-abc1234+dirty", "tracebroker devel-abc1234+dirty (abc1234+dirty, 2026-12-06, go1.26.8)"},
		{"go_install_at_version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.3.1"}}, true, "",
			"v0.3.1", "tracebroker v0.3.1 (no VCS revision in this build, go1.26.8)"},
		{"no_vcs", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true, "",
			"devel", "tracebroker devel (no VCS revision in this build, go1.26.8)"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			i := FromBuildInfo(tt.bi, tt.ok, tt.release)
			if got := i.Name(); got != tt.wantName {
				t.Errorf("Name %q, want %q", got, tt.wantName)
			}
			if got := i.Long(); got != tt.wantLong {
				t.Errorf("Long %q, want %q", got, tt.wantLong)
			}
		})
	}
	// Without build info at all, the toolchain is still named.
	if got := FromBuildInfo(nil, false, "").Long(); !strings.HasPrefix(got, "tracebroker devel (no VCS revision in this build, go1.") {
		t.Errorf("no build info: %q", got)
	}
}
