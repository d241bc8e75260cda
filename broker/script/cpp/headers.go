package cpp

import (
	"sort"
	"strings"
)

type define struct {
	Name  string
	Value int
}

// builtinHeaders are the system headers whose macros scripts use, built
// in because their real text is libc's C, which no parser here reads:
// errno.h for strerror(EPERM), and the address families of
// sys/socket.h, which bpftrace's own tools include under BTF.
var builtinHeaders = map[string]func() []define{
	"errno.h":                  errnoDefines,
	"sys/errno.h":              errnoDefines,
	"linux/errno.h":            errnoDefines,
	"asm/errno.h":              errnoDefines,
	"asm-generic/errno.h":      errnoDefines,
	"asm-generic/errno-base.h": errnoDefines,
	"sys/socket.h":             socketDefines,
	"linux/socket.h":           socketDefines,
	"bits/socket.h":            socketDefines,
	"linux/sched.h":            schedDefines,
}

func builtinNames() []string {
	var names []string
	for n := range builtinHeaders {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func errnoDefines() []define {
	out := make([]define, len(errnoMacros))
	for i, m := range errnoMacros {
		out[i] = define(m)
	}
	return out
}

// socketFamilies are Linux's address families (include/linux/socket.h).
var socketFamilies = []define{
	{"UNSPEC", 0}, {"UNIX", 1}, {"LOCAL", 1}, {"INET", 2}, {"AX25", 3},
	{"IPX", 4}, {"APPLETALK", 5}, {"NETROM", 6}, {"BRIDGE", 7},
	{"ATMPVC", 8}, {"X25", 9}, {"INET6", 10}, {"ROSE", 11}, {"DECnet", 12},
	{"NETBEUI", 13}, {"SECURITY", 14}, {"KEY", 15}, {"NETLINK", 16},
	{"ROUTE", 16}, {"PACKET", 17}, {"ASH", 18}, {"ECONET", 19},
	{"ATMSVC", 20}, {"RDS", 21}, {"SNA", 22}, {"IRDA", 23}, {"PPPOX", 24},
	{"WANPIPE", 25}, {"LLC", 26}, {"IB", 27}, {"MPLS", 28}, {"CAN", 29},
	{"TIPC", 30}, {"BLUETOOTH", 31}, {"IUCV", 32}, {"RXRPC", 33},
	{"ISDN", 34}, {"PHONET", 35}, {"IEEE802154", 36}, {"CAIF", 37},
	{"ALG", 38}, {"NFC", 39}, {"VSOCK", 40}, {"KCM", 41}, {"QIPCRTR", 42},
	{"SMC", 43}, {"XDP", 44}, {"MCTP", 45}, {"MAX", 46},
}

func socketDefines() []define {
	var out []define
	for _, f := range socketFamilies {
		out = append(out, define{"AF_" + f.Name, f.Value}, define{"PF_" + f.Name, f.Value})
	}
	return append(out,
		define{"SOCK_STREAM", 1}, define{"SOCK_DGRAM", 2}, define{"SOCK_RAW", 3},
		define{"SOCK_RDM", 4}, define{"SOCK_SEQPACKET", 5}, define{"SOCK_DCCP", 6},
		define{"SOCK_PACKET", 10},
	)
}

// schedDefines are the macros of the kernel's linux/sched.h that scripts
// use, which BTF does not carry: the task states (runqlat.bt compares
// prev_state with TASK_RUNNING), and from its uapi part the clone flags
// and scheduling policies. Only the states whose values have not moved
// since Linux 4.14 are here; TASK_STOPPED, TASK_TRACED and TASK_REPORT
// changed between kernels and are left to a script to spell out.
func schedDefines() []define {
	return []define{
		{"TASK_RUNNING", 0x0}, {"TASK_INTERRUPTIBLE", 0x1}, {"TASK_UNINTERRUPTIBLE", 0x2},
		{"__TASK_STOPPED", 0x4}, {"__TASK_TRACED", 0x8}, {"EXIT_DEAD", 0x10},
		{"EXIT_ZOMBIE", 0x20}, {"EXIT_TRACE", 0x30}, {"TASK_PARKED", 0x40},
		{"TASK_DEAD", 0x80}, {"TASK_WAKEKILL", 0x100}, {"TASK_WAKING", 0x200},
		{"TASK_NOLOAD", 0x400}, {"TASK_NEW", 0x800},
		{"TASK_KILLABLE", 0x102}, {"TASK_IDLE", 0x402}, {"TASK_NORMAL", 0x3},
		{"CSIGNAL", 0xff}, {"CLONE_VM", 0x100}, {"CLONE_FS", 0x200},
		{"CLONE_FILES", 0x400}, {"CLONE_SIGHAND", 0x800}, {"CLONE_PIDFD", 0x1000},
		{"CLONE_PTRACE", 0x2000}, {"CLONE_VFORK", 0x4000}, {"CLONE_PARENT", 0x8000},
		{"CLONE_THREAD", 0x10000}, {"CLONE_NEWNS", 0x20000}, {"CLONE_SYSVSEM", 0x40000},
		{"CLONE_SETTLS", 0x80000}, {"CLONE_PARENT_SETTID", 0x100000},
		{"CLONE_CHILD_CLEARTID", 0x200000}, {"CLONE_DETACHED", 0x400000},
		{"CLONE_UNTRACED", 0x800000}, {"CLONE_CHILD_SETTID", 0x1000000},
		{"CLONE_NEWCGROUP", 0x2000000}, {"CLONE_NEWUTS", 0x4000000},
		{"CLONE_NEWIPC", 0x8000000}, {"CLONE_NEWUSER", 0x10000000},
		{"CLONE_NEWPID", 0x20000000}, {"CLONE_NEWNET", 0x40000000}, {"CLONE_IO", 0x80000000},
		{"SCHED_NORMAL", 0}, {"SCHED_FIFO", 1}, {"SCHED_RR", 2}, {"SCHED_BATCH", 3},
		{"SCHED_IDLE", 5}, {"SCHED_DEADLINE", 6},
	}
}

// btfPrefixes are the kernel's header trees: what a script includes from
// them is its types (and their enums), which come from the kernel's BTF,
// as they do for bpftrace on a kernel with BTF.
var btfPrefixes = []string{"linux/", "net/", "uapi/", "asm/", "asm-generic/", "trace/", "scsi/", "crypto/", "xen/", "kvm/", "sound/", "rdma/", "video/", "acpi/", "drm/", "keys/", "clocksource/", "dt-bindings/", "misc/", "vdso/", "ras/", "media/", "pcmcia/", "target/"}

// btfHeader reports whether name is a kernel header, satisfied by BTF.
func btfHeader(name string) bool {
	if !strings.HasSuffix(name, ".h") || strings.Contains(name, "..") {
		return false
	}
	for _, p := range btfPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
