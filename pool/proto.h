/* SPDX-License-Identifier: Apache-2.0 */
/* The pool's messages (client <-> daemon <-> worker), the texts the daemon serves, its socket's deadline and lock. */
#ifndef SANDBOX_POOL_PROTO_H
#define SANDBOX_POOL_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmm/util.h"

/*
 * Every message is a struct pool_msg (little-endian on the wire) followed by
 * @len payload bytes, with up to POOL_MAX_FDS descriptors attached
 * (SCM_RIGHTS). Between the daemon and its workers (SOCK_SEQPACKET
 * socketpairs) a message is one datagram: pool__send() and pool__recv().
 * Between clients and the daemon (the SOCK_STREAM socket a pool listens on,
 * so that an HTTP client can read /metrics there too) messages follow each
 * other on the stream, their descriptors attached to their first byte:
 * pool__send() and struct pool_rx. docs/pool.md lists which message carries
 * what.
 */
#define POOL_MAGIC 0x4c4f4f50u /* "POOL" */
#define POOL_VERSION 2
#define POOL_PAYLOAD_MAX 32768u
#define POOL_MAX_FDS 4

enum pool_type {
	/*
	 * client -> daemon -> worker: run a function. fds: the function (its
	 * file, opened read-only), stdout, stderr, then stdin when POOL_F_STDIN.
	 * arg0: --timeout in seconds (0: none); arg1: argc; payload: argc
	 * NUL-terminated strings, argv[0] first.
	 */
	POOL_RUN = 1,
	/* worker -> daemon -> client: arg0 the exit status; payload: an optional message. */
	POOL_RESULT = 2,
	/*
	 * client -> daemon: no arguments; the daemon's answer: a POOL_STATUS
	 * whose payload is pool__format_status()'s text.
	 */
	POOL_STATUS = 3,
	/* client -> daemon: drain and exit; answered with POOL_RESULT 0. */
	POOL_STOP = 4,
	/* worker -> daemon: restored, paused, waiting for its POOL_RUN. */
	POOL_READY = 5,
	/* daemon -> client: the pool cannot take this run; restore inline. */
	POOL_DECLINED = 6,
};

#define POOL_F_STDIN 1u

struct pool_msg {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint32_t len; /* payload bytes after this header */
	uint32_t flags;
	uint32_t arg0;
	uint32_t arg1;
	uint32_t arg2;
	uint32_t arg3;
};

_Static_assert(sizeof(struct pool_msg) == 32,
	       "pool_msg is 32 bytes on the wire");
_Static_assert(offsetof(struct pool_msg, len) == 8, "pool_msg layout");
_Static_assert(offsetof(struct pool_msg, arg3) == 28, "pool_msg layout");

/*
 * Sends @m (host order; magic and version are filled in) and @len bytes of
 * @payload with @nfds descriptors, on a SOCK_SEQPACKET socket (one datagram)
 * or a SOCK_STREAM one (the descriptors go with the first byte; a short
 * write is continued). 0, -EMSGSIZE for a payload over POOL_PAYLOAD_MAX, or
 * -errno (-EAGAIN: a non-blocking stream socket was full, possibly after
 * part of the message: the stream is unusable). Never raises SIGPIPE.
 */
int pool__send(int fd, uint16_t type, const struct pool_msg *m,
	       const void *payload, size_t len, const int *fds,
	       unsigned int nfds) __must_check;

/*
 * Receives one datagram (SOCK_SEQPACKET only) into *@m (host order) and its payload into @payload
 * (@max bytes; NUL-terminated, so @max + 1 bytes must be there), the
 * descriptors into @fds (*@nfds: in, room for; out, received; O_CLOEXEC).
 * @flags go to recvmsg() (MSG_DONTWAIT). 0; -ECONNRESET at the end of the
 * stream; -EPROTO for anything malformed (wrong magic or version, a
 * truncated datagram or descriptor list, a length that disagrees), in which
 * case every descriptor received is closed; or -errno.
 */
int pool__recv(int fd, struct pool_msg *m, char *payload, size_t max, int *fds,
	       unsigned int *nfds, int flags) __must_check;

/*
 * Splits a POOL_RUN payload of @len bytes into exactly @argc strings in
 * @argv (room for @argc + 1; NULL-terminated). 0, or -EPROTO when the payload
 * does not hold exactly @argc NUL-terminated strings or @argc is 0.
 */
int pool__parse_argv(char *payload, size_t len, unsigned int argc,
		     const char **argv) __must_check;

/*
 * A message arriving on a stream socket, collected across reads: the daemon
 * keeps one per connection, so that a client sending slowly never blocks
 * it. Zero it (or pool__rx_reset()) before the first read.
 */
struct pool_rx {
	unsigned char head[sizeof(struct pool_msg)]; /* the header, as sent */
	struct pool_msg m; /* host order, once the whole message is in */
	char *payload; /* m.len + 1 bytes, NUL-terminated; malloc()ed */
	size_t have; /* bytes of this message received so far */
	int fds[POOL_MAX_FDS];
	unsigned int nfds;
};

/* pool__rx_read(): the stream began with "GET ": an HTTP request. */
#define POOL_RX_HTTP 2

/*
 * One recvmsg() on the stream socket @fd (@flags: MSG_DONTWAIT for a
 * non-blocking read), never past the end of the current message. Returns 1
 * when the message is complete (rx->m, rx->payload and rx->fds are the
 * caller's to use until pool__rx_reset()), 0 when more is to come (or
 * -EAGAIN's case), POOL_RX_HTTP when the first four bytes are "GET " (they
 * stay in rx->head, rx->have is 4), -ECONNRESET at the end of the stream
 * (even mid-message), -EPROTO for anything malformed (a wrong magic or
 * version, a length over POOL_PAYLOAD_MAX, descriptors that do not come
 * with the first byte or are more than @max_fds), -ENOMEM, or -errno. After
 * an error every descriptor received is closed.
 */
int pool__rx_read(int fd, struct pool_rx *rx, unsigned int max_fds,
		  int flags) __must_check;

/* Closes the descriptors still held, frees the payload, readies @rx for a new message. */
void pool__rx_reset(struct pool_rx *rx);

/*
 * A blocking read of one whole message from the stream socket @fd into
 * @rx (see pool__rx_read()). 1, or -errno (-EPROTO also for an HTTP
 * request); @rx is reset on error.
 */
int pool__rx_wait(int fd, struct pool_rx *rx,
		  unsigned int max_fds) __must_check;

/*
 * The @len bytes of an HTTP request in @buf: 1 with its path in *@path
 * (@path_len bytes, not NUL-terminated, pointing into @buf) when the whole
 * request head is there (ended by an empty line) and its request line is
 * "GET <path> HTTP/1.x"; 0 when more is needed; -EPROTO when it cannot be a
 * GET request.
 */
int pool__http_request(const char *buf, size_t len, const char **path,
		       size_t *path_len) __must_check;

/*
 * The daemon closes a connection that stops for POOL_STALL_MS before or in
 * the middle of its request, and one whose request is not whole
 * POOL_REQUEST_MS after it was accepted, however steadily it trickles: each
 * connection holds one of the daemon's few slots. The largest request is a
 * header and POOL_PAYLOAD_MAX bytes (an HTTP request head: 4 KiB), which
 * `sandbox run` writes with one sendmsg() into a socket buffer that holds it
 * whole; a caller's stdin, however large, is no part of it (it goes as a
 * descriptor, read by the VM's process). So a real request is whole when
 * its first byte arrives, and the cap only has to allow for a client that
 * a loaded host does not schedule for a while: five times the stall limit.
 */
#define POOL_STALL_MS 2000
#define POOL_REQUEST_MS (5 * POOL_STALL_MS)

/*
 * When a connection still sending its request is closed: POOL_STALL_MS
 * after its last byte came (@last_ms; when it was accepted, before the
 * first), and POOL_REQUEST_MS after it was accepted (@accepted_ms) at the
 * latest. Milliseconds on the clock the arguments are on.
 */
uint64_t pool__request_deadline_ms(uint64_t accepted_ms, uint64_t last_ms);

/*
 * One pool per socket: takes an exclusive flock() on <@sock>.lock, making
 * the file (mode 0600) and @sock's own directory (mode 0700) when missing,
 * so that of two `pool start`s at the same moment, both finding nobody
 * listening yet, only one goes on. The lock lasts while the returned
 * descriptor (O_CLOEXEC), or a copy a fork() made, is open: it goes with
 * the processes holding it, however they end. The file itself stays: a
 * file left behind locks nothing, while removing it would let a start that
 * opened the old file and one that made a new one both get "the" lock.
 * Returns the descriptor; -EADDRINUSE when another process holds the lock;
 * -ENAMETOOLONG; -EPERM when <@sock>.lock is not a regular file of our
 * uid (a symlink included); or -errno.
 */
int pool__lock_socket(const char *sock) __must_check;

/* What `pool status` and /metrics report. Latencies in milliseconds. */
struct pool_stats {
	const char *snapshot;
	unsigned int ready, busy, restoring, queued;
	uint64_t served, failed, queue_timeouts, reloads;
	uint64_t runs; /* runs whose latency was measured (all of them) */
	double latency_sum_ms; /* over all of them */
	bool have_latency; /* false: no run yet, the quantiles are meaningless */
	double latency_ms[3]; /* p50, p90, p99 of the last runs */
	double wait_ms[2]; /* p50, p99 */
};

/*
 * The nearest-rank @q quantile (0 < @q <= 1) of the @n values in @v, which
 * it sorts. 0 when @n is 0.
 */
double pool__quantile(double *v, size_t n, double q);

/*
 * `pool status`'s text: one "key value" line per figure (docs/pool.md),
 * into @buf. Its length, or -E2BIG when @size is too small. Control
 * characters in the snapshot's path become '?', so a line stays a line.
 */
int pool__format_status(const struct pool_stats *s, char *buf,
			size_t size) __must_check;

/*
 * The same text as one JSON object into @out: "snapshot" a string, every
 * other value a number (a value that is not a plain decimal number becomes
 * a string). Its length, -E2BIG, or -EPROTO for a line without a space.
 */
int pool__status_json(const char *text, char *out, size_t size) __must_check;

/* The Prometheus text exposition (format 0.0.4) of @s into @buf. Its length or -E2BIG. */
int pool__format_metrics(const struct pool_stats *s, char *buf,
			 size_t size) __must_check;

#endif
