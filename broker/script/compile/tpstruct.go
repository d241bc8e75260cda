package compile

import (
	"strings"
)

// A tracepoint's pointer field declared as a pointer to a struct or union
// (struct __kernel_timespec * rqtp, struct napi_struct * napi) points to
// the kernel's type of that name, as bpftrace 0.17 types it through BTF:
// args->rqtp->tv_sec reads the field. A syscall's pointer points into the
// calling process (read with probe_read_user, read:user), any other into
// the kernel (read:kernel, and in interpreter mode a chain the collector
// follows from the field).

// tpPointer types the pointer field f.
func (c *compiler) tpPointer(f *Field, user bool) ty {
	t := pointerType(f.Type, user)
	if t.depth != 1 {
		return t
	}
	words := strings.Fields(strings.NewReplacer("*", " ", "const", " ", "volatile", " ").Replace(f.Type))
	if len(words) != 2 || (words[0] != "struct" && words[0] != "union") {
		return t
	}
	rec, err := c.lookupRecord(words[0] + " " + words[1])
	if err != nil {
		// Without the kernel's types it stays the integer it was.
		return t
	}
	t.bt, t.esize = rec, 0
	return t
}
