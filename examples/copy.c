// SPDX-License-Identifier: Apache-2.0
// Copies stdin to stdout unchanged, like cat with no arguments.
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	static char buf[65536];
	ssize_t n;

	while ((n = read(STDIN_FILENO, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			ssize_t w = write(STDOUT_FILENO, buf + off, n - off);

			if (w < 0) {
				perror("write");
				return 1;
			}
			off += w;
		}
	}
	if (n < 0) {
		perror("read");
		return 1;
	}
	return 0;
}
