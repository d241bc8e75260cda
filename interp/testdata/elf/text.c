// Test object for interp.LoadELF: code only in .text, no program section,
// as bpf_conformance's ELF writer (bpf_writer_classic) emits it for the
// runner's --elf option: one global function, "main", in .text.
//
// Build (clang 14 used for the committed text.o):
//
//	clang -O2 -ffreestanding -target bpf -c text.c -o text.o
//
// (-ffreestanding lets a function be called main with any signature.)

int main(unsigned long long *mem, unsigned long long len)
{
	return len ? *mem + len : 3;
}
