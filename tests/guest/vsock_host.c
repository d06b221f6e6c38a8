// SPDX-License-Identifier: Apache-2.0
// Host side of the vsock end-to-end tests: Firecracker-style Unix socket clients and listeners.
/*
 * Runs beside `sandbox` in the arm64 test host (static, no busybox nc needed).
 *   echo UDS PORT BYTES  connect to UDS, "CONNECT PORT\n" until the guest
 *                        answers "OK <n>\n" (retrying for 20 s while nobody
 *                        listens), send BYTES bytes of a pattern while
 *                        reading the echo, half-close, check the echo
 *   listen PATH N REPLY  listen on PATH (UDS_<port>); N times: accept, read
 *                        to EOF, print the bytes, answer REPLY, close
 *   hold PATH            listen on PATH, accept one, print its first line,
 *                        answer "ack", then keep the connection open until
 *                        killed
 * Prints "vsock-host: ..." lines; exits 0 on success, 1 on failure.
 */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("vsock-host: FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" (%s)\n", strerror(errno));
	exit(1);
}

static void addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		fail("path too long");
	strcpy(sa->sun_path, path);
}

static void nap_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static unsigned char pattern(unsigned long long i)
{
	return (unsigned char)(i * 131 + (i >> 13));
}

/* Connects and does the handshake; -1 if the guest refused (nobody listening). */
static int try_connect(const char *uds, const char *port)
{
	struct sockaddr_un sa;
	char line[64];
	size_t got = 0;
	int fd;

	addr(&sa, uds);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		fail("socket");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	dprintf(fd, "CONNECT %s\n", port);
	/* Byte by byte: whatever follows the line is the guest's data. */
	while (got < sizeof(line) - 1) {
		ssize_t n = read(fd, line + got, 1);

		if (n <= 0)
			break;
		if (line[got++] == '\n')
			break;
	}
	line[got] = '\0';
	if (strncmp(line, "OK ", 3) || line[got ? got - 1 : 0] != '\n') {
		close(fd);
		return -1;
	}
	printf("vsock-host: connected: %s", line);
	return fd;
}

static int echo(const char *uds, const char *port, unsigned long long bytes)
{
	unsigned long long sent = 0, got = 0;
	static unsigned char buf[65536];
	int fd = -1, tries;
	bool wr_open = true;

	for (tries = 0; tries < 200 && fd < 0; tries++) {
		fd = try_connect(uds, port);
		if (fd < 0)
			nap_ms(100);
	}
	if (fd < 0)
		fail("no guest listening on port %s", port);
	/* Write and read together: the echo comes back while we send. */
	while (got < bytes || wr_open) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (wr_open)
			p.events |= POLLOUT;
		if (poll(&p, 1, 20000) <= 0)
			fail("stalled at %llu sent, %llu echoed", sent, got);
		if (p.revents & POLLIN) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0)
				fail("read");
			if (n == 0)
				break;
			for (ssize_t i = 0; i < n; i++)
				if (buf[i] !=
				    pattern(got + (unsigned long long)i))
					fail("echo differs at byte %llu",
					     got + (unsigned long long)i);
			got += (unsigned long long)n;
		}
		if (wr_open && (p.revents & POLLOUT)) {
			size_t len = sizeof(buf);

			if (len > bytes - sent)
				len = (size_t)(bytes - sent);
			for (size_t i = 0; i < len; i++)
				buf[i] = pattern(sent + i);
			n = len ? send(fd, buf, len, MSG_DONTWAIT) : 0;
			if (n < 0 && errno != EAGAIN)
				fail("write");
			if (n > 0)
				sent += (unsigned long long)n;
			if (sent == bytes) {
				shutdown(fd, SHUT_WR);
				wr_open = false;
			}
		}
	}
	if (got != bytes)
		fail("echoed %llu of %llu bytes", got, bytes);
	printf("vsock-host: echoed %llu bytes ok\n", got);
	close(fd);
	return 0;
}

static int listen_on(const char *path)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	addr(&sa, path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, 8) < 0)
		fail("listen on %s", path);
	printf("vsock-host: listening on %s\n", path);
	fflush(stdout);
	return fd;
}

static int serve(const char *path, int count, const char *reply)
{
	int lfd = listen_on(path), i;

	for (i = 0; i < count; i++) {
		char buf[4096];
		size_t got = 0;
		ssize_t n;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0)
			fail("accept");
		while (got < sizeof(buf) - 1 &&
		       (n = read(fd, buf + got, sizeof(buf) - 1 - got)) > 0)
			got += (size_t)n;
		buf[got] = '\0';
		printf("vsock-host: got: %s", buf);
		dprintf(fd, "%s\n", reply);
		close(fd);
	}
	unlink(path);
	return 0;
}

static void hold(const char *path) __attribute__((noreturn));

static void hold(const char *path)
{
	int lfd = listen_on(path), fd = accept(lfd, NULL, NULL);
	char c;

	if (fd < 0)
		fail("accept");
	printf("vsock-host: held: ");
	while (read(fd, &c, 1) == 1 && c != '\n')
		putchar(c);
	printf("\n");
	fflush(stdout);
	/* The guest waits for this before it lets the snapshot happen. */
	if (write(fd, "ack\n", 4) != 4)
		fail("write");
	for (;;)
		pause();
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 5 && !strcmp(argv[1], "echo"))
		return echo(argv[2], argv[3], strtoull(argv[4], NULL, 10));
	if (argc == 5 && !strcmp(argv[1], "listen"))
		return serve(argv[2], atoi(argv[3]), argv[4]);
	if (argc == 3 && !strcmp(argv[1], "hold"))
		hold(argv[2]);
	fprintf(stderr, "usage: vsock_host echo UDS PORT BYTES | "
			"listen PATH N REPLY | hold PATH\n");
	return 2;
}
