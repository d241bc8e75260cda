/* Built by dwarfargs' tests with gcc -g: every kind of parameter type
 * the reader converts. */
#include <stdint.h>
typedef unsigned long myul;
enum E { A = -1, B = 7 };
union U { int i; char c; };
struct S {
	int a : 3;
	unsigned b : 5;
	long c;
	struct S *next;
	char name[8];
	int arr[2][3];
	union U u;
	enum E e;
};
typedef struct S S_t;
struct Big { long a, b, c; };
struct Opaque;
int f1(const char *s, volatile int v, myul u, enum E e, union U *up, S_t *sp,
       const struct S *const csp, void *vp, void (*fn)(int), uint8_t b,
       short sh, unsigned long long ull) { return 0; }
int f2(struct Big big, int x) { return x; }
int f3(int a, int b, int c, int d, int e, int f, int g, int h) { return a + h; }
int f4(int arr[3], char **argv, double d, float fl, _Bool bo) { return 0; }
int f5(void) { return 1; }
int f6(int n, ...) { return n; }
int f7(struct Opaque *o) { return o != 0; }
int main() {
	struct Big big = {1, 2, 3};
	struct S s = {0};
	return f1(0, 0, 0, 0, 0, &s, 0, 0, 0, 0, 0, 0) + f2(big, 1) + f3(1, 2, 3, 4, 5, 6, 7, 8) +
	       f4(0, 0, 0, 0, 0) + f5() + f6(1, 2) + f7(0);
}
