// opensnoop.bpf.c: every openat(2) as a record, and a count per process
// and file. A program-only object for tracebroker's tests: built by
// `make testobjects` (clang -target bpf), committed so that tests need no
// clang. The ring buffer names its record type with __type(value, ...),
// tracebroker's convention (README: Program-only objects).
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define NAME_LEN 64

struct event {
	__u32 pid;
	__u32 tgid;
	char comm[16];
	char filename[NAME_LEN];
};

struct key {
	__u32 tgid;
	char filename[NAME_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 18);
	__type(value, struct event);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct key);
	__type(value, __u64);
} opens SEC(".maps");

// The tracepoint's record (tracefs format of syscalls:sys_enter_openat).
struct sys_enter_openat {
	__u64 common;
	__s64 id;
	__u64 dfd;
	const char *filename;
	__u64 flags;
	__u64 mode;
};

SEC("tracepoint/syscalls/sys_enter_openat")
int openat_enter(struct sys_enter_openat *ctx)
{
	struct key k = {};
	__u64 one = 1, *n;
	__u64 id = bpf_get_current_pid_tgid();

	k.tgid = id >> 32;
	bpf_probe_read_user_str(k.filename, sizeof(k.filename), ctx->filename);
	n = bpf_map_lookup_elem(&opens, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&opens, &k, &one, BPF_NOEXIST);

	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e)
		return 0;
	e->pid = (__u32)id;
	e->tgid = id >> 32;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	__builtin_memcpy(e->filename, k.filename, sizeof(e->filename));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
