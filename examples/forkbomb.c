// SPDX-License-Identifier: Apache-2.0
// Forks without end: what the VM boundary must contain.
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("forking\n");
	fflush(stdout);
	for (;;)
		fork();
}
