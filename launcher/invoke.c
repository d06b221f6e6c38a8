// SPDX-License-Identifier: Apache-2.0
// Host side of the agent protocol: READY for the snapshot, then one invocation's frames and I/O.
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "../images/agent/proto.h"
#include "../vmm/log.h"
#include "invoke.h"

/* Writes to out_fd/err_fd after POLLOUT: a pipe with room for one more page takes this much. */
#define OUT_CHUNK PIPE_BUF

/* A frame being received. The buffer starts small and grows to the longest frame seen. */
struct rx {
	uint8_t *buf;
	size_t cap;
	size_t max; /* longest frame accepted; cap == max means a fixed buffer */
	size_t len;
	bool have_hdr;
	struct agent_frame f;
};

struct inv {
	int fd;
	const struct invoke_request *req;
	struct invoke_result *res;
	int64_t t0;
	int64_t deadline; /* CLOCK_MONOTONIC ns; 0: none */

	/* One frame to send: head (INIT + EXEC at first, later a header) then body bytes. */
	uint8_t *head;
	size_t head_len;
	const uint8_t *body;
	size_t body_len;
	size_t tx_off; /* over head then body */
	bool tx_dead; /* the agent stopped reading: keep receiving its last frames */
	uint64_t fn_off; /* function bytes queued so far */
	uint8_t *inbuf;
	bool in_eof_sent;

	/* One frame received at a time; an output frame is written out before the next. */
	struct rx rx;
	bool out_pending;
	size_t out_off;
	bool out_dead; /* EPIPE: the reader is gone, the rest is dropped */
	bool err_dead;
	bool started;
	bool done;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t since(const struct inv *v)
{
	int64_t d = now_ns() - v->t0;

	/* 0 means "not reached": a point reached within the first ns still counts. */
	return d > 0 ? (uint64_t)d : 1;
}

static int64_t deadline_of(unsigned int timeout_ms)
{
	return timeout_ms ? now_ns() + (int64_t)timeout_ms * 1000000LL : 0;
}

/* poll() timeout until @deadline, rounded up; -1 for none; 0 once passed. */
static int poll_ms(int64_t deadline)
{
	int64_t left;

	if (!deadline)
		return -1;
	left = deadline - now_ns();
	if (left <= 0)
		return 0;
	left = (left + 999999) / 1000000;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * A write to a pipe whose reader left raises SIGPIPE, which would kill the whole VMM. Blocking
 * it in this thread turns it into EPIPE; a SIGPIPE that write() left pending is then consumed.
 */
static ssize_t write_nosigpipe(int fd, const void *buf, size_t len)
{
	struct timespec zero = { 0 };
	sigset_t pipe_set, old;
	ssize_t n;
	int e;

	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
	n = write(fd, buf, len);
	e = errno;
	if (n < 0 && e == EPIPE && !sigismember(&old, SIGPIPE))
		while (sigtimedwait(&pipe_set, NULL, &zero) < 0 &&
		       errno == EINTR)
			;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	errno = e;
	return n;
}

/* ---- sending ---- */

static bool tx_empty(const struct inv *v)
{
	return v->tx_off == v->head_len + v->body_len;
}

static void tx_set(struct inv *v, size_t head_len, const void *body,
		   size_t body_len)
{
	v->head_len = head_len;
	v->body = body;
	v->body_len = body_len;
	v->tx_off = 0;
}

/* Sends what the socket takes now; 0, or -errno (-EPIPE/-ECONNRESET: the agent left). */
static int tx_send(struct inv *v)
{
	struct msghdr msg = { 0 };
	struct iovec iov[2];
	ssize_t n;

	while (!tx_empty(v)) {
		msg.msg_iov = iov;
		msg.msg_iovlen = 0;
		if (v->tx_off < v->head_len) {
			iov[0].iov_base = v->head + v->tx_off;
			iov[0].iov_len = v->head_len - v->tx_off;
			msg.msg_iovlen = 1;
			if (v->body_len) {
				iov[1].iov_base = (void *)v->body;
				iov[1].iov_len = v->body_len;
				msg.msg_iovlen = 2;
			}
		} else {
			iov[0].iov_base =
				(void *)(v->body + (v->tx_off - v->head_len));
			iov[0].iov_len = v->head_len + v->body_len - v->tx_off;
			msg.msg_iovlen = 1;
		}
		n = sendmsg(v->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			return -errno;
		}
		v->tx_off += (size_t)n;
	}
	return 0;
}

/* Queues the next FN_DATA chunk, or the stdin EOF when there is no stdin to read. */
static void tx_refill(struct inv *v)
{
	const struct invoke_request *req = v->req;
	size_t n;

	if (!tx_empty(v) || v->tx_dead)
		return;
	if (v->fn_off < req->fn_size) {
		n = req->fn_size - v->fn_off < AGENT_CHUNK
			    ? (size_t)(req->fn_size - v->fn_off)
			    : AGENT_CHUNK;
		agent__encode_hdr(v->head, AGENT_FN_DATA, (uint32_t)n);
		tx_set(v, AGENT_HDR_SIZE, (const uint8_t *)req->fn + v->fn_off,
		       n);
		v->fn_off += n;
		return;
	}
	if (!v->res->sent_ns)
		v->res->sent_ns = since(v);
	if (req->in_fd < 0 && !v->in_eof_sent) {
		agent__encode_hdr(v->head, AGENT_STDIN, 0);
		tx_set(v, AGENT_HDR_SIZE, NULL, 0);
		v->in_eof_sent = true;
	}
}

/* Reads the caller's stdin into one STDIN frame; its EOF or a read error becomes the empty one. */
static void read_stdin(struct inv *v)
{
	ssize_t n;

	n = read(v->req->in_fd, v->inbuf, AGENT_CHUNK);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return;
		pr_warn("reading the function's stdin: %s; sending EOF",
			strerror(errno));
		n = 0;
	}
	agent__encode_hdr(v->head, AGENT_STDIN, (uint32_t)n);
	tx_set(v, AGENT_HDR_SIZE, v->inbuf, (size_t)n);
	v->res->stdin_bytes += (uint64_t)n;
	if (n == 0)
		v->in_eof_sent = true;
}

/* ---- receiving ---- */

static int bad_frame(const struct inv *v, const char *why)
{
	pr_err("agent protocol error (%s frame): %s",
	       agent__type_name(v->rx.f.type), why);
	return -EPROTO;
}

/*
 * Reads towards one whole frame from @fd into @rx. 1 when complete, 0 when more must come,
 * -EPROTO for a bad header or a frame over rx->max (logged), -ENOMEM, -ECONNRESET at EOF, or
 * -errno.
 */
static int rx_fill(int fd, struct rx *rx)
{
	size_t want =
		rx->have_hdr ? AGENT_HDR_SIZE + rx->f.len : AGENT_HDR_SIZE;
	const char *why;
	uint8_t *p;
	ssize_t n;

	while (rx->len < want) {
		n = recv(fd, rx->buf + rx->len, want - rx->len, MSG_DONTWAIT);
		/*
		 * Debug only: a VM that panicked or timed out ends its
		 * connection too, and the caller names that real cause.
		 */
		if (n == 0) {
			pr_debug("the agent closed the connection %s",
				 rx->len ? "in the middle of a frame"
					 : "before the end of the invocation");
			return -ECONNRESET;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == ECONNRESET) {
				pr_debug("the agent reset the connection");
				return -ECONNRESET;
			}
			pr_err("receiving from the agent: %s", strerror(errno));
			return -errno;
		}
		rx->len += (size_t)n;
		if (rx->have_hdr || rx->len < AGENT_HDR_SIZE)
			continue;
		if (agent__decode_hdr(rx->buf, true, &rx->f, &why) < 0) {
			pr_err("agent protocol error (frame header): %s", why);
			return -EPROTO;
		}
		rx->have_hdr = true;
		want = AGENT_HDR_SIZE + rx->f.len;
		if (want > rx->max) {
			pr_err("agent protocol error: unexpected %s frame",
			       agent__type_name(rx->f.type));
			return -EPROTO;
		}
		if (want > rx->cap) {
			p = realloc(rx->buf, want);
			if (!p)
				return -ENOMEM;
			rx->buf = p;
			rx->cap = want;
		}
	}
	return 1;
}

static void frame_done(struct inv *v)
{
	v->rx.len = 0;
	v->rx.have_hdr = false;
	v->out_pending = false;
}

static int on_exit_frame(struct inv *v, const void *p)
{
	struct agent_exit x;
	const char *why;

	if (agent__decode_exit(p, v->rx.f.len, &x, &why) < 0)
		return bad_frame(v, why);
	v->res->kind = x.kind == AGENT_EXITED ? INVOKE_EXITED : INVOKE_SIGNALED;
	v->res->code = (int)x.code;
	v->done = true;
	return 0;
}

static int on_error_frame(struct inv *v, const void *p)
{
	struct agent_error e;
	const char *why;

	if (agent__decode_error(p, v->rx.f.len, &e, &why) < 0)
		return bad_frame(v, why);
	_Static_assert(sizeof(v->res->message) >= sizeof(e.message),
		       "message size");
	v->res->kind = INVOKE_AGENT_ERROR;
	v->res->code = (int)e.code;
	memcpy(v->res->message, e.message, sizeof(e.message));
	v->done = true;
	return 0;
}

/* Acts on the whole frame in rx; 0 or -EPROTO (logged). */
static int on_frame(struct inv *v)
{
	const void *p = v->rx.buf + AGENT_HDR_SIZE;

	switch (v->rx.f.type) {
	case AGENT_STARTED:
		if (v->started)
			return bad_frame(v, "the function started twice");
		v->started = true;
		v->res->started_ns = since(v);
		frame_done(v);
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		if (!v->started)
			return bad_frame(v, "output before STARTED");
		if (v->rx.f.type == AGENT_STDOUT)
			v->res->stdout_bytes += v->rx.f.len;
		else
			v->res->stderr_bytes += v->rx.f.len;
		/* Written out by the poll loop; no frame is read meanwhile. */
		v->out_pending = true;
		v->out_off = 0;
		return 0;
	case AGENT_EXIT:
		if (!v->started)
			return bad_frame(v, "EXIT before STARTED");
		return on_exit_frame(v, p);
	case AGENT_ERROR:
		/* Before STARTED: the function never ran. After: the agent gave up on it. */
		return on_error_frame(v, p);
	}
	return bad_frame(v, "not expected during an invocation");
}

/* The fd the pending output frame goes to, or -1 to drop it. */
static int out_target(const struct inv *v)
{
	if (v->rx.f.type == AGENT_STDOUT)
		return v->out_dead ? -1 : v->req->out_fd;
	return v->err_dead ? -1 : v->req->err_fd;
}

/* Writes some of the pending output frame; 0 or -errno (logged). */
static int write_output(struct inv *v)
{
	int fd = out_target(v);
	size_t left = v->rx.f.len - v->out_off;
	ssize_t n;

	if (fd < 0) {
		frame_done(v);
		return 0;
	}
	n = write_nosigpipe(fd, v->rx.buf + AGENT_HDR_SIZE + v->out_off,
			    left < OUT_CHUNK ? left : OUT_CHUNK);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		if (errno == EPIPE) {
			/* Like a closed terminal: the function runs on, its output is dropped. */
			if (v->rx.f.type == AGENT_STDOUT)
				v->out_dead = true;
			else
				v->err_dead = true;
			frame_done(v);
			return 0;
		}
		pr_err("writing the function's %s: %s",
		       v->rx.f.type == AGENT_STDOUT ? "stdout" : "stderr",
		       strerror(errno));
		return -errno;
	}
	v->out_off += (size_t)n;
	if (v->out_off == v->rx.f.len)
		frame_done(v);
	return 0;
}

/* ---- the invocation ---- */

/* Writes the function into the agent's window; false when it must go as FN_DATA. */
static bool put_in_window(const struct invoke_request *req,
			  const struct invoke_session *s)
{
	const uint8_t *src = req->fn;
	uint64_t left = req->fn_size;
	int err = 0;

	if (!req->write_guest || !req->fn_size || req->fn_size > s->window_size)
		return false;
	for (uint32_t i = 0; i < s->count && left && !err; i++) {
		size_t n =
			(size_t)(s->ext[i].len < left ? s->ext[i].len : left);

		err = req->write_guest(req->write_arg, s->ext[i].gpa, src, n);
		src += n;
		left -= n;
	}
	if (err)
		pr_debug(
			"the agent's window is not guest memory (%s): sending the function",
			strerror(-err));
	return !err;
}

/* @exec_len: the EXEC frame's, from agent__exec_size() (invoke__run() checked it). */
static int start(struct inv *v, const struct invoke_session *s, size_t exec_len)
{
	const struct invoke_request *req = v->req;
	uint32_t flags = 0;
	int err;

	v->head = malloc(exec_len > AGENT_HDR_SIZE ? exec_len : AGENT_HDR_SIZE);
	/* Our agent's frames are at most a chunk; longer ones grow the buffer. */
	v->rx.cap = AGENT_HDR_SIZE + AGENT_CHUNK;
	v->rx.max = AGENT_HDR_SIZE + AGENT_FRAME_MAX;
	v->rx.buf = malloc(v->rx.cap);
	if (req->in_fd >= 0)
		v->inbuf = malloc(AGENT_CHUNK);
	if (!v->head || !v->rx.buf || (req->in_fd >= 0 && !v->inbuf))
		return -ENOMEM;
	if (put_in_window(req, s)) {
		flags = AGENT_EXEC_IN_WINDOW;
		v->fn_off = req->fn_size;
	}
	err = agent__encode_exec(v->head, exec_len, req->argv, req->envp,
				 req->fn_size, flags, &exec_len);
	if (err)
		return err;
	tx_set(v, exec_len, NULL, 0);
	return 0;
}

enum { P_SOCK, P_IN, P_OUT, P_CANCEL, P_NR };

static int loop(struct inv *v)
{
	const struct invoke_request *req = v->req;
	struct pollfd p[P_NR];
	int err, r, ms;

	for (;;) {
		tx_refill(v);
		if (v->done && !v->out_pending)
			return 0;
		ms = poll_ms(v->deadline);
		if (ms == 0) {
			/* The caller reports it, as it reports a VM's --timeout. */
			pr_debug("the invocation timed out after %u ms",
				 req->timeout_ms);
			return -ETIMEDOUT;
		}
		p[P_SOCK].fd = v->fd;
		p[P_SOCK].events = (v->out_pending || v->done ? 0 : POLLIN) |
				   (tx_empty(v) || v->tx_dead ? 0 : POLLOUT);
		/* poll() reports hangups unasked: leave out an fd with nothing to do. */
		if (!p[P_SOCK].events)
			p[P_SOCK].fd = -1;
		p[P_IN].fd = tx_empty(v) && !v->tx_dead &&
					     v->fn_off == req->fn_size &&
					     !v->in_eof_sent
				     ? req->in_fd
				     : -1;
		p[P_IN].events = POLLIN;
		p[P_OUT].fd = v->out_pending ? out_target(v) : -1;
		p[P_OUT].events = POLLOUT;
		p[P_CANCEL].fd = req->cancel_fd;
		p[P_CANCEL].events = POLLIN;
		/* Output to nowhere needs no poll. */
		if (v->out_pending && p[P_OUT].fd < 0) {
			frame_done(v);
			continue;
		}
		if (poll(p, P_NR, ms) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("poll: %s", strerror(errno));
			return -errno;
		}
		if (p[P_CANCEL].revents)
			return -ECANCELED;
		if (p[P_SOCK].revents & (POLLOUT | POLLHUP | POLLERR) &&
		    !tx_empty(v) && !v->tx_dead) {
			err = tx_send(v);
			if (err == -EPIPE || err == -ECONNRESET ||
			    err == -ENOTCONN) {
				/* Its ERROR may still be waiting to be read. */
				v->tx_dead = true;
			} else if (err) {
				pr_err("sending to the agent: %s",
				       strerror(-err));
				return err;
			}
		}
		if (p[P_SOCK].revents & (POLLIN | POLLHUP | POLLERR) &&
		    !v->out_pending && !v->done) {
			r = rx_fill(v->fd, &v->rx);
			if (r < 0)
				return r;
			if (r == 1) {
				err = on_frame(v);
				if (err)
					return err;
			}
		}
		if (p[P_IN].revents && tx_empty(v) && !v->tx_dead)
			read_stdin(v);
		if (p[P_OUT].revents && v->out_pending) {
			err = write_output(v);
			if (err)
				return err;
		}
	}
}

int invoke__run(int fd, const struct invoke_request *req,
		struct invoke_result *res)
{
	struct inv v = {
		.fd = fd,
		.req = req,
		.res = res,
		.t0 = now_ns(),
		.deadline = deadline_of(req->timeout_ms),
	};
	int err;

	struct invoke_session own = { 0 };
	const struct invoke_session *s = req->session;
	size_t exec_len;

	memset(res, 0, sizeof(*res));
	/* A request the protocol cannot carry is refused before anything is sent. */
	err = agent__exec_size(req->argv, req->envp, req->fn_size, &exec_len);
	if (err) {
		pr_err("the invocation cannot be sent: %s", strerror(-err));
		return err;
	}
	if (!s) {
		err = invoke__prepare(fd, req->timeout_ms, req->cancel_fd,
				      false, &own);
		s = &own;
	}
	if (!err)
		err = start(&v, s, exec_len);
	if (!err)
		err = loop(&v);
	invoke__session_free(&own);
	if (!err)
		res->ended_ns = since(&v);
	free(v.head);
	free(v.rx.buf);
	free(v.inbuf);
	return err;
}

/* Sends all of @buf before @deadline; 0, -ETIMEDOUT, -ECANCELED or -errno. */
static int send_all(int fd, const uint8_t *buf, size_t len, int64_t deadline,
		    int cancel_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLOUT },
			       { .fd = cancel_fd, .events = POLLIN } };
	ssize_t n;
	int ms;

	while (len) {
		n = send(fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n > 0) {
			buf += n;
			len -= (size_t)n;
			continue;
		}
		if (n < 0 && errno != EINTR && errno != EAGAIN)
			return errno == EPIPE || errno == ENOTCONN ? -ECONNRESET
								   : -errno;
		ms = poll_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
	}
	return 0;
}

/* Waits for one whole frame into @rx; 0, -ETIMEDOUT, -ECANCELED or rx_fill()'s errors. */
static int recv_one(int fd, struct rx *rx, int64_t deadline, int cancel_fd)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = cancel_fd, .events = POLLIN } };
	int r, ms;

	for (;;) {
		r = rx_fill(fd, rx);
		if (r)
			return r < 0 ? r : 0;
		ms = poll_ms(deadline);
		if (ms == 0)
			return -ETIMEDOUT;
		if (poll(p, 2, ms) < 0 && errno != EINTR)
			return -errno;
		if (p[1].revents)
			return -ECANCELED;
	}
}

static int send_init(int fd, int64_t deadline, int cancel_fd, bool warm)
{
	uint8_t buf[AGENT_INIT_FRAME];
	struct agent_init init = { .flags = warm ? AGENT_INIT_WARM : 0 };
	struct timespec ts;
	size_t len;
	int err;

	/* Clones of one snapshot share their random state until this reaches them. */
	if (getrandom(init.entropy, sizeof(init.entropy), 0) !=
	    (ssize_t)sizeof(init.entropy)) {
		err = -errno;
		pr_err("getrandom: %s", strerror(errno));
		return err;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	init.realtime_ns =
		(uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
	err = agent__encode_init(buf, sizeof(buf), &init, &len);
	explicit_bzero(init.entropy, sizeof(init.entropy));
	if (!err)
		err = send_all(fd, buf, len, deadline, cancel_fd);
	explicit_bzero(buf, sizeof(buf));
	return err;
}

int invoke__prepare(int fd, unsigned int timeout_ms, int cancel_fd, bool warm,
		    struct invoke_session *s)
{
	int64_t deadline = deadline_of(timeout_ms);
	struct rx rx = { .max = AGENT_WINDOW_FRAME_MAX };
	struct agent_window w;
	const char *why;
	int err;

	memset(s, 0, sizeof(*s));
	rx.cap = AGENT_HDR_SIZE + sizeof(struct agent_window_wire) +
		 64 * sizeof(struct agent_extent);
	rx.buf = malloc(rx.cap);
	if (!rx.buf)
		return -ENOMEM;
	err = send_init(fd, deadline, cancel_fd, warm);
	if (!err)
		err = recv_one(fd, &rx, deadline, cancel_fd);
	if (err == -ETIMEDOUT)
		pr_err("the agent did not answer within %u ms", timeout_ms);
	if (err)
		goto out;
	if (rx.f.type != AGENT_WINDOW) {
		pr_err("agent protocol error: %s frame where WINDOW was expected",
		       agent__type_name(rx.f.type));
		err = -EPROTO;
		goto out;
	}
	if (agent__decode_window(rx.buf + AGENT_HDR_SIZE, rx.f.len, &w, &why) <
	    0) {
		pr_err("agent protocol error (WINDOW frame): %s", why);
		err = -EPROTO;
		goto out;
	}
	s->ext = malloc((w.count ? w.count : 1) * sizeof(*s->ext));
	if (!s->ext) {
		err = -ENOMEM;
		goto out;
	}
	for (uint32_t i = 0; i < w.count; i++)
		s->ext[i] = agent__window_extent(&w, i);
	s->count = w.count;
	s->window_size = w.size;
out:
	free(rx.buf);
	return err;
}

void invoke__session_free(struct invoke_session *s)
{
	free(s->ext);
	memset(s, 0, sizeof(*s));
}

int invoke__wait_ready(int fd, unsigned int timeout_ms)
{
	uint8_t buf[AGENT_READY_FRAME];
	struct rx rx = { .buf = buf, .cap = sizeof(buf), .max = sizeof(buf) };
	const char *why;
	uint32_t version;
	int r;

	/* Only READY fits: a longer frame is rejected before its payload is read. */
	r = recv_one(fd, &rx, deadline_of(timeout_ms), -1);
	if (r == -ETIMEDOUT)
		pr_err("the agent was not ready within %u ms", timeout_ms);
	if (r)
		return r;
	if (rx.f.type != AGENT_READY) {
		pr_err("agent protocol error: %s frame where READY was expected",
		       agent__type_name(rx.f.type));
		return -EPROTO;
	}
	if (agent__decode_ready(buf + AGENT_HDR_SIZE, rx.f.len, &version,
				&why) < 0) {
		pr_err("agent protocol error (READY frame): %s", why);
		return -EPROTO;
	}
	if (version != AGENT_VERSION) {
		pr_err("the agent speaks protocol version %u, not %u", version,
		       AGENT_VERSION);
		return -EPROTO;
	}
	return 0;
}
