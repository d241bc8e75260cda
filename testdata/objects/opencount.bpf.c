// opencount.bpf.c: opens counted per process and file name in a hash
// map, and in all in an array: an object whose only output is its maps.
// Its constants are set at load (run --set NAME=VALUE), as libbpf-tools
// set theirs: only the command targ_comm (all when empty), each open
// counted weight times. Built by make testobjects.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct key {
	__u32 tgid;
	char filename[64];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct key);
	__type(value, __u64);
} opens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} total SEC(".maps");

const volatile char targ_comm[16] = "";
const volatile __u64 weight = 1;

struct sys_enter_openat {
	__u64 common;
	__s64 id;
	__u64 dfd;
	const char *filename;
	__u64 flags;
	__u64 mode;
};

SEC("tracepoint/syscalls/sys_enter_openat")
int count_open(struct sys_enter_openat *ctx)
{
	struct key k = {.tgid = bpf_get_current_pid_tgid() >> 32};
	__u64 one = weight, *n;
	__u32 zero = 0;

	if (targ_comm[0]) {
		char comm[16];
		bpf_get_current_comm(comm, sizeof(comm));
		for (int i = 0; i < 16; i++) {
			if (comm[i] != targ_comm[i])
				return 0;
			if (!comm[i])
				break;
		}
	}

	bpf_probe_read_user_str(k.filename, sizeof(k.filename), ctx->filename);
	n = bpf_map_lookup_elem(&opens, &k);
	if (n)
		__sync_fetch_and_add(n, weight);
	else
		bpf_map_update_elem(&opens, &k, &one, BPF_NOEXIST);
	n = bpf_map_lookup_elem(&total, &zero);
	if (n)
		*n += weight;
	return 0;
}
