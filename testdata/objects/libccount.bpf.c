// libccount.bpf.c: calls of libc's strverscmp counted per process, on
// entry (uprobe) in a per-CPU hash, with its first argument's string as a
// ring buffer record, and on return (uretprobe) as records through a perf
// event array; both record types ride on their maps' declarations
// (__type(value, ...), tracebroker's convention). Also counts getppid(2)
// per process from the raw sys_enter tracepoint. Built by make
// testobjects.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

struct ret {
	__u32 tgid;
	__s32 result;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__type(value, struct ret);
} returns SEC(".maps");

struct arg {
	__u32 tgid;
	char s1[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
	__type(value, struct arg);
} args SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u64);
} getppids SEC(".maps");

static void add(void *map, __u32 tgid)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(map, &tgid);
	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(map, &tgid, &one, BPF_NOEXIST);
}

struct regs {
	unsigned long r15, r14, r13, r12, bp, bx, r11, r10, r9, r8, ax, cx, dx, si, di;
};

SEC("uprobe//lib/x86_64-linux-gnu/libc.so.6:strverscmp")
int strverscmp_enter(struct regs *ctx)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct arg *a;

	add(&calls, tgid);
	a = bpf_ringbuf_reserve(&args, sizeof(*a), 0);
	if (!a)
		return 0;
	a->tgid = tgid;
	bpf_probe_read_user_str(a->s1, sizeof(a->s1), (const char *)ctx->di);
	bpf_ringbuf_submit(a, 0);
	return 0;
}

SEC("uretprobe//lib/x86_64-linux-gnu/libc.so.6:strverscmp")
int strverscmp_return(struct regs *ctx)
{
	struct ret r = {.tgid = bpf_get_current_pid_tgid() >> 32, .result = (__s32)ctx->ax};
	bpf_perf_event_output(ctx, &returns, BPF_F_CURRENT_CPU, &r, sizeof(r));
	return 0;
}

SEC("raw_tracepoint/sys_enter")
int sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (ctx->args[1] == 110) /* __NR_getppid on x86-64 */
		add(&getppids, bpf_get_current_pid_tgid() >> 32);
	return 0;
}
