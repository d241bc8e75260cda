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
	var err2 error
	var t btf.Type
	switch kind {
	case "struct":
		var s *btf.Struct
		err2, t = spec.TypeByName(name, &s), s
	case "union":
		var u *btf.Union
		err2, t = spec.TypeByName(name, &u), u
	case "enum":
		var e *btf.Enum
		err2, t = spec.TypeByName(name, &e), e
	case "":
		var td *btf.Typedef
		err2, t = spec.TypeByName(name, &td), td
	default:
		return nil, fmt.Errorf("%w: %s %s", btf.ErrNotFound, kind, name)
	}
	if err2 != nil {
		if errors.Is(err2, btf.ErrMultipleMatches) {
			// vmlinux's BTF is deduplicated: several types of one
			// name and kind differ, and the first complete one is
			// what the kernel's own code most likely means.
			return firstComplete(spec, kind, name)
		}
		return nil, err2
	}
	return t, nil
}

// firstComplete picks, among several types of one name, the first that is
// not a forward declaration.
func firstComplete(spec *btf.Spec, kind, name string) (btf.Type, error) {
	ts, err := spec.AnyTypesByName(name)
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		switch t.(type) {
		case *btf.Struct:
			if kind == "struct" {
				return t, nil
			}
		case *btf.Union:
			if kind == "union" {
				return t, nil
			}
		case *btf.Enum:
			if kind == "enum" {
				return t, nil
			}
		case *btf.Typedef:
			if kind == "" {
				return t, nil
			}
		}
	}
	return nil, fmt.Errorf("%w: %s %s", btf.ErrNotFound, kind, name)
}
