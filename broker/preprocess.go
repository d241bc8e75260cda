package broker

import (
	"os"
	"sync"

	"github.com/tracebroker/tracebroker/broker/script/cpp"
)

// haveBTF reports whether the kernel describes its types in BTF: its
// headers are then satisfied by it, as bpftrace takes them.
var haveBTF = sync.OnceValue(func() bool {
	_, err := os.Stat("/sys/kernel/btf/vmlinux")
	return err == nil
})

// cppOptions says what the script's #include may read. Only the CLI
// sets HostHeaders: through the daemon, a token holder's #include would
// otherwise read the broker's files, or learn which exist; it gets the
// built-in headers and the kernel's, which BTF satisfies.
func (req *Request) cppOptions() cpp.Options {
	return cpp.Options{Includes: req.Includes, Host: req.HostHeaders, BTF: haveBTF()}
}
