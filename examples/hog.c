// SPDX-License-Identifier: Apache-2.0
// Allocates and touches memory 1 MiB at a time until the kernel kills it.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	unsigned long mib = 0;

	for (;;) {
		char *p = malloc(1 << 20);

		if (!p) {
			printf("malloc failed after %lu MiB\n", mib);
			return 1;
		}
		memset(p, 0xa5, 1 << 20);
		mib++;
		if (mib % 16 == 0) {
			printf("%lu MiB\n", mib);
			fflush(stdout);
		}
	}
}
