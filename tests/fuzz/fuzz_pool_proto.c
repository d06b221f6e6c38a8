// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: one hostile datagram on the pool's socket, through pool__recv and the argv parser.
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../../pool/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(bool ok)
{
	if (!ok)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char payload[POOL_PAYLOAD_MAX + 1];
	const char *argv[POOL_PAYLOAD_MAX / 2 + 1];
	int sv[2], fds[POOL_MAX_FDS];
	unsigned int nfds = POOL_MAX_FDS;
	struct pool_msg m;
	int err;

	/* A datagram over the payload limit is refused like any other truncation. */
	if (size > sizeof(struct pool_msg) + POOL_PAYLOAD_MAX + 64)
		return 0;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (size)
		check(send(sv[0], data, size, 0) == (ssize_t)size);
	else
		shutdown(sv[0], SHUT_WR);
	err = pool__recv(sv[1], &m, payload, POOL_PAYLOAD_MAX, fds, &nfds,
			 MSG_DONTWAIT);
	if (!err) {
		check(size == sizeof(struct pool_msg) + m.len);
		check(m.len <= POOL_PAYLOAD_MAX && nfds == 0);
		if (m.type == POOL_RUN && m.arg1 <= POOL_PAYLOAD_MAX / 2 &&
		    !pool__parse_argv(payload, m.len, m.arg1, argv)) {
			for (unsigned int i = 0; i < m.arg1; i++)
				check(argv[i] >= payload &&
				      argv[i] + strlen(argv[i]) <
					      payload + m.len);
			check(!argv[m.arg1]);
		}
	}
	close(sv[0]);
	close(sv[1]);
	return 0;
}
