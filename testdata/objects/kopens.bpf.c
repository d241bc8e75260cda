// kopens.bpf.c: opens counted per process and file name, from a kprobe
// and from fentry on the same kernel function, each into its own map; the
// kernels of the VM matrix run it (this host has neither). Built by make
// testobjects.
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
} kprobe_opens SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, struct key);
	__type(value, __u64);
} fentry_opens SEC(".maps");

static void count(void *map, const char *filename)
{
	struct key k = {.tgid = bpf_get_current_pid_tgid() >> 32};
	__u64 one = 1, *n;

	bpf_probe_read_user_str(k.filename, sizeof(k.filename), filename);
	n = bpf_map_lookup_elem(map, &k);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(map, &k, &one, BPF_NOEXIST);
}

struct regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
};

/* long do_sys_openat2(int dfd, const char __user *filename, struct open_how *how) */
SEC("kprobe/do_sys_openat2")
int kprobe_openat2(struct regs *ctx)
{
	count(&kprobe_opens, (const char *)ctx->si);
	return 0;
}

SEC("fentry/do_sys_openat2")
int fentry_openat2(unsigned long long *ctx)
{
	count(&fentry_opens, (const char *)ctx[1]);
	return 0;
}
