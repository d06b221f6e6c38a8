// SPDX-License-Identifier: Apache-2.0
// Makes the guest kernel panic: turns on panic_on_oom, then eats memory until the OOM killer.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void)
{
	int fd = open("/proc/sys/vm/panic_on_oom", O_WRONLY);

	if (fd < 0 || write(fd, "1", 1) != 1) {
		perror("/proc/sys/vm/panic_on_oom");
		return 1;
	}
	close(fd);
	for (;;) {
		char *p = malloc(1 << 20);

		if (p)
			memset(p, 0x5a, 1 << 20);
	}
}
