package uprobe

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// ldCacheBytes builds a loader cache of entries (flags, soname, path).
func ldCacheBytes(entries [][3]any) []byte {
	le := binary.LittleEndian
	b := []byte(ldCacheMagic)
	b = le.AppendUint32(b, uint32(len(entries)))
	b = le.AppendUint32(b, 0) // len_strings
	b = append(b, 0, 0, 0, 0)
	b = le.AppendUint32(b, 0)
	b = append(b, make([]byte, 12)...)
	strs := 48 + 24*len(entries)
	var tail []byte
	for _, e := range entries {
		key := strs + len(tail)
		tail = append(append(tail, e[1].(string)...), 0)
		val := strs + len(tail)
		tail = append(append(tail, e[2].(string)...), 0)
		b = le.AppendUint32(b, e[0].(uint32))
		b = le.AppendUint32(b, uint32(key))
		b = le.AppendUint32(b, uint32(val))
		b = le.AppendUint32(b, 0)
		b = le.AppendUint64(b, 0)
	}
	return append(b, tail...)
}

func TestFindLibrary(t *testing.T) {
	dir := t.TempDir()
	lib := filepath.Join(dir, "libfoo.so.1")
	lib32 := filepath.Join(dir, "libfoo32.so.1")
	for _, p := range []string{lib, lib32} {
		if err := os.WriteFile(p, append(append([]byte("\x7fELF\x02\x01\x01"), make([]byte, 9)...), 3, 0), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(dir, "ld.so.cache")
	os.WriteFile(cache, ldCacheBytes([][3]any{
		{uint32(0x0003), "libfoo.so.1", lib32}, // 32-bit: not this ABI
		{uint32(0x0303), "libfoo.so.1", lib},
		{uint32(0x0303), "libbar.so.2", filepath.Join(dir, "gone.so")},
	}), 0o644)
	old := ldCache
	ldCache = cache
	defer func() { ldCache = old }()
	for _, tc := range []struct {
		name, want string
		ok         bool
	}{
		{"libfoo", lib, true},
		{"foo", lib, true},
		{"libbar", "", false}, // its file is gone
		{"nosuch", "", false},
		{"lib/foo", "", false},
	} {
		got, ok := findLibrary(tc.name)
		if got != tc.want || ok != tc.ok {
			t.Errorf("findLibrary(%q) = %q, %v; want %q, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}
	// A cache cut short or lying about its count reads as empty.
	b := ldCacheBytes([][3]any{{uint32(0x0303), "libfoo.so.1", lib}})
	for _, cut := range [][]byte{b[:30], b[:60]} {
		if e := readLDCache(cut); len(e) != 0 {
			t.Errorf("a cache of %d bytes: %v", len(cut), e)
		}
	}
}
