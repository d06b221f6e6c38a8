// SPDX-License-Identifier: Apache-2.0
// virtio-mmio transport: identification, feature negotiation, queue setup, status, interrupts.
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "../../devices/virtio/mmio.h"
#include "../../vmm/mem.h"
#include "../../vmm/state.h"
#include "fakes.h"

#define RAM_BASE 0x40000000ULL

struct fake_dev {
	int activated, resets, destroyed;
	int activate_result;
	uint8_t config[8];
};

static struct guest_mem mem;
static struct fake_dev fdev;
static struct virtio_mmio *t;
static struct device *dev;

static uint64_t fd_features(void *d)
{
	(void)d;
	return 1ULL << 5;
}

static void fd_config_read(void *d, uint64_t off, void *data, uint32_t len)
{
	memcpy(data, ((struct fake_dev *)d)->config + off, len);
}

static int fd_activate(void *d)
{
	((struct fake_dev *)d)->activated++;
	return ((struct fake_dev *)d)->activate_result;
}

static void fd_reset(void *d)
{
	((struct fake_dev *)d)->resets++;
}

static void fd_destroy(void *d)
{
	((struct fake_dev *)d)->destroyed++;
}

static const struct virtio_dev_ops fake_ops = {
	.name = "fake",
	.device_id = 42,
	.nr_queues = 2,
	.queue_max = 64,
	.features = fd_features,
	.config_read = fd_config_read,
	.config_size = sizeof(fdev.config),
	.activate = fd_activate,
	.reset = fd_reset,
	.destroy = fd_destroy,
};

static uint32_t rd(uint64_t off)
{
	uint32_t v = 0;

	dev->ops->mmio_read(dev, off, &v, 4);
	return v;
}

static void wr(uint64_t off, uint32_t v)
{
	dev->ops->mmio_write(dev, off, &v, 4);
}

static void setup(void)
{
	fakes_reset();
	memset(&fdev, 0, sizeof(fdev));
	memcpy(fdev.config, "\x01\x02\x03\x04\x05\x06\x07\x08", 8);
	cr_assert_eq(mem__init(&mem, RAM_BASE, 1ULL << 20), 0);
	fake_mem = &mem;
	cr_assert_eq(virtio_mmio__new(NULL, 0xa000000, 3, &fake_ops, &fdev, &t),
		     0);
	dev = virtio_mmio__device(t);
}

static void teardown(void)
{
	dev->ops->destroy(dev);
	cr_assert_eq(fdev.destroyed, 1);
	cr_assert_eq(fake_ioeventfds, 0, "ioeventfds left registered");
	cr_assert_eq(fake_irqfds, 0, "irqfd left registered");
	mem__exit(&mem);
}

TestSuite(virtio_mmio, .init = setup, .fini = teardown);

/* The driver side of feature negotiation, accepting @lo and @hi. */
static uint32_t negotiate(uint32_t lo, uint32_t hi)
{
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	wr(0x024, 0);
	wr(0x020, lo);
	wr(0x024, 1);
	wr(0x020, hi);
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			  VIRTIO_STATUS_FEATURES_OK);
	return rd(0x070);
}

static void setup_queue(uint32_t q, uint32_t size)
{
	wr(0x030, q);
	wr(0x038, size);
	wr(0x080, (uint32_t)RAM_BASE);
	wr(0x084, 0);
	wr(0x090, (uint32_t)RAM_BASE + 0x1000);
	wr(0x094, 0);
	wr(0x0a0, (uint32_t)RAM_BASE + 0x2000);
	wr(0x0a4, 0);
	wr(0x044, 1);
}

Test(virtio_mmio, identifies_as_a_version_2_device)
{
	cr_assert_eq(rd(0x000), 0x74726976);
	cr_assert_eq(rd(0x004), 2);
	cr_assert_eq(rd(0x008), 42);
	cr_assert_eq(fake_ioeventfds, 2);
	cr_assert_eq(fake_irqfds, 1);
}

Test(virtio_mmio, offers_device_and_transport_features)
{
	wr(0x014, 0);
	cr_assert_eq(rd(0x010), (1U << 5) | (1U << VIRTIO_RING_F_EVENT_IDX) |
					(1U << VIRTIO_RING_F_INDIRECT_DESC));
	wr(0x014, 1);
	cr_assert_eq(rd(0x010), 1); /* VIRTIO_F_VERSION_1 */
	wr(0x014, 2);
	cr_assert_eq(rd(0x010), 0);
}

Test(virtio_mmio, refuses_unoffered_or_legacy_feature_sets)
{
	cr_assert_eq(negotiate(1U << 5, 0) & VIRTIO_STATUS_FEATURES_OK, 0,
		     "accepted a set without VERSION_1");
	wr(0x070, 0);
	cr_assert_eq(negotiate(1U << 7, 1) & VIRTIO_STATUS_FEATURES_OK, 0,
		     "accepted a feature never offered");
	wr(0x070, 0);
	cr_assert_neq(negotiate(1U << 5, 1) & VIRTIO_STATUS_FEATURES_OK, 0);
	cr_assert(virtio_mmio__has_feature(t, 5));
	cr_assert(virtio_mmio__has_feature(t, VIRTIO_F_VERSION_1));
	cr_assert_not(virtio_mmio__has_feature(t, VIRTIO_RING_F_EVENT_IDX));
}

Test(virtio_mmio, sets_up_queues_and_activates_once)
{
	struct virtq *vq;

	negotiate(1U << VIRTIO_RING_F_EVENT_IDX, 1);
	wr(0x030, 0);
	cr_assert_eq(rd(0x034), 64);
	setup_queue(0, 16);
	vq = virtio_mmio__queue(t, 0);
	cr_assert(vq->ready);
	cr_assert(vq->event_idx);
	cr_assert_eq(vq->size, 16);
	cr_assert_eq(vq->desc_gpa, RAM_BASE);
	cr_assert_eq(vq->used_gpa, RAM_BASE + 0x2000);
	cr_assert_eq(rd(0x044), 1);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	cr_assert_eq(fdev.activated, 1);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	cr_assert_eq(fdev.activated, 1);
	cr_assert_null(virtio_mmio__queue(t, 2));
}

Test(virtio_mmio, queue_registers_freeze_at_driver_ok)
{
	struct virtq *vq = virtio_mmio__queue(t, 1);

	negotiate(0, 1);
	setup_queue(1, 8);
	wr(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
			  VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	wr(0x030, 1);
	wr(0x038, 32);
	wr(0x080, (uint32_t)RAM_BASE + 0x8000);
	wr(0x044, 0);
	cr_assert_eq(vq->size, 8);
	cr_assert_eq(vq->desc_gpa, RAM_BASE);
	cr_assert(vq->ready);
}

Test(virtio_mmio, oversized_or_misplaced_queues_need_reset)
{
	negotiate(0, 1);
	setup_queue(0, 128); /* above QueueNumMax */
	cr_assert_not(virtio_mmio__queue(t, 0)->ready);
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET);
	wr(0x070, 0);
	cr_assert_eq(rd(0x070), 0);
	negotiate(0, 1);
	wr(0x030, 0);
	wr(0x038, 16);
	wr(0x080, 0x1000); /* outside guest RAM */
	wr(0x044, 1);
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET);
}

Test(virtio_mmio, reset_returns_everything_to_the_start)
{
	negotiate(0, 1);
	setup_queue(0, 16);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	virtio_mmio__signal_used(t);
	wr(0x070, 0);
	cr_assert_eq(fdev.resets, 1);
	cr_assert_eq(rd(0x070), 0);
	cr_assert_eq(rd(0x060), 0);
	wr(0x030, 0);
	cr_assert_eq(rd(0x044), 0);
	cr_assert_not(virtio_mmio__has_feature(t, VIRTIO_F_VERSION_1));
}

Test(virtio_mmio, failed_activation_reports_needs_reset)
{
	fdev.activate_result = -ENOMEM;
	negotiate(0, 1);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET);
	wr(0x070, 0);
	cr_assert_eq(fdev.resets, 0, "reset of a device that never started");
}

Test(virtio_mmio, interrupt_status_and_ack)
{
	virtio_mmio__signal_used(t);
	cr_assert_eq(rd(0x060), VIRTIO_INT_USED);
	virtio_mmio__needs_reset(t);
	cr_assert_eq(rd(0x060), VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	cr_assert(rd(0x070) & VIRTIO_STATUS_NEEDS_RESET);
	wr(0x064, VIRTIO_INT_USED);
	cr_assert_eq(rd(0x060), VIRTIO_INT_CONFIG);
	wr(0x064, VIRTIO_INT_CONFIG);
	cr_assert_eq(rd(0x060), 0);
}

Test(virtio_mmio, config_space_reads_are_bounded)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0xffffffff;

	dev->ops->mmio_read(dev, 0x100 + 2, b, 2);
	cr_assert_eq(b[0], 3);
	cr_assert_eq(b[1], 4);
	dev->ops->mmio_read(dev, 0x100 + 6, &v, 4);
	cr_assert_eq(v, 0, "read past the config space");
	cr_assert_eq(rd(0x0fc), 0);
}

Test(virtio_mmio, notify_without_ioeventfd_signals_the_queue)
{
	struct pollfd p = { .fd = virtio_mmio__notify_fd(t, 1),
			    .events = POLLIN };

	cr_assert_eq(poll(&p, 1, 0), 0);
	wr(0x050, 1);
	cr_assert_eq(poll(&p, 1, 0), 1);
	wr(0x050, 7); /* no such queue: ignored */
}

/* Snapshot path: save a live transport, restore it into a fresh one. */
static void save_into(struct state_buf *b)
{
	state__init(b);
	cr_assert_eq(dev->ops->save(dev, b), 0);
}

Test(virtio_mmio, pause_stops_the_device_and_resume_restarts_it)
{
	negotiate(1U << VIRTIO_RING_F_EVENT_IDX, 1);
	setup_queue(0, 16);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	cr_assert_eq(fdev.activated, 1);
	cr_assert_eq(dev->ops->pause(dev), 0);
	cr_assert_eq(fdev.resets, 1);
	/* Pausing twice does not stop it twice. */
	cr_assert_eq(dev->ops->pause(dev), 0);
	cr_assert_eq(fdev.resets, 1);
	dev->ops->resume(dev);
	cr_assert_eq(fdev.activated, 2);
	cr_assert_eq(rd(0x070) & VIRTIO_STATUS_DRIVER_OK,
		     VIRTIO_STATUS_DRIVER_OK);
}

Test(virtio_mmio, restore_recreates_registers_queues_and_activation)
{
	struct virtio_mmio *t2;
	struct device *dev2;
	struct state_reader r;
	struct state_buf b;
	struct virtq *vq;
	struct fake_dev fdev2 = { 0 };

	negotiate(1U << VIRTIO_RING_F_EVENT_IDX, 1);
	setup_queue(1, 32);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	virtio_mmio__queue(t, 1)->last_avail_idx = 7;
	virtio_mmio__queue(t, 1)->used_idx = 5;
	virtio_mmio__queue(t, 1)->used_published = 5;
	virtio_mmio__signal_used(t);
	cr_assert_eq(dev->ops->pause(dev), 0);
	save_into(&b);

	cr_assert_eq(
		virtio_mmio__new(NULL, 0xa000200, 4, &fake_ops, &fdev2, &t2),
		0);
	dev2 = virtio_mmio__device(t2);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(dev2->ops->restore(dev2, &r), 0);
	cr_assert_eq(state__left(&r), 0);
	cr_assert_eq(fdev2.activated, 1, "a serving device serves again");
	vq = virtio_mmio__queue(t2, 1);
	cr_assert(vq->ready);
	cr_assert(vq->event_idx);
	cr_assert_eq(vq->size, 32);
	cr_assert_eq(vq->last_avail_idx, 7);
	cr_assert_eq(vq->used_idx, 5);
	cr_assert_eq(vq->avail_gpa, RAM_BASE + 0x1000);
	{
		uint32_t v = 0;

		dev2->ops->mmio_read(dev2, 0x060, &v, 4);
		cr_assert_eq(v, VIRTIO_INT_USED);
		dev2->ops->mmio_read(dev2, 0x070, &v, 4);
		cr_assert_eq(v, 0xf & ~VIRTIO_STATUS_FAILED);
	}
	dev2->ops->destroy(dev2);
	cr_assert_eq(fdev2.resets, 1);
	state__exit(&b);
}

Test(virtio_mmio, restore_refuses_short_foreign_or_impossible_records)
{
	struct state_reader r;
	struct state_buf b;
	size_t cut;

	negotiate(1U << VIRTIO_RING_F_EVENT_IDX, 1);
	setup_queue(0, 16);
	wr(0x070, 0xf & ~VIRTIO_STATUS_FAILED);
	cr_assert_eq(dev->ops->pause(dev), 0);
	save_into(&b);
	dev->ops->resume(dev);
	/* Every truncation fails cleanly, and leaves the device reset. */
	for (cut = 0; cut < b.len; cut++) {
		state__reader(&r, b.data, cut);
		cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG, "cut at %zu",
			     cut);
		cr_assert_eq(rd(0x070), 0);
	}
	/* Another device id. */
	b.data[0] ^= 1;
	state__reader(&r, b.data, b.len);
	cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG);
	b.data[0] ^= 1;
	/* Queue 0's descriptor table moved outside guest memory. */
	memset(b.data + 4 * 4 + 1 + 4 * 3 + 8, 0xff, 8);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(dev->ops->restore(dev, &r), -EBADMSG);
	state__exit(&b);
}
