/* Generated from gatekeeper/abi by
 * go test ./gatekeeper -run TestABIDoc -update-abi-doc; do not edit.
 *
 * The context of a tracebroker gatekeeper policy: struct tb_request, ABI
 * version 1, little-endian, 1064 bytes, read-only. See gatekeeper/ABI.md.
 * Only fixed-size C types are used, so it needs no other header. */
#ifndef TRACEBROKER_GATEKEEPER_H
#define TRACEBROKER_GATEKEEPER_H

#define TB_ABI_VERSION 1
#define TB_REQUEST_SIZE 1064
#define TB_KEY_ID_SIZE 72 /* 64 hex digits, NUL-padded */

/* Verdicts: what a policy returns. */
#define TB_DENY 0
#define TB_INTERPRETER 1
#define TB_JIT 2
#define TB_ANY 3

/* Role bits: the values of trusted_keys. */
#define TB_ROLE_BROKER 0x1
#define TB_ROLE_GENERATOR 0x2
#define TB_ROLE_COLLECTOR 0x4
#define TB_ROLE_POLICY 0x8
#define TB_ROLE_RELEASE 0x10
#define TB_ROLE_PACKAGE 0x20
#define TB_ROLE_REPOSITORY 0x40

/* form */
#define TB_FORM_SOURCE 1
#define TB_FORM_BYTECODE 2
#define TB_FORM_PIC 3
#define TB_FORM_NATIVE 4

/* covers (0: unsigned) */
#define TB_COVERS_PROGRAM 1
#define TB_COVERS_PACKAGE 2
#define TB_COVERS_REPOSITORY 3
#define TB_COVERS_SOURCE_OF_PROGRAM 4

/* token_scope bits */
#define TB_SCOPE_TRACE 0x1
#define TB_SCOPE_PROBE 0x2
#define TB_SCOPE_GEN 0x4
#define TB_SCOPE_READ_KERNEL 0x8
#define TB_SCOPE_READ_USER 0x10

/* reads bits */
#define TB_READ_CONTEXT 0x1
#define TB_READ_USER_CONTEXT 0x2
#define TB_READ_USER 0x4
#define TB_READ_KERNEL 0x8
#define TB_READ_KERNEL_ADDRESS 0x10

struct tb_request {
	unsigned int abi_version; /* 0: ABI version (1) */
	unsigned char form; /* 4: 1 source, 2 bytecode, 3 pic, 4 native */
	unsigned char covers; /* 5: what the signature covers: 1 program, 2 package, 3 repository, 4 source-of-program; 0 unsigned */
	unsigned char hvci; /* 6: code integrity forbids new native code */
	unsigned char jit_available; /* 7: the kernel JIT is enabled */
	unsigned char kernel_interpreter; /* 8: the kernel has its eBPF interpreter */
	unsigned char program_signed; /* 9: the program carries a signature that verified */
	unsigned char broker_verified; /* 10: the submitting broker's binary verified against a trusted key */
	unsigned char generator_verified; /* 11: the generator (plugin) verified against a trusted key */
	unsigned char token_present; /* 12: the request came with a valid token */
	unsigned char _pad13[3];
	unsigned int uid; /* 16: requester uid */
	unsigned int gid; /* 20: requester gid */
	unsigned int insn_count; /* 24: instructions in the program */
	unsigned char _pad28[4];
	unsigned long long token_scope; /* 32: scope bits: 1 trace, 2 probe:, 4 gen:, 8 read:kernel, 16 read:user */
	unsigned long long helpers0; /* 40: helpers used: bit N for helper id N (0-63) */
	unsigned long long helpers1; /* 48: helper ids 64-127 */
	unsigned long long helpers2; /* 56: helper ids 128-191 */
	unsigned long long helpers3; /* 64: helper ids 192-255 */
	char program_type[32]; /* 72: probe kind: tracepoint, rawtracepoint, tp_btf, uprobe, uretprobe, kprobe, kretprobe, kfunc (fentry), kretfunc (fexit), profile, interval, begin, end */
	char attach[128]; /* 104: attach target as bpftrace names it (tracepoint:syscalls:sys_enter_openat) */
	char program_signer[72]; /* 232: key id that signed the program */
	char broker_digest[80]; /* 304: sha256:HEX of the broker binary */
	char broker_signer[72]; /* 384: key id that signed the broker */
	char generator_digest[80]; /* 456: sha256:HEX of the generator */
	char generator_signer[72]; /* 536: key id that signed the generator */
	char generator[64]; /* 608: generator name: script, or a plugin's name */
	char token_subject[128]; /* 672: the token's sub claim */
	char artifact[256]; /* 800: path of the artifact (program file, plugin binary) */
	unsigned long long reads; /* 1056: memory the program reads: 1 its context, 2 user memory through the context's pointers, 4 any user memory, 8 kernel memory, 16 kernel addresses */
};

_Static_assert(sizeof(struct tb_request) == TB_REQUEST_SIZE, "struct tb_request is not ABI version 1");
_Static_assert(__builtin_offsetof(struct tb_request, abi_version) == 0, "abi_version");
_Static_assert(__builtin_offsetof(struct tb_request, form) == 4, "form");
_Static_assert(__builtin_offsetof(struct tb_request, covers) == 5, "covers");
_Static_assert(__builtin_offsetof(struct tb_request, hvci) == 6, "hvci");
_Static_assert(__builtin_offsetof(struct tb_request, jit_available) == 7, "jit_available");
_Static_assert(__builtin_offsetof(struct tb_request, kernel_interpreter) == 8, "kernel_interpreter");
_Static_assert(__builtin_offsetof(struct tb_request, program_signed) == 9, "program_signed");
_Static_assert(__builtin_offsetof(struct tb_request, broker_verified) == 10, "broker_verified");
_Static_assert(__builtin_offsetof(struct tb_request, generator_verified) == 11, "generator_verified");
_Static_assert(__builtin_offsetof(struct tb_request, token_present) == 12, "token_present");
_Static_assert(__builtin_offsetof(struct tb_request, uid) == 16, "uid");
_Static_assert(__builtin_offsetof(struct tb_request, gid) == 20, "gid");
_Static_assert(__builtin_offsetof(struct tb_request, insn_count) == 24, "insn_count");
_Static_assert(__builtin_offsetof(struct tb_request, token_scope) == 32, "token_scope");
_Static_assert(__builtin_offsetof(struct tb_request, helpers0) == 40, "helpers0");
_Static_assert(__builtin_offsetof(struct tb_request, helpers1) == 48, "helpers1");
_Static_assert(__builtin_offsetof(struct tb_request, helpers2) == 56, "helpers2");
_Static_assert(__builtin_offsetof(struct tb_request, helpers3) == 64, "helpers3");
_Static_assert(__builtin_offsetof(struct tb_request, program_type) == 72, "program_type");
_Static_assert(__builtin_offsetof(struct tb_request, attach) == 104, "attach");
_Static_assert(__builtin_offsetof(struct tb_request, program_signer) == 232, "program_signer");
_Static_assert(__builtin_offsetof(struct tb_request, broker_digest) == 304, "broker_digest");
_Static_assert(__builtin_offsetof(struct tb_request, broker_signer) == 384, "broker_signer");
_Static_assert(__builtin_offsetof(struct tb_request, generator_digest) == 456, "generator_digest");
_Static_assert(__builtin_offsetof(struct tb_request, generator_signer) == 536, "generator_signer");
_Static_assert(__builtin_offsetof(struct tb_request, generator) == 608, "generator");
_Static_assert(__builtin_offsetof(struct tb_request, token_subject) == 672, "token_subject");
_Static_assert(__builtin_offsetof(struct tb_request, artifact) == 800, "artifact");
_Static_assert(__builtin_offsetof(struct tb_request, reads) == 1056, "reads");

#endif
