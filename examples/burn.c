// SPDX-License-Identifier: Apache-2.0
// Burns CPU: for the given number of seconds (default: forever), then prints how many loops ran.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : -1;
	struct timespec start, now;
	volatile unsigned long long loops = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		for (int i = 0; i < 1000000; i++)
			loops++;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (secs >= 0 &&
		    (double)(now.tv_sec - start.tv_sec) +
				    (double)(now.tv_nsec - start.tv_nsec) /
					    1e9 >=
			    secs)
			break;
	}
	printf("%llu loops\n", loops);
	return 0;
}
