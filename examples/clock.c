// SPDX-License-Identifier: Apache-2.0
// Prints the guest's wall-clock time in seconds since the epoch: the host set it at restore.
#include <stdio.h>
#include <time.h>

int main(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	printf("%lld\n", (long long)ts.tv_sec);
	return 0;
}
