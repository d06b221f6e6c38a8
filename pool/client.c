// SPDX-License-Identifier: Apache-2.0
// The client side of the pool: sandbox run hands its function and stdio over, pool status/stop.
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../launcher/launcher.h"
#include "../vmm/log.h"
#include "pool.h"
#include "proto.h"

int pool__default_socket(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg && *xdg)
		n = snprintf(buf, size, "%s/sandbox/pool.sock", xdg);
	else
		n = snprintf(buf, size, "/tmp/sandbox-pool-%u.sock",
			     (unsigned int)getuid());
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

/* How long a plain run waits for a pool to accept before it restores inline. */
#define CONNECT_MS 1000

/*
 * A connected SOCK_STREAM socket to the pool at @path, or -errno. The
 * connect cannot hang (a wedged pool with a full backlog), and the pool must
 * be our own user's: anyone may create a socket at the /tmp fallback path,
 * and a stranger's "pool" would get our stdio and our function (-EPERM).
 */
static int connect_pool(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	struct pollfd p = { .events = POLLOUT };
	struct ucred cred;
	socklen_t clen = sizeof(cred), elen = sizeof(int);
	int fd, err, soerr = 0, r;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	p.fd = fd;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		err = -errno;
		if (err != -EINPROGRESS && err != -EAGAIN)
			goto fail;
		do {
			r = poll(&p, 1, CONNECT_MS);
		} while (r < 0 && errno == EINTR);
		err = r == 0 ? -ETIMEDOUT : r < 0 ? -errno : 0;
		if (!err &&
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &elen) < 0)
			err = -errno;
		if (!err && soerr)
			err = -soerr;
		if (err)
			goto fail;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0) {
		err = -errno;
		goto fail;
	}
	if (cred.uid != getuid()) {
		pr_warn("the pool socket %s belongs to uid %u, not us: not using it",
			path, (unsigned int)cred.uid);
		err = -EPERM;
		goto fail;
	}
	/* The rest of the exchange blocks, as before. */
	if (fcntl(fd, F_SETFL, 0) < 0) {
		err = -errno;
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return err;
}

/* argv as NUL-terminated strings, back to back; -E2BIG over the payload limit. */
static int pack_argv(char *const *args, char *buf, size_t size,
		     unsigned int *argc, size_t *len)
{
	size_t off = 0;

	*argc = 0;
	for (; *args; args++) {
		size_t n = strlen(*args) + 1;

		/* The pool takes at most one string per two payload bytes. */
		if (n > size - off || *argc == POOL_PAYLOAD_MAX / 2)
			return -E2BIG;
		memcpy(buf + off, *args, n);
		off += n;
		++*argc;
	}
	*len = off;
	return 0;
}

/*
 * Waits for the pool's answer. SIGINT, SIGTERM and SIGHUP end the wait as
 * they end an inline run: the connection closes, the daemon kills the VM.
 * 0 with *@status, or -EAGAIN when the pool declined.
 */
static int wait_result(int fd, const char *path, int *status)
{
	struct signalfd_siginfo si;
	struct pool_rx rx = { 0 };
	sigset_t set, old;
	int sfd, err, r;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, &old);
	sfd = signalfd(-1, &set, SFD_CLOEXEC);
	/* Without a signalfd the signals must keep their default effect. */
	if (sfd < 0)
		pthread_sigmask(SIG_SETMASK, &old, NULL);
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
				       { .fd = sfd, .events = POLLIN } };

		if (poll(p, sfd >= 0 ? 2 : 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			break;
		}
		if (sfd >= 0 && (p[1].revents & POLLIN) &&
		    read(sfd, &si, sizeof(si)) == sizeof(si)) {
			pr_err("stopped by signal %u", si.ssi_signo);
			*status = 128 + (int)si.ssi_signo;
			err = 0;
			break;
		}
		if (!p[0].revents)
			continue;
		/* The answer may come in parts: poll again until it is whole. */
		r = pool__rx_read(fd, &rx, 0, 0);
		if (r == 0)
			continue;
		err = r == 1 ? 0 : r < 0 ? r : -EPROTO;
		if (!err && rx.m.type == POOL_DECLINED) {
			err = -EAGAIN;
			break;
		}
		if (!err && rx.m.type == POOL_RESULT && rx.m.arg0 <= 255) {
			if (rx.m.len)
				pr_err("%s", rx.payload);
			*status = (int)rx.m.arg0;
			break;
		}
		pr_err("the pool at %s ended the run before the function's exit status arrived: %s",
		       path, err ? strerror(-err) : "unexpected message");
		*status = EXIT_INTERNAL;
		err = 0;
		break;
	}
	if (sfd >= 0)
		close(sfd);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pool__rx_reset(&rx);
	return err;
}

int pool__client_run(const struct run_opts *o, int fn_fd, int *status)
{
	char path[PATH_MAX], argv[POOL_PAYLOAD_MAX];
	struct pool_msg m = { .arg0 = o->timeout_s };
	int fds[POOL_MAX_FDS];
	unsigned int nfds = 3;
	size_t len;
	int fd, err;

	if (o->no_pool || (!o->pool && (o->snapshot || o->mem_mode_set)))
		return -ENOENT;
	if (o->pool)
		snprintf(path, sizeof(path), "%s", o->pool);
	else if (pool__default_socket(path, sizeof(path)))
		return -ENAMETOOLONG;
	/* An argv the pool's datagram cannot carry runs inline: same result. */
	err = pack_argv(o->args, argv, sizeof(argv), &m.arg1, &len);
	if (err)
		return err;
	fd = connect_pool(path);
	if (fd < 0) {
		if (!o->pool)
			return fd;
		pr_err("no pool is listening on %s: %s", path, strerror(-fd));
		*status = EXIT_INTERNAL;
		return 0;
	}
	fds[0] = fn_fd;
	fds[1] = STDOUT_FILENO;
	fds[2] = STDERR_FILENO;
	if (launcher__console_input() >= 0) {
		fds[nfds++] = STDIN_FILENO;
		m.flags |= POOL_F_STDIN;
	}
	err = pool__send(fd, POOL_RUN, &m, argv, len, fds, nfds);
	if (err) {
		close(fd);
		if (!o->pool)
			return err;
		pr_err("cannot send the run to the pool at %s: %s", path,
		       strerror(-err));
		*status = EXIT_INTERNAL;
		return 0;
	}
	err = wait_result(fd, path, status);
	close(fd);
	return err;
}

/* The pool's socket path for status, metrics and stop into @path. An exit status. */
static int pool_path(const struct pool_opts *o, char *path, size_t size)
{
	if (o->socket)
		snprintf(path, size, "%s", o->socket);
	else if (pool__default_socket(path, size))
		return EXIT_USAGE;
	return EXIT_OK;
}

/* One request without descriptors and its answer in @rx. An exit status. */
static int ask(const struct pool_opts *o, uint16_t type, struct pool_rx *rx)
{
	char path[PATH_MAX];
	int fd, err;

	if (pool_path(o, path, sizeof(path)))
		return EXIT_USAGE;
	fd = connect_pool(path);
	if (fd < 0) {
		pr_err("no pool is listening on %s: %s", path, strerror(-fd));
		return EXIT_INTERNAL;
	}
	err = pool__send(fd, type, NULL, NULL, 0, NULL, 0);
	if (!err)
		err = pool__rx_wait(fd, rx, 0) < 0 ? -EPROTO : 0;
	close(fd);
	if (err) {
		pr_err("the pool at %s did not answer: %s", path,
		       strerror(-err));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

/* The most /metrics may be: far above what the daemon writes. */
#define METRICS_MAX (256u << 10)

/* `pool metrics`: GET /metrics on the pool's socket, the body on stdout. */
static int client_metrics(const struct pool_opts *o)
{
	static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
	char path[PATH_MAX], *buf, *body;
	size_t have = 0;
	ssize_t n;
	int fd, status = EXIT_INTERNAL;

	if (pool_path(o, path, sizeof(path)))
		return EXIT_USAGE;
	fd = connect_pool(path);
	if (fd < 0) {
		pr_err("no pool is listening on %s: %s", path, strerror(-fd));
		return EXIT_INTERNAL;
	}
	buf = malloc(METRICS_MAX + 1);
	if (!buf || send(fd, req, sizeof(req) - 1, MSG_NOSIGNAL) !=
			    (ssize_t)sizeof(req) - 1) {
		pr_err("cannot ask the pool at %s for its metrics", path);
		goto out;
	}
	/* HTTP/1.0: the daemon closes the connection after the body. */
	while (have < METRICS_MAX) {
		n = read(fd, buf + have, METRICS_MAX - have);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	buf[have] = '\0';
	body = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.", 7) || strlen(buf) < 12 ||
	    strncmp(buf + 9, "200", 3) || !body) {
		pr_err("the pool at %s did not serve its metrics", path);
		goto out;
	}
	fputs(body + 4, stdout);
	status = EXIT_OK;
out:
	free(buf);
	close(fd);
	return status;
}

int pool__client_status(const struct pool_opts *o)
{
	struct pool_rx rx = { 0 };
	char *json = NULL;
	size_t size;
	int status;

	if (o->metrics)
		return client_metrics(o);
	status = ask(o, POOL_STATUS, &rx);
	if (status)
		return status;
	if (rx.m.type != POOL_STATUS) {
		pr_err("the pool sent an unexpected answer (type %u)",
		       rx.m.type);
		status = EXIT_INTERNAL;
		goto out;
	}
	if (!o->json) {
		fputs(rx.payload, stdout);
		goto out;
	}
	/* A byte becomes at most six ("\u00XX"), a line gains quotes and commas. */
	size = 8 * (size_t)rx.m.len + 16;
	json = malloc(size);
	if (!json || pool__status_json(rx.payload, json, size) < 0) {
		pr_err("the pool's status cannot be shown as JSON");
		status = EXIT_INTERNAL;
		goto out;
	}
	printf("%s\n", json);
out:
	free(json);
	pool__rx_reset(&rx);
	return status;
}

int pool__client_stop(const struct pool_opts *o)
{
	struct pool_rx rx = { 0 };
	int status = ask(o, POOL_STOP, &rx);

	if (!status && rx.m.type != POOL_RESULT) {
		pr_err("the pool sent an unexpected answer (type %u)",
		       rx.m.type);
		status = EXIT_INTERNAL;
	}
	pool__rx_reset(&rx);
	return status;
}
