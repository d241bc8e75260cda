// hugemap.bpf.c: a hash map of 16M entries of 72 bytes, over a gigabyte
// of kernel memory: what the daemon refuses a token holder (its objects'
// maps are bounded as a script's are). Built by make testobjects.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 24);
	__type(key, __u64);
	__type(value, char[64]);
} huge SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int fill(void *ctx)
{
	__u64 k = bpf_get_current_pid_tgid();
	char v[64] = {};
	bpf_map_update_elem(&huge, &k, v, BPF_ANY);
	return 0;
}
