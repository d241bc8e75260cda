// example_policy.c: a gatekeeper policy written in C and built with clang,
// to show that the gatekeeper loads clang-built policies as it loads the
// ones `tracebroker gatekeeper compile` writes (package
// gatekeeper/policyelf). Its context is the gatekeeper Request
// (gatekeeper/abi, documented in gatekeeper/ABI.md), declared below with
// the same offsets; the _Static_asserts keep it so, and the policyelf
// tests check them against abi.Fields.
//
// Build (clang 14 used for the committed example_policy.o), in this
// directory:
//
//	clang -O2 -g -target bpf -c example_policy.c -o example_policy.o
//
// -g is needed: trusted_keys is a BTF-defined map (SEC(".maps")), as
// libbpf declares maps today. No libbpf headers are used: SEC, __uint and
// __type are defined here, so nothing but clang is needed.
//
// The policy:
//   - uid 0                                      -> any (3)
//   - broker_verified and covers == 4
//     (source-of-program: a verified generator)  -> interpreter (1)
//   - program_signed and program_signer is in
//     trusted_keys with the release role (1<<4)  -> any (3)
//   - anything else                              -> deny (0)

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name
#define offsetof(type, member) __builtin_offsetof(type, member)

typedef unsigned char __u8;
typedef unsigned int __u32;
typedef unsigned long long __u64;

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;

// Verdicts (abi.Deny, abi.Interpreter, abi.JIT, abi.Any).
#define VERDICT_DENY 0
#define VERDICT_INTERPRETER 1
#define VERDICT_JIT 2
#define VERDICT_ANY 3

#define COVERS_SOURCE_OF_PROGRAM 4 // abi.CoversSourceOfProgram
#define ROLE_RELEASE (1ULL << 4)   // abi.RoleRelease
#define KEY_ID_SIZE 72             // abi.KeyIDSize: 64 hex digits and a NUL

// struct gatekeeper_request is abi.Fields, version 1, in order. Integers
// are naturally aligned, so C lays it out exactly as abi does.
struct gatekeeper_request {
	__u32 abi_version;
	__u8 form;
	__u8 covers;
	__u8 hvci;
	__u8 jit_available;
	__u8 kernel_interpreter;
	__u8 program_signed;
	__u8 broker_verified;
	__u8 generator_verified;
	__u8 token_present;
	__u32 uid;
	__u32 gid;
	__u32 insn_count;
	__u64 token_scope;
	__u64 helpers0;
	__u64 helpers1;
	__u64 helpers2;
	__u64 helpers3;
	char program_type[32];
	char attach[128];
	char program_signer[KEY_ID_SIZE];
	char broker_digest[80];
	char broker_signer[KEY_ID_SIZE];
	char generator_digest[80];
	char generator_signer[KEY_ID_SIZE];
	char generator[64];
	char token_subject[128];
	char artifact[256];
};

// The offsets of abi.Fields (TestClangExampleLayout reads these lines).
_Static_assert(offsetof(struct gatekeeper_request, abi_version) == 0, "abi_version");
_Static_assert(offsetof(struct gatekeeper_request, form) == 4, "form");
_Static_assert(offsetof(struct gatekeeper_request, covers) == 5, "covers");
_Static_assert(offsetof(struct gatekeeper_request, program_signed) == 9, "program_signed");
_Static_assert(offsetof(struct gatekeeper_request, broker_verified) == 10, "broker_verified");
_Static_assert(offsetof(struct gatekeeper_request, token_present) == 12, "token_present");
_Static_assert(offsetof(struct gatekeeper_request, uid) == 16, "uid");
_Static_assert(offsetof(struct gatekeeper_request, token_scope) == 32, "token_scope");
_Static_assert(offsetof(struct gatekeeper_request, helpers3) == 64, "helpers3");
_Static_assert(offsetof(struct gatekeeper_request, program_type) == 72, "program_type");
_Static_assert(offsetof(struct gatekeeper_request, program_signer) == 232, "program_signer");
_Static_assert(offsetof(struct gatekeeper_request, artifact) == 800, "artifact");
_Static_assert(sizeof(struct gatekeeper_request) == 1056, "size");

// The map key: a key id, NUL-padded to KEY_ID_SIZE bytes.
struct key_id {
	char id[KEY_ID_SIZE];
} __attribute__((aligned(8)));

// trusted_keys: key id -> role bits (abi.RoleBroker ... abi.RoleRelease).
struct {
	__uint(type, 1); // BPF_MAP_TYPE_HASH
	__uint(max_entries, 1024);
	__type(key, struct key_id);
	__type(value, __u64);
} trusted_keys SEC(".maps");

char _license[] SEC("license") = "GPL";

SEC("gatekeeper")
int gatekeeper_policy(struct gatekeeper_request *req)
{
	if (req->uid == 0)
		return VERDICT_ANY;
	if (req->broker_verified && req->covers == COVERS_SOURCE_OF_PROGRAM)
		return VERDICT_INTERPRETER;
	if (req->program_signed) {
		struct key_id key;
		// program_signer is at 232, a multiple of 8: copy it in words.
		__builtin_memcpy(&key, __builtin_assume_aligned(req->program_signer, 8), sizeof(key));
		__u64 *roles = bpf_map_lookup_elem(&trusted_keys, &key);
		if (roles && (*roles & ROLE_RELEASE))
			return VERDICT_ANY;
	}
	return VERDICT_DENY;
}
