// SPDX-License-Identifier: Apache-2.0
// virtio-vsock multiplexer: guest stream connections to host Unix sockets and back, with vsock flow control.
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "../../vmm/log.h"
#include "vsock_mux.h"

#define DEFAULT_BUF_ALLOC (256U << 10)
#define DEFAULT_MAX_CONNS 256U
#define DEFAULT_MAX_BUFFERED (64ULL << 20)
/*
 * Firecracker waits 2 s for a REQUEST's answer; a guest just restored with
 * its memory paged in on demand can take longer than that on a busy host.
 */
#define DEFAULT_TIMEOUT_MS 10000U

/* Firecracker hands out host ports for host-initiated connections from here. */
#define LOCAL_PORT_FIRST (1U << 30)
/* "CONNECT 4294967295\n" is 19 bytes; anything longer is not a command. */
#define CMD_MAX 32
#define HDR_SIZE ((uint32_t)sizeof(struct vsock_hdr))
#define MAX_SEGS 32
#define NR_BUCKETS 1024
/* Resets owed for packets that match no connection; more are dropped. */
#define RST_RING 64
#define EPOLL_BATCH 64

struct link {
	struct link *prev, *next;
};

enum conn_state {
	CONN_CMD, /* a host client, its CONNECT line not read yet */
	CONN_LOCAL_INIT, /* REQUEST owed or sent to the guest, no RESPONSE yet */
	CONN_ESTABLISHED,
	CONN_DEAD, /* the socket is closed; an RST to the guest is owed */
};

/* Packets a connection owes the guest, sent when rx buffers allow. */
#define P_RST 1U
#define P_REQUEST 2U
#define P_RESPONSE 4U
#define P_CREDIT_UPDATE 8U

struct conn {
	struct link all; /* m->conns, or m->dead once buried */
	struct link rx; /* m->rx_list: may have a packet for the guest */
	struct conn *hnext;
	bool hashed;
	int fd;
	enum conn_state state;
	uint32_t local_port; /* the host side's port */
	uint32_t peer_port; /* the guest side's port */
	unsigned int pending; /* P_* */
	/* Flow control (virtio 1.2, 5.10.6.3); counters wrap modulo 2^32. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt; /* payload bytes sent to the guest */
	uint32_t fwd_cnt; /* guest payload bytes written to the socket */
	uint32_t last_fwd_sent; /* fwd_cnt as the guest last heard it */
	bool readable; /* the socket signalled input not drained yet */
	bool credit_requested; /* CREDIT_REQUEST sent, no credit since */
	uint32_t guest_shut; /* VSOCK_SHUTDOWN_* flags the guest sent */
	bool host_eof; /* the socket's EOF was passed on as SHUTDOWN */
	bool wr_shut; /* the guest's SHUTDOWN(SEND) passed on as SHUT_WR */
	/* Guest data the socket did not take yet: a ring of buf_alloc bytes. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint64_t expiry; /* CLOCK_MONOTONIC ns; 0: no timer */
};

struct rst_slot {
	uint64_t local_cid;
	uint32_t local_port, peer_port;
};

struct vsock_mux {
	uint64_t guest_cid;
	char *uds_path;
	uint32_t buf_alloc;
	unsigned int max_conns;
	uint64_t max_buffered;
	uint64_t timeout_ns;
	int listen_fd;
	int ep;
	struct vsock_mux_queues q;
	bool have_queues;
	bool broken;
	bool reset_event; /* TRANSPORT_RESET owed to the guest */
	bool reset_wait; /* sent, the guest has not handled it yet */
	uint64_t reset_deadline; /* when we stop waiting for that; 0: not yet */
	bool used[VSOCK_NR_QUEUES]; /* pushed since the last publish */
	struct link conns;
	struct link dead; /* buried in this service round, freed at its end */
	struct link rx_list;
	unsigned int nr_conns;
	unsigned int nr_timers;
	uint64_t buffered;
	uint32_t next_port;
	struct conn *buckets[NR_BUCKETS];
	struct rst_slot rsts[RST_RING];
	unsigned int rst_head, rst_len;
};

/* --- small helpers ----------------------------------------------------------- */

static void link_init(struct link *l)
{
	l->prev = l->next = l;
}

static bool linked(const struct link *l)
{
	return l->next != l;
}

static void link_del(struct link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	link_init(l);
}

static void link_add_tail(struct link *head, struct link *l)
{
	l->prev = head->prev;
	l->next = head;
	head->prev->next = l;
	head->prev = l;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned int bucket(uint32_t local, uint32_t peer)
{
	return (local * 2654435761U ^ peer * 2246822519U) >> 22;
}
_Static_assert(NR_BUCKETS == 1 << 10, "bucket() yields 10 bits");

static struct conn *lookup(const struct vsock_mux *m, uint32_t local,
			   uint32_t peer)
{
	struct conn *c;

	for (c = m->buckets[bucket(local, peer)]; c; c = c->hnext)
		if (c->local_port == local && c->peer_port == peer)
			return c;
	return NULL;
}

static void hash_add(struct vsock_mux *m, struct conn *c)
{
	struct conn **b = &m->buckets[bucket(c->local_port, c->peer_port)];

	c->hnext = *b;
	*b = c;
	c->hashed = true;
}

static void hash_del(struct vsock_mux *m, struct conn *c)
{
	struct conn **p = &m->buckets[bucket(c->local_port, c->peer_port)];

	if (!c->hashed)
		return;
	while (*p != c)
		p = &(*p)->hnext;
	*p = c->hnext;
	c->hashed = false;
}

static void set_timer(struct vsock_mux *m, struct conn *c)
{
	if (!c->expiry)
		m->nr_timers++;
	c->expiry = now_ns() + m->timeout_ns;
}

static void clear_timer(struct vsock_mux *m, struct conn *c)
{
	if (c->expiry)
		m->nr_timers--;
	c->expiry = 0;
}

static void rx_wake(struct vsock_mux *m, struct conn *c)
{
	if (!linked(&c->rx))
		link_add_tail(&m->rx_list, &c->rx);
}

/*
 * What the guest may still receive: its buffer minus what it has not
 * consumed. A guest that reports more consumed than we sent, or shrinks its
 * buffer, gets nothing rather than a wrapped-around credit.
 */
static uint32_t peer_credit(const struct conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight >= c->peer_buf_alloc ? 0
					      : c->peer_buf_alloc - in_flight;
}

/* --- guest buffers ------------------------------------------------------------ */

/*
 * The part [@off, @off + @len) of a chain's readable (or writable) bytes as
 * an iovec; the segments were bounds-checked by virtq__pop().
 */
static int chain_iov(const struct virtq_chain *ch, bool write, uint64_t off,
		     uint64_t len, struct iovec *iov, int max)
{
	uint32_t i;
	int n = 0;

	for (i = 0; i < ch->nr_segs && len && n < max; i++) {
		const struct virtq_seg *s = &ch->segs[i];
		uint64_t take;

		if (s->write != write)
			continue;
		if (off >= s->len) {
			off -= s->len;
			continue;
		}
		take = s->len - off < len ? s->len - off : len;
		iov[n].iov_base = (uint8_t *)s->hva + off;
		iov[n].iov_len = take;
		n++;
		len -= take;
		off = 0;
	}
	return n;
}

static void copy_from_chain(const struct virtq_chain *ch, void *dst,
			    uint32_t len)
{
	struct iovec iov[MAX_SEGS];
	uint8_t *p = dst;
	int n = chain_iov(ch, false, 0, len, iov, MAX_SEGS), i;

	for (i = 0; i < n; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

static void copy_to_chain(const struct virtq_chain *ch, const void *src,
			  uint32_t len)
{
	struct iovec iov[MAX_SEGS];
	const uint8_t *p = src;
	int n = chain_iov(ch, true, 0, len, iov, MAX_SEGS), i;

	for (i = 0; i < n; i++) {
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

static void break_queues(struct vsock_mux *m)
{
	if (m->broken)
		return;
	m->broken = true;
	pr_debug("virtio-vsock: malformed virtqueue; the device needs a reset");
	m->q.needs_reset(m->q.opaque);
}

static void push(struct vsock_mux *m, unsigned int qi, uint16_t head,
		 uint32_t written)
{
	if (virtq__push(m->q.vq[qi], head, written) < 0) {
		break_queues(m);
		return;
	}
	m->used[qi] = true;
}

/* --- the ring of guest data waiting for the socket ---------------------------- */

static void ring_put(struct vsock_mux *m, struct conn *c, const void *src,
		     uint32_t len)
{
	uint32_t tail = (c->buf_head + c->buf_len) % m->buf_alloc;
	uint32_t first = m->buf_alloc - tail < len ? m->buf_alloc - tail : len;

	memcpy(c->buf + tail, src, first);
	memcpy(c->buf, (const uint8_t *)src + first, len - first);
	c->buf_len += len;
	m->buffered += len;
}

static int ring_iov(const struct vsock_mux *m, const struct conn *c,
		    struct iovec iov[2])
{
	uint32_t first = m->buf_alloc - c->buf_head;

	iov[0].iov_base = c->buf + c->buf_head;
	if (c->buf_len <= first) {
		iov[0].iov_len = c->buf_len;
		return 1;
	}
	iov[0].iov_len = first;
	iov[1].iov_base = c->buf;
	iov[1].iov_len = c->buf_len - first;
	return 2;
}

static void ring_take(struct vsock_mux *m, struct conn *c, uint32_t len)
{
	c->buf_head = (c->buf_head + len) % m->buf_alloc;
	c->buf_len -= len;
	m->buffered -= len;
	if (!c->buf_len)
		c->buf_head = 0;
}

static void drop_buf(struct vsock_mux *m, struct conn *c)
{
	m->buffered -= c->buf_len;
	free(c->buf);
	c->buf = NULL;
	c->buf_head = c->buf_len = 0;
}

/* --- connection life cycle ------------------------------------------------------ */

static void close_fd(struct conn *c)
{
	/* The last reference to the file: epoll forgets it by itself. */
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

/*
 * Frees the connection at the end of this service round: a pointer to it
 * may still sit in the batch of socket events being handled.
 */
static void bury(struct vsock_mux *m, struct conn *c)
{
	close_fd(c);
	drop_buf(m, c);
	hash_del(m, c);
	clear_timer(m, c);
	if (linked(&c->rx))
		link_del(&c->rx);
	link_del(&c->all);
	link_add_tail(&m->dead, &c->all);
	m->nr_conns--;
}

/* Closes the host side and owes the guest an RST, which buries it. */
static void reset_conn(struct vsock_mux *m, struct conn *c)
{
	if (c->state == CONN_CMD) {
		bury(m, c);
		return;
	}
	if (c->state == CONN_DEAD)
		return;
	close_fd(c);
	drop_buf(m, c);
	/* Later packets with these ports get an RST of their own. */
	hash_del(m, c);
	clear_timer(m, c);
	c->state = CONN_DEAD;
	c->pending = P_RST;
	rx_wake(m, c);
}

static struct conn *new_conn(struct vsock_mux *m, int fd)
{
	struct epoll_event ev = {
		.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
	};
	struct conn *c = calloc(1, sizeof(*c));

	if (!c) {
		close(fd);
		return NULL;
	}
	c->fd = fd;
	link_init(&c->rx);
	ev.data.ptr = c;
	/*
	 * Edge-triggered: a socket whose data waits for guest buffers or
	 * credit does not wake us again and again; readable remembers it.
	 */
	if (epoll_ctl(m->ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
		pr_debug("virtio-vsock: epoll_ctl: %s", strerror(errno));
		close(fd);
		free(c);
		return NULL;
	}
	link_add_tail(&m->conns, &c->all);
	m->nr_conns++;
	return c;
}

/* An RST for a packet that matches no connection; the guest gets it as rx. */
static void queue_rst(struct vsock_mux *m, const struct vsock_hdr *h)
{
	struct rst_slot *s;

	if (m->rst_len == RST_RING) {
		pr_debug("virtio-vsock: too many resets owed; one dropped");
		return;
	}
	s = &m->rsts[(m->rst_head + m->rst_len++) % RST_RING];
	s->local_cid = h->dst_cid;
	s->local_port = h->dst_port;
	s->peer_port = h->src_port;
}

/* Both directions are done: the RST completes the guest's close. */
static void maybe_finish(struct vsock_mux *m, struct conn *c)
{
	if (c->state != CONN_ESTABLISHED)
		return;
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->buf_len &&
	    (c->host_eof || (c->guest_shut & VSOCK_SHUTDOWN_RCV)))
		reset_conn(m, c);
}

/* Bookkeeping after guest data reached the socket or the ring. */
static void forwarded(struct vsock_mux *m, struct conn *c)
{
	/*
	 * The guest sends until it thinks our buffer is full; tell it what
	 * the host read before that view goes stale by half the buffer.
	 */
	if (c->fwd_cnt - c->last_fwd_sent >= m->buf_alloc / 2) {
		c->pending |= P_CREDIT_UPDATE;
		rx_wake(m, c);
	}
	if ((c->guest_shut & VSOCK_SHUTDOWN_SEND) && !c->buf_len &&
	    !c->wr_shut && c->fd >= 0) {
		/* The host reader sees EOF once everything before it arrived. */
		if (shutdown(c->fd, SHUT_WR) < 0)
			pr_debug("virtio-vsock: shutdown: %s", strerror(errno));
		c->wr_shut = true;
	}
	maybe_finish(m, c);
}

static void flush(struct vsock_mux *m, struct conn *c)
{
	while (c->buf_len) {
		struct iovec iov[2];
		struct msghdr msg = { .msg_iov = iov };
		ssize_t n;

		msg.msg_iovlen = (size_t)ring_iov(m, c, iov);
		n = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n < 0) {
			pr_debug("virtio-vsock: port %u: write: %s",
				 c->local_port, strerror(errno));
			reset_conn(m, c);
			return;
		}
		ring_take(m, c, (uint32_t)n);
		c->fwd_cnt += (uint32_t)n;
	}
	forwarded(m, c);
}

/* Guest payload [HDR_SIZE, HDR_SIZE + len) of @ch to the socket, or the ring. */
static void forward(struct vsock_mux *m, struct conn *c,
		    const struct virtq_chain *ch, uint32_t len)
{
	struct iovec iov[MAX_SEGS];
	uint32_t sent = 0, i;
	int n;

	if (c->buf_len + (uint64_t)len > m->buf_alloc) {
		pr_debug("virtio-vsock: port %u: the guest ignored our credit",
			 c->local_port);
		reset_conn(m, c);
		return;
	}
	n = chain_iov(ch, false, HDR_SIZE, len, iov, MAX_SEGS);
	/* Buffered bytes go first: only try the socket when none wait. */
	if (!c->buf_len) {
		struct msghdr msg = { .msg_iov = iov, .msg_iovlen = (size_t)n };
		ssize_t w;

		do
			w = sendmsg(c->fd, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			pr_debug("virtio-vsock: port %u: write: %s",
				 c->local_port, strerror(errno));
			reset_conn(m, c);
			return;
		}
		sent = w < 0 ? 0 : (uint32_t)w;
		c->fwd_cnt += sent;
	}
	if (sent < len) {
		if (m->buffered + (len - sent) > m->max_buffered) {
			pr_debug(
				"virtio-vsock: %llu bytes buffered for slow host readers; resetting port %u",
				(unsigned long long)m->buffered, c->local_port);
			reset_conn(m, c);
			return;
		}
		if (!c->buf) {
			c->buf = malloc(m->buf_alloc);
			if (!c->buf) {
				reset_conn(m, c);
				return;
			}
		}
		for (i = 0; i < (uint32_t)n; i++) {
			uint32_t l = (uint32_t)iov[i].iov_len;

			if (sent >= l) {
				sent -= l;
				continue;
			}
			ring_put(m, c, (uint8_t *)iov[i].iov_base + sent,
				 l - sent);
			sent = 0;
		}
	}
	forwarded(m, c);
}

/* --- packets from the guest --------------------------------------------------- */

static void guest_connect(struct vsock_mux *m, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conn *c;
	int fd, n;

	if (m->nr_conns >= m->max_conns) {
		pr_debug("virtio-vsock: connection limit reached");
		goto refuse;
	}
	n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", m->uds_path,
		     h->dst_port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		goto refuse;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto refuse;
	/*
	 * A Unix stream connect completes at once or fails (a full backlog
	 * is EAGAIN): nobody listening is an RST, as for a real host.
	 */
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		pr_debug("virtio-vsock: %s: %s", sa.sun_path, strerror(errno));
		close(fd);
		goto refuse;
	}
	c = new_conn(m, fd);
	if (!c)
		goto refuse;
	c->state = CONN_ESTABLISHED;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = P_RESPONSE;
	hash_add(m, c);
	rx_wake(m, c);
	return;
refuse:
	queue_rst(m, h);
}

static void conn_packet(struct vsock_mux *m, struct conn *c,
			const struct vsock_hdr *h, const struct virtq_chain *ch)
{
	char ok[24];
	int n;

	/* Every packet carries the sender's credit. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if (peer_credit(c)) {
		c->credit_requested = false;
		if (c->readable)
			rx_wake(m, c);
	}
	switch (h->op) {
	case VSOCK_OP_REQUEST:
		/* The guest reuses the ports: what we hold is stale. */
		reset_conn(m, c);
		break;
	case VSOCK_OP_RESPONSE:
		/* An answer to a REQUEST we have not sent yet is a guess. */
		if (c->state != CONN_LOCAL_INIT || (c->pending & P_REQUEST)) {
			reset_conn(m, c);
			break;
		}
		c->state = CONN_ESTABLISHED;
		clear_timer(m, c);
		/* A fresh socket with nothing written yet takes a short line. */
		n = snprintf(ok, sizeof(ok), "OK %u\n", c->local_port);
		if (send(c->fd, ok, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL) !=
		    n) {
			reset_conn(m, c);
			break;
		}
		if (c->readable)
			rx_wake(m, c);
		break;
	case VSOCK_OP_SHUTDOWN:
		if (c->state != CONN_ESTABLISHED) {
			reset_conn(m, c);
			break;
		}
		c->guest_shut |=
			h->flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		/* Closed for good, but data waits: give the host reader a while. */
		if (c->guest_shut ==
			    (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND) &&
		    c->buf_len && !c->expiry)
			set_timer(m, c);
		forwarded(m, c);
		break;
	case VSOCK_OP_RW:
		if (c->state != CONN_ESTABLISHED ||
		    (c->guest_shut & VSOCK_SHUTDOWN_SEND)) {
			reset_conn(m, c);
			break;
		}
		if (h->len)
			forward(m, c, ch, h->len);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= P_CREDIT_UPDATE;
		rx_wake(m, c);
		break;
	}
}

/*
 * One tx chain. Nothing in it is trusted: the header is copied out once,
 * every field checked, and the payload is read through the chain's
 * bounds-checked segments.
 */
static void guest_packet(struct vsock_mux *m, const struct virtq_chain *ch)
{
	struct vsock_hdr h;
	struct conn *c;

	if (ch->readable < HDR_SIZE) {
		pr_debug("virtio-vsock: tx packet shorter than its header");
		return;
	}
	copy_from_chain(ch, &h, HDR_SIZE);
	h.src_cid = le64toh(h.src_cid);
	h.dst_cid = le64toh(h.dst_cid);
	h.src_port = le32toh(h.src_port);
	h.dst_port = le32toh(h.dst_port);
	h.len = le32toh(h.len);
	h.type = le16toh(h.type);
	h.op = le16toh(h.op);
	h.flags = le32toh(h.flags);
	h.buf_alloc = le32toh(h.buf_alloc);
	h.fwd_cnt = le32toh(h.fwd_cnt);

	/* A reply could not reach a sender that is not the guest. */
	if (h.src_cid != m->guest_cid) {
		pr_debug("virtio-vsock: packet from CID %llu dropped",
			 (unsigned long long)h.src_cid);
		return;
	}
	c = h.dst_cid == VSOCK_HOST_CID ? lookup(m, h.dst_port, h.src_port)
					: NULL;
	if (h.op == VSOCK_OP_RST) {
		/* Never answered: two sides resetting each other would loop. */
		if (c)
			bury(m, c);
		return;
	}
	if (h.dst_cid != VSOCK_HOST_CID || h.type != VSOCK_TYPE_STREAM ||
	    h.op < VSOCK_OP_REQUEST || h.op > VSOCK_OP_CREDIT_REQUEST ||
	    h.len > ch->readable - HDR_SIZE || h.len > VSOCK_MAX_PKT) {
		pr_debug(
			"virtio-vsock: malformed packet (cid %llu type %u op %u len %u)",
			(unsigned long long)h.dst_cid, h.type, h.op, h.len);
		if (c)
			reset_conn(m, c);
		else
			queue_rst(m, &h);
		return;
	}
	if (c)
		conn_packet(m, c, &h, ch);
	else if (h.op == VSOCK_OP_REQUEST)
		guest_connect(m, &h);
	else
		queue_rst(m, &h);
}

/* Returns true when it stopped with chains left. */
static bool serve_tx(struct vsock_mux *m)
{
	struct virtq *vq = m->q.vq[VSOCK_QUEUE_TX];
	struct virtq_seg segs[MAX_SEGS];
	struct virtq_chain ch = { .segs = segs, .max_segs = MAX_SEGS };
	uint32_t budget = vq->size;
	int r = 0;

	/* A driver may leave a queue unset: then it has nothing for us. */
	if (!vq->ready)
		return false;
	virtq__disable_notify(vq);
	while (budget && !m->broken) {
		r = virtq__pop(vq, &ch);
		if (r <= 0)
			break;
		budget--;
		guest_packet(m, &ch);
		push(m, VSOCK_QUEUE_TX, ch.head, 0);
	}
	if (r < 0)
		break_queues(m);
	return !budget;
}

/* --- host sockets ----------------------------------------------------------------- */

static int parse_connect(const char *line, size_t len, uint32_t *port)
{
	uint64_t v = 0;
	size_t i;

	if (len < 10 || memcmp(line, "CONNECT ", 8) || line[len - 1] != '\n' ||
	    len - 9 > 10)
		return -EINVAL;
	for (i = 8; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*port = (uint32_t)v;
	return 0;
}

static bool port_in_use(const struct vsock_mux *m, uint32_t port)
{
	const struct link *l;

	for (l = m->conns.next; l != &m->conns; l = l->next) {
		const struct conn *c = container_of(l, struct conn, all);

		if (c->state != CONN_CMD && c->local_port == port)
			return true;
	}
	return false;
}

/* A host port no live connection uses, counting up from 2^30 as Firecracker does. */
static uint32_t alloc_port(struct vsock_mux *m)
{
	uint32_t p;

	/* At most nr_conns ports are taken, so this ends. */
	do {
		p = m->next_port++;
		if (!m->next_port)
			m->next_port = LOCAL_PORT_FIRST;
	} while (port_in_use(m, p));
	return p;
}

/* A host client's "CONNECT <port>\n": read exactly that, leave what follows. */
static void read_command(struct vsock_mux *m, struct conn *c)
{
	char line[CMD_MAX];
	const char *nl;
	uint32_t port;
	ssize_t n;
	size_t len;

	n = recv(c->fd, line, sizeof(line), MSG_PEEK | MSG_DONTWAIT);
	if (n < 0 &&
	    (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		return;
	if (n <= 0) {
		bury(m, c);
		return;
	}
	nl = memchr(line, '\n', (size_t)n);
	if (!nl) {
		if (n == (ssize_t)sizeof(line)) {
			pr_debug(
				"virtio-vsock: host client sent no CONNECT line");
			bury(m, c);
		}
		return;
	}
	len = (size_t)(nl - line) + 1;
	if (recv(c->fd, line, len, MSG_DONTWAIT) != (ssize_t)len ||
	    parse_connect(line, len, &port)) {
		pr_debug(
			"virtio-vsock: malformed CONNECT line from a host client");
		bury(m, c);
		return;
	}
	c->state = CONN_LOCAL_INIT;
	c->peer_port = port;
	c->local_port = alloc_port(m);
	c->pending = P_REQUEST;
	/* Bytes after the line are the stream's first; the edge has passed. */
	c->readable = true;
	hash_add(m, c);
	set_timer(m, c);
	rx_wake(m, c);
}

static void accept_clients(struct vsock_mux *m)
{
	for (;;) {
		struct conn *c;
		int fd = accept4(m->listen_fd, NULL, NULL,
				 SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			/*
			 * EAGAIN ends the edge; anything else (EMFILE) leaves
			 * the client in the backlog until the next one comes.
			 */
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				pr_debug("virtio-vsock: accept: %s",
					 strerror(errno));
			return;
		}
		if (m->nr_conns >= m->max_conns) {
			pr_debug("virtio-vsock: connection limit reached");
			close(fd);
			continue;
		}
		c = new_conn(m, fd);
		if (c)
			set_timer(m, c);
	}
}

static void socket_event(struct vsock_mux *m, struct conn *c, uint32_t ev)
{
	if (c->fd < 0)
		return;
	if (c->state == CONN_CMD) {
		read_command(m, c);
		return;
	}
	if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
		flush(m, c);
	if (c->fd >= 0 && (ev & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
		c->readable = true;
		rx_wake(m, c);
	}
}

/*
 * A few rounds, so that a client accepted in one has its first bytes read in
 * the next. Returns true if events may still wait.
 */
static bool serve_sockets(struct vsock_mux *m)
{
	struct epoll_event evs[EPOLL_BATCH];
	int round, n, i;

	for (round = 0; round < 4; round++) {
		n = epoll_wait(m->ep, evs, EPOLL_BATCH, 0);
		if (n <= 0)
			return false;
		for (i = 0; i < n; i++) {
			if (!evs[i].data.ptr)
				accept_clients(m);
			else
				socket_event(m, evs[i].data.ptr, evs[i].events);
		}
	}
	return true;
}

static void expire(struct vsock_mux *m)
{
	struct link *l, *next;
	uint64_t now;

	if (!m->nr_timers)
		return;
	now = now_ns();
	for (l = m->conns.next; l != &m->conns; l = next) {
		struct conn *c = container_of(l, struct conn, all);

		next = l->next;
		if (!c->expiry || c->expiry > now)
			continue;
		/* Held back by us, not by the guest: its clock starts at sending. */
		if (m->reset_wait && (c->pending & P_REQUEST))
			continue;
		pr_debug("virtio-vsock: port %u: timed out", c->local_port);
		clear_timer(m, c);
		reset_conn(m, c);
	}
}

/* --- packets to the guest ------------------------------------------------------- */

static void fill_hdr(const struct vsock_mux *m, const struct conn *c,
		     struct vsock_hdr *h, uint16_t op)
{
	memset(h, 0, sizeof(*h));
	h->src_cid = htole64(VSOCK_HOST_CID);
	h->dst_cid = htole64(m->guest_cid);
	h->src_port = htole32(c->local_port);
	h->dst_port = htole32(c->peer_port);
	h->type = htole16(VSOCK_TYPE_STREAM);
	h->op = htole16(op);
	h->buf_alloc = htole32(m->buf_alloc);
	h->fwd_cnt = htole32(c->fwd_cnt);
}

static bool can_read(const struct conn *c)
{
	return c->state == CONN_ESTABLISHED && c->readable && !c->host_eof &&
	       !(c->guest_shut & VSOCK_SHUTDOWN_RCV);
}

/*
 * The next packet @c owes the guest, or VSOCK_OP_INVALID. Peeks at the
 * socket so that an rx buffer is only taken when there is something to put
 * in it.
 */
static uint16_t next_packet(struct vsock_mux *m, struct conn *c)
{
	if (c->pending & P_RST)
		return VSOCK_OP_RST;
	if (c->state == CONN_CMD || c->state == CONN_DEAD)
		return VSOCK_OP_INVALID;
	if (c->pending & P_REQUEST)
		return VSOCK_OP_REQUEST;
	if (c->pending & P_RESPONSE)
		return VSOCK_OP_RESPONSE;
	if (can_read(c)) {
		uint8_t b;
		ssize_t n;

		if (!peer_credit(c)) {
			if (!c->credit_requested)
				return VSOCK_OP_CREDIT_REQUEST;
		} else {
			n = recv(c->fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
			if (n > 0)
				return VSOCK_OP_RW;
			if (n == 0)
				return VSOCK_OP_SHUTDOWN;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				/* The next edge says when there is more. */
				c->readable = false;
			} else {
				reset_conn(m, c);
				return VSOCK_OP_RST;
			}
		}
	}
	if (c->pending & P_CREDIT_UPDATE)
		return VSOCK_OP_CREDIT_UPDATE;
	return VSOCK_OP_INVALID;
}

/* Reads socket data straight into the chain after the header; 0 at EOF. */
static ssize_t read_payload(const struct conn *c, const struct virtq_chain *ch,
			    uint32_t max)
{
	struct iovec iov[MAX_SEGS];
	struct msghdr msg = { .msg_iov = iov };
	ssize_t n;

	msg.msg_iovlen =
		(size_t)chain_iov(ch, true, HDR_SIZE, max, iov, MAX_SEGS);
	do
		n = recvmsg(c->fd, &msg, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	return n;
}

/* Fills @ch with packet @op of @c and pushes it. */
static void send_packet(struct vsock_mux *m, struct conn *c, uint16_t op,
			const struct virtq_chain *ch)
{
	uint32_t written = HDR_SIZE;
	struct vsock_hdr h;
	ssize_t n;

	if (op == VSOCK_OP_RW) {
		uint64_t room = ch->writable - HDR_SIZE;
		uint32_t max = peer_credit(c);

		if (max > room)
			max = (uint32_t)room;
		if (max > VSOCK_MAX_PKT)
			max = VSOCK_MAX_PKT;
		n = max ? read_payload(c, ch, max) : -1;
		if (!max ||
		    (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))) {
			/* No room in this buffer, or nothing after all. */
			if (max)
				c->readable = false;
			push(m, VSOCK_QUEUE_RX, ch->head, 0);
			return;
		}
		if (n < 0) {
			reset_conn(m, c);
			op = VSOCK_OP_RST;
		} else if (n == 0) {
			op = VSOCK_OP_SHUTDOWN;
		} else {
			c->tx_cnt += (uint32_t)n;
			written += (uint32_t)n;
		}
	}
	fill_hdr(m, c, &h, op);
	switch (op) {
	case VSOCK_OP_RW:
		h.len = htole32(written - HDR_SIZE);
		break;
	case VSOCK_OP_SHUTDOWN:
		h.flags = htole32(VSOCK_SHUTDOWN_SEND);
		c->host_eof = true;
		break;
	case VSOCK_OP_REQUEST:
		c->pending &= ~P_REQUEST;
		/* The guest's time to answer starts now. */
		set_timer(m, c);
		break;
	case VSOCK_OP_RESPONSE:
		c->pending &= ~P_RESPONSE;
		break;
	case VSOCK_OP_CREDIT_REQUEST:
		c->credit_requested = true;
		break;
	}
	/* Any packet tells the guest our fwd_cnt. */
	c->pending &= ~P_CREDIT_UPDATE;
	c->last_fwd_sent = c->fwd_cnt;
	copy_to_chain(ch, &h, HDR_SIZE);
	push(m, VSOCK_QUEUE_RX, ch->head, written);
	if (op == VSOCK_OP_RST)
		bury(m, c);
	else if (op == VSOCK_OP_SHUTDOWN)
		maybe_finish(m, c);
}

static void send_rst(struct vsock_mux *m, const struct rst_slot *s,
		     const struct virtq_chain *ch)
{
	struct vsock_hdr h = {
		.src_cid = htole64(s->local_cid),
		.dst_cid = htole64(m->guest_cid),
		.src_port = htole32(s->local_port),
		.dst_port = htole32(s->peer_port),
		.type = htole16(VSOCK_TYPE_STREAM),
		.op = htole16(VSOCK_OP_RST),
	};

	copy_to_chain(ch, &h, HDR_SIZE);
	push(m, VSOCK_QUEUE_RX, ch->head, HDR_SIZE);
}

/*
 * Pops an rx chain that can hold a header; chains too short for one are
 * returned empty (the driver drops them). 1, 0 for none, or -errno.
 */
static int pop_rx(struct vsock_mux *m, struct virtq_chain *ch)
{
	struct virtq *vq = m->q.vq[VSOCK_QUEUE_RX];
	int r;

	while ((r = virtq__pop(vq, ch)) > 0 && ch->writable < HDR_SIZE) {
		push(m, VSOCK_QUEUE_RX, ch->head, 0);
		if (m->broken)
			return -EINVAL;
	}
	return r;
}

/* Returns true when it stopped with packets left and buffers possibly too. */
static bool fill_rx(struct vsock_mux *m)
{
	struct virtq *vq = m->q.vq[VSOCK_QUEUE_RX];
	struct virtq_seg segs[MAX_SEGS];
	struct virtq_chain ch = { .segs = segs, .max_segs = MAX_SEGS };
	uint32_t budget = vq->size;
	int r;

	if (!vq->ready)
		return false;
	virtq__disable_notify(vq);
	while (m->rst_len) {
		if (!budget)
			return true;
		r = pop_rx(m, &ch);
		if (r <= 0)
			goto out;
		budget--;
		send_rst(m, &m->rsts[m->rst_head], &ch);
		m->rst_head = (m->rst_head + 1) % RST_RING;
		m->rst_len--;
	}
	while (linked(&m->rx_list) && !m->broken) {
		struct conn *c = container_of(m->rx_list.next, struct conn, rx);
		uint16_t op = next_packet(m, c);

		if (op == VSOCK_OP_INVALID) {
			link_del(&c->rx);
			continue;
		}
		if (!budget)
			return true;
		r = pop_rx(m, &ch);
		if (r <= 0)
			goto out;
		budget--;
		send_packet(m, c, op, &ch);
		/* Round robin: one packet, then the next connection's turn. */
		if (linked(&c->rx)) {
			link_del(&c->rx);
			link_add_tail(&m->rx_list, &c->rx);
		}
	}
	return false;
out:
	if (r < 0)
		break_queues(m);
	return false;
}

/*
 * The TRANSPORT_RESET event makes the guest reset every connected socket, so
 * a connection we complete before it handled the event would die with the
 * stale ones. Linux hands each event buffer back (refills it) only after
 * handling it: we return the other buffers empty, then hold every rx packet
 * until a buffer comes back, or the timeout passes for a driver that never
 * refills.
 */
static void fill_event(struct vsock_mux *m)
{
	struct virtq *vq = m->q.vq[VSOCK_QUEUE_EVENT];
	struct virtq_seg segs[MAX_SEGS];
	struct virtq_chain ch = { .segs = segs, .max_segs = MAX_SEGS };
	struct vsock_event ev = { .id = htole32(VSOCK_EVENT_TRANSPORT_RESET) };
	int r;

	while (m->reset_event && !m->broken) {
		r = virtq__pop(vq, &ch);
		if (r < 0)
			break_queues(m);
		if (r <= 0)
			return;
		if (ch.writable < sizeof(ev)) {
			push(m, VSOCK_QUEUE_EVENT, ch.head, 0);
			continue;
		}
		copy_to_chain(&ch, &ev, sizeof(ev));
		push(m, VSOCK_QUEUE_EVENT, ch.head, sizeof(ev));
		m->reset_event = false;
		m->reset_wait = true;
		/* The clock starts at the guest's first notification. */
		m->reset_deadline = 0;
		while ((r = virtq__pop(vq, &ch)) > 0)
			push(m, VSOCK_QUEUE_EVENT, ch.head, 0);
		if (r < 0)
			break_queues(m);
	}
}

/* Whether the guest handed an event buffer back: it handled the reset. */
static void check_reset_done(struct vsock_mux *m)
{
	int r = virtq__enable_notify(m->q.vq[VSOCK_QUEUE_EVENT]);

	if (r < 0)
		break_queues(m);
	if (r != 0 || (m->reset_deadline && now_ns() >= m->reset_deadline))
		m->reset_wait = false;
}

static void publish(struct vsock_mux *m)
{
	bool signal = false;
	unsigned int i;

	for (i = 0; i < VSOCK_NR_QUEUES; i++) {
		if (!m->used[i])
			continue;
		m->used[i] = false;
		virtq__publish(m->q.vq[i]);
		if (virtq__should_notify(m->q.vq[i]))
			signal = true;
	}
	if (signal)
		m->q.signal_used(m->q.opaque);
}

/* Asks for notifications again; true if buffers we want arrived meanwhile. */
static bool rearm(struct vsock_mux *m)
{
	bool more = false;
	bool want_rx = !m->reset_wait && (m->rst_len || linked(&m->rx_list));
	int r;

	r = virtq__enable_notify(m->q.vq[VSOCK_QUEUE_TX]);
	more |= r > 0;
	if (r >= 0) {
		r = virtq__enable_notify(m->q.vq[VSOCK_QUEUE_RX]);
		more |= r > 0 && want_rx;
	}
	if (r >= 0) {
		r = virtq__enable_notify(m->q.vq[VSOCK_QUEUE_EVENT]);
		more |= r > 0 && (m->reset_event || m->reset_wait);
	}
	if (r < 0)
		break_queues(m);
	return more;
}

static void free_dead(struct vsock_mux *m)
{
	while (linked(&m->dead)) {
		struct conn *c = container_of(m->dead.next, struct conn, all);

		link_del(&c->all);
		free(c);
	}
}

bool vsock_mux__service(struct vsock_mux *m)
{
	bool more = false;

	if (!m->have_queues || m->broken)
		return false;
	more |= serve_tx(m);
	more |= serve_sockets(m);
	expire(m);
	fill_event(m);
	if (m->reset_wait)
		check_reset_done(m);
	if (!m->reset_wait)
		more |= fill_rx(m);
	publish(m);
	if (!m->broken)
		more |= rearm(m);
	free_dead(m);
	return more && !m->broken;
}

int vsock_mux__timeout_ms(const struct vsock_mux *m)
{
	const struct link *l;
	bool reset_clock = m->reset_wait && m->reset_deadline;
	uint64_t first = reset_clock ? m->reset_deadline : UINT64_MAX, now;

	if (!m->nr_timers && !reset_clock)
		return -1;
	for (l = m->conns.next; l != &m->conns; l = l->next) {
		const struct conn *c = container_of(l, struct conn, all);

		/* As in expire(): those wait for the reset, bounded itself. */
		if (m->reset_wait && (c->pending & P_REQUEST))
			continue;
		if (c->expiry && c->expiry < first)
			first = c->expiry;
	}
	if (first == UINT64_MAX)
		return -1;
	now = now_ns();
	if (first <= now)
		return 0;
	/* Rounded up: waking a little late is fine, early just loops. */
	return (int)((first - now + 999999) / 1000000);
}

static void drop_all(struct vsock_mux *m)
{
	while (linked(&m->conns))
		bury(m, container_of(m->conns.next, struct conn, all));
	free_dead(m);
}

void vsock_mux__reset(struct vsock_mux *m)
{
	drop_all(m);
	m->rst_head = m->rst_len = 0;
	m->reset_event = false;
	m->reset_wait = false;
	m->broken = false;
	m->have_queues = false;
	memset(m->used, 0, sizeof(m->used));
}

void vsock_mux__queue_transport_reset(struct vsock_mux *m)
{
	m->reset_event = true;
}

/*
 * A restored VM may wait long with its vCPUs stopped (a pool keeps it so):
 * the wait for the guest to handle the reset only counts while it runs, and
 * a guest that notifies us runs.
 */
void vsock_mux__guest_notified(struct vsock_mux *m)
{
	if (m->reset_wait && !m->reset_deadline)
		m->reset_deadline = now_ns() + m->timeout_ns;
}

void vsock_mux__set_queues(struct vsock_mux *m,
			   const struct vsock_mux_queues *q)
{
	m->q = *q;
	m->have_queues = true;
}

int vsock_mux__poll_fd(const struct vsock_mux *m)
{
	return m->ep;
}

unsigned int vsock_mux__nr_conns(const struct vsock_mux *m)
{
	return m->nr_conns;
}

static int listen_on(struct vsock_mux *m)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN | EPOLLET };
	int err;

	if (strlen(m->uds_path) >= sizeof(sa.sun_path)) {
		pr_err("virtio-vsock: %s: longer than a Unix socket path can be",
		       m->uds_path);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, m->uds_path);
	m->listen_fd =
		socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (m->listen_fd < 0) {
		err = -errno;
		pr_err("virtio-vsock: socket: %s", strerror(-err));
		return err;
	}
	if (bind(m->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		pr_err("virtio-vsock: cannot bind %s: %s", m->uds_path,
		       strerror(-err));
		return err;
	}
	if (listen(m->listen_fd, SOMAXCONN) < 0 ||
	    epoll_ctl(m->ep, EPOLL_CTL_ADD, m->listen_fd, &ev) < 0) {
		err = -errno;
		pr_err("virtio-vsock: cannot listen on %s: %s", m->uds_path,
		       strerror(-err));
		unlink(m->uds_path);
		return err;
	}
	return 0;
}

int vsock_mux__new(const struct vsock_mux_config *cfg, struct vsock_mux **out)
{
	struct vsock_mux *m;
	int err;

	*out = NULL;
	if (cfg->guest_cid < 3 || cfg->guest_cid >= UINT32_MAX ||
	    !cfg->uds_path || !cfg->uds_path[0]) {
		pr_err("virtio-vsock: the guest CID must be 3 to %u, with a socket path",
		       UINT32_MAX - 1);
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m) {
		pr_err("virtio-vsock: out of memory");
		return -ENOMEM;
	}
	m->listen_fd = -1;
	m->guest_cid = cfg->guest_cid;
	m->buf_alloc = cfg->buf_alloc ? cfg->buf_alloc : DEFAULT_BUF_ALLOC;
	m->max_conns = cfg->max_conns ? cfg->max_conns : DEFAULT_MAX_CONNS;
	m->max_buffered =
		cfg->max_buffered ? cfg->max_buffered : DEFAULT_MAX_BUFFERED;
	m->timeout_ns = (uint64_t)(cfg->timeout_ms ? cfg->timeout_ms
						   : DEFAULT_TIMEOUT_MS) *
			1000000ULL;
	m->next_port = LOCAL_PORT_FIRST;
	link_init(&m->conns);
	link_init(&m->dead);
	link_init(&m->rx_list);
	m->uds_path = strdup(cfg->uds_path);
	if (!m->uds_path) {
		pr_err("virtio-vsock: out of memory");
		err = -ENOMEM;
		goto fail;
	}
	m->ep = epoll_create1(EPOLL_CLOEXEC);
	if (m->ep < 0) {
		err = -errno;
		pr_err("virtio-vsock: epoll_create1: %s", strerror(-err));
		goto fail;
	}
	err = listen_on(m);
	if (err)
		goto fail_ep;
	*out = m;
	return 0;
fail_ep:
	if (m->listen_fd >= 0)
		close(m->listen_fd);
	close(m->ep);
fail:
	free(m->uds_path);
	free(m);
	return err;
}

void vsock_mux__free(struct vsock_mux *m)
{
	if (!m)
		return;
	drop_all(m);
	close(m->listen_fd);
	unlink(m->uds_path);
	close(m->ep);
	free(m->uds_path);
	free(m);
}
