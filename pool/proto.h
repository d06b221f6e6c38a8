/* SPDX-License-Identifier: Apache-2.0 */
/* The pool's messages: client <-> daemon <-> worker, one SOCK_SEQPACKET datagram each. */
#ifndef SANDBOX_POOL_PROTO_H
#define SANDBOX_POOL_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "../vmm/util.h"

/*
 * Every message is one datagram on a Unix SOCK_SEQPACKET socket: a struct
 * pool_msg (little-endian on the wire) followed by @len payload bytes, with
 * up to POOL_MAX_FDS descriptors attached (SCM_RIGHTS). docs/pool.md lists
 * which message carries what.
 */
#define POOL_MAGIC 0x4c4f4f50u /* "POOL" */
#define POOL_VERSION 1
#define POOL_PAYLOAD_MAX 32768u
#define POOL_MAX_FDS 4

enum pool_type {
	/*
	 * client -> daemon -> worker: run a function. fds: the function (a
	 * sealed memfd), stdout, stderr, then stdin when POOL_F_STDIN.
	 * arg0: --timeout in seconds (0: none); arg1: argc; payload: argc
	 * NUL-terminated strings, argv[0] first.
	 */
	POOL_RUN = 1,
	/* worker -> daemon -> client: arg0 the exit status; payload: an optional message. */
	POOL_RESULT = 2,
	/* client -> daemon: counts, and the daemon's answer: arg0..arg3 ready, busy, restoring, served; flags queued. */
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
 * @payload with @nfds descriptors. 0, -EMSGSIZE for a payload over
 * POOL_PAYLOAD_MAX, or -errno. Never raises SIGPIPE.
 */
int pool__send(int fd, uint16_t type, const struct pool_msg *m,
	       const void *payload, size_t len, const int *fds,
	       unsigned int nfds) __must_check;

/*
 * Receives one message into *@m (host order) and its payload into @payload
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

#endif
