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

/* Connections held at once (queued, running or not yet asked); more are declined. */
#define MAX_CLIENTS 256
/* After a restore failed, no new one for this long. */
#define BACKOFF_MS 1000
/*
 * A VM process dropped without SIGKILL (its run reported, or idle at a
 * drain) that has not ended this long after is killed: until it is waited
 * for it holds its --max-vms and --mem-budget share, so one that hangs in
 * its teardown would hold it for good. A teardown takes some 30 ms
 * (docs/benchmarks.md); the slow part of a big one, freeing the guest's
 * memory, the kernel does for a killed process too, so killing loses
 * nothing the caller waits for (its result came already). 5 s is over a
 * hundred teardowns, and well within the 30 s a queued run waits by
 * default (--queue-timeout) for that share.
 */
#define EXIT_GRACE_MS 5000
/* The most an HTTP request head may be (curl's is about 80 bytes). */
#define HTTP_MAX 4096
/* Latencies are kept for this many runs: the percentiles are over them. */
#define RING 1024

/* W_EXITING: dropped, its process not yet waited for; it still counts as alive. */
enum wstate { W_FREE, W_RESTORING, W_READY, W_BUSY, W_EXITING };

struct worker {
	enum wstate state;
	pid_t pid;
	int fd; /* our end of the socketpair */
	unsigned int mib; /* its guest memory, for --mem-budget */
	bool reaped; /* waited for: the pid may belong to someone else now */
	uint64_t kill_at_us; /* W_EXITING: when it gets SIGKILL; 0: it got it */
	struct client *client; /* W_BUSY */
};

/* C_HTTP: the connection began with "GET ", its request head is coming in. */
enum cstate { C_FREE, C_NEW, C_HTTP, C_QUEUED, C_RUNNING };

struct client {
	enum cstate state;
	int fd;
	struct pool_rx
		rx; /* C_NEW: the request coming in; C_QUEUED: the POOL_RUN */
	char *http; /* C_HTTP: HTTP_MAX bytes */
	size_t http_len;
	uint64_t seq; /* arrival order: the queue is FIFO */
	uint64_t accepted_ms; /* C_NEW, C_HTTP: for POOL_REQUEST_MS */
	uint64_t last_ms; /* C_NEW, C_HTTP: when a byte last came */
	uint64_t got_us; /* C_QUEUED, C_RUNNING: when the POOL_RUN was whole */
	struct worker *worker; /* C_RUNNING */
};

struct ring {
	double v[RING];
	unsigned int n, next;
};

struct pool {
	/* One worker message's payload at a time: the loop is single-threaded. */
	char payload[POOL_PAYLOAD_MAX + 1];
	const struct pool_opts *o;
	char snap[PATH_MAX]; /* the snapshot, as resolved */
	/*
	 * That file, held open since it was checked: workers restore from
	 * /proc/self/fd/N, so a file put in its place later (a failed reload)
	 * changes nothing until a reload checks it.
	 */
	int snap_fd;
	char snap_fd_path[32];
	unsigned int vm_mib; /* its guest memory */
	const char *sock_path;
	const char *
		vm_dir; /* the workers' socket directories go in here, or NULL */
	unsigned int size, max_vms, budget_mib;
	uint64_t queue_timeout_ms; /* 0: none */
	int listen_fd;
	/* pool__lock_socket()'s: ours for the daemon's life, closed in its children */
	int lock_fd;
	int sig_fd;
	int notify_fd; /* --daemon: the start status goes to the waiting parent */
	sigset_t old_mask;
	pid_t self;
	uid_t uid;
	struct worker *w;
	unsigned int nr_w;
	struct client *c; /* MAX_CLIENTS */
	uint64_t seq;
	uint64_t served, failed, queue_timeouts, reloads, runs;
	double latency_sum_ms;
	struct ring latency, wait;
	bool draining;
	bool is_child; /* in a forked worker or reload process: return its status */
	int child_status;
	uint64_t backoff_until_ms;
	/*
	 * A reload in progress: its process and the socket its answer comes
	 * on, a POOL_RESULT: arg0 an exit status (0: usable), arg1 the guest
	 * memory in MiB, the path as payload, the file checked as descriptor.
	 */
	pid_t reload_pid;
	int reload_fd;
	bool reload_again; /* SIGHUP came during a reload */
};

static uint64_t now_us(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000 + (uint64_t)t.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static void ring_add(struct ring *r, double v)
{
	r->v[r->next] = v;
	r->next = (r->next + 1) % RING;
	if (r->n < RING)
		r->n++;
}

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

/* --max-vms and --mem-budget: may one more VM process start? */
static bool room_for_vm(const struct pool *p)
{
	unsigned int alive = 0;
	uint64_t mib = p->vm_mib;

	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].state != W_FREE) {
			alive++;
			mib += p->w[i].mib;
		}
	return alive < p->max_vms && (!p->budget_mib || mib <= p->budget_mib);
}

static void close_client(struct client *c)
{
	pool__rx_reset(&c->rx);
	free(c->http);
	c->http = NULL;
	c->http_len = 0;
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
	if (kill_it && w->pid > 0 && !w->reaped)
		kill(w->pid, SIGKILL);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->client)
		w->client->worker = NULL;
	w->client = NULL;
	w->state = w->reaped ? W_FREE : W_EXITING;
	w->kill_at_us = kill_it ? 0 : now_us() + (uint64_t)EXIT_GRACE_MS * 1000;
}

static void reply(struct client *c, uint16_t type, const struct pool_msg *m,
		  const char *text)
{
	if (pool__send(c->fd, type, m, text, text ? strlen(text) : 0, NULL, 0))
		pr_debug("pool: a client went away before its answer");
}

/*
 * In a forked child (worker or reload process): nothing of the daemon's
 * stays open or armed, and it dies with the daemon. -1 when the daemon is
 * already gone.
 */
static int leave_daemon(struct pool *p)
{
	/*
	 * Its own process group: a terminal's Ctrl-C reaches the daemon, which
	 * drains, not the running functions.
	 */
	setpgid(0, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != p->self)
		return -1;
	close(p->listen_fd);
	close(p->sig_fd);
	/* The lock is the daemon's: VM processes still dying after it was killed do not hold it. */
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
	if (p->reload_fd >= 0)
		close(p->reload_fd);
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].fd >= 0)
			close(p->w[i].fd);
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		if (p->c[i].state != C_FREE)
			close_client(&p->c[i]);
	sigprocmask(SIG_SETMASK, &p->old_mask, NULL);
	return 0;
}

static void become_worker(struct pool *p, int fd)
{
	p->child_status = EXIT_INTERNAL;
	if (leave_daemon(p))
		return;
	/* launcher__tmpdir() makes the VM's socket directory under $TMPDIR. */
	if (p->vm_dir && setenv("TMPDIR", p->vm_dir, 1) < 0)
		return;
	p->child_status = pool__worker(fd, p->snap_fd_path);
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
		p->is_child = true;
		become_worker(p, sv[1]);
		close(sv[1]);
		return 0;
	}
	close(sv[1]);
	*w = (struct worker){
		.state = W_RESTORING, .pid = pid, .fd = sv[0], .mib = p->vm_mib
	};
	return 0;
}

static void refill(struct pool *p)
{
	while (!p->draining && !p->is_child &&
	       now_ms() >= p->backoff_until_ms &&
	       count(p, W_READY) + count(p, W_RESTORING) < p->size &&
	       room_for_vm(p)) {
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

		for (unsigned int i = 0; i < MAX_CLIENTS; i++)
			if (p->c[i].state == C_QUEUED &&
			    (!c || p->c[i].seq < c->seq))
				c = &p->c[i];
		for (unsigned int i = 0; i < p->nr_w && !w; i++)
			if (p->w[i].state == W_READY)
				w = &p->w[i];
		if (!c || !w)
			return;
		err = pool__send(w->fd, POOL_RUN, &c->rx.m, c->rx.payload,
				 c->rx.m.len, c->rx.fds, c->rx.nfds);
		if (err) {
			pr_err("pool: a ready VM process is gone: %s",
			       strerror(-err));
			p->failed++;
			drop_worker(w, true);
			continue;
		}
		ring_add(&p->wait, (double)(now_us() - c->got_us) / 1000);
		/* The worker holds the caller's stdio now; we must not keep it open. */
		pool__rx_reset(&c->rx);
		c->state = C_RUNNING;
		c->worker = w;
		w->state = W_BUSY;
		w->client = c;
	}
}

/* The daemon's answer to a run: its latency counts from the request to here. */
static void finish_run(struct pool *p, struct client *c,
		       const struct pool_msg *m, const char *text)
{
	double ms = (double)(now_us() - c->got_us) / 1000;

	reply(c, POOL_RESULT, m, text);
	ring_add(&p->latency, ms);
	p->latency_sum_ms += ms;
	p->runs++;
	close_client(c);
}

static void decline_waiting(struct pool *p)
{
	for (unsigned int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &p->c[i];

		if (c->state == C_QUEUED || c->state == C_NEW) {
			reply(c, POOL_DECLINED, NULL, NULL);
			close_client(c);
		} else if (c->state == C_HTTP) {
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
	if (p->reload_pid > 0)
		kill(p->reload_pid, SIGKILL);
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].state == W_READY || p->w[i].state == W_RESTORING)
			drop_worker(&p->w[i], p->w[i].state == W_RESTORING);
	decline_waiting(p);
}

static void stats(struct pool *p, struct pool_stats *s)
{
	double v[RING];

	*s = (struct pool_stats){
		.snapshot = p->snap,
		.ready = count(p, W_READY),
		.busy = count(p, W_BUSY),
		.restoring = count(p, W_RESTORING),
		.queued = queued(p),
		.served = p->served,
		.failed = p->failed,
		.queue_timeouts = p->queue_timeouts,
		.reloads = p->reloads,
		.runs = p->runs,
		.latency_sum_ms = p->latency_sum_ms,
		.have_latency = p->latency.n > 0,
	};
	memcpy(v, p->latency.v, p->latency.n * sizeof(v[0]));
	s->latency_ms[0] = pool__quantile(v, p->latency.n, 0.5);
	s->latency_ms[1] = pool__quantile(v, p->latency.n, 0.9);
	s->latency_ms[2] = pool__quantile(v, p->latency.n, 0.99);
	memcpy(v, p->wait.v, p->wait.n * sizeof(v[0]));
	s->wait_ms[0] = pool__quantile(v, p->wait.n, 0.5);
	s->wait_ms[1] = pool__quantile(v, p->wait.n, 0.99);
}

/*
 * GET /metrics, then close. The answer (a few KiB) goes to a fresh
 * connection's empty socket buffer in one write; should it not fit, the
 * client gets less, never the daemon stuck.
 */
static void serve_http(struct pool *p, struct client *c, const char *path,
		       size_t len)
{
	static const char not_found[] = "not found\n";
	char body[8192], head[256];
	struct iovec iov[2];
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = 2 };
	struct pool_stats s;
	int n = -1, h;

	if (len == strlen("/metrics") && !memcmp(path, "/metrics", len)) {
		stats(p, &s);
		n = pool__format_metrics(&s, body, sizeof(body));
	}
	if (n < 0) {
		n = (int)strlen(not_found);
		memcpy(body, not_found, (size_t)n);
		h = snprintf(head, sizeof(head),
			     "HTTP/1.0 404 Not Found\r\n"
			     "Content-Type: text/plain\r\n"
			     "Content-Length: %d\r\nConnection: close\r\n\r\n",
			     n);
	} else {
		h = snprintf(head, sizeof(head),
			     "HTTP/1.0 200 OK\r\n"
			     "Content-Type: text/plain; version=0.0.4\r\n"
			     "Content-Length: %d\r\nConnection: close\r\n\r\n",
			     n);
	}
	iov[0] = (struct iovec){ head, (size_t)h };
	iov[1] = (struct iovec){ body, (size_t)n };
	if (sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) !=
	    (ssize_t)(iov[0].iov_len + iov[1].iov_len))
		pr_debug("pool: a metrics client got a short answer");
	close_client(c);
}

/* Answers the request once its head is whole; closes a connection that cannot be one. */
static void http_check(struct pool *p, struct client *c)
{
	const char *path;
	size_t len;
	int r;

	r = pool__http_request(c->http, c->http_len, &path, &len);
	if (r > 0)
		serve_http(p, c, path, len);
	else if (r < 0 || c->http_len == HTTP_MAX)
		close_client(c);
}

static void http_readable(struct pool *p, struct client *c)
{
	ssize_t n;

	n = read(c->fd, c->http + c->http_len, HTTP_MAX - c->http_len);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		close_client(c);
		return;
	}
	c->http_len += (size_t)n;
	c->last_ms = now_ms();
	http_check(p, c);
}

static void client_request(struct pool *p, struct client *c)
{
	char text[PATH_MAX + 1024];
	const char **argv;
	struct pool_msg ans = { 0 };
	struct pool_stats s;
	unsigned int want;
	int n;

	switch (c->rx.m.type) {
	case POOL_STATUS:
		stats(p, &s);
		n = pool__format_status(&s, text, sizeof(text));
		reply(c, POOL_STATUS, &ans, n >= 0 ? text : NULL);
		close_client(c);
		return;
	case POOL_STOP:
		reply(c, POOL_RESULT, &ans, NULL);
		close_client(c);
		start_drain(p);
		return;
	case POOL_RUN:
		want = 3 + !!(c->rx.m.flags & POOL_F_STDIN);
		if (c->rx.nfds != want || c->rx.m.arg1 > POOL_PAYLOAD_MAX / 2)
			break;
		argv = malloc((c->rx.m.arg1 + 1) * sizeof(*argv));
		if (argv && !pool__parse_argv(c->rx.payload, c->rx.m.len,
					      c->rx.m.arg1, argv)) {
			free(argv);
			c->state = C_QUEUED;
			c->seq = p->seq++;
			c->got_us = now_us();
			return;
		}
		free(argv);
		break;
	default:
		break;
	}
	pr_debug("pool: a malformed request (type %u)", c->rx.m.type);
	close_client(c);
}

static void client_readable(struct pool *p, struct client *c)
{
	size_t before = c->rx.have;
	int r;

	switch (c->state) {
	case C_NEW:
		r = pool__rx_read(c->fd, &c->rx, POOL_MAX_FDS, MSG_DONTWAIT);
		if (c->rx.have != before)
			c->last_ms = now_ms();
		if (r == 1) {
			client_request(p, c);
		} else if (r == POOL_RX_HTTP) {
			c->http = malloc(HTTP_MAX);
			if (!c->http) {
				close_client(c);
				return;
			}
			memcpy(c->http, c->rx.head, c->rx.have);
			c->http_len = c->rx.have;
			pool__rx_reset(&c->rx);
			c->state = C_HTTP;
			/* A short request came whole with its first bytes. */
			http_check(p, c);
		} else if (r < 0) {
			if (r != -ECONNRESET)
				pr_debug("pool: a bad request: %s",
					 strerror(-r));
			close_client(c);
		}
		return;
	case C_HTTP:
		http_readable(p, c);
		return;
	case C_QUEUED:
	case C_RUNNING:
		/* A client says nothing after its request: this is its end. */
		if (c->state == C_RUNNING && c->worker)
			drop_worker(c->worker, true);
		close_client(c);
		return;
	case C_FREE:
		return;
	}
}

static bool failure_status(uint32_t status)
{
	return status == EXIT_INTERNAL || status == EXIT_GUEST_PANIC ||
	       status == EXIT_TIMEOUT || status == EXIT_SNAP_CORRUPT;
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
		if (w->client)
			finish_run(p, w->client, &m, m.len ? payload : NULL);
		p->served++;
		p->failed += failure_status(m.arg0);
		drop_worker(w, false);
		return;
	}
	p->failed++;
	if (w->state == W_RESTORING) {
		/* The worker said why on our stderr; try again later. */
		p->backoff_until_ms = now_ms() + BACKOFF_MS;
		pr_err("pool: a VM failed to restore (status %d)",
		       !err && m.type == POOL_RESULT ? (int)m.arg0 : -1);
		drop_worker(w, true);
		/* Waiting runs restore inline rather than wait for a pool that cannot. */
		if (!count(p, W_READY))
			for (unsigned int i = 0; i < MAX_CLIENTS; i++)
				if (p->c[i].state == C_QUEUED) {
					reply(&p->c[i], POOL_DECLINED, NULL,
					      NULL);
					close_client(&p->c[i]);
				}
		return;
	}
	if (w->state == W_BUSY && w->client) {
		struct pool_msg r = { .arg0 = EXIT_INTERNAL };

		finish_run(
			p, w->client, &r,
			"the pool's VM process ended before the function's exit status arrived");
	} else if (w->state == W_READY) {
		pr_err("pool: a ready VM process ended");
	}
	drop_worker(w, true);
}

/* The file at @path, if it is the one open as @fd. */
static bool same_file(const char *path, int fd)
{
	struct stat a, b;

	return stat(path, &a) == 0 && fstat(fd, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * The snapshot, resolved and opened once here so that a bad one fails at
 * start. Its guest memory into *@mib; the file checked, held open, into
 * *@fd.
 */
static int check_snapshot(const struct pool_opts *o, char *path, size_t size,
			  uint32_t *mib, int *fd)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		struct snap *s;
		int status, err;

		status = launcher__find_snapshot(o->snapshot, attempt > 0, path,
						 size);
		if (status)
			return status;
		/* Opened first: what snap__open() checks must be this file. */
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		err = snap__open(path, vm__arch_snap_id(), &s);
		/* Once here, so that no worker reads the whole file again (pool__worker()). */
		if (!err) {
			err = snap__verify_memory(s);
			if (err)
				snap__close(s);
		}
		if (!err) {
			*mib = (uint32_t)((snap__info(s)->mem_size + SZ_1M -
					   1) >>
					  20);
			snap__close(s);
			if (*fd >= 0 && same_file(path, *fd))
				return EXIT_OK;
			pr_err("snapshot %s changed while it was checked",
			       path);
			if (*fd >= 0)
				close(*fd);
			*fd = -1;
			return EXIT_INTERNAL;
		}
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
		if (o->snapshot || attempt > 0)
			return launcher__exit_for_snap(err);
		pr_warn("the cached base snapshot is unusable; making it again");
	}
	return EXIT_INTERNAL;
}

/* From now on new VMs restore from the file open as @fd (ours now). */
static void use_snapshot(struct pool *p, int fd)
{
	if (p->snap_fd >= 0)
		close(p->snap_fd);
	p->snap_fd = fd;
	snprintf(p->snap_fd_path, sizeof(p->snap_fd_path), "/proc/self/fd/%d",
		 fd);
}

/* The reload process: checks the snapshot, sends the answer on @fd. */
static void reload_child(struct pool *p, int fd)
{
	struct pool_msg m = { .arg0 = EXIT_INTERNAL };
	char path[PATH_MAX];
	int snap_fd = -1;

	p->is_child = true;
	p->child_status = EXIT_OK;
	if (!leave_daemon(p))
		m.arg0 = (uint32_t)check_snapshot(p->o, path, sizeof(path),
						  &m.arg1, &snap_fd);
	if (pool__send(fd, POOL_RESULT, &m, m.arg0 ? NULL : path,
		       m.arg0 ? 0 : strlen(path), &snap_fd, snap_fd >= 0))
		pr_debug("pool: the daemon went away during a reload");
	if (snap_fd >= 0)
		close(snap_fd);
}

/*
 * SIGHUP: the snapshot is resolved and checked again in a child process,
 * since making the base snapshot anew boots a VM: the loop goes on serving
 * meanwhile, and the answer comes on a socket.
 */
static void start_reload(struct pool *p)
{
	int sv[2];
	pid_t pid;

	if (p->reload_fd >= 0) {
		p->reload_again = true;
		return;
	}
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		pr_err("pool: reload failed: socketpair: %s", strerror(errno));
		return;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		pr_err("pool: reload failed: fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0) {
		close(sv[0]);
		reload_child(p, sv[1]);
		close(sv[1]);
		return;
	}
	close(sv[1]);
	p->reload_fd = sv[0];
	p->reload_pid = pid;
}

static void apply_reload(struct pool *p, const struct pool_msg *m, int fd,
			 const char *path)
{
	unsigned int idle = 0;

	if (!m || m->type != POOL_RESULT ||
	    (!m->arg0 && (fd < 0 || !m->len || m->len >= sizeof(p->snap)))) {
		pr_err("pool: reload failed: the reload process ended without an answer; VMs still restore from %s",
		       p->snap);
		goto fail;
	}
	if (m->arg0) {
		pr_err("pool: reload failed (status %u); VMs still restore from %s",
		       m->arg0, p->snap);
		goto fail;
	}
	if (p->budget_mib && m->arg1 > p->budget_mib) {
		pr_err("pool: reload failed: a VM of %s needs %u MiB, over --mem-budget %u; VMs still restore from %s",
		       path, m->arg1, p->budget_mib, p->snap);
		goto fail;
	}
	memcpy(p->snap, path, m->len + 1);
	use_snapshot(p, fd);
	p->vm_mib = m->arg1;
	/* Busy VMs finish their run; idle ones of the old snapshot make room for new ones. */
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].state == W_READY || p->w[i].state == W_RESTORING) {
			drop_worker(&p->w[i], true);
			idle++;
		}
	p->backoff_until_ms = 0;
	p->reloads++;
	pr_err("pool: reloaded: VMs now restore from %s (%u idle VMs replaced)",
	       p->snap, idle);
	return;
fail:
	if (fd >= 0)
		close(fd);
}

static void reload_readable(struct pool *p)
{
	struct pool_msg m;
	unsigned int nfds = 1;
	int fd = -1, err;

	err = pool__recv(p->reload_fd, &m, p->payload, POOL_PAYLOAD_MAX, &fd,
			 &nfds, MSG_DONTWAIT);
	if (err == -EAGAIN)
		return;
	close(p->reload_fd);
	p->reload_fd = -1;
	apply_reload(p, err ? NULL : &m, nfds ? fd : -1, p->payload);
	if (p->reload_again && !p->draining) {
		p->reload_again = false;
		start_reload(p);
	}
}

static void reap(struct pool *p)
{
	pid_t pid;

	while ((pid = waitpid(-1, NULL, WNOHANG)) > 0) {
		if (pid == p->reload_pid) {
			p->reload_pid = 0;
			continue;
		}
		for (unsigned int i = 0; i < p->nr_w; i++) {
			struct worker *w = &p->w[i];

			if (w->state == W_FREE || w->pid != pid || w->reaped)
				continue;
			w->reaped = true;
			if (w->state == W_EXITING)
				w->state = W_FREE;
			break;
		}
	}
}

/* 0 to go on, 1 to stop now (a second signal). */
static int on_signal(struct pool *p)
{
	struct signalfd_siginfo si;

	while (!p->is_child && read(p->sig_fd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGCHLD) {
			reap(p);
			continue;
		}
		if (si.ssi_signo == SIGHUP) {
			if (!p->draining)
				start_reload(p);
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

/*
 * Closes connections that stall mid-request or take too long over it,
 * times out queued runs, kills VM processes that do not end. The poll
 * timeout until the next of these deadlines (or the end of a backoff), -1
 * for none.
 */
static int expire(struct pool *p)
{
	uint64_t now = now_us(), next = UINT64_MAX;

	for (unsigned int i = 0; i < p->nr_w; i++) {
		struct worker *w = &p->w[i];

		/* Not waited for yet (else W_FREE): the pid is still its own. */
		if (w->state != W_EXITING || !w->kill_at_us)
			continue;
		if (now >= w->kill_at_us) {
			pr_err("pool: a VM process (pid %d) did not end within %d s of its last use: killed",
			       (int)w->pid, EXIT_GRACE_MS / 1000);
			kill(w->pid, SIGKILL);
			w->kill_at_us = 0;
			continue;
		}
		if (w->kill_at_us < next)
			next = w->kill_at_us;
	}
	for (unsigned int i = 0; i < MAX_CLIENTS; i++) {
		struct client *c = &p->c[i];
		uint64_t end;

		if (c->state == C_NEW || c->state == C_HTTP) {
			uint64_t whole_ms = c->accepted_ms + POOL_REQUEST_MS;

			end = pool__request_deadline_ms(c->accepted_ms,
							c->last_ms) *
			      1000;
			if (now >= end) {
				pr_debug(
					"pool: a connection %s",
					now >= whole_ms * 1000
						? "took too long over its request"
						: "stalled mid-request");
				close_client(c);
				continue;
			}
		} else if (c->state == C_QUEUED && p->queue_timeout_ms) {
			end = c->got_us + p->queue_timeout_ms * 1000;
			if (now >= end) {
				struct pool_msg m = {
					.arg0 = EXIT_POOL_EXHAUSTED
				};
				char text[96];

				snprintf(
					text, sizeof(text),
					"pool exhausted: no VM became free within %llu s",
					(unsigned long long)p->queue_timeout_ms /
						1000);
				reply(c, POOL_RESULT, &m, text);
				close_client(c);
				p->queue_timeouts++;
				continue;
			}
		} else {
			continue;
		}
		if (end < next)
			next = end;
	}
	if (p->backoff_until_ms * 1000 > now &&
	    p->backoff_until_ms * 1000 < next)
		next = p->backoff_until_ms * 1000;
	if (next == UINT64_MAX)
		return -1;
	/* Rounded up: waking a little late beats waking early and spinning. */
	return (int)((next - now + 999) / 1000);
}

static void accept_client(struct pool *p)
{
	struct client *c = NULL;
	struct ucred cred;
	socklen_t clen = sizeof(cred);
	int fd;

	fd = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	/* The socket is 0600 already; root may look too. */
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
	    (cred.uid != p->uid && cred.uid != 0)) {
		pr_debug("pool: a connection from another user refused");
		close(fd);
		return;
	}
	for (unsigned int i = 0; i < MAX_CLIENTS && !c; i++)
		if (p->c[i].state == C_FREE)
			c = &p->c[i];
	if (!c) {
		if (pool__send(fd, POOL_DECLINED, NULL, NULL, 0, NULL, 0))
			pr_debug("pool: a declined client went away");
		close(fd);
		return;
	}
	c->state = C_NEW;
	c->fd = fd;
	c->accepted_ms = now_ms();
	c->last_ms = c->accepted_ms;
}

static int serve(struct pool *p)
{
	size_t cap = 3 + p->nr_w + MAX_CLIENTS;
	struct pollfd *pfd;
	void **who;
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
		int listen_i = -1, reload_i = -1, timeout, r;

		refill(p);
		if (p->is_child)
			break;
		dispatch(p);
		timeout = expire(p);
		/*
		 * Exiting VM processes are waited for here, not in a blocking
		 * wait() after: one that hangs gets its SIGKILL in time, and a
		 * second signal is still heard meanwhile.
		 */
		if (p->draining && !count(p, W_BUSY) && !count(p, W_EXITING))
			break;
		pfd[n++] = (struct pollfd){ .fd = p->sig_fd, .events = POLLIN };
		if (p->listen_fd >= 0) {
			listen_i = (int)n;
			pfd[n++] = (struct pollfd){ .fd = p->listen_fd,
						    .events = POLLIN };
		}
		if (p->reload_fd >= 0) {
			reload_i = (int)n;
			pfd[n++] = (struct pollfd){ .fd = p->reload_fd,
						    .events = POLLIN };
		}
		nw_first = n;
		for (unsigned int i = 0; i < p->nr_w; i++)
			if (p->w[i].fd >= 0) {
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
		if (p->is_child)
			break;
		if (listen_i >= 0 && p->listen_fd >= 0 && pfd[listen_i].revents)
			accept_client(p);
		if (reload_i >= 0 && p->reload_fd == pfd[reload_i].fd &&
		    pfd[reload_i].revents)
			reload_readable(p);
		if (p->is_child)
			break;
		for (unsigned int i = nw_first; i < nc_first; i++) {
			struct worker *w = who[i];

			if (pfd[i].revents && w->fd >= 0 && w->fd == pfd[i].fd)
				worker_message(p, w);
		}
		for (unsigned int i = nc_first; i < n; i++) {
			struct client *c = who[i];

			if (pfd[i].revents && c->state != C_FREE &&
			    c->fd == pfd[i].fd)
				client_readable(p, c);
		}
	}
	free(pfd);
	free(who);
	return ret;
}

/*
 * Whether something listens on @path: a connect that succeeds or would
 * wait (a full backlog) says so, without waiting.
 */
static bool pool_answers(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	bool yes;
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return false;
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return false;
	yes = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 ||
	      errno == EAGAIN || errno == EINPROGRESS || errno == EPROTOTYPE;
	close(fd);
	return yes;
}

/* Binds @path, unless a live pool already listens there. -errno (logged). */
static int listen_on(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char dir[PATH_MAX], *slash;
	int fd, err;

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
	if (pool_answers(path)) {
		pr_err("a pool is already running on %s", path);
		return -EADDRINUSE;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
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

/*
 * <socket>.d holds the workers' socket directories, so that what a killed
 * pool left there is found and removed by the next pool on that socket.
 * NULL when the path would not leave room for a VM's socket path.
 */
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

static int write_pid_file(const char *path)
{
	char buf[32];
	int fd, n, err = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		err = -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (!err && write(fd, buf, (size_t)n) != n)
		err = errno ? -errno : -EIO;
	if (fd >= 0 && close(fd) < 0 && !err)
		err = -errno;
	if (err)
		pr_err("pool: cannot write the pid file %s: %s", path,
		       strerror(-err));
	return err;
}

/* Tells a waiting `pool start --daemon` how the start went. */
static void notify_start(struct pool *p, int status)
{
	unsigned char b = (unsigned char)status;

	if (p->notify_fd < 0)
		return;
	if (write(p->notify_fd, &b, 1) != 1)
		pr_debug("pool: the starting command went away");
	close(p->notify_fd);
	p->notify_fd = -1;
}

/* From here our messages go to --log, or nowhere once detached. */
static int redirect_stderr(const struct pool_opts *o, int log_fd)
{
	int fd = log_fd;

	if (fd < 0 && !o->daemon)
		return 0;
	if (fd < 0)
		fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || dup2(fd, STDERR_FILENO) < 0) {
		pr_err("pool: cannot redirect stderr: %s", strerror(errno));
		if (fd >= 0 && fd != log_fd)
			close(fd);
		return -EIO;
	}
	if (fd != log_fd)
		close(fd);
	return 0;
}

/* Everything but detaching: set up, listen, serve until drained, tear down. */
static int run_pool(struct pool *p, const struct pool_opts *o, char *sock,
		    const char *pid_path, int *log_fd)
{
	char vm_dir[PATH_MAX];
	bool pid_written = false;
	struct rlimit nofile;
	sigset_t set;
	int status, fd;

	/* Each queued client holds 5 fds: use all the fds we may have. */
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 &&
	    nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &nofile) < 0)
			pr_debug("pool: cannot raise the fd limit");
	}
	status = check_snapshot(o, p->snap, sizeof(p->snap), &p->vm_mib, &fd);
	if (status)
		return status;
	use_snapshot(p, fd);
	if (p->budget_mib && p->vm_mib > p->budget_mib) {
		pr_err("--mem-budget %u MiB is below one VM's memory: %u MiB (%s)",
		       p->budget_mib, p->vm_mib, p->snap);
		return EXIT_USAGE;
	}
	p->sock_path = sock;
	p->self = getpid();
	p->uid = getuid();
	p->nr_w = p->max_vms;
	p->w = calloc(p->nr_w, sizeof(*p->w));
	p->c = calloc(MAX_CLIENTS, sizeof(*p->c));
	if (!p->w || !p->c) {
		pr_err("pool: out of memory");
		return EXIT_INTERNAL;
	}
	for (unsigned int i = 0; i < p->nr_w; i++)
		p->w[i].fd = -1;
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		p->c[i].fd = -1;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	sigprocmask(SIG_BLOCK, &set, &p->old_mask);
	p->sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (p->sig_fd < 0) {
		pr_err("pool: signalfd: %s", strerror(errno));
		status = EXIT_INTERNAL;
		goto out;
	}
	p->listen_fd = listen_on(sock);
	if (p->listen_fd < 0) {
		status = EXIT_INTERNAL;
		goto out;
	}
	p->vm_dir = make_vm_dir(sock, vm_dir, sizeof(vm_dir));
	if (pid_path) {
		if (write_pid_file(pid_path)) {
			status = EXIT_INTERNAL;
			goto out;
		}
		pid_written = true;
	}
	if (redirect_stderr(o, *log_fd)) {
		status = EXIT_INTERNAL;
		goto out;
	}
	/* It is stderr now: workers need no other copy. */
	if (*log_fd >= 0)
		close(*log_fd);
	*log_fd = -1;
	fprintf(stderr,
		"sandbox: pool of %u VMs (at most %u alive) from %s listening on %s\n",
		p->size, p->max_vms, p->snap, sock);
	notify_start(p, EXIT_OK);
	status = serve(p);
	if (p->is_child)
		return p->child_status;
	/* Stopping: whatever still runs is killed, then every process is waited for. */
	if (p->reload_pid > 0)
		kill(p->reload_pid, SIGKILL);
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].fd >= 0)
			drop_worker(&p->w[i], p->w[i].state == W_BUSY);
	/* Nor do we wait out a grace period: a second signal means now. */
	for (unsigned int i = 0; i < p->nr_w; i++)
		if (p->w[i].state == W_EXITING && p->w[i].kill_at_us)
			kill(p->w[i].pid, SIGKILL);
	for (unsigned int i = 0; i < MAX_CLIENTS; i++)
		if (p->c[i].state != C_FREE)
			close_client(&p->c[i]);
	while (wait(NULL) > 0 || errno == EINTR)
		;
	pr_err("pool: stopped after serving %llu runs",
	       (unsigned long long)p->served);
out:
	if (p->listen_fd >= 0) {
		close(p->listen_fd);
		unlink(sock);
	}
	if (p->reload_fd >= 0)
		close(p->reload_fd);
	if (p->sig_fd >= 0)
		close(p->sig_fd);
	/* Every worker is reaped: what a killed one left goes too. */
	if (p->vm_dir && !empty_vm_dir(p->vm_dir))
		rmdir(p->vm_dir);
	if (pid_written)
		unlink(pid_path);
	sigprocmask(SIG_SETMASK, &p->old_mask, NULL);
	return status;
}

/*
 * --daemon, in the parent: the daemon's start status, once it listens or
 * has failed. A daemon that died without saying is looked at with waitpid().
 */
static int await_start(int fd, pid_t pid)
{
	unsigned char b;
	ssize_t n;
	int st;

	do {
		n = read(fd, &b, 1);
	} while (n < 0 && errno == EINTR);
	if (n == 1 && b == EXIT_OK)
		return EXIT_OK;
	/* It failed: it ends right after saying so. */
	if (waitpid(pid, &st, 0) == pid && n != 1)
		return WIFEXITED(st) && WEXITSTATUS(st) ? WEXITSTATUS(st)
							: EXIT_INTERNAL;
	return n == 1 ? b : EXIT_INTERNAL;
}

/* --daemon: fork; the parent waits for the start status, the child detaches. */
static int detach(struct pool *p, bool *parent)
{
	int hs[2], null_fd, status;
	pid_t pid;

	*parent = false;
	if (pipe2(hs, O_CLOEXEC) < 0) {
		pr_err("pool: pipe: %s", strerror(errno));
		return EXIT_INTERNAL;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		pr_err("pool: fork: %s", strerror(errno));
		close(hs[0]);
		close(hs[1]);
		return EXIT_INTERNAL;
	}
	if (pid > 0) {
		*parent = true;
		close(hs[1]);
		status = await_start(hs[0], pid);
		close(hs[0]);
		return status;
	}
	close(hs[0]);
	p->notify_fd = hs[1];
	setsid();
	/* stderr stays the caller's until the daemon listens: start-up errors are seen. */
	null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null_fd < 0 || dup2(null_fd, STDIN_FILENO) < 0 ||
	    dup2(null_fd, STDOUT_FILENO) < 0) {
		pr_err("pool: cannot detach: %s", strerror(errno));
		if (null_fd >= 0)
			close(null_fd);
		return EXIT_INTERNAL;
	}
	close(null_fd);
	return EXIT_OK;
}

int pool__daemon(const struct pool_opts *o)
{
	char sock[PATH_MAX], pid_path[PATH_MAX + 8];
	bool has_pid = o->pid_file || o->daemon, parent = false;
	struct pool *p = NULL;
	int status, log_fd = -1, lock_fd;

	if (o->socket)
		snprintf(sock, sizeof(sock), "%s", o->socket);
	else if (pool__default_socket(sock, sizeof(sock))) {
		pr_err("pool: the default socket path is too long");
		return EXIT_USAGE;
	}
	if (o->pid_file)
		snprintf(pid_path, sizeof(pid_path), "%s", o->pid_file);
	else
		snprintf(pid_path, sizeof(pid_path), "%s.pid", sock);
	/*
	 * Before anything slow, and while our messages still reach the caller.
	 * Someone answering on a socket we could lock: a pool of a version
	 * without the lock, or not a pool; its socket is not ours to replace.
	 */
	lock_fd = pool__lock_socket(sock);
	if (lock_fd == -EADDRINUSE || (lock_fd >= 0 && pool_answers(sock))) {
		pr_err("a pool is already running on %s", sock);
		if (lock_fd >= 0)
			close(lock_fd);
		return EXIT_INTERNAL;
	}
	if (lock_fd == -EPERM) {
		pr_err("pool: %s.lock is not a regular file of ours", sock);
		return EXIT_INTERNAL;
	}
	if (lock_fd < 0) {
		pr_err("pool: cannot lock %s.lock: %s", sock,
		       strerror(-lock_fd));
		return EXIT_INTERNAL;
	}
	if (o->log) {
		log_fd = open(o->log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
			      0644);
		if (log_fd < 0) {
			pr_err("pool: cannot open the log %s: %s", o->log,
			       strerror(errno));
			status = EXIT_INTERNAL;
			goto out;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		pr_err("pool: out of memory");
		status = EXIT_INTERNAL;
		goto out;
	}
	p->lock_fd = lock_fd;
	lock_fd = -1;
	p->o = o;
	p->size = o->size;
	p->max_vms = o->max_vms;
	p->budget_mib = o->mem_budget_mib;
	p->queue_timeout_ms = (uint64_t)o->queue_timeout_s * 1000;
	p->listen_fd = -1;
	p->sig_fd = -1;
	p->notify_fd = -1;
	p->reload_fd = -1;
	p->snap_fd = -1;
	if (o->daemon) {
		status = detach(p, &parent);
		if (parent || status)
			goto out;
	}
	status = run_pool(p, o, sock, has_pid ? pid_path : NULL, &log_fd);
out:
	/* Forked workers and reload processes end here too. */
	if (p) {
		/* A start that failed before listening: the waiting parent gets its status. */
		notify_start(p, status);
		for (unsigned int i = 0; p->c && i < MAX_CLIENTS; i++)
			if (p->c[i].state != C_FREE)
				close_client(&p->c[i]);
		if (p->snap_fd >= 0)
			close(p->snap_fd);
		/*
		 * Last: the socket, the pid file and <socket>.d are gone or
		 * given up by now (run_pool()), so a pool starting once it has
		 * the lock finds none of them in use.
		 */
		if (p->lock_fd >= 0)
			close(p->lock_fd);
		free(p->w);
		free(p->c);
		free(p);
	}
	if (log_fd >= 0)
		close(log_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	return status;
}
