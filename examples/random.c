// SPDX-License-Identifier: Apache-2.0
// Prints 16 random bytes in hex: two VMs restored from one snapshot must differ.
#include <stdio.h>
#include <sys/random.h>

int main(void)
{
	unsigned char b[16];

	if (getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b)) {
		perror("getrandom");
		return 1;
	}
	for (size_t i = 0; i < sizeof(b); i++)
		printf("%02x", b[i]);
	printf("\n");
	return 0;
}
