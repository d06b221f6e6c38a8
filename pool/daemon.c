// SPDX-License-Identifier: Apache-2.0
// The pool daemon: keeps VMs restored in worker processes, hands each out once, refills.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../launcher/launcher.h"
#include "../snapshot/snap.h"
#include "../vmm/log.h"
#include "../vmm/vm.h"
#include "pool.h"
#include "proto.h"
#include "worker.h"

/* VMs running functions at once; more runs wait in the queue. */
#define MAX_BUSY 64
/* Connections held at once (queued, running or not yet asked); more are declined. */
#define MAX_CLIENTS 256
/* After a restore failed, no new one for this long. */
#define BACKOFF_MS 1000

enum wstate { W_FREE, W_RESTORING, W_READY, W_BUSY };

struct worker {
	enum wstate state;
	pid_t pid;
	int fd; /* our end of the socketpair */
	struct client *client; /* W_BUSY */
};

enum cstate { C_FREE, C_NEW, C_QUEUED, C_RUNNING };

struct client {
	enum cstate state;
	int fd;
	struct pool_msg m; /* C_QUEUED: the POOL_RUN */
	char *payload;
	int fds[POOL_MAX_FDS];
	unsigned int nfds;
	uint64_t seq; /* arrival order: the queue is FIFO */
	struct worker *worker; /* C_RUNNING */
};

struct pool {
	/* One message's payload at a time: the loop is single-threaded. */
	char payload[POOL_PAYLOAD_MAX + 1];
	const char *snap_path;
	const char *sock_path;
	const char *
		vm_dir; /* the workers' socket directories go in here, or NULL */
	unsigned int size;
	int listen_fd;
	int sig_fd;
	sigset_t old_mask;
	pid_t self;
	struct worker *w;
	unsigned int nr_w;
	struct client c[MAX_CLIENTS];
	uint64_t seq;
	uint64_t served;
	bool draining;
	bool is_worker; /* in a forked worker: return its status */
	int worker_status;
	struct timespec backoff_until;
};

static unsigned int count(const struct pool *p, enum wstate s)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < p->nr_w; i++)
		n += p->w[i].state == s;
	return n;
}

static unsigned int queued(const struct pool *p)
{
	unsigned int n = 0;

	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		n += p->c[i].state == C_QUEUED;
	return n;
}

static void close_client(struct client *c)
{
	while (c->nfds)
		close(c->fds[--c->nfds]);
	free(c->payload);
	c->payload = NULL;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->worker)
		c->worker->client = NULL;
	c->worker = NULL;
	c->state = C_FREE;
}

static void drop_worker(struct worker *w, bool kill_it)
{
	if (kill_it && w->pid > 0)
		kill(w->pid, SIGKILL);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->client)
		w->client->worker = NULL;
	w->client = NULL;
	w->state = W_FREE;
}

static void reply(struct client *c, uint16_t type, const struct pool_msg *m,
		  const char *text)
{
	if (pool__send(c->fd, type, m, text, text ? strlen(text) : 0, NULL, 0))
		pr_debug("pool: a client went away before its answer");
}

/* In the child: nothing of the daemon's stays open or armed. */
static void become_worker(struct pool *p, int fd)
{
	/*
	 * Its own process group: a terminal's Ctrl-C reaches the daemon, which
	 * drains, not the running functions; and it dies with the daemon.
	 */
	setpgid(0, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->self) {
		p->worker_status = EXIT_INTERNAL;
		return;
	}
	close(p->listen_fd);
	close(p->sig_fd);
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].fd >= 0)
			close(p->w[i].fd);
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		if (p->c[i].state != C_FREE)
			close_client(&p->c[i]);
	sigprocmask(SIG_SETMASK, &p->old_mask, NULL);
	/* launcher__tmpdir() makes the VM's socket directory under $TMPDIR. */
	if (p->vm_dir && setenv("TMPDIR", p->vm_dir, 1) < 0) {
		p->worker_status = EXIT_INTERNAL;
		return;
	}
	p->worker_status = pool__worker(fd, p->snap_path);
	close(fd);
}

static int spawn(struct pool *p)
{
	struct worker *w = NULL;
	int sv[2];
	pid_t pid;

	for (unsigned int i = 0; i < p->nr_w && !w; i++)
		if (p->w[i].state == W_FREE)
			w = &p->w[i];
	if (!w)
		return -ENOSPC;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return -errno;
	}
	if (pid == 0) {
		close(sv[0]);
		p->is_worker = true;
		become_worker(p, sv[1]);
		return 0;
	}
	close(sv[1]);
	w->pid = pid;
	w->fd = sv[0];
	w->state = W_RESTORING;
	w->client = NULL;
	return 0;
}

static bool backing_off(const struct pool *p)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec < p->backoff_until.tv_sec ||
	       (now.tv_sec == p->backoff_until.tv_sec &&
		now.tv_nsec < p->backoff_until.tv_nsec);
}

static void refill(struct pool *p)
{
	while (!p->draining && !p->is_worker && !backing_off(p) &&
	       count(p, W_READY) + count(p, W_RESTORING) < p->size) {
		int err = spawn(p);

		if (err) {
			if (err != -ENOSPC)
				pr_err("pool: cannot start a VM process: %s",
				       strerror(-err));
			return;
		}
	}
}

/* The oldest queued run goes to a ready VM, as long as both exist. */
static void dispatch(struct pool *p)
{
	for (;;) {
		struct client *c = NULL;
		struct worker *w = NULL;
		int err;

		if (count(p, W_BUSY) >= MAX_BUSY)
			return;
		for (unsigned int i = 0; i < MAX_CLIENTS; i++)
			if (p->c[i].state == C_QUEUED &&
			    (!c || p->c[i].seq < c->seq))
				c = &p->c[i];
		for (unsigned int i = 0; i < p->nr_w && !w; i++)
			if (p->w[i].state == W_READY)
				w = &p->w[i];
		if (!c || !w)
			return;
		err = pool__send(w->fd, POOL_RUN, &c->m, c->payload, c->m.len,
				 c->fds, c->nfds);
		if (err) {
			pr_err("pool: a ready VM process is gone: %s",
			       strerror(-err));
			drop_worker(w, true);
			continue;
		}
		/* The worker holds the caller's stdio now; we must not keep it open. */
		while (c->nfds)
			close(c->fds[--c->nfds]);
		free(c->payload);
		c->payload = NULL;
		c->state = C_RUNNING;
		c->worker = w;
		w->state = W_BUSY;
		w->client = c;
	}
}

static void decline_queued(struct pool *p)
{
	for (unsigned int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &p->c[i];

		if (c->state == C_QUEUED) {
			reply(c, POOL_DECLINED, NULL, NULL);
			close_client(c);
		}
	}
}

static void start_drain(struct pool *p)
{
	if (p->draining)
		return;
	p->draining = true;
	pr_err("pool: draining: running functions finish, idle VMs are freed");
	if (p->listen_fd >= 0) {
		int fd;

		unlink(p->sock_path);
		/* Connections already made run inline: none is cut off without an answer. */
		while ((fd = accept4(p->listen_fd, NULL, NULL,
				     SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
			if (pool__send(fd, POOL_DECLINED, NULL, NULL, 0, NULL,
				       0))
				pr_debug("pool: a declined client went away");
			close(fd);
		}
		close(p->listen_fd);
		p->listen_fd = -1;
	}
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].state == W_READY || p->w[i].state == W_RESTORING)
			drop_worker(&p->w[i], p->w[i].state == W_RESTORING);
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		if (p->c[i].state == C_NEW)
			p->c[i].state = C_QUEUED;
	decline_queued(p);
}

static void client_request(struct pool *p, struct client *c)
{
	char *payload = p->payload;
	const char *argv[POOL_PAYLOAD_MAX / 2 + 1];
	struct pool_msg ans = { 0 };
	unsigned int want;
	int err;

	c->nfds = POOL_MAX_FDS;
	err = pool__recv(c->fd, &c->m, payload, POOL_PAYLOAD_MAX, c->fds,
			 &c->nfds, MSG_DONTWAIT);
	if (err == -EAGAIN)
		return;
	if (err) {
		close_client(c);
		return;
	}
	switch (c->m.type) {
	case POOL_STATUS:
		ans.arg0 = count(p, W_READY);
		ans.arg1 = count(p, W_BUSY);
		ans.arg2 = count(p, W_RESTORING);
		ans.arg3 = (uint32_t)p->served;
		ans.flags = queued(p);
		reply(c, POOL_STATUS, &ans, NULL);
		close_client(c);
		return;
	case POOL_STOP:
		reply(c, POOL_RESULT, &ans, NULL);
		close_client(c);
		start_drain(p);
		return;
	case POOL_RUN:
		want = 3 + !!(c->m.flags & POOL_F_STDIN);
		if (c->nfds == want && c->m.arg1 <= POOL_PAYLOAD_MAX / 2 &&
		    !pool__parse_argv(payload, c->m.len, c->m.arg1, argv) &&
		    (c->payload = malloc(c->m.len + 1))) {
			memcpy(c->payload, payload, c->m.len + 1);
			c->state = C_QUEUED;
			c->seq = p->seq++;
			return;
		}
		break;
	default:
		break;
	}
	pr_debug("pool: a malformed request (type %u)", c->m.type);
	close_client(c);
}

static void worker_message(struct pool *p, struct worker *w)
{
	char *payload = p->payload;
	struct pool_msg m;
	unsigned int nfds = 0;
	int err;

	err = pool__recv(w->fd, &m, payload, POOL_PAYLOAD_MAX, NULL, &nfds,
			 MSG_DONTWAIT);
	if (err == -EAGAIN)
		return;
	if (!err && m.type == POOL_READY && w->state == W_RESTORING) {
		w->state = W_READY;
		return;
	}
	if (!err && m.type == POOL_RESULT && w->state == W_BUSY) {
		if (w->client) {
			reply(w->client, POOL_RESULT, &m,
			      m.len ? payload : NULL);
			close_client(w->client);
		}
		p->served++;
		drop_worker(w, false);
		return;
	}
	if (w->state == W_RESTORING) {
		/* The worker said why on our stderr; try again later. */
		clock_gettime(CLOCK_MONOTONIC, &p->backoff_until);
		p->backoff_until.tv_sec += BACKOFF_MS / 1000;
		pr_err("pool: a VM failed to restore (status %d)",
		       !err && m.type == POOL_RESULT ? (int)m.arg0 : -1);
		/* Waiting runs restore inline rather than wait for a pool that cannot. */
		if (!count(p, W_READY))
			decline_queued(p);
	} else if (w->state == W_BUSY && w->client) {
		struct pool_msg r = { .arg0 = EXIT_INTERNAL };

		reply(w->client, POOL_RESULT, &r,
		      "the pool's VM process ended before the function's exit status arrived");
		close_client(w->client);
	}
	drop_worker(w, true);
}

static void reap(void)
{
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

/* 0 to go on, 1 to stop now (a second signal). */
static int on_signal(struct pool *p)
{
	struct signalfd_siginfo si;

	while (read(p->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap();
			continue;
		}
		if (p->draining) {
			pr_err("pool: signal %u again: killing the running VMs",
			       si.ssi_signo);
			return 1;
		}
		start_drain(p);
	}
	return 0;
}

static int serve(struct pool *p)
{
	struct pollfd *pfd;
	void **who;
	size_t cap = 2 + p->nr_w + MAX_CLIENTS;
	int ret = EXIT_OK;

	pfd = calloc(cap, sizeof(*pfd));
	who = calloc(cap, sizeof(*who));
	if (!pfd || !who) {
		free(pfd);
		free(who);
		pr_err("pool: out of memory");
		return EXIT_INTERNAL;
	}
	for (;;) {
		unsigned int n = 0, nw_first, nc_first;
		int timeout = -1, r;

		refill(p);
		if (p->is_worker)
			break;
		dispatch(p);
		if (p->draining && !count(p, W_BUSY))
			break;
		pfd[n++] = (struct pollfd){ .fd = p->sig_fd, .events = POLLIN };
		if (p->listen_fd >= 0)
			pfd[n++] = (struct pollfd){ .fd = p->listen_fd,
						    .events = POLLIN };
		nw_first = n;
		for (unsigned int i = 0; i < p->nr_w; i++)
			if (p->w[i].state != W_FREE) {
				who[n] = &p->w[i];
				pfd[n++] = (struct pollfd){ .fd = p->w[i].fd,
							    .events = POLLIN };
			}
		nc_first = n;
		for (unsigned int i = 0; i < MAX_CLIENTS; i++)
			if (p->c[i].state != C_FREE) {
				who[n] = &p->c[i];
				pfd[n++] = (struct pollfd){ .fd = p->c[i].fd,
							    .events = POLLIN };
			}
		if (backing_off(p))
			timeout = BACKOFF_MS;
		r = poll(pfd, n, timeout);
		if (r < 0 && errno != EINTR) {
			pr_err("pool: poll: %s", strerror(errno));
			ret = EXIT_INTERNAL;
			break;
		}
		if (r <= 0)
			continue;
		if (pfd[0].revents && on_signal(p))
			break;
		if (p->listen_fd >= 0 && pfd[1].revents) {
			int fd = accept4(p->listen_fd, NULL, NULL,
					 SOCK_CLOEXEC | SOCK_NONBLOCK);
			struct client *c = NULL;

			for (unsigned int i = 0;
			     i < MAX_CLIENTS && !c && fd >= 0; i++)
				if (p->c[i].state == C_FREE)
					c = &p->c[i];
			if (c) {
				c->state = C_NEW;
				c->fd = fd;
			} else if (fd >= 0) {
				if (pool__send(fd, POOL_DECLINED, NULL, NULL, 0,
					       NULL, 0))
					pr_debug(
						"pool: a declined client went away");
				close(fd);
			}
		}
		for (unsigned int i = nw_first; i < nc_first; i++) {
			struct worker *w = who[i];

			if (pfd[i].revents && w->state != W_FREE &&
			    w->fd == pfd[i].fd)
				worker_message(p, w);
		}
		for (unsigned int i = nc_first; i < n; i++) {
			struct client *c = who[i];

			if (!pfd[i].revents || c->state == C_FREE ||
			    c->fd != pfd[i].fd)
				continue;
			if (c->state == C_NEW) {
				client_request(p, c);
				continue;
			}
			/* A client says nothing after its request: this is its end. */
			if (c->state == C_RUNNING && c->worker)
				drop_worker(c->worker, true);
			close_client(c);
		}
	}
	free(pfd);
	free(who);
	return ret;
}

/* Binds @path, unless a live pool already listens there. -errno (logged). */
static int listen_on(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[PATH_MAX], *slash;
	int fd, probe, err;

	if (strlen(path) >= sizeof(a.sun_path)) {
		pr_err("pool: socket path too long: %s", path);
		return -ENAMETOOLONG;
	}
	strcpy(a.sun_path, path);
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			err = -errno;
			pr_err("pool: cannot make %s: %s", dir, strerror(-err));
			return err;
		}
	}
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	probe = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (probe >= 0 &&
	    connect(probe, (struct sockaddr *)&a, sizeof(a)) == 0) {
		close(probe);
		close(fd);
		pr_err("pool: a pool is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (probe >= 0)
		close(probe);
	/* A socket left by a pool that was killed: nobody listens on it. */
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    chmod(path, 0600) < 0 || listen(fd, 64) < 0) {
		err = -errno;
		pr_err("pool: cannot listen on %s: %s", path, strerror(-err));
		close(fd);
		return err;
	}
	return fd;
}

/*
 * <socket>.d holds the workers' socket directories, so that what a killed
 * pool left there is found and removed by the next pool on that socket.
 * NULL when the path would not leave room for a VM's socket path.
 */
/* Removes the VM socket directories left in @dir (by workers that were killed). */
static int empty_vm_dir(const char *dir)
{
	struct dirent *e;
	char sub[PATH_MAX];
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' &&
		    snprintf(sub, sizeof(sub), "%s/%s", dir, e->d_name) <
			    (int)sizeof(sub))
			launcher__rmdir(sub);
	closedir(d);
	return 0;
}

static const char *make_vm_dir(const char *sock, char *buf, size_t size)
{
	struct sockaddr_un a;

	/* "/sandbox-XXXXXX/vsock" and the vsock device's "_<port>" listeners. */
	if (strlen(sock) + 2 + 32 >= sizeof(a.sun_path) ||
	    snprintf(buf, size, "%s.d", sock) >= (int)size)
		return NULL;
	if (mkdir(buf, 0700) < 0 && errno != EEXIST)
		return NULL;
	return empty_vm_dir(buf) ? NULL : buf;
}

/* The snapshot, resolved and opened once here so that a bad one fails at start. */
static int check_snapshot(const struct pool_opts *o, char *path, size_t size)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct snap *s;
		int status, err;

		status = launcher__find_snapshot(o->snapshot, attempt > 0, path,
						 size);
		if (status)
			return status;
		err = snap__open(path, vm__arch_snap_id(), &s);
		if (!err) {
			snap__close(s);
			return EXIT_OK;
		}
		if (o->snapshot || attempt > 0)
			return launcher__exit_for_snap(err);
		pr_warn("the cached base snapshot is unusable; making it again");
	}
	return EXIT_INTERNAL;
}

int pool__daemon(const struct pool_opts *o)
{
	char sock[PATH_MAX], snap[PATH_MAX], vm_dir[PATH_MAX];
	struct pool p = { .size = o->size, .listen_fd = -1, .sig_fd = -1 };
	sigset_t set;
	int status;
	struct rlimit nofile;

	/* Each queued client holds 5 fds: use all the fds we may have. */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			pr_debug("pool: cannot raise the fd limit");
	}

	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		p.c[i].fd = -1;
	if (o->socket)
		snprintf(sock, sizeof(sock), "%s", o->socket);
	else if (pool__default_socket(sock, sizeof(sock))) {
		pr_err("pool: the default socket path is too long");
		return EXIT_USAGE;
	}
	status = check_snapshot(o, snap, sizeof(snap));
	if (status)
		return status;
	p.snap_path = snap;
	p.sock_path = sock;
	p.self = getpid();
	p.nr_w = o->size + MAX_BUSY;
	p.w = calloc(p.nr_w, sizeof(*p.w));
	if (!p.w) {
		pr_err("pool: out of memory");
		return EXIT_INTERNAL;
	}
	for (unsigned int i = 0; i < p.nr_w; i++)
		p.w[i].fd = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &p.old_mask);
	p.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (p.sig_fd < 0) {
		pr_err("pool: signalfd: %s", strerror(errno));
		status = EXIT_INTERNAL;
		goto out;
	}
	p.listen_fd = listen_on(sock);
	if (p.listen_fd < 0) {
		status = EXIT_INTERNAL;
		goto out;
	}
	p.vm_dir = make_vm_dir(sock, vm_dir, sizeof(vm_dir));
	fprintf(stderr, "sandbox: pool of %u VMs from %s listening on %s\n",
		p.size, snap, sock);
	status = serve(&p);
	if (p.is_worker) {
		status = p.worker_status;
		goto out;
	}
	/* Stopping: whatever still runs is killed, then every process is waited for. */
	for (unsigned int i = 0; i < p.nr_w; i++)
		if (p.w[i].state != W_FREE)
			drop_worker(&p.w[i], p.w[i].state == W_BUSY);
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		if (p.c[i].state != C_FREE)
			close_client(&p.c[i]);
	if (p.listen_fd >= 0) {
		close(p.listen_fd);
		p.listen_fd = -1;
		unlink(sock);
	}
	while (wait(NULL) > 0 || errno == EINTR)
		;
	pr_err("pool: stopped after serving %llu runs",
	       (unsigned long long)p.served);
out:
	if (!p.is_worker) {
		if (p.listen_fd >= 0) {
			close(p.listen_fd);
			unlink(sock);
		}
		if (p.sig_fd >= 0)
			close(p.sig_fd);
		/* Every worker is reaped: what a killed one left goes too. */
		if (p.vm_dir && !empty_vm_dir(p.vm_dir))
			rmdir(p.vm_dir);
		sigprocmask(SIG_SETMASK, &p.old_mask, NULL);
	}
	free(p.w);
	return status;
}
