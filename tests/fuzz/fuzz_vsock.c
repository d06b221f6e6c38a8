// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: fuzzer bytes as the guest's tx packets to the vsock multiplexer, with live host sockets.
/*
 * Input: one flags byte, then packets, each
 *   u8     where the chain splits into its two descriptors (mod len + 1)
 *   u16    len (little-endian), then len bytes: the 44-byte header as the
 *          guest would write it (every field from the fuzzer) and payload
 * Flags: bit 0 event idx; bit 1 a host client sends "CONNECT 1234\n" first
 * (its host port is 1073741824); bit 2 a TRANSPORT_RESET is owed; bits 3-4
 * the rx buffer size (44, 100, 4096 or 60000 bytes); bits 5-7 how many rx
 * buffers (0, 1, 2, 4, 8, 16, 32, 63).
 * The host listens on port 1234 ("<uds>_1234"), accepts what the guest
 * connects, writes to and closes those sockets between rounds.
 * Invariants checked: every used rx buffer holds a well-formed packet from
 * the host to our guest that fits the buffer, tx buffers all come back,
 * nothing crashes or leaks (ASan).
 */
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../devices/virtio/vsock_mux.h"

#define RAM_BASE 0x100000ULL
#define RAM_SIZE 0x100000ULL
#define QSIZE 64
#define CID 3
#define DESC(q) (RAM_BASE + (uint64_t)(q)*0x2000)
#define AVAIL(q) (DESC(q) + 0x400)
#define USED(q) (DESC(q) + 0x800)
#define RX_DATA (RAM_BASE + 0x10000) /* rx buffers, one after another */
#define TX_DATA (RAM_BASE + 0x80000) /* packet bytes, one after another */
#define TX_END (RAM_BASE + RAM_SIZE)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define check(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "invariant failed: %s (line %d)\n", \
				#cond, __LINE__);                           \
			abort();                                            \
		}                                                           \
	} while (0)

struct env {
	struct guest_mem mem;
	char dir[64], uds[96];
	int lfd; /* the host's listener on port 1234 */
};

struct run {
	struct env *e;
	struct virtq vqs[VSOCK_NR_QUEUES];
	uint16_t avail[VSOCK_NR_QUEUES];
	uint32_t rx_size;
	int broken;
};

static void *hva(struct env *e, uint64_t gpa, uint64_t len)
{
	void *p = mem__gpa_to_hva(&e->mem, gpa, len);

	check(p);
	return p;
}

static void put_desc(struct run *r, int q, uint16_t i, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	struct virtq_desc d = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	memcpy(hva(r->e, DESC(q) + 16ULL * i, 16), &d, 16);
}

static void offer(struct run *r, int q, uint16_t head)
{
	uint16_t *ring = hva(r->e, AVAIL(q) + 4, 2 * QSIZE);

	ring[r->avail[q] % QSIZE] = htole16(head);
	r->avail[q]++;
	*(uint16_t *)hva(r->e, AVAIL(q) + 2, 2) = htole16(r->avail[q]);
}

static uint16_t used_idx(struct run *r, int q)
{
	return le16toh(*(uint16_t *)hva(r->e, USED(q) + 2, 2));
}

static void signal_used(void *opaque)
{
	(void)opaque;
}

static void needs_reset(void *opaque)
{
	((struct run *)opaque)->broken++;
}

static void service(struct vsock_mux *m)
{
	int i;

	for (i = 0; i < 100 && vsock_mux__service(m); i++)
		;
	check(i < 100);
}

/* Every rx buffer the device used holds one well-formed packet for us. */
static void check_rx(struct run *r, uint16_t *seen)
{
	uint16_t end = used_idx(r, VSOCK_QUEUE_RX);

	check((uint16_t)(end - *seen) <= QSIZE);
	for (; *seen != end; (*seen)++) {
		struct virtq_used_elem *u =
			hva(r->e,
			    USED(VSOCK_QUEUE_RX) + 4 + 8 * (*seen % QSIZE), 8);
		uint32_t id = le32toh(u->id), n = le32toh(u->len);
		struct vsock_hdr h;
		uint16_t op;

		check(id < QSIZE && n <= r->rx_size);
		if (n == 0)
			continue;
		check(n >= sizeof(h));
		memcpy(&h,
		       hva(r->e, RX_DATA + (uint64_t)id * r->rx_size,
			   sizeof(h)),
		       sizeof(h));
		op = le16toh(h.op);
		check(op >= VSOCK_OP_REQUEST && op <= VSOCK_OP_CREDIT_REQUEST);
		check(le64toh(h.dst_cid) == CID);
		check(le16toh(h.type) == VSOCK_TYPE_STREAM);
		check(n == sizeof(h) + le32toh(h.len));
		check(op == VSOCK_OP_RW || !h.len);
		check(le32toh(h.len) <= VSOCK_MAX_PKT);
	}
}

/* The host's side of guest-initiated connections: answer, then hang up. */
static void host_round(struct env *e, int *fds, int *nfds, bool close_all)
{
	int fd, i;

	while (*nfds < 64 && (fd = accept4(e->lfd, NULL, NULL,
					   SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0)
		fds[(*nfds)++] = fd;
	for (i = 0; i < *nfds; i++) {
		char buf[512];

		while (recv(fds[i], buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		(void)send(fds[i], "host data", 9, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (close_all)
			close(fds[i]);
	}
	if (close_all)
		*nfds = 0;
}

static int connect_to(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	check(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	check(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	return fd;
}

static void run(struct env *e, const uint8_t *data, size_t len)
{
	static const uint32_t sizes[4] = { 44, 100, 4096, 60000 };
	static const unsigned int counts[8] = { 0, 1, 2, 4, 8, 16, 32, 63 };
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = e->uds,
		.buf_alloc = 8192,
		.max_conns = 8,
		.max_buffered = 32768,
	};
	struct run r = { .e = e };
	struct vsock_mux_queues q = {
		.signal_used = signal_used,
		.needs_reset = needs_reset,
		.opaque = &r,
	};
	uint8_t flags = data[0];
	uint64_t tx = TX_DATA;
	unsigned int i, nrx, pkts = 0;
	int client = -1, fds[64], nfds = 0;
	uint16_t seen = 0;
	struct vsock_mux *m;

	r.rx_size = sizes[(flags >> 3) & 3];
	nrx = counts[flags >> 5];
	memset(hva(e, RAM_BASE, 0x10000), 0, 0x10000);
	for (i = 0; i < VSOCK_NR_QUEUES; i++) {
		virtq__init(&r.vqs[i], &e->mem);
		r.vqs[i].size = QSIZE;
		r.vqs[i].desc_gpa = DESC(i);
		r.vqs[i].avail_gpa = AVAIL(i);
		r.vqs[i].used_gpa = USED(i);
		r.vqs[i].event_idx = flags & 1;
		check(virtq__set_ready(&r.vqs[i]) == 0);
		q.vq[i] = &r.vqs[i];
	}
	check(vsock_mux__new(&cfg, &m) == 0);
	vsock_mux__set_queues(m, &q);
	if (flags & 4)
		vsock_mux__queue_transport_reset(m);
	if (nrx > (TX_DATA - RX_DATA) / r.rx_size)
		nrx = (unsigned int)((TX_DATA - RX_DATA) / r.rx_size);
	for (i = 0; i < nrx; i++) {
		put_desc(&r, VSOCK_QUEUE_RX, (uint16_t)i,
			 RX_DATA + (uint64_t)i * r.rx_size, r.rx_size,
			 VIRTQ_DESC_F_WRITE, 0);
		offer(&r, VSOCK_QUEUE_RX, (uint16_t)i);
	}
	put_desc(&r, VSOCK_QUEUE_EVENT, 0, RX_DATA - 16, 4, VIRTQ_DESC_F_WRITE,
		 0);
	offer(&r, VSOCK_QUEUE_EVENT, 0);
	if (flags & 2) {
		client = connect_to(e->uds);
		check(send(client, "CONNECT 1234\n", 13, MSG_NOSIGNAL) == 13);
		service(m);
	}

	data++;
	len--;
	while (len >= 3 && pkts < QSIZE / 2) {
		uint32_t n = data[1] | (uint32_t)data[2] << 8;
		uint32_t split = data[0] % (n + 1);

		data += 3;
		len -= 3;
		if (n > len)
			n = (uint32_t)len;
		split = split > n ? n : split;
		if (tx + n > TX_END)
			break;
		memcpy(hva(e, tx, n ? n : 1), data, n);
		put_desc(&r, VSOCK_QUEUE_TX, (uint16_t)(2 * pkts), tx, split,
			 VIRTQ_DESC_F_NEXT, (uint16_t)(2 * pkts + 1));
		put_desc(&r, VSOCK_QUEUE_TX, (uint16_t)(2 * pkts + 1),
			 tx + split, n - split, 0, 0);
		offer(&r, VSOCK_QUEUE_TX, (uint16_t)(2 * pkts));
		tx += n;
		data += n;
		len -= n;
		pkts++;
		/* Every few packets, let the device and the host move. */
		if (pkts % 4 == 0) {
			service(m);
			host_round(e, fds, &nfds, false);
		}
	}
	service(m);
	check(r.broken || used_idx(&r, VSOCK_QUEUE_TX) == r.avail[1]);
	host_round(e, fds, &nfds, false);
	if (client >= 0)
		(void)send(client, "x", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
	service(m);
	host_round(e, fds, &nfds, true);
	if (client >= 0)
		close(client);
	service(m);
	check_rx(&r, &seen);
	check(r.broken <= 1);
	vsock_mux__free(m);
	/* Closed host sockets: drain the backlog of what we never accepted. */
	host_round(e, fds, &nfds, true);
}

/* For the atexit() handler: the one place libFuzzer lets us clean up. */
static char listen_path[128];

static void cleanup(void)
{
	char *slash;

	unlink(listen_path);
	slash = strrchr(listen_path, '/');
	if (slash) {
		*slash = '\0';
		rmdir(listen_path);
	}
}

static struct env *setup(void)
{
	struct env *e = calloc(1, sizeof(*e));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	check(e);
	check(mem__init(&e->mem, RAM_BASE, RAM_SIZE) == 0);
	strcpy(e->dir, "/tmp/fuzz-vsock-XXXXXX");
	check(mkdtemp(e->dir));
	snprintf(e->uds, sizeof(e->uds), "%s/v", e->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_1234", e->uds);
	e->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	check(e->lfd >= 0);
	check(bind(e->lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0);
	check(listen(e->lfd, 64) == 0);
	snprintf(listen_path, sizeof(listen_path), "%s", sa.sun_path);
	atexit(cleanup);
	return e;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* libFuzzer calls us millions of times: map RAM and listen once. */
	static struct env *e;

	if (!e)
		e = setup();
	if (len < 1)
		return 0;
	run(e, data, len);
	return 0;
}
