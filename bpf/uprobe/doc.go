// Package uprobe resolves and opens user-space probes, bpftrace 0.17's
// `uprobe:PATH:FUNC` and `uretprobe:PATH:FUNC`.
//
// A front end resolves an attach point in three steps: FindBinary turns
// PATH into a file as bpftrace does (a PATH lookup for a bare name), Match
// expands FUNC (a name or a '*' wildcard) to function symbols with the file
// offsets the kernel wants, and AddressOffset does the same for a numeric
// `uprobe:PATH:0xADDR`. List prints what `bpftrace -l 'uprobe:PATH:FUNC'`
// prints. Open then opens the probe as a perf event of the kernel's uprobe
// PMU; the caller sets a BPF program on it with PERF_EVENT_IOC_SET_BPF and
// enables it, so that, as for tracepoints, the perf event is the only
// handle and detaching is a single close.
//
// A broker opens each file once instead (OpenTarget): an O_PATH
// descriptor whose symbols are read through /proc/self/fd/N and which is
// attached through that same path, so that what was checked and read is
// what is probed, however the file's name changes meanwhile; under a
// Scope, the path is walked a component at a time and no symlink is
// followed to where the scope does not reach.
//
// Symbols are read the way bpftrace reads them through libbcc: every
// function symbol (STT_FUNC or STT_GNU_IFUNC with a name and a nonzero
// value) of the file's .dynsym and .symtab, and of its separate debug
// file when one is installed (/usr/lib/debug/.build-id/xx/yyyy.debug, else
// the .gnu_debuglink file with a matching CRC), which is how
// `bpftrace -l 'uprobe:/lib/x86_64-linux-gnu/libc.so.6:*'` shows libc's
// static functions when libc6-dbg is installed.
package uprobe
