/* workload.c: what the object tests trace, each call counted so that
   every count is exact. Built by the tests with gcc.
     workload strverscmp N   calls libc's strverscmp N times
     workload getppid N      makes N getppid(2) system calls
     workload open PATH N    opens PATH N times */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	if (strcmp(argv[1], "strverscmp") == 0) {
		/* through a volatile pointer: gcc must not fold the calls */
		int (*volatile f)(const char *, const char *) = strverscmp;
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++)
			f("a1", "a2");
		return 0;
	}
	if (strcmp(argv[1], "getppid") == 0) {
		int n = atoi(argv[2]);
		for (int i = 0; i < n; i++)
			syscall(SYS_getppid);
		return 0;
	}
	if (strcmp(argv[1], "open") == 0 && argc > 3) {
		int n = atoi(argv[3]);
		for (int i = 0; i < n; i++) {
			int fd = open(argv[2], O_RDONLY);
			if (fd >= 0)
				close(fd);
		}
		return 0;
	}
	return 2;
}
