// SPDX-License-Identifier: Apache-2.0
// Guest side of the vsock end-to-end tests: echo servers, a client of the host, a snapshot probe.
/*
 * Built static for the guest (aarch64-linux-gnu-gcc -static) and run by the
 * guest init after "--" on the kernel command line. Modes:
 *   echo PORT N          accept N connections on vsock PORT, one at a time,
 *                        and send back every byte until the peer's EOF
 *   send CID PORT LINE   connect, send LINE and "\n", half-close, print the
 *                        reply up to EOF as "reply: ..."
 *   both PORT N CID HPORT LINE
 *                        echo in a child process while sending LINE to
 *                        CID:HPORT; exits when both are done
 *   snap PORT CID HPORT  listen on PORT, connect to CID:HPORT, send
 *                        "before" and read the host's answer line, print
 *                        "vsock-probe: ready" (a snapshot is taken there),
 *                        then wait on that connection: after a restore it
 *                        must fail (ECONNRESET, or ENOTCONN if the reset
 *                        came first); then echo one connection on PORT
 *   pause CID HPORT      connect, send "before", print "vsock-probe: ready"
 *                        (the host pauses, snapshots and resumes us there),
 *                        sleep a second, send "after", half-close and print
 *                        the reply: the connection must outlive the pause
 * Prints "vsock-probe: ok" and exits 0 on success; "vsock-probe: FAIL ..."
 * and exits 1 otherwise.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
/* After sys/socket.h, which it needs but does not include. */
#include <linux/vm_sockets.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fail(const char *fmt, ...)
{
	va_list ap;

	printf("vsock-probe: FAIL ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(": %s\n", strerror(errno));
	fflush(stdout);
	exit(1);
}

static unsigned int num(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v > 0xffffffffUL) {
		errno = EINVAL;
		fail("bad number '%s'", s);
	}
	return (unsigned int)v;
}

static int vsock_listen(unsigned int port)
{
	struct sockaddr_vm sa = {
		.svm_family = AF_VSOCK,
		.svm_cid = VMADDR_CID_ANY,
		.svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		fail("socket(AF_VSOCK)");
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("bind port %u", port);
	if (listen(fd, 8) < 0)
		fail("listen");
	return fd;
}

static int vsock_connect(unsigned int cid, unsigned int port)
{
	struct sockaddr_vm sa = {
		.svm_family = AF_VSOCK,
		.svm_cid = cid,
		.svm_port = port,
	};
	int fd = socket(AF_VSOCK, SOCK_STREAM, 0);

	if (fd < 0)
		fail("socket(AF_VSOCK)");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		fail("connect %u:%u", cid, port);
	return fd;
}

static void write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			fail("write");
		p += n;
		len -= (size_t)n;
	}
}

/* Sends back everything until EOF; returns the byte count. */
static unsigned long long echo_one(int lfd)
{
	unsigned long long total = 0;
	static char buf[65536];
	int fd = accept(lfd, NULL, NULL);
	ssize_t n;

	if (fd < 0)
		fail("accept");
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		write_all(fd, buf, (size_t)n);
		total += (unsigned long long)n;
	}
	if (n < 0)
		fail("read");
	close(fd);
	return total;
}

static void echo(unsigned int port, unsigned int count)
{
	int lfd = vsock_listen(port);
	unsigned int i;

	printf("vsock-probe: echo on %u\n", port);
	fflush(stdout);
	for (i = 0; i < count; i++)
		printf("vsock-probe: echoed %llu bytes\n", echo_one(lfd));
	close(lfd);
}

static void send_line(unsigned int cid, unsigned int port, const char *line)
{
	int fd = vsock_connect(cid, port);
	char reply[512];
	size_t got = 0;
	ssize_t n;

	write_all(fd, line, strlen(line));
	write_all(fd, "\n", 1);
	if (shutdown(fd, SHUT_WR) < 0)
		fail("shutdown");
	while (got < sizeof(reply) - 1 &&
	       (n = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	printf("vsock-probe: reply: %s", reply);
	close(fd);
}

static void snap(unsigned int port, unsigned int cid, unsigned int hport)
{
	int lfd = vsock_listen(port);
	int fd = vsock_connect(cid, hport);
	char c;
	ssize_t n;

	write_all(fd, "before\n", 7);
	/* The host answers: the connection is established end to end. */
	do
		n = read(fd, &c, 1);
	while (n == 1 && c != '\n');
	if (n != 1)
		fail("no answer from the host before the snapshot");
	/* The host snapshots here. */
	printf("vsock-probe: ready\n");
	fflush(stdout);
	/*
	 * A reader blocked in read() gets ECONNRESET; one that arrives after
	 * the reset finds the socket closed: ENOTCONN.
	 */
	n = read(fd, &c, 1);
	if (n >= 0 || (errno != ECONNRESET && errno != ENOTCONN)) {
		printf("vsock-probe: FAIL the connection survived the restore (read %zd: %s)\n",
		       n, n < 0 ? strerror(errno) : "data");
		exit(1);
	}
	printf("vsock-probe: connection reset after restore (%s)\n",
	       strerror(errno));
	fflush(stdout);
	close(fd);
	printf("vsock-probe: echoed %llu bytes\n", echo_one(lfd));
}

static void pause_probe(unsigned int cid, unsigned int hport)
{
	int fd = vsock_connect(cid, hport);
	char reply[256];
	size_t got = 0;
	ssize_t n;

	write_all(fd, "before\n", 7);
	printf("vsock-probe: ready\n");
	fflush(stdout);
	sleep(1);
	write_all(fd, "after\n", 6);
	if (shutdown(fd, SHUT_WR) < 0)
		fail("shutdown");
	while (got < sizeof(reply) - 1 &&
	       (n = read(fd, reply + got, sizeof(reply) - 1 - got)) > 0)
		got += (size_t)n;
	if (!got)
		fail("no reply after the pause");
	reply[got] = '\0';
	printf("vsock-probe: reply: %s", reply);
	close(fd);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 4 && !strcmp(argv[1], "echo")) {
		echo(num(argv[2]), num(argv[3]));
	} else if (argc == 5 && !strcmp(argv[1], "send")) {
		send_line(num(argv[2]), num(argv[3]), argv[4]);
	} else if (argc == 7 && !strcmp(argv[1], "both")) {
		pid_t pid = fork();
		int st;

		if (pid < 0)
			fail("fork");
		if (!pid) {
			echo(num(argv[2]), num(argv[3]));
			exit(0);
		}
		send_line(num(argv[4]), num(argv[5]), argv[6]);
		if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) ||
		    WEXITSTATUS(st))
			fail("echo child");
	} else if (argc == 5 && !strcmp(argv[1], "snap")) {
		snap(num(argv[2]), num(argv[3]), num(argv[4]));
	} else if (argc == 4 && !strcmp(argv[1], "pause")) {
		pause_probe(num(argv[2]), num(argv[3]));
	} else {
		fprintf(stderr,
			"usage: vsock_probe echo PORT N | send CID PORT LINE |\n"
			"       both PORT N CID HPORT LINE | snap PORT CID HPORT |\n"
			"       pause CID HPORT\n");
		return 2;
	}
	printf("vsock-probe: ok\n");
	return 0;
}
