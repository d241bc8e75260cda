// Test object for interp.LoadELF: two programs using an array map, an
// atomic add and a global variable, plus one that uses a map type the
// interpreter does not support.
//
// Build (clang 14 used for the committed counter.o):
//
//	clang -O2 -g -target bpf -c counter.c -o counter.o
//
// -g is needed: the maps are BTF-defined (SEC(".maps")). No libbpf
// headers are used, so nothing but clang is needed.

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

typedef unsigned int __u32;
typedef unsigned long long __u64;

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

struct {
	__uint(type, 2); // BPF_MAP_TYPE_ARRAY
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, 4); // BPF_MAP_TYPE_PERF_EVENT_ARRAY
	__uint(max_entries, 4);
	__uint(key_size, 4);
	__uint(value_size, 4);
} events SEC(".maps");

// In .data: LoadELF must give the map its initial value.
__u64 calls = 7;

char _license[] SEC("license") = "GPL";

// count adds 5 to counts[2] and returns 42.
SEC("xdp")
int count(void *ctx)
{
	__u32 key = 2;
	__u64 *v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 5);
	return 42;
}

// globals increments the global and returns it: 8, 9, ...
SEC("xdp")
int globals(void *ctx)
{
	calls++;
	return calls;
}

// perf uses a perf event array, which the interpreter refuses.
SEC("xdp")
int perf(void *ctx)
{
	__u32 key = 0;
	return bpf_map_lookup_elem(&events, &key) != 0;
}
