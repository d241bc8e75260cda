package uprobe

import (
	"bytes"
	"encoding/binary"
	"os"
	"strings"
)

// ldCache is the dynamic loader's cache of shared libraries, which
// bpftrace (through bcc) looks a library's short name up in:
// uprobe:libc:fread is /lib/x86_64-linux-gnu/libc.so.6.
var ldCache = "/etc/ld.so.cache"

// ldCacheMagic starts glibc's cache format (since 2.32 the only one).
const ldCacheMagic = "glibc-ld.so.cache1.1"

// The loader's flags for an x86-64 library of this ABI (ELF, libc6,
// 64-bit): FLAG_ELF_LIBC6 | FLAG_X8664_LIB64.
const (
	ldFlagTypeMask  = 0xff
	ldFlagELFLibc6  = 0x03
	ldFlagArchMask  = 0xff00
	ldFlagX8664Lib  = 0x0300
	ldCacheMaxBytes = 64 << 20
)

// findLibrary is the library a short name names in the loader's cache:
// "libc" or "c" is the first libc.so* entry for this architecture.
func findLibrary(name string) (string, bool) {
	if name == "" || strings.ContainsAny(name, "/*") {
		return "", false
	}
	b, err := os.ReadFile(ldCache)
	if err != nil || len(b) > ldCacheMaxBytes {
		return "", false
	}
	prefix := name
	if !strings.HasPrefix(prefix, "lib") {
		prefix = "lib" + prefix
	}
	prefix += ".so"
	for _, e := range readLDCache(b) {
		if strings.HasPrefix(e[0], prefix) && probeable(e[1]) {
			return e[1], true
		}
	}
	return "", false
}

// readLDCache returns the cache's x86-64 libraries: soname and path.
func readLDCache(b []byte) [][2]string {
	i := bytes.Index(b, []byte(ldCacheMagic))
	if i < 0 {
		return nil
	}
	b = b[i:]
	// Header: magic (20), nlibs, len_strings, flags (1) and 3 unused,
	// extension offset, 3 unused words: 48 bytes. Entries: flags, key,
	// value (string offsets from the header), osversion, hwcap: 24.
	const header, entry = 48, 24
	if len(b) < header {
		return nil
	}
	le := binary.LittleEndian
	n := int(le.Uint32(b[20:]))
	if n < 0 || n > (len(b)-header)/entry {
		return nil
	}
	str := func(off uint32) string {
		if int(off) >= len(b) {
			return ""
		}
		s := b[off:]
		if j := bytes.IndexByte(s, 0); j >= 0 {
			s = s[:j]
		}
		return string(s)
	}
	var out [][2]string
	for k := 0; k < n; k++ {
		e := b[header+k*entry:]
		flags := le.Uint32(e)
		if flags&ldFlagTypeMask != ldFlagELFLibc6 || flags&ldFlagArchMask != ldFlagX8664Lib {
			continue
		}
		out = append(out, [2]string{str(le.Uint32(e[4:])), str(le.Uint32(e[8:]))})
	}
	return out
}
