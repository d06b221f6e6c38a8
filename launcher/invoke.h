/* SPDX-License-Identifier: Apache-2.0 */
/* Host side of the guest agent protocol: the ready report and one function invocation. */
#ifndef SANDBOX_INVOKE_H
#define SANDBOX_INVOKE_H

#include <stddef.h>
#include <stdint.h>

#include "../vmm/util.h"

/*
 * The wire protocol is in docs/agent-protocol.md and images/agent/proto.h. The
 * agent listens on vsock port 52 (AGENT_PORT) and reports readiness on a
 * connection to the host's port 53 (AGENT_READY_PORT); both are defined there.
 */

/*
 * What the agent said when the connection opened (its WINDOW frame), once
 * INIT is sent: where in guest memory the function may be written.
 */
struct invoke_session {
	uint64_t window_size; /* 0: no window */
	uint32_t count;
	struct agent_extent *ext; /* guest physical extents, in window order */
};

/* Writes @len bytes at guest physical address @gpa: 0, or -errno (-EFAULT outside RAM). */
typedef int invoke_write_fn(void *arg, uint64_t gpa, const void *src,
			    size_t len);

struct invoke_request {
	/* NULL-terminated; argv[0] is required. envp NULL means an empty environment. */
	const char *const *argv;
	const char *const *envp;
	/* The function: an executable (ELF, or a script whose interpreter is in the guest). */
	const void *fn;
	size_t fn_size;
	/* -1: the function's stdin is empty (EOF at once). */
	int in_fd;
	/* -1: the function's output is read and discarded. */
	int out_fd;
	int err_fd;
	/* For the whole invocation, from the call to EXIT; 0: no limit. */
	unsigned int timeout_ms;
	/*
	 * -1, or an fd that becomes readable when the caller gives up (an
	 * eventfd): polled always, even while output waits for a slow
	 * reader, and ends the call with -ECANCELED.
	 */
	int cancel_fd;
	/* From invoke__prepare(); NULL: invoke__run() prepares first. */
	const struct invoke_session *session;
	/*
	 * NULL: the function goes as FN_DATA frames. Else a function that fits
	 * the agent's window is written there through it, and EXEC says so.
	 */
	invoke_write_fn *write_guest;
	void *write_arg;
};

enum invoke_kind {
	INVOKE_EXITED, /* code: exit status 0-255 */
	INVOKE_SIGNALED, /* code: the signal that killed it (the launcher maps it to 128 + N) */
	INVOKE_AGENT_ERROR, /* the function never ran: code is a Linux errno, message says why */
};

struct invoke_result {
	enum invoke_kind kind;
	int code;
	char message[256]; /* INVOKE_AGENT_ERROR only; NUL-terminated printable ASCII */
	/* Nanoseconds since invoke__run() was called; 0 when not reached. */
	uint64_t sent_ns; /* INIT, EXEC and the last byte of the function written to @fd */
	uint64_t started_ns; /* STARTED received: the function was exec'd */
	uint64_t ended_ns; /* EXIT or ERROR received and all output written */
	/* Bytes of the function's stdin sent, and of its stdout and stderr received. */
	uint64_t stdin_bytes;
	uint64_t stdout_bytes;
	uint64_t stderr_bytes;
};

/*
 * The start of an invocation over @fd, a connected stream socket to the agent
 * (after any vsock CONNECT/OK handshake, which the caller does): sends INIT
 * (fresh entropy from getrandom() and the current CLOCK_REALTIME) and
 * receives the agent's WINDOW into *@s. A pool does this ahead of time, so
 * that a run only sends EXEC, and sets @warm: the agent then warms up
 * (AGENT_INIT_WARM) while the VM waits for its run. 0; -ETIMEDOUT after @timeout_ms (0: no limit);
 * -ECANCELED when @cancel_fd (-1: none) became readable; -EPROTO for a frame
 * other than a valid WINDOW (logged); -ECONNRESET; -ENOMEM; or -errno.
 * invoke__session_free() releases *@s, whatever the result.
 */
int invoke__prepare(int fd, unsigned int timeout_ms, int cancel_fd, bool warm,
		    struct invoke_session *s) __must_check;
void invoke__session_free(struct invoke_session *s);

/*
 * Runs one invocation over @fd: invoke__prepare() unless @req->session says
 * it was done, then EXEC and the function (into the window when it fits and
 * @req->write_guest is given, else as FN_DATA), then in one poll loop forwards @req->in_fd as STDIN frames and
 * STDOUT/STDERR frames to @req->out_fd/@req->err_fd as they come, until EXIT
 * or ERROR. Output is written completely before the call returns.
 *
 * @fd is used with MSG_DONTWAIT | MSG_NOSIGNAL, so its blocking mode does not
 * matter and SIGPIPE is never raised; the other fds keep their modes: they are
 * read or written only when poll() says so, in chunks of at most PIPE_BUF
 * bytes, and EAGAIN just waits for the next poll(). A terminal, /dev/null, a
 * pipe or a file work as stdin; a read error on it ends the stdin stream (with
 * a warning) rather than the invocation. Nothing is closed; the caller owns
 * every fd.
 *
 * Returns 0 with *@res filled when the agent sent EXIT or ERROR;
 * -ETIMEDOUT when @req->timeout_ms passed first; -ECANCELED when
 * @req->cancel_fd became readable; -EPROTO when the agent sent a
 * malformed or unexpected frame (logged with what was wrong); -ECONNRESET when
 * the stream ended before EXIT or ERROR; -EINVAL, -E2BIG or -EFBIG for a
 * request the protocol cannot carry (no argv[0], argv/envp over a frame, a
 * function over AGENT_FN_MAX); -ENOMEM; or -errno of a failed read or write.
 * On failure *@res holds the timings and byte counts reached so far. The VM is
 * of no further use after a failure: the caller kills it.
 *
 * Another thread can end the call with shutdown(@fd, SHUT_RDWR): it returns
 * -ECONNRESET at once, unless it is waiting for out_fd or err_fd to take
 * output, which only the timeout ends.
 */
int invoke__run(int fd, const struct invoke_request *req,
		struct invoke_result *res) __must_check;

/*
 * The snapshot side: waits on @fd (a connection the agent made to
 * AGENT_READY_PORT, accepted) for its READY frame. 0 when it came with this
 * protocol version; -ETIMEDOUT after @timeout_ms (0: no limit); -EPROTO for
 * anything else (logged); -ECONNRESET if the stream ended first; or -errno.
 * Does not close @fd.
 */
int invoke__wait_ready(int fd, unsigned int timeout_ms) __must_check;

#endif
