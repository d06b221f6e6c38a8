// SPDX-License-Identifier: Apache-2.0
// virtio-vsock: a driver's rings in fake guest memory against host Unix sockets, with and without the device thread.
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../devices/virtio/mmio.h"
#include "../../devices/virtio/vsock.h"
#include "../../devices/virtio/vsock_mux.h"
#include "../../vmm/mem.h"
#include "../../vmm/state.h"
#include "fakes.h"

#define BASE 0x40000000ULL
#define RAM_SIZE (8ULL << 20)
#define QSIZE 64
#define RXBUF 4096
#define CID 3
#define HOSTPORT0 (1U << 30)

/* Queue q's rings, then rx, tx and event buffers. */
#define DESC(q) (BASE + (uint64_t)(q)*0x10000)
#define AVAIL(q) (DESC(q) + 0x4000)
#define USED(q) (DESC(q) + 0x8000)
#define RX_DATA(slot) (BASE + 0x100000 + (uint64_t)(slot)*RXBUF)
#define TX_DATA(k) (BASE + 0x200000 + (uint64_t)(k)*0x11000)
#define EV_DATA(slot) (BASE + 0x500000 + (uint64_t)(slot)*16)

struct drv_q {
	uint16_t avail_idx; /* the driver's next avail->idx */
	uint16_t used_seen; /* used entries the driver consumed */
};

struct rx_pkt {
	struct vsock_hdr h; /* host byte order */
	uint32_t used_len;
	uint8_t data[RXBUF];
};

static struct guest_mem mem;
static struct drv_q dq[VSOCK_NR_QUEUES];
static struct virtq vqs[VSOCK_NR_QUEUES];
static struct vsock_mux *mux;
static int signals, broken;
static char dir[64], uds[80];
/* What the guest advertises in its headers. */
static uint32_t guest_buf_alloc = 256 << 10, guest_fwd_cnt;

/* --- the driver side ------------------------------------------------------ */

static void *hva(uint64_t gpa, uint64_t len)
{
	void *p = mem__gpa_to_hva(&mem, gpa, len);

	cr_assert_not_null(p);
	return p;
}

static void put_desc(int q, uint16_t i, uint64_t addr, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	struct virtq_desc d = {
		.addr = htole64(addr),
		.len = htole32(len),
		.flags = htole16(flags),
		.next = htole16(next),
	};

	memcpy(hva(DESC(q) + 16ULL * i, 16), &d, 16);
}

static void offer(int q, uint16_t head)
{
	uint16_t *ring = hva(AVAIL(q) + 4, 2 * QSIZE);

	ring[dq[q].avail_idx % QSIZE] = htole16(head);
	dq[q].avail_idx++;
	__atomic_store_n((uint16_t *)hva(AVAIL(q) + 2, 2),
			 htole16(dq[q].avail_idx), __ATOMIC_RELEASE);
}

static uint16_t used_idx(int q)
{
	return le16toh(__atomic_load_n((uint16_t *)hva(USED(q) + 2, 2),
				       __ATOMIC_ACQUIRE));
}

static struct virtq_used_elem used_elem(int q, uint16_t i)
{
	struct virtq_used_elem e;

	memcpy(&e, hva(USED(q) + 4 + 8ULL * (i % QSIZE), 8), 8);
	e.id = le32toh(e.id);
	e.len = le32toh(e.len);
	return e;
}

/* The descriptor index is the ring slot: buffers complete in order here. */
static void post_rx_len(uint32_t len)
{
	uint16_t slot = dq[VSOCK_QUEUE_RX].avail_idx % QSIZE;

	cr_assert_lt((uint16_t)(dq[VSOCK_QUEUE_RX].avail_idx -
				dq[VSOCK_QUEUE_RX].used_seen),
		     QSIZE, "rx ring overfull");
	put_desc(VSOCK_QUEUE_RX, slot, RX_DATA(slot), len, VIRTQ_DESC_F_WRITE,
		 0);
	offer(VSOCK_QUEUE_RX, slot);
}

static void post_rx(int n)
{
	while (n--)
		post_rx_len(RXBUF);
}

static void post_event(void)
{
	uint16_t slot = dq[VSOCK_QUEUE_EVENT].avail_idx % QSIZE;

	memset(hva(EV_DATA(slot), 4), 0xa5, 4);
	put_desc(VSOCK_QUEUE_EVENT, slot, EV_DATA(slot), 4, VIRTQ_DESC_F_WRITE,
		 0);
	offer(VSOCK_QUEUE_EVENT, slot);
}

static struct vsock_hdr hdr(uint16_t op, uint32_t src_port, uint32_t dst_port,
			    uint32_t len)
{
	struct vsock_hdr h = {
		.src_cid = CID,
		.dst_cid = VSOCK_HOST_CID,
		.src_port = src_port,
		.dst_port = dst_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.buf_alloc = guest_buf_alloc,
		.fwd_cnt = guest_fwd_cnt,
	};

	return h;
}

static void to_wire(struct vsock_hdr *h)
{
	h->src_cid = htole64(h->src_cid);
	h->dst_cid = htole64(h->dst_cid);
	h->src_port = htole32(h->src_port);
	h->dst_port = htole32(h->dst_port);
	h->len = htole32(h->len);
	h->type = htole16(h->type);
	h->op = htole16(h->op);
	h->flags = htole32(h->flags);
	h->buf_alloc = htole32(h->buf_alloc);
	h->fwd_cnt = htole32(h->fwd_cnt);
}

static void from_wire(struct vsock_hdr *h)
{
	h->src_cid = le64toh(h->src_cid);
	h->dst_cid = le64toh(h->dst_cid);
	h->src_port = le32toh(h->src_port);
	h->dst_port = le32toh(h->dst_port);
	h->len = le32toh(h->len);
	h->type = le16toh(h->type);
	h->op = le16toh(h->op);
	h->flags = le32toh(h->flags);
	h->buf_alloc = le32toh(h->buf_alloc);
	h->fwd_cnt = le32toh(h->fwd_cnt);
}

/*
 * Puts a packet on the tx ring as Linux does: the header in one descriptor,
 * the payload (@plen bytes, which may differ from h.len) in a second.
 */
static void send_raw(struct vsock_hdr h, const void *payload, uint32_t plen)
{
	uint16_t k = dq[VSOCK_QUEUE_TX].avail_idx % (QSIZE / 2);

	cr_assert_lt((uint16_t)(dq[VSOCK_QUEUE_TX].avail_idx -
				used_idx(VSOCK_QUEUE_TX)),
		     QSIZE / 2, "tx ring overfull");
	cr_assert_leq(plen, 0x11000 - sizeof(h));
	to_wire(&h);
	memcpy(hva(TX_DATA(k), sizeof(h)), &h, sizeof(h));
	if (plen)
		memcpy(hva(TX_DATA(k) + sizeof(h), plen), payload, plen);
	put_desc(VSOCK_QUEUE_TX, 2 * k, TX_DATA(k), sizeof(h),
		 plen ? VIRTQ_DESC_F_NEXT : 0, 2 * k + 1);
	if (plen)
		put_desc(VSOCK_QUEUE_TX, 2 * k + 1, TX_DATA(k) + sizeof(h),
			 plen, 0, 0);
	offer(VSOCK_QUEUE_TX, 2 * k);
}

static void send_pkt(uint16_t op, uint32_t src_port, uint32_t dst_port,
		     const void *payload, uint32_t len)
{
	send_raw(hdr(op, src_port, dst_port, len), payload, len);
}

/* The next used rx buffer, if any. */
static bool recv_pkt(struct rx_pkt *p)
{
	struct drv_q *d = &dq[VSOCK_QUEUE_RX];
	struct virtq_used_elem e;

	if (used_idx(VSOCK_QUEUE_RX) == d->used_seen)
		return false;
	e = used_elem(VSOCK_QUEUE_RX, d->used_seen++);
	cr_assert_lt(e.id, QSIZE);
	cr_assert_leq(e.len, RXBUF);
	memset(p, 0, sizeof(*p));
	p->used_len = e.len;
	if (e.len >= sizeof(p->h)) {
		memcpy(&p->h, hva(RX_DATA(e.id), sizeof(p->h)), sizeof(p->h));
		from_wire(&p->h);
		memcpy(p->data, hva(RX_DATA(e.id), e.len), e.len);
		memmove(p->data, p->data + sizeof(p->h), e.len - sizeof(p->h));
	}
	return true;
}

/* --- the multiplexer without threads ---------------------------------------- */

static void on_signal(void *opaque)
{
	(void)opaque;
	signals++;
}

static void on_broken(void *opaque)
{
	(void)opaque;
	broken++;
}

static void service(void)
{
	int rounds = 0;

	while (vsock_mux__service(mux))
		cr_assert_lt(++rounds, 1000, "the device never settles");
}

static void expect_pkt(struct rx_pkt *p, uint16_t op)
{
	service();
	cr_assert(recv_pkt(p), "no packet; wanted op %u", op);
	cr_assert_eq(p->h.op, op, "op %u, wanted %u", p->h.op, op);
	cr_assert_eq(p->h.dst_cid, CID);
	cr_assert_eq(p->h.type, VSOCK_TYPE_STREAM);
	cr_assert_eq(p->used_len, sizeof(p->h) + p->h.len);
}

static void expect_nothing(void)
{
	struct rx_pkt p;

	service();
	cr_assert_not(recv_pkt(&p), "unexpected packet op %u", p.h.op);
}

static void make_dir(void)
{
	strcpy(dir, "/tmp/vsock-test-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	cr_assert_eq(system(cmd), 0);
}

static void ring_up(void)
{
	struct vsock_mux_queues q = {
		.signal_used = on_signal,
		.needs_reset = on_broken,
	};
	int i;

	for (i = 0; i < VSOCK_NR_QUEUES; i++) {
		virtq__init(&vqs[i], &mem);
		vqs[i].size = QSIZE;
		vqs[i].desc_gpa = DESC(i);
		vqs[i].avail_gpa = AVAIL(i);
		vqs[i].used_gpa = USED(i);
		cr_assert_eq(virtq__set_ready(&vqs[i]), 0);
		q.vq[i] = &vqs[i];
	}
	vsock_mux__set_queues(mux, &q);
}

static void mux_with(const struct vsock_mux_config *cfg)
{
	vsock_mux__free(mux);
	mux = NULL;
	cr_assert_eq(vsock_mux__new(cfg, &mux), 0);
	ring_up();
}

static void setup(void)
{
	struct vsock_mux_config cfg = { .guest_cid = CID };

	fakes_reset();
	memset(dq, 0, sizeof(dq));
	signals = broken = 0;
	guest_buf_alloc = 256 << 10;
	guest_fwd_cnt = 0;
	cr_assert_eq(mem__init(&mem, BASE, RAM_SIZE), 0);
	make_dir();
	cfg.uds_path = uds;
	cr_assert_eq(vsock_mux__new(&cfg, &mux), 0);
	ring_up();
}

static void teardown(void)
{
	vsock_mux__free(mux);
	mux = NULL;
	cr_assert_eq(access(uds, F_OK), -1, "the socket path was left behind");
	remove_dir();
	mem__exit(&mem);
}

TestSuite(vsock_mux, .init = setup, .fini = teardown);

/* --- host sockets -------------------------------------------------------------- */

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_lt(snprintf(sa.sun_path, sizeof(sa.sun_path), "%.80s_%u", uds,
			      port),
		     (int)sizeof(sa.sun_path));
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(fd, 8), 0);
	return fd;
}

static int host_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	strcpy(sa.sun_path, path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void host_write(int fd, const void *p, size_t len)
{
	cr_assert_eq(write(fd, p, len), (ssize_t)len);
}

/* Reads what is there without blocking: -1 if nothing, 0 at EOF. */
static ssize_t host_read(int fd, void *p, size_t len)
{
	return recv(fd, p, len, MSG_DONTWAIT);
}

static void expect_read(int fd, const char *want)
{
	char buf[256] = { 0 };
	size_t len = strlen(want);

	cr_assert_eq(host_read(fd, buf, sizeof(buf)), (ssize_t)len,
		     "host read '%s', wanted '%s'", buf, want);
	cr_assert_eq(memcmp(buf, want, len), 0, "host read '%s', wanted '%s'",
		     buf, want);
}

static void expect_eof(int fd)
{
	char c;

	cr_assert_eq(host_read(fd, &c, 1), 0, "the host socket is still open");
}

/* A guest-initiated connection from guest port @gport to host port @port. */
static int guest_connects(uint32_t gport, uint32_t port, int lfd)
{
	struct rx_pkt p;
	int fd;

	send_pkt(VSOCK_OP_REQUEST, gport, port, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RESPONSE);
	cr_assert_eq(p.h.src_cid, VSOCK_HOST_CID);
	cr_assert_eq(p.h.src_port, port);
	cr_assert_eq(p.h.dst_port, gport);
	cr_assert_gt(p.h.buf_alloc, 0);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

/* A host-initiated connection to guest port @gport; returns the client. */
static int host_connects(uint32_t gport, uint32_t *hport)
{
	char ok[32];
	struct rx_pkt p;
	int fd = host_connect(uds);

	snprintf(ok, sizeof(ok), "CONNECT %u\n", gport);
	host_write(fd, ok, strlen(ok));
	expect_pkt(&p, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, gport);
	cr_assert_geq(p.h.src_port, HOSTPORT0);
	*hport = p.h.src_port;
	send_pkt(VSOCK_OP_RESPONSE, gport, *hport, NULL, 0);
	service();
	snprintf(ok, sizeof(ok), "OK %u\n", *hport);
	expect_read(fd, ok);
	return fd;
}

/* --- tests: connections --------------------------------------------------------- */

Test(vsock_mux, guest_connect_gets_response_and_data_flows_both_ways)
{
	int lfd = host_listen(5678), fd;
	struct rx_pkt p;

	post_rx(8);
	fd = guest_connects(1000, 5678, lfd);
	cr_assert_gt(signals, 0);
	cr_assert_eq(vsock_mux__nr_conns(mux), 1);

	send_pkt(VSOCK_OP_RW, 1000, 5678, "hello", 5);
	service();
	expect_read(fd, "hello");
	cr_assert_eq(used_idx(VSOCK_QUEUE_TX), dq[VSOCK_QUEUE_TX].avail_idx,
		     "tx buffers not returned");

	host_write(fd, "world!", 6);
	expect_pkt(&p, VSOCK_OP_RW);
	cr_assert_eq(p.h.len, 6);
	cr_assert_eq(memcmp(p.data, "world!", 6), 0);
	cr_assert_eq(p.h.src_port, 5678);
	cr_assert_eq(p.h.dst_port, 1000);
	cr_assert_eq(p.h.fwd_cnt, 5, "fwd_cnt counts what the host took");
	expect_nothing();
}

Test(vsock_mux, host_connect_sends_request_and_ok_after_response)
{
	uint32_t hport;
	struct rx_pkt p;
	int fd;

	post_rx(8);
	fd = host_connects(1234, &hport);
	cr_assert_eq(hport, HOSTPORT0);

	host_write(fd, "ping", 4);
	expect_pkt(&p, VSOCK_OP_RW);
	cr_assert_eq(p.h.dst_port, 1234);
	cr_assert_eq(p.h.src_port, hport);
	cr_assert_eq(memcmp(p.data, "ping", 4), 0);
	send_pkt(VSOCK_OP_RW, 1234, hport, "pong", 4);
	service();
	expect_read(fd, "pong");

	/* A second connection to the same guest port gets its own host port. */
	host_connects(1234, &hport);
	cr_assert_eq(hport, HOSTPORT0 + 1);
}

Test(vsock_mux, bytes_after_the_connect_line_are_the_stream)
{
	struct rx_pkt p;
	int fd = host_connect(uds);

	post_rx(8);
	host_write(fd, "CONNECT 77\nearly bytes", 22);
	expect_pkt(&p, VSOCK_OP_REQUEST);
	expect_nothing();
	send_pkt(VSOCK_OP_RESPONSE, 77, p.h.src_port, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RW);
	cr_assert_eq(p.h.len, 11);
	cr_assert_eq(memcmp(p.data, "early bytes", 11), 0);
	expect_read(fd, "OK 1073741824\n");
}

Test(vsock_mux, guest_rst_to_a_host_connect_closes_the_client)
{
	struct rx_pkt p;
	int fd = host_connect(uds);

	post_rx(4);
	host_write(fd, "CONNECT 4321\n", 13);
	expect_pkt(&p, VSOCK_OP_REQUEST);
	send_pkt(VSOCK_OP_RST, 4321, p.h.src_port, NULL, 0);
	service();
	expect_eof(fd);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
	expect_nothing();
}

Test(vsock_mux, guest_connect_without_listener_gets_rst)
{
	struct rx_pkt p;

	post_rx(4);
	send_pkt(VSOCK_OP_REQUEST, 1000, 9999, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.src_port, 9999);
	cr_assert_eq(p.h.dst_port, 1000);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

Test(vsock_mux, malformed_connect_lines_are_closed)
{
	static const char *const bad[] = {
		"HELLO\n",
		"CONNECT \n",
		"CONNECT 12a\n",
		"connect 12\n",
		"CONNECT  12\n",
		"CONNECT 4294967296\n",
		"CONNECT -1\n",
		"CONNECT 12 \n",
		"CONNECT 123456789012345678901234567890", /* no newline in 32 */
	};
	int fds[ARRAY_SIZE(bad)];
	size_t i;

	post_rx(4);
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		fds[i] = host_connect(uds);
		host_write(fds[i], bad[i], strlen(bad[i]));
	}
	service();
	for (i = 0; i < ARRAY_SIZE(bad); i++) {
		char c;
		ssize_t n = host_read(fds[i], &c, 1);

		/* Closed with our bytes unread: a reset rather than EOF. */
		cr_assert(n == 0 || (n < 0 && errno == ECONNRESET),
			  "'%s' accepted", bad[i]);
	}
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
	expect_nothing();
}

Test(vsock_mux, host_eof_then_guest_shutdown_closes_fully)
{
	int lfd = host_listen(80), fd;
	struct rx_pkt p;

	post_rx(8);
	fd = guest_connects(2000, 80, lfd);
	host_write(fd, "last", 4);
	cr_assert_eq(shutdown(fd, SHUT_WR), 0);
	expect_pkt(&p, VSOCK_OP_RW);
	expect_pkt(&p, VSOCK_OP_SHUTDOWN);
	cr_assert_eq(p.h.flags, VSOCK_SHUTDOWN_SEND);
	expect_nothing();
	/* The guest may still send after the host stopped. */
	send_pkt(VSOCK_OP_RW, 2000, 80, "more", 4);
	service();
	expect_read(fd, "more");
	{
		struct vsock_hdr h = hdr(VSOCK_OP_SHUTDOWN, 2000, 80, 0);

		h.flags = VSOCK_SHUTDOWN_SEND;
		send_raw(h, NULL, 0);
	}
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.src_port, 80);
	expect_eof(fd);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

Test(vsock_mux, guest_half_close_reaches_the_host_as_eof)
{
	int lfd = host_listen(81), fd;
	struct vsock_hdr h = hdr(VSOCK_OP_SHUTDOWN, 2001, 81, 0);
	struct rx_pkt p;

	post_rx(8);
	fd = guest_connects(2001, 81, lfd);
	send_pkt(VSOCK_OP_RW, 2001, 81, "bye", 3);
	h.flags = VSOCK_SHUTDOWN_SEND;
	send_raw(h, NULL, 0);
	service();
	expect_read(fd, "bye");
	expect_eof(fd);
	/* The host can still answer; then its close ends the connection. */
	host_write(fd, "ack", 3);
	expect_pkt(&p, VSOCK_OP_RW);
	cr_assert_eq(memcmp(p.data, "ack", 3), 0);
	close(fd);
	expect_pkt(&p, VSOCK_OP_SHUTDOWN);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

Test(vsock_mux, guest_close_and_rst_close_the_host_socket)
{
	int lfd = host_listen(82), a, b;
	struct vsock_hdr h = hdr(VSOCK_OP_SHUTDOWN, 3000, 82, 0);
	struct rx_pkt p;

	post_rx(8);
	a = guest_connects(3000, 82, lfd);
	b = guest_connects(3001, 82, lfd);
	h.flags = VSOCK_SHUTDOWN_SEND | VSOCK_SHUTDOWN_RCV;
	send_raw(h, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.dst_port, 3000);
	expect_eof(a);
	send_pkt(VSOCK_OP_RST, 3001, 82, NULL, 0);
	service();
	expect_eof(b);
	expect_nothing();
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

/* --- tests: flow control ---------------------------------------------------------- */

Test(vsock_mux, host_to_guest_stays_within_the_guest_credit)
{
	int lfd = host_listen(90), fd;
	static char big[5000];
	struct rx_pkt p;
	uint32_t got = 0;
	int i;

	for (i = 0; i < (int)sizeof(big); i++)
		big[i] = (char)i;
	guest_buf_alloc = 1000;
	post_rx(32);
	fd = guest_connects(4000, 90, lfd);
	host_write(fd, big, sizeof(big));
	service();
	while (recv_pkt(&p) && p.h.op == VSOCK_OP_RW) {
		cr_assert_eq(memcmp(p.data, big + got, p.h.len), 0);
		got += p.h.len;
	}
	cr_assert_eq(got, 1000, "sent %u bytes on a credit of 1000", got);
	cr_assert_eq(p.h.op, VSOCK_OP_CREDIT_REQUEST);
	expect_nothing();
	/* The guest consumed 600: exactly 600 more may come. */
	guest_fwd_cnt = 600;
	send_pkt(VSOCK_OP_CREDIT_UPDATE, 4000, 90, NULL, 0);
	service();
	while (recv_pkt(&p) && p.h.op == VSOCK_OP_RW) {
		cr_assert_eq(memcmp(p.data, big + got, p.h.len), 0);
		got += p.h.len;
	}
	cr_assert_eq(got, 1600);
}

Test(vsock_mux, host_to_guest_fits_the_rx_buffers)
{
	int lfd = host_listen(91), fd;
	static char big[3 * RXBUF];
	struct rx_pkt p;
	uint32_t got = 0;

	memset(big, 'x', sizeof(big));
	post_rx(1);
	fd = guest_connects(4001, 91, lfd);
	post_rx_len(100);
	post_rx_len(20); /* too short for a header: returned empty */
	post_rx(8);
	host_write(fd, big, sizeof(big));
	service();
	cr_assert(recv_pkt(&p));
	cr_assert_eq(p.h.len, 100 - sizeof(p.h));
	got += p.h.len;
	cr_assert(recv_pkt(&p));
	cr_assert_eq(p.used_len, 0);
	while (recv_pkt(&p)) {
		cr_assert_eq(p.h.op, VSOCK_OP_RW);
		cr_assert_leq(p.h.len, RXBUF - sizeof(p.h));
		got += p.h.len;
	}
	cr_assert_eq(got, sizeof(big));
}

Test(vsock_mux, guest_to_host_buffers_when_the_socket_is_full)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.buf_alloc = 2 << 20,
	};
	static uint8_t chunk[VSOCK_MAX_PKT], in[2 << 20];
	uint32_t sent = 0, max_fwd = 0, taken;
	int lfd, fd, i;
	struct rx_pkt p;
	ssize_t n;

	mux_with(&cfg);
	lfd = host_listen(92);
	post_rx(32);
	fd = guest_connects(5000, 92, lfd);
	/* The guest uses all of its 2 MiB credit; the host reads nothing. */
	while (sent < cfg.buf_alloc) {
		for (i = 0; i < (int)sizeof(chunk); i++)
			chunk[i] = (uint8_t)((sent + (uint32_t)i) * 7);
		send_pkt(VSOCK_OP_RW, 5000, 92, chunk, sizeof(chunk));
		sent += sizeof(chunk);
		service();
	}
	while (recv_pkt(&p))
		if (p.h.fwd_cnt > max_fwd)
			max_fwd = p.h.fwd_cnt;
	/* A Unix socket holds far less than 2 MiB: the rest is buffered. */
	cr_assert_lt(max_fwd, sent, "credit for bytes the host never read");
	cr_assert_eq(vsock_mux__nr_conns(mux), 1);

	for (taken = 0; taken < sent; taken += (uint32_t)n) {
		service();
		n = host_read(fd, in + taken, sizeof(in) - taken);
		cr_assert_gt(n, 0, "stalled at %u of %u", taken, sent);
	}
	for (i = 0; i < (int)sent; i++)
		cr_assert_eq(in[i], (uint8_t)(i * 7), "byte %d", i);
	service();
	while (recv_pkt(&p))
		max_fwd = p.h.fwd_cnt;
	/* The guest may send again: it sees at least half the buffer free. */
	cr_assert_leq(sent - max_fwd, cfg.buf_alloc / 2,
		      "credit updates lag: fwd_cnt %u of %u", max_fwd, sent);
}

Test(vsock_mux, guest_ignoring_our_credit_is_reset)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.buf_alloc = 256 << 10,
	};
	static uint8_t chunk[VSOCK_MAX_PKT];
	int lfd, fd, i;
	struct rx_pkt p;

	mux_with(&cfg);
	lfd = host_listen(93);
	post_rx(8);
	fd = guest_connects(5001, 93, lfd);
	/* Well past 256 KiB plus what the socket takes, host not reading. */
	for (i = 0; i < 40 && vsock_mux__nr_conns(mux); i++) {
		send_pkt(VSOCK_OP_RW, 5001, 93, chunk, sizeof(chunk));
		service();
	}
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
	do
		cr_assert(recv_pkt(&p));
	while (p.h.op != VSOCK_OP_RST);
	(void)fd;
}

Test(vsock_mux, credit_request_is_answered)
{
	int lfd = host_listen(94);
	struct rx_pkt p;

	post_rx(8);
	guest_connects(6000, 94, lfd);
	send_pkt(VSOCK_OP_CREDIT_REQUEST, 6000, 94, NULL, 0);
	expect_pkt(&p, VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(p.h.dst_port, 6000);
	cr_assert_eq(p.h.buf_alloc, 256 << 10);
}

/* --- tests: hostile guests ----------------------------------------------------------- */

Test(vsock_mux, malformed_packets_are_dropped_or_reset)
{
	int lfd = host_listen(95), fd;
	struct vsock_hdr h;
	struct rx_pkt p;

	post_rx(32);
	fd = guest_connects(7000, 95, lfd);

	/* From another CID: dropped without an answer. */
	h = hdr(VSOCK_OP_REQUEST, 7001, 95, 0);
	h.src_cid = 4;
	send_raw(h, NULL, 0);
	expect_nothing();
	/* To a CID other than the host's: RST, from that CID. */
	h = hdr(VSOCK_OP_REQUEST, 7001, 95, 0);
	h.dst_cid = 5;
	send_raw(h, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.src_cid, 5);
	cr_assert_eq(p.h.src_port, 95);
	cr_assert_eq(p.h.dst_port, 7001);
	/* Unknown type, unknown op, RW to nobody: RST. */
	h = hdr(VSOCK_OP_REQUEST, 7002, 95, 0);
	h.type = 2;
	send_raw(h, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	send_pkt(99, 7003, 95, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	send_pkt(VSOCK_OP_RW, 7004, 95, "x", 1);
	expect_pkt(&p, VSOCK_OP_RST);
	/* RST to nobody: silence, never an RST storm. */
	send_pkt(VSOCK_OP_RST, 7005, 95, NULL, 0);
	expect_nothing();
	/* A header cut short. */
	put_desc(VSOCK_QUEUE_TX, 0, TX_DATA(0), 20, 0, 0);
	offer(VSOCK_QUEUE_TX, 0);
	expect_nothing();
	cr_assert_eq(vsock_mux__nr_conns(mux), 1);
	/* A length beyond the payload kills the connection it names. */
	send_raw(hdr(VSOCK_OP_RW, 7000, 95, 5000), "abc", 3);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.dst_port, 7000);
	expect_eof(fd);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
	cr_assert_eq(broken, 0);
	/* Still serving. */
	fd = guest_connects(7010, 95, lfd);
	send_pkt(VSOCK_OP_RW, 7010, 95, "ok", 2);
	service();
	expect_read(fd, "ok");
}

Test(vsock_mux, a_looping_chain_breaks_the_queue_without_hanging)
{
	post_rx(4);
	put_desc(VSOCK_QUEUE_TX, 0, TX_DATA(0), 44, VIRTQ_DESC_F_NEXT, 1);
	put_desc(VSOCK_QUEUE_TX, 1, TX_DATA(0), 44, VIRTQ_DESC_F_NEXT, 0);
	offer(VSOCK_QUEUE_TX, 0);
	cr_assert_not(vsock_mux__service(mux));
	cr_assert_eq(broken, 1);
	cr_assert_not(vsock_mux__service(mux));
	cr_assert_eq(broken, 1, "reported twice");
	vsock_mux__reset(mux);
	memset(dq, 0, sizeof(dq));
	memset(hva(BASE, 0x30000), 0, 0x30000);
	ring_up();
	post_rx(4);
	send_pkt(VSOCK_OP_REQUEST, 1, 9999, NULL, 0);
	{
		struct rx_pkt p;

		expect_pkt(&p, VSOCK_OP_RST);
	}
}

Test(vsock_mux, connection_limit)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.max_conns = 2,
	};
	int lfd, fd;
	struct rx_pkt p;

	mux_with(&cfg);
	lfd = host_listen(96);
	post_rx(16);
	guest_connects(8000, 96, lfd);
	guest_connects(8001, 96, lfd);
	send_pkt(VSOCK_OP_REQUEST, 8002, 96, NULL, 0);
	expect_pkt(&p, VSOCK_OP_RST);
	fd = host_connect(uds);
	service();
	expect_eof(fd);
	cr_assert_eq(vsock_mux__nr_conns(mux), 2);
}

Test(vsock_mux, unanswered_requests_time_out)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.timeout_ms = 50,
	};
	int fd, silent, t;
	struct rx_pkt p;

	mux_with(&cfg);
	post_rx(8);
	fd = host_connect(uds);
	host_write(fd, "CONNECT 5\n", 10);
	silent = host_connect(uds); /* never sends its line */
	expect_pkt(&p, VSOCK_OP_REQUEST);
	t = vsock_mux__timeout_ms(mux);
	cr_assert(t > 0 && t <= 50, "timeout %d", t);
	usleep(60000);
	cr_assert_eq(vsock_mux__timeout_ms(mux), 0);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.dst_port, 5);
	expect_eof(fd);
	expect_eof(silent);
	cr_assert_eq(vsock_mux__timeout_ms(mux), -1);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

Test(vsock_mux, transport_reset_waits_for_an_event_buffer)
{
	struct virtq_used_elem e;

	vsock_mux__queue_transport_reset(mux);
	service();
	cr_assert_eq(used_idx(VSOCK_QUEUE_EVENT), 0);
	signals = 0;
	post_event();
	post_event();
	post_event();
	service();
	/* The event, then the spare buffers handed back empty. */
	cr_assert_eq(used_idx(VSOCK_QUEUE_EVENT), 3);
	e = used_elem(VSOCK_QUEUE_EVENT, 0);
	cr_assert_eq(e.len, 4);
	cr_assert_eq(le32toh(*(uint32_t *)hva(EV_DATA(e.id), 4)),
		     VSOCK_EVENT_TRANSPORT_RESET);
	cr_assert_eq(used_elem(VSOCK_QUEUE_EVENT, 1).len, 0);
	cr_assert_eq(used_elem(VSOCK_QUEUE_EVENT, 2).len, 0);
	cr_assert_eq(signals, 1);
	post_event();
	service();
	cr_assert_eq(used_idx(VSOCK_QUEUE_EVENT), 3, "sent twice");
}

Test(vsock_mux, nothing_reaches_the_guest_before_it_handled_the_reset)
{
	int lfd = host_listen(98), fd;
	struct rx_pkt p;
	int t;

	post_rx(8);
	post_event();
	vsock_mux__queue_transport_reset(mux);
	send_pkt(VSOCK_OP_REQUEST, 9100, 98, NULL, 0);
	fd = host_connect(uds);
	host_write(fd, "CONNECT 9101\n", 13);
	expect_nothing();
	cr_assert_eq(used_idx(VSOCK_QUEUE_EVENT), 1);
	vsock_mux__guest_notified(mux);
	t = vsock_mux__timeout_ms(mux);
	cr_assert(t > 0 && t <= 10000, "timeout %d", t);
	/* The guest handled the event and refilled its buffer. */
	post_event();
	expect_pkt(&p, VSOCK_OP_RESPONSE);
	cr_assert_eq(p.h.dst_port, 9100);
	expect_pkt(&p, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 9101);
	(void)lfd;
}

Test(vsock_mux, a_guest_that_never_refills_is_waited_for_a_while)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.timeout_ms = 50,
	};
	struct rx_pkt p;

	mux_with(&cfg);
	post_rx(4);
	post_event();
	vsock_mux__queue_transport_reset(mux);
	send_pkt(VSOCK_OP_REQUEST, 9200, 9999, NULL, 0);
	expect_nothing();
	vsock_mux__guest_notified(mux);
	usleep(60000);
	expect_pkt(&p, VSOCK_OP_RST);
	cr_assert_eq(p.h.dst_port, 9200);
}

/* A pool keeps restored VMs with their vCPUs stopped for as long as it likes. */
Test(vsock_mux, the_wait_for_the_reset_counts_only_while_the_guest_runs)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.timeout_ms = 50,
	};
	struct rx_pkt p;
	int fd;

	mux_with(&cfg);
	post_rx(4);
	post_event();
	vsock_mux__queue_transport_reset(mux);
	fd = host_connect(uds);
	host_write(fd, "CONNECT 7\n", 10);
	expect_nothing();
	cr_assert_eq(vsock_mux__timeout_ms(mux), -1, "no clock runs");
	usleep(60000);
	expect_nothing();
	/* The guest runs and handles the event. */
	vsock_mux__guest_notified(mux);
	post_event();
	expect_pkt(&p, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 7);
}

Test(vsock_mux, host_connects_held_for_the_reset_do_not_time_out)
{
	struct vsock_mux_config cfg = {
		.guest_cid = CID,
		.uds_path = uds,
		.timeout_ms = 50,
	};
	struct rx_pkt p;
	char c;
	int fd, t;

	mux_with(&cfg);
	post_rx(4);
	post_event();
	vsock_mux__queue_transport_reset(mux);
	fd = host_connect(uds);
	host_write(fd, "CONNECT 7\n", 10);
	expect_nothing();
	vsock_mux__guest_notified(mux);
	usleep(30000);
	t = vsock_mux__timeout_ms(mux);
	cr_assert(t > 0 && t <= 20, "timeout %d: only the reset's", t);
	usleep(30000);
	/* The wait for the reset ends; the client's REQUEST goes out now. */
	expect_pkt(&p, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 7);
	cr_assert_eq(host_read(fd, &c, 1), -1, "the client was dropped");
	t = vsock_mux__timeout_ms(mux);
	cr_assert(t > 10 && t <= 50, "the guest's 50 ms start at the REQUEST");
}

Test(vsock_mux, reset_drops_every_connection)
{
	int lfd = host_listen(97), a, b;
	uint32_t hport;

	post_rx(8);
	a = guest_connects(9000, 97, lfd);
	b = host_connects(9001, &hport);
	vsock_mux__reset(mux);
	expect_eof(a);
	expect_eof(b);
	cr_assert_eq(vsock_mux__nr_conns(mux), 0);
}

Test(vsock_mux, refuses_bad_configurations)
{
	struct vsock_mux_config cfg = { .guest_cid = 2, .uds_path = uds };
	struct vsock_mux *m2;
	char path[200];

	cr_assert_eq(vsock_mux__new(&cfg, &m2), -EINVAL);
	cfg.guest_cid = UINT32_MAX;
	cr_assert_eq(vsock_mux__new(&cfg, &m2), -EINVAL);
	cfg.guest_cid = CID;
	cr_assert_eq(vsock_mux__new(&cfg, &m2), -EADDRINUSE);
	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = 0;
	cfg.uds_path = path;
	cr_assert_eq(vsock_mux__new(&cfg, &m2), -ENAMETOOLONG);
	cr_assert_null(m2);
}

/* --- the device: transport, thread, pause and snapshots ----------------------------------- */

#define DEV_BASE 0xa000000ULL

static struct device *dev;

static uint32_t rd(struct device *d, uint64_t off)
{
	uint32_t v = 0;

	d->ops->mmio_read(d, off, &v, 4);
	return v;
}

static void wr(struct device *d, uint64_t off, uint32_t v)
{
	d->ops->mmio_write(d, off, &v, 4);
}

/* What Linux's driver does: VERSION_1 and EVENT_IDX, three queues, DRIVER_OK. */
static void drive(struct device *d)
{
	int q;

	wr(d, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(d, 0x024, 0);
	wr(d, 0x020, 1U << VIRTIO_RING_F_EVENT_IDX);
	wr(d, 0x024, 1);
	wr(d, 0x020, 1);
	wr(d, 0x070,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK);
	cr_assert(rd(d, 0x070) & VIRTIO_STATUS_FEATURES_OK);
	for (q = 0; q < VSOCK_NR_QUEUES; q++) {
		wr(d, 0x030, (uint32_t)q);
		wr(d, 0x038, QSIZE);
		wr(d, 0x080, (uint32_t)DESC(q));
		wr(d, 0x084, 0);
		wr(d, 0x090, (uint32_t)AVAIL(q));
		wr(d, 0x094, 0);
		wr(d, 0x0a0, (uint32_t)USED(q));
		wr(d, 0x0a4, 0);
		wr(d, 0x044, 1);
	}
	wr(d, 0x070,
	   VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
		   VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void kick(struct device *d, int q)
{
	wr(d, 0x050, (uint32_t)q);
}

/* The device thread works concurrently: wait for it, up to 2 s. */
static bool wait_used(int q, uint16_t idx)
{
	int i;

	for (i = 0; i < 2000; i++) {
		if ((uint16_t)(used_idx(q) - idx) < 0x8000)
			return true;
		usleep(1000);
	}
	return false;
}

static void wait_pkt(struct rx_pkt *p, uint16_t op)
{
	cr_assert(wait_used(VSOCK_QUEUE_RX, dq[VSOCK_QUEUE_RX].used_seen + 1),
		  "no packet; wanted op %u", op);
	cr_assert(recv_pkt(p));
	cr_assert_eq(p->h.op, op, "op %u, wanted %u", p->h.op, op);
}

static void dev_setup(void)
{
	struct vsock_config cfg = { .guest_cid = CID };

	fakes_reset();
	memset(dq, 0, sizeof(dq));
	guest_buf_alloc = 256 << 10;
	guest_fwd_cnt = 0;
	cr_assert_eq(mem__init(&mem, BASE, RAM_SIZE), 0);
	fake_mem = &mem;
	make_dir();
	cfg.uds_path = uds;
	cr_assert_eq(virtio_vsock__new(NULL, DEV_BASE, 5, &cfg, &dev), 0);
}

static void dev_teardown(void)
{
	if (dev)
		dev->ops->destroy(dev);
	cr_assert_eq(fake_ioeventfds, 0);
	cr_assert_eq(fake_irqfds, 0);
	cr_assert_eq(access(uds, F_OK), -1, "the socket path was left behind");
	remove_dir();
	mem__exit(&mem);
}

TestSuite(virtio_vsock, .init = dev_setup, .fini = dev_teardown);

Test(virtio_vsock, identifies_as_vsock_with_its_cid)
{
	uint64_t cid = 0;

	cr_assert_eq(rd(dev, 0x000), 0x74726976);
	cr_assert_eq(rd(dev, 0x008), 19);
	wr(dev, 0x014, 0);
	cr_assert_eq(rd(dev, 0x010) & 1, 1, "VIRTIO_VSOCK_F_STREAM");
	wr(dev, 0x030, 2);
	cr_assert_eq(rd(dev, 0x034), 256);
	wr(dev, 0x030, 3);
	cr_assert_eq(rd(dev, 0x034), 0, "a fourth queue");
	dev->ops->mmio_read(dev, 0x100, &cid, 8);
	cr_assert_eq(le64toh(cid), CID);
	cr_assert_eq(fake_ioeventfds, 3);
}

Test(virtio_vsock, refuses_a_taken_path_or_a_reserved_cid)
{
	struct vsock_config cfg = { .guest_cid = CID, .uds_path = uds };
	struct device *d2 = (struct device *)1;

	cr_assert_eq(virtio_vsock__new(NULL, DEV_BASE + 0x200, 6, &cfg, &d2),
		     -EADDRINUSE);
	cr_assert_null(d2);
	cfg.guest_cid = 1;
	cr_assert_eq(virtio_vsock__new(NULL, DEV_BASE + 0x200, 6, &cfg, &d2),
		     -EINVAL);
}

Test(virtio_vsock, serves_on_its_thread_and_keeps_connections_across_pause)
{
	int lfd = host_listen(5678), fd;
	struct rx_pkt p;
	char c;

	drive(dev);
	post_rx(16);
	kick(dev, VSOCK_QUEUE_RX);
	send_pkt(VSOCK_OP_REQUEST, 1000, 5678, NULL, 0);
	kick(dev, VSOCK_QUEUE_TX);
	wait_pkt(&p, VSOCK_OP_RESPONSE);
	cr_assert(rd(dev, 0x060) & VIRTIO_INT_USED);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);

	cr_assert_eq(dev->ops->pause(dev), 0);
	host_write(fd, "while paused", 12);
	send_pkt(VSOCK_OP_RW, 1000, 5678, "to host", 7);
	kick(dev, VSOCK_QUEUE_TX);
	usleep(100000);
	cr_assert_eq(used_idx(VSOCK_QUEUE_RX), dq[VSOCK_QUEUE_RX].used_seen,
		     "served while paused");
	cr_assert_eq(host_read(fd, &c, 1), -1, "forwarded while paused");

	dev->ops->resume(dev);
	wait_pkt(&p, VSOCK_OP_RW);
	cr_assert_eq(p.h.len, 12);
	cr_assert_eq(memcmp(p.data, "while paused", 12), 0);
	cr_assert(wait_used(VSOCK_QUEUE_TX, dq[VSOCK_QUEUE_TX].avail_idx));
	expect_read(fd, "to host");
}

Test(virtio_vsock, driver_reset_closes_connections)
{
	int lfd = host_listen(80), fd;
	struct pollfd pfd;
	struct rx_pkt p;

	drive(dev);
	post_rx(4);
	send_pkt(VSOCK_OP_REQUEST, 1000, 80, NULL, 0);
	kick(dev, VSOCK_QUEUE_TX);
	wait_pkt(&p, VSOCK_OP_RESPONSE);
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	wr(dev, 0x070, 0);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 1000), 1);
	expect_eof(fd);
}

Test(virtio_vsock, restore_posts_transport_reset_and_checks_the_cid)
{
	struct vsock_config cfg = { .guest_cid = CID };
	char uds2[128], uds3[128];
	struct state_reader r;
	struct state_buf b;
	struct device *d2, *d3;
	struct virtq_used_elem e;
	uint16_t ev_used;

	drive(dev);
	post_event();
	post_event();
	kick(dev, VSOCK_QUEUE_EVENT);
	usleep(20000);
	cr_assert_eq(used_idx(VSOCK_QUEUE_EVENT), 0, "an event out of nowhere");
	cr_assert_eq(dev->ops->pause(dev), 0);
	state__init(&b);
	cr_assert_eq(dev->ops->save(dev, &b), 0);
	ev_used = used_idx(VSOCK_QUEUE_EVENT);

	/* The new process: same CID, its own socket path. */
	snprintf(uds2, sizeof(uds2), "%s/v2.sock", dir);
	cfg.uds_path = uds2;
	cr_assert_eq(virtio_vsock__new(NULL, DEV_BASE + 0x200, 6, &cfg, &d2),
		     0);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d2->ops->restore(d2, &r), 0);
	cr_assert_eq(state__left(&r), 0);
	cr_assert(wait_used(VSOCK_QUEUE_EVENT, ev_used + 1),
		  "no TRANSPORT_RESET after restore");
	e = used_elem(VSOCK_QUEUE_EVENT, ev_used);
	cr_assert_eq(e.len, 4);
	cr_assert_eq(le32toh(*(uint32_t *)hva(EV_DATA(e.id), 4)),
		     VSOCK_EVENT_TRANSPORT_RESET);
	cr_assert(rd(d2, 0x060) & VIRTIO_INT_USED);
	d2->ops->destroy(d2);

	/* Another CID is another guest's configuration. */
	snprintf(uds3, sizeof(uds3), "%s/v3.sock", dir);
	cfg.uds_path = uds3;
	cfg.guest_cid = CID + 1;
	cr_assert_eq(virtio_vsock__new(NULL, DEV_BASE + 0x400, 7, &cfg, &d3),
		     0);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(d3->ops->restore(d3, &r), -EBADMSG);
	d3->ops->destroy(d3);
	state__exit(&b);
}
