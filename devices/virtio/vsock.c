// SPDX-License-Identifier: Apache-2.0
// virtio-vsock device: the multiplexer served on a thread of its own, snapshots, the transport's ops.
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
#include "mmio.h"
#include "vsock.h"
#include "vsock_mux.h"

#define VIRTIO_ID_VSOCK 19
#define QUEUE_SIZE 256

/* Feature bits (virtio 1.2, 5.10.3). */
#define VIRTIO_VSOCK_F_STREAM 0

struct virtio_vsock {
	struct virtio_mmio *t;
	struct vsock_mux *mux;
	uint64_t guest_cid;
	uint64_t config; /* le64 guest_cid (5.10.4) */
	pthread_t thread;
	bool running;
	int stop_fd;
};

/*
 * Linux 6.1 knows only SEQPACKET (bit 1) and never acknowledges STREAM, so
 * offering it costs nothing there; virtio 1.2 has drivers that negotiate no
 * type bit assume streams, which is what we serve.
 */
static uint64_t vsock_features(void *dev)
{
	(void)dev;
	return 1ULL << VIRTIO_VSOCK_F_STREAM;
}

static void vsock_config_read(void *dev, uint64_t off, void *data, uint32_t len)
{
	struct virtio_vsock *v = dev;

	memcpy(data, (uint8_t *)&v->config + off, len);
}

static void signal_used(void *opaque)
{
	virtio_mmio__signal_used(opaque);
}

static void needs_reset(void *opaque)
{
	virtio_mmio__needs_reset(opaque);
}

/* Epoll tags: queue notify fds are 0..2. */
#define TAG_STOP 3
#define TAG_MUX 4

static int watch(int ep, int fd, uint32_t tag)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = tag };

	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

static void *worker(void *arg)
{
	struct virtio_vsock *v = arg;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	unsigned int i;
	bool ok;

	if (ep < 0) {
		pr_err("virtio-vsock: epoll_create1: %s", strerror(errno));
		virtio_mmio__needs_reset(v->t);
		return NULL;
	}
	ok = !watch(ep, v->stop_fd, TAG_STOP) &&
	     !watch(ep, vsock_mux__poll_fd(v->mux), TAG_MUX);
	for (i = 0; i < VSOCK_NR_QUEUES && ok; i++)
		ok = !watch(ep, virtio_mmio__notify_fd(v->t, i), i);
	if (!ok) {
		pr_err("virtio-vsock: epoll_ctl: %s", strerror(errno));
		virtio_mmio__needs_reset(v->t);
		close(ep);
		return NULL;
	}
	for (;;) {
		struct epoll_event evs[VSOCK_NR_QUEUES + 2];
		/* Buffers may have been queued before DRIVER_OK or a pause. */
		bool more = vsock_mux__service(v->mux), stop = false;
		int n, j;
		uint64_t val;

		n = epoll_wait(ep, evs, ARRAY_SIZE(evs),
			       more ? 0 : vsock_mux__timeout_ms(v->mux));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			pr_err("virtio-vsock: epoll_wait: %s", strerror(errno));
			virtio_mmio__needs_reset(v->t);
			break;
		}
		for (j = 0; j < n; j++) {
			uint32_t tag = evs[j].data.u32;

			if (tag == TAG_STOP)
				stop = true;
			else if (tag >= VSOCK_NR_QUEUES)
				continue;
			else if (read(virtio_mmio__notify_fd(v->t, tag), &val,
				      sizeof(val)) < 0)
				pr_debug("virtio-vsock: notify read failed");
			else
				vsock_mux__guest_notified(v->mux);
		}
		if (stop)
			break;
	}
	close(ep);
	return NULL;
}

static int start(struct virtio_vsock *v)
{
	uint64_t val;
	int err;

	/* A stale stop request from an earlier stop must not end the new worker. */
	while (read(v->stop_fd, &val, sizeof(val)) > 0)
		;
	err = pthread_create(&v->thread, NULL, worker, v);
	if (err) {
		pr_err("virtio-vsock: cannot start the worker: %s",
		       strerror(err));
		return -err;
	}
	v->running = true;
	return 0;
}

/* Returns when the worker is gone: nothing touches the queues any more. */
static void stop(struct virtio_vsock *v)
{
	uint64_t one = 1;

	if (!v->running)
		return;
	if (write(v->stop_fd, &one, sizeof(one)) < 0)
		pr_debug("virtio-vsock: cannot signal the worker");
	pthread_join(v->thread, NULL);
	v->running = false;
}

static int vsock_activate(void *dev)
{
	struct virtio_vsock *v = dev;
	struct vsock_mux_queues q = {
		.signal_used = signal_used,
		.needs_reset = needs_reset,
		.opaque = v->t,
	};
	unsigned int i;

	for (i = 0; i < VSOCK_NR_QUEUES; i++)
		q.vq[i] = virtio_mmio__queue(v->t, i);
	vsock_mux__set_queues(v->mux, &q);
	return start(v);
}

/* The driver reset the device: its connections are gone with it. */
static void vsock_reset(void *dev)
{
	struct virtio_vsock *v = dev;

	stop(v);
	vsock_mux__reset(v->mux);
}

/* Connections survive a pause: their sockets hold what arrives meanwhile. */
static int vsock_pause(void *dev)
{
	stop(dev);
	return 0;
}

static int vsock_resume(void *dev)
{
	return start(dev);
}

static void vsock_destroy(void *dev)
{
	struct virtio_vsock *v = dev;

	stop(v);
	vsock_mux__free(v->mux);
	close(v->stop_fd);
	free(v);
}

/*
 * Connections cannot travel in a snapshot (their host sockets belong to
 * this process), so the record is the configuration the guest saw: its CID.
 */
static int vsock_save(void *dev, struct state_buf *b)
{
	struct virtio_vsock *v = dev;

	state__put_u64(b, v->guest_cid);
	return state__err(b);
}

static int vsock_restore(void *dev, struct state_reader *r)
{
	struct virtio_vsock *v = dev;
	uint64_t cid = state__get_u64(r);

	if (state__rerr(r)) {
		pr_err("virtio-vsock: malformed state record");
		return -EBADMSG;
	}
	if (cid != v->guest_cid) {
		pr_err("virtio-vsock: the snapshot's guest CID is %llu, this device's %llu",
		       (unsigned long long)cid,
		       (unsigned long long)v->guest_cid);
		return -EBADMSG;
	}
	/* The guest's connections lost their host side: it must drop them. */
	vsock_mux__queue_transport_reset(v->mux);
	return 0;
}

static const struct virtio_dev_ops vsock_ops = {
	.name = "virtio-vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.nr_queues = VSOCK_NR_QUEUES,
	.queue_max = QUEUE_SIZE,
	.features = vsock_features,
	.config_read = vsock_config_read,
	.config_size = sizeof(uint64_t),
	.activate = vsock_activate,
	.reset = vsock_reset,
	.destroy = vsock_destroy,
	.pause = vsock_pause,
	.resume = vsock_resume,
	.save = vsock_save,
	.restore = vsock_restore,
};

int virtio_vsock__new(struct vm *vm, uint64_t base, uint32_t irq,
		      const struct vsock_config *cfg, struct device **out)
{
	struct vsock_mux_config mc = {
		.guest_cid = cfg->guest_cid,
		.uds_path = cfg->uds_path,
	};
	struct virtio_vsock *v;
	int err;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v) {
		pr_err("virtio-vsock: out of memory");
		return -ENOMEM;
	}
	v->guest_cid = cfg->guest_cid;
	v->config = htole64(cfg->guest_cid);
	v->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->stop_fd < 0) {
		err = -errno;
		pr_err("virtio-vsock: eventfd: %s", strerror(-err));
		goto fail;
	}
	/* It logs why the CID or the path will not do. */
	err = vsock_mux__new(&mc, &v->mux);
	if (err)
		goto fail_fd;
	err = virtio_mmio__new(vm, base, irq, &vsock_ops, v, &v->t);
	if (err)
		goto fail_mux;
	*out = virtio_mmio__device(v->t);
	return 0;
fail_mux:
	vsock_mux__free(v->mux);
fail_fd:
	close(v->stop_fd);
fail:
	free(v);
	return err;
}
