/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-vsock packets, and the multiplexer between guest connections and host Unix sockets (no threads). */
#ifndef SANDBOX_VSOCK_MUX_H
#define SANDBOX_VSOCK_MUX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../vmm/util.h"
#include "virtq.h"

#define VSOCK_HOST_CID 2

/* Queue indices (virtio 1.2, 5.10.2). */
#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2
#define VSOCK_NR_QUEUES 3

#define VSOCK_TYPE_STREAM 1

enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};

/* SHUTDOWN flags: the sender will receive (RCV) or send (SEND) no more. */
#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

#define VSOCK_EVENT_TRANSPORT_RESET 0

/* The largest payload either side puts in one packet (Linux's limit too). */
#define VSOCK_MAX_PKT (64U << 10)

/* virtio 1.2, 5.10.6: the header of every packet, all fields little-endian. */
struct vsock_hdr {
	uint64_t src_cid;
	uint64_t dst_cid;
	uint32_t src_port;
	uint32_t dst_port;
	uint32_t len; /* payload bytes after the header */
	uint16_t type;
	uint16_t op;
	uint32_t flags;
	uint32_t buf_alloc; /* the sender's receive buffer for this connection */
	uint32_t fwd_cnt; /* bytes the sender consumed from it, modulo 2^32 */
} __attribute__((packed));
_Static_assert(sizeof(struct vsock_hdr) == 44, "virtio_vsock_hdr layout");
_Static_assert(offsetof(struct vsock_hdr, len) == 24,
	       "virtio_vsock_hdr layout");
_Static_assert(offsetof(struct vsock_hdr, fwd_cnt) == 40,
	       "virtio_vsock_hdr layout");

struct vsock_event {
	uint32_t id;
};
_Static_assert(sizeof(struct vsock_event) == 4, "virtio_vsock_event layout");

struct vsock_mux;

/* Limits; a 0 field takes the default given beside it. */
struct vsock_mux_config {
	uint64_t guest_cid; /* 3 .. UINT32_MAX - 1 */
	const char *uds_path;
	/* What each connection may hold of guest data the host has not read. */
	uint32_t buf_alloc; /* 256 KiB */
	/* Host clients still sending CONNECT count too. */
	unsigned int max_conns; /* 256: well below the usual 1024 fd limit */
	/* Bytes buffered across all connections, beyond which one is reset. */
	uint64_t max_buffered; /* 64 MiB */
	/*
	 * How long a host client may take to send its CONNECT line, the guest
	 * to answer a REQUEST, and a closed connection to flush to the host.
	 */
	unsigned int timeout_ms; /* 10000 */
};

/* The queues the multiplexer serves, and how it reports to their owner. */
struct vsock_mux_queues {
	struct virtq *vq[VSOCK_NR_QUEUES];
	/* Used buffers wait and the driver wants to know. */
	void (*signal_used)(void *opaque);
	/* A queue holds a malformed chain: the device must stop until reset. */
	void (*needs_reset)(void *opaque);
	void *opaque;
};

/*
 * Creates a multiplexer: validates @cfg, binds and listens on
 * @cfg->uds_path (the path is copied). Nothing is served until
 * vsock_mux__set_queues() and vsock_mux__service().
 * Returns 0 and the multiplexer in *@out, or -errno after logging: -EINVAL
 * (CID out of range, no path), -ENAMETOOLONG, -EADDRINUSE (the path exists),
 * -ENOMEM, or what socket(), bind(), listen() or epoll returned.
 */
int vsock_mux__new(const struct vsock_mux_config *cfg,
		   struct vsock_mux **out) __must_check;

/* Closes every connection and the listener, unlinks the path. NULL-safe. */
void vsock_mux__free(struct vsock_mux *m);

/* Binds the multiplexer to the queues it serves from now on. */
void vsock_mux__set_queues(struct vsock_mux *m,
			   const struct vsock_mux_queues *q);

/*
 * A file descriptor that becomes readable when a host socket needs
 * service (an epoll instance: wait on it, never read it). Owned by @m.
 */
int vsock_mux__poll_fd(const struct vsock_mux *m) __must_check;

/*
 * Does everything that can be done without blocking: takes the guest's tx
 * packets, serves the host sockets, expires timers, fills rx buffers with
 * what connections owe the guest, posts a pending event, publishes the used
 * rings and signals the driver. Call it when a queue was notified, the poll
 * fd is readable or a timeout passed. Returns true if it stopped with work
 * left (call it again without waiting), false otherwise. A malformed queue
 * makes it call needs_reset() once and do nothing until vsock_mux__reset().
 */
bool vsock_mux__service(struct vsock_mux *m);

/* Milliseconds until the next connection timer expires, or -1 for none. */
int vsock_mux__timeout_ms(const struct vsock_mux *m) __must_check;

/*
 * The driver reset the device: closes every connection (host clients see
 * EOF), forgets pending packets and events and the queues. The listener
 * stays.
 */
void vsock_mux__reset(struct vsock_mux *m);

/*
 * Owes the guest a VIRTIO_VSOCK_EVENT_TRANSPORT_RESET, posted as soon as the
 * event queue holds a buffer: after a restore the guest's connections have
 * no host side any more. The guest resets every connected socket when it
 * handles the event, new ones included, so from posting it no rx packet
 * goes out until the guest hands an event buffer back (Linux refills it
 * after handling the event) or the timeout passes; the other event buffers
 * are returned empty so that a refill can be told apart.
 */
void vsock_mux__queue_transport_reset(struct vsock_mux *m);

/*
 * The guest notified a queue: it runs. The timeout of the wait above starts
 * at the first notification after the event went out, so a restored VM may
 * wait with its vCPUs stopped for as long as its owner likes.
 */
void vsock_mux__guest_notified(struct vsock_mux *m);

/* Live connections, host clients still sending CONNECT included. */
unsigned int vsock_mux__nr_conns(const struct vsock_mux *m);

#endif
