// SPDX-License-Identifier: Apache-2.0
// An HTTP GET over a Unix stream socket, for pool.sh: busybox nc cannot reach the pool's /metrics.
//
// Usage: unixget SOCKET [PATH]   (PATH default /metrics). Writes the whole answer, headers
// included, to stdout. Exit 0 when an answer arrived and ended, 1 on any error (said on stderr).
//
// unixget --trickle MS SOCKET http|pool: a client that sends a request one byte every MS
// milliseconds (an HTTP GET of /metrics with a padded header, or a POOL_STATUS message's
// header), to see the pool close a connection that never finishes its request. Prints
// "closed after N ms, B of T bytes sent" and exits 0 when the other end closed first; prints
// "answered after N ms" and exits 2 when the whole request went and an answer came; 1 on error.
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../pool/proto.h"

/* A pool that accepts but never answers must not hang the test. */
#define TIMEOUT_S 10
/* --trickle: long enough for a request of a few dozen bytes at a byte a second. */
#define TRICKLE_TIMEOUT_S 180

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

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path)) {
		fprintf(stderr, "unixget: socket path too long\n");
		return -1;
	}
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		fprintf(stderr, "unixget: connect %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	return fd;
}

static long long now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (long long)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

/*
 * Waits up to @ms for the other end: 0 when nothing came, 1 when it closed
 * (or reset), 2 when it sent something, -1 on error.
 */
static int peer(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char buf[256];
	ssize_t n;
	int r;

	do {
		r = poll(&p, 1, ms);
	} while (r < 0 && errno == EINTR);
	if (r < 0)
		return -1;
	if (r == 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return 1;
	return n > 0 ? 2 : -1;
}

static int trickle(int ms, const char *path, const char *kind)
{
	static const char http[] =
		"GET /metrics HTTP/1.0\r\n"
		"X-Pad: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n\r\n";
	struct pool_msg m = { .magic = POOL_MAGIC,
			      .version = POOL_VERSION,
			      .type = POOL_STATUS };
	const char *req;
	long long t0;
	size_t len, i;
	int fd, r = 0;

	if (!strcmp(kind, "http")) {
		req = http;
		len = sizeof(http) - 1;
	} else if (!strcmp(kind, "pool")) {
		/* The wire is little-endian: so is every host this runs on. */
		req = (const char *)&m;
		len = sizeof(m);
	} else {
		fprintf(stderr, "unixget: --trickle: http or pool, not %s\n",
			kind);
		return 1;
	}
	alarm(TRICKLE_TIMEOUT_S);
	fd = connect_to(path);
	if (fd < 0)
		return 1;
	t0 = now_ms();
	for (i = 0; i < len && r == 0; i++) {
		if (send(fd, req + i, 1, MSG_NOSIGNAL) != 1) {
			if (errno != EPIPE && errno != ECONNRESET) {
				fprintf(stderr, "unixget: send: %s\n",
					strerror(errno));
				return 1;
			}
			r = 1;
			break;
		}
		if (i + 1 < len)
			r = peer(fd, ms);
	}
	if (r == 0)
		r = peer(fd, TIMEOUT_S * 1000);
	if (r == 1) {
		printf("closed after %lld ms, %zu of %zu bytes sent\n",
		       now_ms() - t0, i, len);
		return 0;
	}
	if (r == 2) {
		printf("answered after %lld ms\n", now_ms() - t0);
		return 2;
	}
	fprintf(stderr, "unixget: %s\n",
		r ? strerror(errno) : "no answer and no close");
	return 1;
}

int main(int argc, char **argv)
{
	char req[512], buf[4096];
	const char *path = argc > 2 ? argv[2] : "/metrics";
	ssize_t n;
	int fd, len;

	if (argc == 5 && !strcmp(argv[1], "--trickle"))
		return trickle(atoi(argv[2]), argv[3], argv[4]);
	if (argc < 2 || argc > 3) {
		fprintf(stderr,
			"usage: unixget SOCKET [PATH]\n"
			"       unixget --trickle MS SOCKET http|pool\n");
		return 1;
	}
	len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\n\r\n", path);
	if (len < 0 || len >= (int)sizeof(req)) {
		fprintf(stderr, "unixget: path too long\n");
		return 1;
	}
	alarm(TIMEOUT_S);
	fd = connect_to(argv[1]);
	if (fd < 0)
		return 1;
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
