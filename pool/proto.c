// SPDX-License-Identifier: Apache-2.0
// The pool's wire messages (datagrams or a stream, checked on the way in), texts, request deadline, socket lock.
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "proto.h"

static void to_wire(struct pool_msg *w, const struct pool_msg *m, uint16_t type,
		    size_t len)
{
	w->magic = htole32(POOL_MAGIC);
	w->version = htole16(POOL_VERSION);
	w->type = htole16(type);
	w->len = htole32((uint32_t)len);
	w->flags = htole32(m ? m->flags : 0);
	w->arg0 = htole32(m ? m->arg0 : 0);
	w->arg1 = htole32(m ? m->arg1 : 0);
	w->arg2 = htole32(m ? m->arg2 : 0);
	w->arg3 = htole32(m ? m->arg3 : 0);
}

/* Past the @n bytes a short sendmsg() wrote. */
static void advance(struct msghdr *mh, size_t n)
{
	while (n && mh->msg_iovlen) {
		struct iovec *v = mh->msg_iov;

		if (n < v->iov_len) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= n;
			return;
		}
		n -= v->iov_len;
		mh->msg_iov++;
		mh->msg_iovlen--;
	}
}

int pool__send(int fd, uint16_t type, const struct pool_msg *m,
	       const void *payload, size_t len, const int *fds,
	       unsigned int nfds)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pool_msg w;
	struct iovec iov[2] = { { &w, sizeof(w) }, { (void *)payload, len } };
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	size_t left = sizeof(w) + len;
	struct cmsghdr *c;
	ssize_t n;

	if (len > POOL_PAYLOAD_MAX || nfds > POOL_MAX_FDS)
		return -EMSGSIZE;
	to_wire(&w, m, type, len);
	if (nfds) {
		memset(&ctl, 0, sizeof(ctl));
		mh.msg_control = ctl.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	/* A datagram goes whole or not at all; a stream may take it in parts. */
	while (left) {
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		left -= (size_t)n;
		advance(&mh, (size_t)n);
		/* The descriptors went with the first byte. */
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
	}
	return 0;
}

/*
 * Moves the descriptors that came with @mh into @fds after the *@got there
 * already, up to @room in all; any past that is closed. 0, or -EPROTO when
 * one was.
 */
static int take_fds(struct msghdr *mh, int *fds, unsigned int *got,
		    unsigned int room)
{
	struct cmsghdr *c;
	int err = 0;

	if (room > POOL_MAX_FDS)
		room = POOL_MAX_FDS;
	for (c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
		size_t k;

		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int f;

			memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof(f));
			if (*got < room)
				fds[(*got)++] = f;
			else {
				close(f);
				err = -EPROTO;
			}
		}
	}
	return err;
}

int pool__recv(int fd, struct pool_msg *m, char *payload, size_t max, int *fds,
	       unsigned int *nfds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	struct pool_msg w;
	struct iovec iov[2] = { { &w, sizeof(w) }, { payload, max } };
	struct msghdr mh = { .msg_iov = iov,
			     .msg_iovlen = 2,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	unsigned int room = *nfds, got = 0;
	ssize_t n;
	int err;

	*nfds = 0;
	do {
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -ECONNRESET;
	err = take_fds(&mh, fds, &got, room);
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
		err = -EPROTO;
	if ((size_t)n < sizeof(w) || le32toh(w.magic) != POOL_MAGIC ||
	    le16toh(w.version) != POOL_VERSION ||
	    le32toh(w.len) != (size_t)n - sizeof(w))
		err = -EPROTO;
	if (err) {
		while (got)
			close(fds[--got]);
		return err;
	}
	m->magic = POOL_MAGIC;
	m->version = POOL_VERSION;
	m->type = le16toh(w.type);
	m->len = le32toh(w.len);
	m->flags = le32toh(w.flags);
	m->arg0 = le32toh(w.arg0);
	m->arg1 = le32toh(w.arg1);
	m->arg2 = le32toh(w.arg2);
	m->arg3 = le32toh(w.arg3);
	payload[m->len] = '\0';
	*nfds = got;
	return 0;
}

int pool__parse_argv(char *payload, size_t len, unsigned int argc,
		     const char **argv)
{
	size_t off = 0;
	unsigned int i;

	if (!argc)
		return -EPROTO;
	for (i = 0; i < argc; i++) {
		char *nul;

		if (off >= len)
			return -EPROTO;
		nul = memchr(payload + off, '\0', len - off);
		if (!nul)
			return -EPROTO;
		argv[i] = payload + off;
		off = (size_t)(nul - payload) + 1;
	}
	argv[argc] = NULL;
	return off == len ? 0 : -EPROTO;
}

void pool__rx_reset(struct pool_rx *rx)
{
	while (rx->nfds)
		close(rx->fds[--rx->nfds]);
	free(rx->payload);
	memset(rx, 0, sizeof(*rx));
}

static int rx_fail(struct pool_rx *rx, int err)
{
	pool__rx_reset(rx);
	return err;
}

/* The header is in: decode and check it, make room for the payload. */
static int rx_header(struct pool_rx *rx)
{
	struct pool_msg w;

	memcpy(&w, rx->head, sizeof(w));
	if (le16toh(w.version) != POOL_VERSION ||
	    le32toh(w.len) > POOL_PAYLOAD_MAX)
		return -EPROTO;
	rx->m.magic = POOL_MAGIC;
	rx->m.version = POOL_VERSION;
	rx->m.type = le16toh(w.type);
	rx->m.len = le32toh(w.len);
	rx->m.flags = le32toh(w.flags);
	rx->m.arg0 = le32toh(w.arg0);
	rx->m.arg1 = le32toh(w.arg1);
	rx->m.arg2 = le32toh(w.arg2);
	rx->m.arg3 = le32toh(w.arg3);
	rx->payload = malloc(rx->m.len + 1);
	if (!rx->payload)
		return -ENOMEM;
	rx->payload[rx->m.len] = '\0';
	return 0;
}

int pool__rx_read(int fd, struct pool_rx *rx, unsigned int max_fds, int flags)
{
	union {
		char buf[CMSG_SPACE(sizeof(int) * POOL_MAX_FDS)];
		struct cmsghdr align;
	} ctl;
	const size_t hs = sizeof(struct pool_msg);
	struct iovec iov;
	struct msghdr mh = { .msg_iov = &iov,
			     .msg_iovlen = 1,
			     .msg_control = ctl.buf,
			     .msg_controllen = sizeof(ctl.buf) };
	size_t before = rx->have;
	ssize_t n;
	int err;

	if (rx->payload && rx->have == hs + rx->m.len)
		return 1;
	/* Never past this message's end: the next one's descriptors are its own. */
	if (rx->have < hs) {
		iov.iov_base = rx->head + rx->have;
		iov.iov_len = hs - rx->have;
	} else {
		iov.iov_base = rx->payload + (rx->have - hs);
		iov.iov_len = hs + rx->m.len - rx->have;
	}
	do {
		n = recvmsg(fd, &mh, flags | MSG_CMSG_CLOEXEC);
	} while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (n < 0)
		return rx_fail(rx, -errno);
	/* Descriptors come with a message's first byte only. */
	err = take_fds(&mh, rx->fds, &rx->nfds, before == 0 ? max_fds : 0);
	if (mh.msg_flags & MSG_CTRUNC)
		err = -EPROTO;
	if (err)
		return rx_fail(rx, err);
	if (n == 0)
		return rx_fail(rx, -ECONNRESET);
	rx->have += (size_t)n;
	if (before < 4 && rx->have >= 4) {
		uint32_t magic;

		if (!memcmp(rx->head, "GET ", 4))
			return rx->nfds ? rx_fail(rx, -EPROTO) : POOL_RX_HTTP;
		memcpy(&magic, rx->head, sizeof(magic));
		if (le32toh(magic) != POOL_MAGIC)
			return rx_fail(rx, -EPROTO);
	}
	if (before < hs && rx->have == hs) {
		err = rx_header(rx);
		if (err)
			return rx_fail(rx, err);
	}
	return rx->payload && rx->have == hs + rx->m.len;
}

int pool__rx_wait(int fd, struct pool_rx *rx, unsigned int max_fds)
{
	for (;;) {
		int r = pool__rx_read(fd, rx, max_fds, 0);

		if (r == 1)
			return 1;
		if (r == POOL_RX_HTTP)
			return rx_fail(rx, -EPROTO);
		if (r < 0)
			return r;
	}
}

int pool__http_request(const char *buf, size_t len, const char **path,
		       size_t *path_len)
{
	const char *end, *p, *sp;

	if (len < 4)
		return memcmp(buf, "GET ", len) ? -EPROTO : 0;
	if (memcmp(buf, "GET ", 4))
		return -EPROTO;
	end = memmem(buf, len, "\r\n\r\n", 4);
	if (!end)
		end = memmem(buf, len, "\n\n", 2);
	if (!end)
		return 0;
	p = buf + 4;
	sp = memchr(p, ' ', (size_t)(end - p));
	if (!sp || sp == p || *p != '/' || (size_t)(end - sp) < 9 ||
	    memcmp(sp + 1, "HTTP/1.", 7))
		return -EPROTO;
	*path = p;
	*path_len = (size_t)(sp - p);
	return 1;
}

uint64_t pool__request_deadline_ms(uint64_t accepted_ms, uint64_t last_ms)
{
	uint64_t stall = last_ms + POOL_STALL_MS;
	uint64_t whole = accepted_ms + POOL_REQUEST_MS;

	return stall < whole ? stall : whole;
}

int pool__lock_socket(const char *sock)
{
	char path[PATH_MAX], *slash;
	struct stat st;
	int fd, err = 0;

	if (snprintf(path, sizeof(path), "%s.lock", sock) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	slash = strrchr(path, '/');
	if (slash && slash != path) {
		*slash = '\0';
		if (mkdir(path, 0700) < 0 && errno != EEXIST)
			err = -errno;
		*slash = '/';
		if (err)
			return err;
	}
	/*
	 * Not through a symlink, nor stuck on a FIFO: in /tmp (the default
	 * socket's directory) anyone may have put something at this path.
	 */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK,
		  0600);
	if (fd < 0)
		return errno == ELOOP || errno == EISDIR ? -EPERM : -errno;
	/* Someone else's file: its owner could hold the lock and keep us out. */
	if (fstat(fd, &st) < 0)
		err = -errno;
	else if (!S_ISREG(st.st_mode) || st.st_uid != geteuid())
		err = -EPERM;
	else if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		err = errno == EWOULDBLOCK ? -EADDRINUSE : -errno;
	if (err) {
		close(fd);
		return err;
	}
	return fd;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double pool__quantile(double *v, size_t n, double q)
{
	size_t rank;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	/* Nearest rank: the smallest value with at least q of them at or below it. */
	rank = (size_t)(q * (double)n);
	if ((double)rank < q * (double)n)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

/* Text appended to a fixed buffer; too long is remembered, not fatal, until the end. */
struct text {
	char *buf;
	size_t size, len;
	bool over;
};

static void put(struct text *t, const char *fmt, ...) __printf(2, 3);

static void put(struct text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (t->over)
		return;
	va_start(ap, fmt);
	n = vsnprintf(t->buf + t->len, t->size - t->len, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= t->size - t->len)
		t->over = true;
	else
		t->len += (size_t)n;
}

static int text_end(const struct text *t)
{
	return t->over ? -E2BIG : (int)t->len;
}

int pool__format_status(const struct pool_stats *s, char *buf, size_t size)
{
	struct text t = { .buf = buf, .size = size };
	const char *p = s->snapshot ? s->snapshot : "";

	if (!size)
		return -E2BIG;
	buf[0] = '\0';
	put(&t, "snapshot ");
	for (; *p; p++)
		put(&t, "%c",
		    (unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p);
	put(&t, "\nready %u\nbusy %u\nrestoring %u\nqueued %u\n", s->ready,
	    s->busy, s->restoring, s->queued);
	put(&t, "served %llu\nfailed %llu\nqueue_timeouts %llu\n",
	    (unsigned long long)s->served, (unsigned long long)s->failed,
	    (unsigned long long)s->queue_timeouts);
	put(&t,
	    "latency_p50_ms %.3f\nlatency_p90_ms %.3f\nlatency_p99_ms %.3f\n",
	    s->latency_ms[0], s->latency_ms[1], s->latency_ms[2]);
	put(&t, "wait_p50_ms %.3f\nwait_p99_ms %.3f\n", s->wait_ms[0],
	    s->wait_ms[1]);
	return text_end(&t);
}

static void put_json_string(struct text *t, const char *s, size_t n)
{
	put(t, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			put(t, "\\%c", c);
		else if (c < 0x20)
			put(t, "\\u%04x", c);
		else
			put(t, "%c", c);
	}
	put(t, "\"");
}

/* A JSON number as pool__format_status() writes them: digits, maybe a fraction. */
static bool plain_number(const char *s, size_t n)
{
	size_t i = 0, digits = 0;

	while (i < n && s[i] >= '0' && s[i] <= '9')
		i++, digits++;
	if (!digits || (digits > 1 && s[0] == '0'))
		return false;
	if (i < n && s[i] == '.') {
		size_t frac = ++i;

		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
		if (i == frac)
			return false;
	}
	return i == n;
}

int pool__status_json(const char *text, char *out, size_t size)
{
	struct text t = { .buf = out, .size = size };
	const char *line = text;
	bool first = true;

	if (!size)
		return -E2BIG;
	out[0] = '\0';
	put(&t, "{");
	while (*line) {
		const char *nl = strchr(line, '\n');
		size_t n = nl ? (size_t)(nl - line) : strlen(line);
		const char *sp = memchr(line, ' ', n);
		size_t klen, vlen;

		if (!sp)
			return -EPROTO;
		klen = (size_t)(sp - line);
		vlen = n - klen - 1;
		put(&t, first ? "" : ", ");
		put_json_string(&t, line, klen);
		put(&t, ": ");
		if (strncmp(line, "snapshot", klen) &&
		    plain_number(sp + 1, vlen))
			put(&t, "%.*s", (int)vlen, sp + 1);
		else
			put_json_string(&t, sp + 1, vlen);
		first = false;
		line += n + (nl != NULL);
	}
	put(&t, "}");
	return text_end(&t);
}

/* A quantile in seconds; NaN, as Prometheus' own clients say, before any run. */
static void put_quantile(struct text *t, const char *q, bool have, double ms)
{
	if (have)
		put(t,
		    "sandbox_pool_invocation_seconds{quantile=\"%s\"} %.6f\n",
		    q, ms / 1000);
	else
		put(t, "sandbox_pool_invocation_seconds{quantile=\"%s\"} NaN\n",
		    q);
}

static void put_metric(struct text *t, const char *name, const char *type,
		       const char *help, unsigned long long v)
{
	put(t, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type,
	    name, v);
}

int pool__format_metrics(const struct pool_stats *s, char *buf, size_t size)
{
	struct text t = { .buf = buf, .size = size };

	if (!size)
		return -E2BIG;
	buf[0] = '\0';
	put(&t, "# HELP sandbox_pool_vms VM processes of the pool by state.\n"
		"# TYPE sandbox_pool_vms gauge\n");
	put(&t, "sandbox_pool_vms{state=\"ready\"} %u\n", s->ready);
	put(&t, "sandbox_pool_vms{state=\"busy\"} %u\n", s->busy);
	put(&t, "sandbox_pool_vms{state=\"restoring\"} %u\n", s->restoring);
	put_metric(&t, "sandbox_pool_queued", "gauge",
		   "Runs waiting in the queue for a VM.", s->queued);
	put_metric(&t, "sandbox_pool_invocations_total", "counter",
		   "Runs whose VM reported an exit status.", s->served);
	put_metric(
		&t, "sandbox_pool_failures_total", "counter",
		"Failed restores, VM processes that died, runs that ended in status 100, 103, 104 or 105.",
		s->failed);
	put_metric(&t, "sandbox_pool_queue_timeouts_total", "counter",
		   "Runs that got no VM within --queue-timeout (status 115).",
		   s->queue_timeouts);
	put_metric(&t, "sandbox_pool_reloads_total", "counter",
		   "Snapshot reloads (SIGHUP) that took effect.", s->reloads);
	put(&t,
	    "# HELP sandbox_pool_invocation_seconds From a run's request to its result; quantiles over the last 1024 runs.\n"
	    "# TYPE sandbox_pool_invocation_seconds summary\n");
	put_quantile(&t, "0.5", s->have_latency, s->latency_ms[0]);
	put_quantile(&t, "0.9", s->have_latency, s->latency_ms[1]);
	put_quantile(&t, "0.99", s->have_latency, s->latency_ms[2]);
	put(&t, "sandbox_pool_invocation_seconds_sum %.6f\n",
	    s->latency_sum_ms / 1000);
	put(&t, "sandbox_pool_invocation_seconds_count %llu\n",
	    (unsigned long long)s->runs);
	return text_end(&t);
}
