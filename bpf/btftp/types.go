package btftp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf/btf"
)

// Type returns the running kernel's struct, union or enum named name
// (kind "struct", "union" or "enum"), or its typedef (kind ""), from the
// BTF that tp_btf probes use, read once. An unknown name is an error
// wrapping btf.ErrNotFound.
//
// The types returned are fully decoded and never changed: callers may
// read them from any goroutine.
func Type(kind, name string) (btf.Type, error) {
	spec, err := loadSpec()
	if err != nil {
		if kernel.missing {
			return nil, errors.New("struct access needs the kernel's BTF type information (/sys/kernel/btf/vmlinux), which this kernel does not provide")
		}
		return nil, err
	}
	kernel.mu.Lock()
	defer kernel.mu.Unlock()
	ts, err := spec.AnyTypesByName(name)
	if err != nil && !errors.Is(err, btf.ErrNotFound) {
		return nil, err
	}
	// vmlinux's BTF is deduplicated, but a name may still have several
	// types of a kind (and forward declarations, which are another
	// kind): the first is what the kernel's own code most likely means.
	for _, t := range ts {
		if kindOf(t) == kind {
			return t, nil
		}
	}
	return nil, fmt.Errorf("%w: %s %s", btf.ErrNotFound, kind, name)
}

// kindOf is the C keyword naming t's kind, "" for a typedef, "?" else.
func kindOf(t btf.Type) string {
	switch t.(type) {
	case *btf.Struct:
		return "struct"
	case *btf.Union:
		return "union"
	case *btf.Enum:
		return "enum"
	case *btf.Typedef:
		return ""
	}
	return "?"
}
