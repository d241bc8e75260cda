package btftp

import (
	"sync"

	"github.com/cilium/ebpf/btf"
)

// enumValues indexes the kernel's enum constants by name, built the first
// time a script names one: walking every type of vmlinux takes a while.
var enumValues struct {
	once   sync.Once
	values map[string]int64
	err    error
}

// EnumValue is the value of the kernel's enum constant name (BTF_VAR_STATIC),
// as bpftrace resolves an identifier no script name matches. The first
// enum to define a name gives its value.
func EnumValue(name string) (int64, bool, error) {
	enumValues.once.Do(func() {
		spec, err := loadSpec()
		if err != nil {
			enumValues.err = err
			return
		}
		kernel.mu.Lock()
		defer kernel.mu.Unlock()
		values := map[string]int64{}
		for t, err := range spec.All() {
			if err != nil {
				enumValues.err = err
				return
			}
			e, ok := t.(*btf.Enum)
			if !ok {
				continue
			}
			for _, v := range e.Values {
				if _, seen := values[v.Name]; !seen {
					values[v.Name] = int64(v.Value)
				}
			}
		}
		enumValues.values = values
	})
	if enumValues.err != nil {
		return 0, false, enumValues.err
	}
	v, ok := enumValues.values[name]
	return v, ok, nil
}
