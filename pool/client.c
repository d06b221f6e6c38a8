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
 * A connected SOCK_SEQPACKET socket to the pool at @path, or -errno. The
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
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
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

/* The function's bytes as they were checked, in a sealed memfd: the file may change. */
static int function_memfd(const void *fn, size_t size)
{
	size_t done = 0;
	ssize_t n;
	int fd, err;

	fd = memfd_create("sandbox-fn", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	while (done < size) {
		n = write(fd, (const char *)fn + done, size - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			err = n < 0 ? -errno : -EIO;
			close(fd);
			return err;
		}
		done += (size_t)n;
	}
	if (fcntl(fd, F_ADD_SEALS,
		  F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) <
	    0) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

/* argv as NUL-terminated strings, back to back; -E2BIG over the payload limit. */
static int pack_argv(char *const *args, char *buf, size_t size,
		     unsigned int *argc, size_t *len)
{
	size_t off = 0;

	*argc = 0;
	for (; *args; args++) {
		size_t n = strlen(*args) + 1;

		if (n > size - off)
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
	char msg[POOL_PAYLOAD_MAX + 1];
	struct signalfd_siginfo si;
	struct pool_msg m;
	unsigned int nfds = 0;
	sigset_t set, old;
	int sfd, err;

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
		err = pool__recv(fd, &m, msg, POOL_PAYLOAD_MAX, NULL, &nfds, 0);
		if (!err && m.type == POOL_DECLINED) {
			err = -EAGAIN;
			break;
		}
		if (!err && m.type == POOL_RESULT && m.arg0 <= 255) {
			if (m.len)
				pr_err("%s", msg);
			*status = (int)m.arg0;
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
	return err;
}

int pool__client_run(const struct run_opts *o, const void *fn, size_t fn_size,
		     int *status)
{
	char path[PATH_MAX], argv[POOL_PAYLOAD_MAX];
	struct pool_msg m = { .arg0 = o->timeout_s };
	int fds[POOL_MAX_FDS];
	unsigned int nfds = 3;
	size_t len;
	int fd, mfd, err;

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
	mfd = function_memfd(fn, fn_size);
	if (mfd < 0) {
		pr_err("cannot hand the function to the pool: %s",
		       strerror(-mfd));
		close(fd);
		*status = EXIT_INTERNAL;
		return 0;
	}
	fds[0] = mfd;
	fds[1] = STDOUT_FILENO;
	fds[2] = STDERR_FILENO;
	if (launcher__console_input() >= 0) {
		fds[nfds++] = STDIN_FILENO;
		m.flags |= POOL_F_STDIN;
	}
	err = pool__send(fd, POOL_RUN, &m, argv, len, fds, nfds);
	close(mfd);
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

/* One request without descriptors and its answer. An exit status. */
static int ask(const struct pool_opts *o, uint16_t type, struct pool_msg *ans)
{
	char path[PATH_MAX], msg[POOL_PAYLOAD_MAX + 1];
	unsigned int nfds = 0;
	int fd, err;

	if (o->socket)
		snprintf(path, sizeof(path), "%s", o->socket);
	else if (pool__default_socket(path, sizeof(path)))
		return EXIT_USAGE;
	fd = connect_pool(path);
	if (fd < 0) {
		pr_err("no pool is listening on %s: %s", path, strerror(-fd));
		return EXIT_INTERNAL;
	}
	err = pool__send(fd, type, NULL, NULL, 0, NULL, 0);
	if (!err)
		err = pool__recv(fd, ans, msg, POOL_PAYLOAD_MAX, NULL, &nfds,
				 0);
	close(fd);
	if (err) {
		pr_err("the pool at %s did not answer: %s", path,
		       strerror(-err));
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}

int pool__client_status(const struct pool_opts *o)
{
	struct pool_msg m;
	int status = ask(o, POOL_STATUS, &m);

	if (status)
		return status;
	if (m.type != POOL_STATUS) {
		pr_err("the pool sent an unexpected answer (type %u)", m.type);
		return EXIT_INTERNAL;
	}
	if (o->json)
		printf("{\"ready\": %u, \"busy\": %u, \"restoring\": %u, \"queued\": %u, \"served\": %u}\n",
		       m.arg0, m.arg1, m.arg2, m.flags, m.arg3);
	else
		printf("ready %u\nbusy %u\nrestoring %u\nqueued %u\nserved %u\n",
		       m.arg0, m.arg1, m.arg2, m.flags, m.arg3);
	return EXIT_OK;
}

int pool__client_stop(const struct pool_opts *o)
{
	struct pool_msg m;
	int status = ask(o, POOL_STOP, &m);

	if (status)
		return status;
	if (m.type != POOL_RESULT) {
		pr_err("the pool sent an unexpected answer (type %u)", m.type);
		return EXIT_INTERNAL;
	}
	return EXIT_OK;
}
