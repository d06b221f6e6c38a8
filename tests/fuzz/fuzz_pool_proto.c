// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: hostile bytes to the pool, as a worker datagram and as a client stream (framing, HTTP, argv).
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

/* The same bytes on a stream, in two writes: the framing must hold wherever they split. */
static void stream(const uint8_t *data, size_t size)
{
	static char text[2 * POOL_PAYLOAD_MAX];
	struct pool_rx rx = { 0 };
	size_t cut = size ? data[0] % (size + 1) : 0;
	const char *path;
	size_t len;
	int sv[2], r;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (cut)
		check(send(sv[0], data, cut, 0) == (ssize_t)cut);
	if (size > cut)
		check(send(sv[0], data + cut, size - cut, 0) ==
		      (ssize_t)(size - cut));
	shutdown(sv[0], SHUT_WR);
	do {
		r = pool__rx_read(sv[1], &rx, POOL_MAX_FDS, MSG_DONTWAIT);
	} while (r == 0);
	if (r == 1) {
		check(rx.m.len <= POOL_PAYLOAD_MAX && rx.nfds == 0);
		check(rx.have == sizeof(struct pool_msg) + rx.m.len);
		check(rx.payload[rx.m.len] == '\0');
		if (pool__status_json(rx.payload, text, sizeof(text)) >= 0)
			check(text[0] == '{');
	} else if (r == POOL_RX_HTTP) {
		check(rx.have >= 4 && rx.have <= size);
		if (pool__http_request((const char *)data, size, &path, &len) >
		    0)
			check(path > (const char *)data &&
			      path + len <= (const char *)data + size);
	} else {
		check(rx.payload == NULL && rx.nfds == 0 && rx.have == 0);
	}
	pool__rx_reset(&rx);
	close(sv[0]);
	close(sv[1]);
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
	stream(data, size);
	return 0;
}
