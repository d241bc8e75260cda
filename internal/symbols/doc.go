// Package symbols turns kernel and user-space addresses into symbols the
// way bpftrace 0.17 does through libbcc 0.26, so that kstack, ustack,
// ksym and usym print byte for byte as bpftrace prints them.
//
// Kernel addresses resolve through a snapshot of /proc/kallsyms (Kernel),
// user addresses through /proc/PID/maps and the symbol tables of the
// mapped files (User). Name, Frame and Stack format what bpftrace prints,
// including "0x..." for what does not resolve, so that callers need not
// know its conventions.
//
// Where several symbols share an address (aliases such as __getpid and
// getpid), bcc reports whichever its std::sort leaves last, which depends
// on the whole table; the tables here are sorted with the same algorithm
// so as to pick the same name (see package cxxsort).
//
// Not reproduced: C++ demangling (bpftrace prints demangled names; Name
// here is the symbol as stored, "_ZN3foo3barEv"), and symbols of files
// inside zip or apk archives. vDSO frames stay unresolved, as they do in
// bpftrace 0.17 with libbcc 0.26.
package symbols

// Symbol is a resolved address.
type Symbol struct {
	Name   string // symbol name ("vfs_read", "add_one")
	Offset uint64 // addr - symbol start
	// Module is, for a user address, the path of the mapped file as
	// /proc/PID/maps shows it ("/usr/lib/x86_64-linux-gnu/libc.so.6"),
	// or of the perf map that named a JIT-compiled symbol; for a kernel
	// address, the module in kallsyms ("ext4", "bpf"), "" for vmlinux.
	Module string
}
