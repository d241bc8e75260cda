package symbols

import (
	"strings"
	"testing"
)

// TestMappedFiles: the files mapped executable, once each, a name with
// blanks whole; data mappings and anonymous memory are not files to
// search.
func TestMappedFiles(t *testing.T) {
	maps := `00400000-00401000 r--p 00000000 08:01 11 /usr/bin/app
00401000-00402000 r-xp 00001000 08:01 11 /usr/bin/app
7f0000000000-7f0000001000 r-xp 00000000 08:01 12 /opt/my dir/libx.so
7f0000001000-7f0000002000 r-xp 00000000 08:01 12 /opt/my dir/libx.so
7f0000002000-7f0000003000 rw-p 00000000 08:01 13 /usr/lib/locale/archive
7f0000003000-7f0000004000 r-xp 00000000 00:00 0 
7ffd00000000-7ffd00001000 rw-p 00000000 00:00 0 [stack]
`
	got := strings.Join(MappedFiles(maps), "|")
	if want := "/usr/bin/app|/opt/my dir/libx.so"; got != want {
		t.Errorf("MappedFiles = %q, want %q", got, want)
	}
}
