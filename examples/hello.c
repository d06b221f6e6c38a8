// SPDX-License-Identifier: Apache-2.0
// The smallest function: greets whoever ran it, with its arguments.
#include <stdio.h>

int main(int argc, char **argv)
{
	printf("Hello from a sandboxed function!");
	for (int i = 1; i < argc; i++)
		printf(" %s", argv[i]);
	printf("\n");
	return 0;
}
