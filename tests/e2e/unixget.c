// SPDX-License-Identifier: Apache-2.0
// An HTTP GET over a Unix stream socket, for pool.sh: busybox nc cannot reach the pool's /metrics.
//
// Usage: unixget SOCKET [PATH]   (PATH default /metrics). Writes the whole answer, headers
// included, to stdout. Exit 0 when an answer arrived and ended, 1 on any error (said on stderr).
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* A pool that accepts but never answers must not hang the test. */
#define TIMEOUT_S 10

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char req[512], buf[4096];
	const char *path = argc > 2 ? argv[2] : "/metrics";
	ssize_t n;
	int fd, len;

	if (argc < 2 || argc > 3 || strlen(argv[1]) >= sizeof(a.sun_path)) {
		fprintf(stderr, "usage: unixget SOCKET [PATH]\n");
		return 1;
	}
	strcpy(a.sun_path, argv[1]);
	len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	if (len < 0 || len >= (int)sizeof(req)) {
		fprintf(stderr, "unixget: path too long\n");
		return 1;
	}
	alarm(TIMEOUT_S);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "unixget: connect %s: %s\n", argv[1],
			strerror(errno));
		return 1;
	}
	if (write_all(fd, req, (size_t)len) < 0) {
		fprintf(stderr, "unixget: write: %s\n", strerror(errno));
		return 1;
	}
	/* HTTP/1.0: the server closes the connection after its answer. */
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			fprintf(stderr, "unixget: read: %s\n", strerror(errno));
			return 1;
		}
		if (write_all(STDOUT_FILENO, buf, (size_t)n) < 0)
			return 1;
	}
	close(fd);
	return 0;
}
