// refused.bpf.c: what tracebroker refuses to run from an object: a
// program that is not a tracing program (XDP) and a map pinned by name,
// which would outlive the trace. Built by make testobjects.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} pinned SEC(".maps");

SEC("xdp")
int pass(struct xdp_md *ctx)
{
	__u32 k = 0;
	__u64 *v = bpf_map_lookup_elem(&pinned, &k);
	if (v)
		*v += 1;
	return XDP_PASS;
}
