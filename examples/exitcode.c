// SPDX-License-Identifier: Apache-2.0
// Exits with the status given as its argument (default 42), after saying so on stderr.
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	int code = argc > 1 ? atoi(argv[1]) : 42;

	fprintf(stderr, "exiting with status %d\n", code);
	return code;
}
