// SPDX-License-Identifier: Apache-2.0
// virtio-blk device: pops requests, runs them as io_uring batches, completes them in order of I/O.
#include <endian.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../vmm/log.h"
#include "../../vmm/state.h"
#include "../blk_engine.h"
#include "blk.h"
#include "blk_req.h"
#include "mmio.h"

#define VIRTIO_ID_BLOCK 2
#define QUEUE_SIZE 256

/* Feature bits (virtio 1.2, 5.2.3). */
#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

/* virtio 1.2, 5.2.4: everything up to write_zeroes_may_unmap. */
struct virtio_blk_config {
	uint64_t capacity;
	uint32_t size_max;
	uint32_t seg_max;
	uint16_t cylinders;
	uint8_t heads;
	uint8_t sectors;
	uint32_t blk_size;
	uint8_t physical_block_exp;
	uint8_t alignment_offset;
	uint16_t min_io_size;
	uint32_t opt_io_size;
	uint8_t writeback;
	uint8_t unused0[3];
	uint32_t max_discard_sectors;
	uint32_t max_discard_seg;
	uint32_t discard_sector_alignment;
	uint32_t max_write_zeroes_sectors;
	uint32_t max_write_zeroes_seg;
	uint8_t write_zeroes_may_unmap;
	uint8_t unused1[3];
} __attribute__((packed));
_Static_assert(sizeof(struct virtio_blk_config) == 60, "virtio-blk config");

/* One request between pop and completion. */
struct slot {
	uint16_t head;
	uint32_t written; /* bytes written into the chain, status included */
	struct blk_req req;
};

struct virtio_blk {
	struct virtio_mmio *t;
	struct blk_engine *eng;
	struct blk_disk disk;
	struct virtio_blk_config config;
	uint64_t features;

	/* Worker state: touched only by the worker thread while it runs. */
	pthread_t thread;
	bool running;
	int stop_fd;
	struct slot slots[QUEUE_SIZE];
	uint16_t free_slots[QUEUE_SIZE];
	unsigned int nr_free;
	bool ring_waiting; /* requests left on the ring for lack of room */
	bool broken;
};

static uint64_t blk_features(void *dev)
{
	return ((struct virtio_blk *)dev)->features;
}

static void blk_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct virtio_blk *b = dev;

	memcpy(data, (uint8_t *)&b->config + off, len);
}

/* Puts a finished request on the used ring and recycles its slot. */
static void complete(struct virtio_blk *b, struct slot *s, uint8_t status)
{
	struct virtq *vq = virtio_mmio__queue(b->t, 0);

	*s->req.status = status;
	if (virtq__push(vq, s->head, s->written) < 0)
		virtio_mmio__needs_reset(b->t);
	b->free_slots[b->nr_free++] = (uint16_t)(s - b->slots);
}

static void publish(struct virtio_blk *b)
{
	struct virtq *vq = virtio_mmio__queue(b->t, 0);

	virtq__publish(vq);
	if (virtq__should_notify(vq))
		virtio_mmio__signal_used(b->t);
}

static int queue_io(struct virtio_blk *b, struct slot *s)
{
	struct blk_req *r = &s->req;

	switch (r->type) {
	case VIRTIO_BLK_T_IN:
		s->written = (uint32_t)r->len + 1;
		return blk_engine__queue_read(b->eng, r->offset, r->iov,
					      r->iovcnt, s);
	case VIRTIO_BLK_T_OUT:
		return blk_engine__queue_write(b->eng, r->offset, r->iov,
					       r->iovcnt, s);
	case VIRTIO_BLK_T_FLUSH:
		return blk_engine__queue_flush(b->eng, s);
	case VIRTIO_BLK_T_DISCARD:
		return blk_engine__queue_discard(b->eng, r->offset, r->len, s);
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return blk_engine__queue_write_zeroes(b->eng, r->offset, r->len,
						      s);
	default:
		return -EINVAL;
	}
}

/* Scatters @len bytes of @src over @iov (which holds exactly @len bytes). */
static void iov_fill(const struct iovec *iov, int cnt, const void *src,
		     uint64_t len)
{
	const uint8_t *p = src;
	int i;

	for (i = 0; i < cnt && len; i++) {
		uint64_t n = iov[i].iov_len < len ? iov[i].iov_len : len;

		memcpy(iov[i].iov_base, p, n);
		p += n;
		len -= n;
	}
}

/* Returns 1 if the request went to the engine, 0 if it completed at once. */
static int start(struct virtio_blk *b, struct slot *s,
		 const struct virtq_chain *c)
{
	const char *id = blk_engine__id(b->eng);
	int st, err;

	s->head = c->head;
	s->written = 1;
	st = blk_req__parse(c, &b->disk, &s->req);
	if (st < 0)
		return st;
	if (st == VIRTIO_BLK_S_OK && s->req.type == VIRTIO_BLK_T_GET_ID) {
		char buf[VIRTIO_BLK_ID_BYTES] = { 0 };
		size_t idlen = strlen(id);

		/* NUL-padded to 20 bytes, not NUL-terminated at 20 (5.2.6). */
		memcpy(buf, id, idlen < sizeof(buf) ? idlen : sizeof(buf));
		iov_fill(s->req.iov, s->req.iovcnt, buf, s->req.len);
		s->written += (uint32_t)s->req.len;
	}
	if (st != VIRTIO_BLK_S_OK || s->req.type == VIRTIO_BLK_T_GET_ID) {
		complete(b, s, (uint8_t)st);
		return 0;
	}
	err = queue_io(b, s);
	if (err) {
		pr_debug("virtio-blk: cannot queue request: %s",
			 strerror(-err));
		s->written = 1;
		complete(b, s, VIRTIO_BLK_S_IOERR);
		return 0;
	}
	return 1;
}

/* Takes what the ring holds while there is room, as one engine batch. */
static void serve_ring(struct virtio_blk *b)
{
	struct virtq *vq = virtio_mmio__queue(b->t, 0);
	struct virtq_seg segs[VIRTIO_BLK_CHAIN_MAX];
	struct virtq_chain c = { .segs = segs, .max_segs = ARRAY_SIZE(segs) };
	int r = 0, queued = 0;

	if (b->broken)
		return;
	for (;;) {
		virtq__disable_notify(vq);
		b->ring_waiting = false;
		while (b->nr_free && blk_engine__room(b->eng)) {
			struct slot *s;
			int st;

			r = virtq__pop(vq, &c);
			if (r <= 0)
				break;
			s = &b->slots[b->free_slots[--b->nr_free]];
			st = start(b, s, &c);
			if (st < 0) {
				b->free_slots[b->nr_free++] =
					(uint16_t)(s - b->slots);
				r = st;
				break;
			}
			queued += st;
		}
		if (queued && blk_engine__submit(b->eng) < 0)
			pr_debug("virtio-blk: submit failed; reap retries");
		queued = 0;
		publish(b);
		if (r < 0) {
			b->broken = true;
			virtio_mmio__needs_reset(b->t);
			return;
		}
		if (!b->nr_free || !blk_engine__room(b->eng)) {
			/* Completions make room; they call us again. */
			b->ring_waiting = true;
			return;
		}
		if (virtq__enable_notify(vq) <= 0)
			return;
	}
}

static unsigned int reap(struct virtio_blk *b, bool wait)
{
	struct blk_completion done[64];
	unsigned int total = 0;
	int n, i;

	for (;;) {
		n = blk_engine__reap(b->eng, done, ARRAY_SIZE(done), wait);
		if (n <= 0)
			break;
		for (i = 0; i < n; i++) {
			struct slot *s = done[i].cookie;

			complete(b, s,
				 done[i].result ? VIRTIO_BLK_S_IOERR
						: VIRTIO_BLK_S_OK);
		}
		total += (unsigned int)n;
		wait = false;
	}
	if (total)
		publish(b);
	return total;
}

static void drain(struct virtio_blk *b)
{
	/* Nothing may write guest memory after reset returns: wait for every I/O. */
	while (b->nr_free < QUEUE_SIZE)
		if (!reap(b, true) && b->nr_free < QUEUE_SIZE)
			pr_debug("virtio-blk: waiting for in-flight I/O");
}

static void *worker(void *arg)
{
	struct virtio_blk *b = arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN };
	int notify = virtio_mmio__notify_fd(b->t, 0);
	uint64_t v;
	bool ok;

	if (ep < 0) {
		virtio_mmio__needs_reset(b->t);
		return NULL;
	}
	ev.data.fd = notify;
	ok = !epoll_ctl(ep, EPOLL_CTL_ADD, notify, &ev);
	ev.data.fd = blk_engine__poll_fd(b->eng);
	ok = ok && !epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev);
	ev.data.fd = b->stop_fd;
	ok = ok && !epoll_ctl(ep, EPOLL_CTL_ADD, b->stop_fd, &ev);
	if (!ok) {
		pr_err("virtio-blk: epoll_ctl: %s", strerror(errno));
		virtio_mmio__needs_reset(b->t);
		close(ep);
		return NULL;
	}
	/* Buffers may have been queued before DRIVER_OK. */
	serve_ring(b);
	for (;;) {
		struct epoll_event evs[3];
		int n = epoll_wait(ep, evs, 3, -1), i;
		bool stop = false;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pr_err("virtio-blk: epoll_wait: %s", strerror(errno));
			virtio_mmio__needs_reset(b->t);
			break;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.fd == b->stop_fd)
				stop = true;
			else if (evs[i].data.fd == notify &&
				 read(notify, &v, sizeof(v)) < 0)
				pr_debug("virtio-blk: notify read failed");
		}
		if (stop)
			break;
		reap(b, false);
		serve_ring(b);
	}
	drain(b);
	close(ep);
	return NULL;
}

static void reset_worker_state(struct virtio_blk *b)
{
	unsigned int i;

	for (i = 0; i < QUEUE_SIZE; i++)
		b->free_slots[i] = (uint16_t)i;
	b->nr_free = QUEUE_SIZE;
	b->ring_waiting = false;
	b->broken = false;
}

static int blk_activate(void *dev)
{
	struct virtio_blk *b = dev;
	uint64_t v;
	int err;

	reset_worker_state(b);
	/* A stale stop request from an earlier reset must not end the new worker. */
	while (read(b->stop_fd, &v, sizeof(v)) > 0)
		;
	err = pthread_create(&b->thread, NULL, worker, b);
	if (err)
		return -err;
	b->running = true;
	return 0;
}

static void blk_reset(void *dev)
{
	struct virtio_blk *b = dev;
	uint64_t one = 1;

	if (!b->running)
		return;
	if (write(b->stop_fd, &one, sizeof(one)) < 0)
		pr_debug("virtio-blk: cannot signal the worker");
	pthread_join(b->thread, NULL);
	b->running = false;
}

static void blk_destroy(void *dev)
{
	struct virtio_blk *b = dev;

	blk_reset(b);
	blk_engine__free(b->eng);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	free(b);
}

/*
 * Nothing is in flight once the transport paused us (reset() drained every
 * request), so the disk's shape is the whole record: a restore onto a disk
 * of another size or mode would show the guest a device that changed under
 * it.
 */
static int blk_save(void *dev, struct state_buf *b)
{
	struct virtio_blk *blk = dev;

	if (blk->running || blk->nr_free != QUEUE_SIZE) {
		pr_err("virtio-blk: cannot save with requests in flight");
		return -EBUSY;
	}
	state__put_u64(b, blk->disk.sectors);
	state__put_u64(b, blk->features);
	return state__err(b);
}

static int blk_restore(void *dev, struct state_reader *r)
{
	struct virtio_blk *blk = dev;
	uint64_t sectors = state__get_u64(r);
	uint64_t features = state__get_u64(r);

	if (state__rerr(r)) {
		pr_err("virtio-blk: malformed state record");
		return -EBADMSG;
	}
	if (sectors != blk->disk.sectors || features != blk->features) {
		pr_err("virtio-blk %s: the disk differs from the snapshot's (%llu sectors, features 0x%llx; now %llu, 0x%llx)",
		       blk_engine__id(blk->eng), (unsigned long long)sectors,
		       (unsigned long long)features,
		       (unsigned long long)blk->disk.sectors,
		       (unsigned long long)blk->features);
		return -EBADMSG;
	}
	return 0;
}

static const struct virtio_dev_ops blk_ops = {
	.name = "virtio-blk",
	.device_id = VIRTIO_ID_BLOCK,
	.nr_queues = 1,
	.queue_max = QUEUE_SIZE,
	.features = blk_features,
	.config_read = blk_config_read,
	.config_size = sizeof(struct virtio_blk_config),
	.activate = blk_activate,
	.reset = blk_reset,
	.destroy = blk_destroy,
	.save = blk_save,
	.restore = blk_restore,
};

static void fill_config(struct virtio_blk *b)
{
	uint32_t f = blk_engine__features(b->eng);
	struct virtio_blk_config *c = &b->config;

	b->disk.sectors = blk_engine__sectors(b->eng);
	b->disk.ro = f & BLK_ENGINE_F_RO;
	b->disk.discard = f & BLK_ENGINE_F_DISCARD;
	b->disk.write_zeroes = f & BLK_ENGINE_F_WRITE_ZEROES;
	b->features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) |
		      (1ULL << VIRTIO_BLK_F_SEG_MAX) |
		      (1ULL << VIRTIO_BLK_F_BLK_SIZE) |
		      (1ULL << VIRTIO_BLK_F_FLUSH);
	if (b->disk.ro)
		b->features |= 1ULL << VIRTIO_BLK_F_RO;
	if (b->disk.discard && !b->disk.ro)
		b->features |= 1ULL << VIRTIO_BLK_F_DISCARD;
	if (b->disk.write_zeroes && !b->disk.ro)
		b->features |= 1ULL << VIRTIO_BLK_F_WRITE_ZEROES;

	memset(c, 0, sizeof(*c));
	c->capacity = htole64(b->disk.sectors);
	c->size_max = htole32(VIRTIO_BLK_MAX_REQ_BYTES);
	c->seg_max = htole32(VIRTIO_BLK_SEG_MAX);
	c->blk_size = htole32(blk_engine__block_size(b->eng));
	c->max_discard_sectors = htole32(VIRTIO_BLK_MAX_RANGE_SECTORS);
	c->max_discard_seg = htole32(1);
	c->discard_sector_alignment =
		htole32(blk_engine__block_size(b->eng) / VIRTIO_BLK_SECTOR);
	c->max_write_zeroes_sectors = htole32(VIRTIO_BLK_MAX_RANGE_SECTORS);
	c->max_write_zeroes_seg = htole32(1);
}

int virtio_blk__new(struct vm *vm, uint64_t base, uint32_t irq,
		    const struct blk_drive *drive, struct device **out)
{
	unsigned int flags = (drive->ro ? BLK_ENGINE_RDONLY : 0) |
			     (drive->direct ? BLK_ENGINE_DIRECT : 0);
	struct virtio_blk *b;
	int err;

	*out = NULL;
	b = calloc(1, sizeof(*b));
	if (!b) {
		pr_err("virtio-blk: out of memory");
		return -ENOMEM;
	}
	b->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (b->stop_fd < 0) {
		err = -errno;
		pr_err("virtio-blk: eventfd: %s", strerror(-err));
		goto fail;
	}
	/* The engine logs why it cannot open the file. */
	err = blk_engine__new(drive->path, flags, QUEUE_SIZE, &b->eng);
	if (err)
		goto fail;
	fill_config(b);
	err = virtio_mmio__new(vm, base, irq, &blk_ops, b, &b->t);
	if (err)
		goto fail;
	*out = virtio_mmio__device(b->t);
	return 0;
fail:
	blk_engine__free(b->eng);
	if (b->stop_fd >= 0)
		close(b->stop_fd);
	free(b);
	return err;
}
