// SPDX-License-Identifier: Apache-2.0
// virtio-mmio (version 2) transport: the register file a driver programs, and the fds a device serves.
#include <errno.h>
#include <libfdt.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "../../vmm/log.h"
#include "../../vmm/state.h"
#include "mmio.h"

/* Register offsets (virtio 1.2, 4.2.2). */
#define REG_MAGIC 0x000
#define REG_VERSION 0x004
#define REG_DEVICE_ID 0x008
#define REG_VENDOR_ID 0x00c
#define REG_DEVICE_FEATURES 0x010
#define REG_DEVICE_FEATURES_SEL 0x014
#define REG_DRIVER_FEATURES 0x020
#define REG_DRIVER_FEATURES_SEL 0x024
#define REG_QUEUE_SEL 0x030
#define REG_QUEUE_NUM_MAX 0x034
#define REG_QUEUE_NUM 0x038
#define REG_QUEUE_READY 0x044
#define REG_QUEUE_NOTIFY 0x050
#define REG_INTERRUPT_STATUS 0x060
#define REG_INTERRUPT_ACK 0x064
#define REG_STATUS 0x070
#define REG_QUEUE_DESC_LOW 0x080
#define REG_QUEUE_DESC_HIGH 0x084
#define REG_QUEUE_DRIVER_LOW 0x090
#define REG_QUEUE_DRIVER_HIGH 0x094
#define REG_QUEUE_DEVICE_LOW 0x0a0
#define REG_QUEUE_DEVICE_HIGH 0x0a4
#define REG_CONFIG_GENERATION 0x0fc
#define REG_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x584f4253 /* "SBOX" */

struct virtio_mmio {
	struct device dev;
	const struct virtio_dev_ops *ops;
	void *vdev;
	pthread_mutex_t lock; /* the register file; vCPUs may race on it */
	uint32_t status;
	bool broken; /* set by the device thread: reads as NEEDS_RESET (atomic) */
	uint32_t isr; /* interrupt status (atomic) */
	bool active; /* activate() succeeded, reset() not yet called */
	bool paused; /* active, but the device is stopped for a snapshot */
	uint32_t dev_features_sel;
	uint32_t drv_features_sel;
	uint64_t drv_features;
	uint32_t queue_sel;
	struct virtq vqs[VIRTIO_MMIO_MAX_QUEUES];
	int notify_fd[VIRTIO_MMIO_MAX_QUEUES];
	bool ioeventfd[VIRTIO_MMIO_MAX_QUEUES];
	int irq_fd;
	bool irqfd;
};

static uint64_t device_features(struct virtio_mmio *t)
{
	return t->ops->features(t->vdev) | (1ULL << VIRTIO_F_VERSION_1) |
	       (1ULL << VIRTIO_RING_F_EVENT_IDX) |
	       (1ULL << VIRTIO_RING_F_INDIRECT_DESC);
}

bool virtio_mmio__has_feature(const struct virtio_mmio *t, unsigned int bit)
{
	return bit < 64 && (t->drv_features >> bit) & 1;
}

static void raise_irq(struct virtio_mmio *t, uint32_t why)
{
	uint64_t one = 1;

	__atomic_fetch_or(&t->isr, why, __ATOMIC_SEQ_CST);
	if (write(t->irq_fd, &one, sizeof(one)) < 0)
		pr_debug("%s: cannot signal the interrupt eventfd",
			 t->ops->name);
}

void virtio_mmio__signal_used(struct virtio_mmio *t)
{
	raise_irq(t, VIRTIO_INT_USED);
}

void virtio_mmio__needs_reset(struct virtio_mmio *t)
{
	if (__atomic_exchange_n(&t->broken, true, __ATOMIC_SEQ_CST))
		return;
	pr_debug(
		"%s: the driver sent a malformed request; the device needs a reset",
		t->ops->name);
	raise_irq(t, VIRTIO_INT_CONFIG);
}

struct virtq *virtio_mmio__queue(struct virtio_mmio *t, unsigned int i)
{
	return i < t->ops->nr_queues ? &t->vqs[i] : NULL;
}

int virtio_mmio__notify_fd(struct virtio_mmio *t, unsigned int i)
{
	return i < t->ops->nr_queues ? t->notify_fd[i] : -1;
}

struct device *virtio_mmio__device(struct virtio_mmio *t)
{
	return &t->dev;
}

/* Called with the lock held. Returns the device to its reset state. */
static void reset_device(struct virtio_mmio *t)
{
	unsigned int i;

	if (t->active && (!t->paused || t->ops->pause))
		t->ops->reset(t->vdev);
	t->active = false;
	t->paused = false;
	for (i = 0; i < t->ops->nr_queues; i++)
		virtq__reset(&t->vqs[i]);
	t->status = 0;
	t->dev_features_sel = 0;
	t->drv_features_sel = 0;
	t->drv_features = 0;
	t->queue_sel = 0;
	__atomic_store_n(&t->isr, 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->broken, false, __ATOMIC_SEQ_CST);
}

static bool features_acceptable(struct virtio_mmio *t)
{
	uint64_t offered = device_features(t);

	if (t->drv_features & ~offered) {
		pr_debug("%s: driver accepted features 0x%llx we never offered",
			 t->ops->name,
			 (unsigned long long)(t->drv_features & ~offered));
		return false;
	}
	/* Legacy drivers are not served: the register layout is version 2 only. */
	return virtio_mmio__has_feature(t, VIRTIO_F_VERSION_1);
}

/*
 * Features are frozen from FEATURES_OK on, and the queues are set up after
 * it: ring placement is then checked with the event-idx fields included.
 */
static void set_event_idx(struct virtio_mmio *t)
{
	bool on = virtio_mmio__has_feature(t, VIRTIO_RING_F_EVENT_IDX);
	unsigned int i;

	for (i = 0; i < t->ops->nr_queues; i++)
		t->vqs[i].event_idx = on;
}

static void activate(struct virtio_mmio *t)
{
	int err;

	err = t->ops->activate(t->vdev);
	if (err) {
		pr_err("%s: cannot start the device: %s", t->ops->name,
		       strerror(-err));
		__atomic_store_n(&t->broken, true, __ATOMIC_SEQ_CST);
		return;
	}
	t->active = true;
}

static void write_status(struct virtio_mmio *t, uint32_t v)
{
	uint32_t old = t->status;

	if (v == 0) {
		reset_device(t);
		return;
	}
	/* The device decides FEATURES_OK: it stays clear if the set is refused. */
	if ((v & VIRTIO_STATUS_FEATURES_OK) &&
	    !(old & VIRTIO_STATUS_FEATURES_OK)) {
		if (features_acceptable(t))
			set_event_idx(t);
		else
			v &= ~(uint32_t)VIRTIO_STATUS_FEATURES_OK;
	}
	t->status = v & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET;
	if ((v & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK) &&
	    (v & VIRTIO_STATUS_FEATURES_OK) && !t->active)
		activate(t);
}

static struct virtq *selected(struct virtio_mmio *t)
{
	return t->queue_sel < t->ops->nr_queues ? &t->vqs[t->queue_sel] : NULL;
}

static void set_addr_half(uint64_t *addr, uint32_t v, bool high)
{
	if (high)
		*addr = (*addr & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*addr = (*addr & ~0xffffffffULL) | v;
}

static void write_queue_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	struct virtq *vq = selected(t);

	/*
	 * Queues are set up before DRIVER_OK and stay as they are until a
	 * reset: the device thread reads them without the lock.
	 */
	if (!vq || (t->status & VIRTIO_STATUS_DRIVER_OK) || t->active)
		return;
	if (vq->ready) {
		if (off == REG_QUEUE_READY && v == 0)
			vq->ready = false;
		return;
	}
	switch (off) {
	case REG_QUEUE_NUM:
		vq->size = v;
		break;
	case REG_QUEUE_READY:
		if (v == 1 && (vq->size > t->ops->queue_max ||
			       virtq__set_ready(vq) < 0)) {
			pr_debug("%s: queue %u: bad size or ring placement",
				 t->ops->name, t->queue_sel);
			__atomic_store_n(&t->broken, true, __ATOMIC_SEQ_CST);
		}
		break;
	case REG_QUEUE_DESC_LOW:
	case REG_QUEUE_DESC_HIGH:
		set_addr_half(&vq->desc_gpa, v, off == REG_QUEUE_DESC_HIGH);
		break;
	case REG_QUEUE_DRIVER_LOW:
	case REG_QUEUE_DRIVER_HIGH:
		set_addr_half(&vq->avail_gpa, v, off == REG_QUEUE_DRIVER_HIGH);
		break;
	case REG_QUEUE_DEVICE_LOW:
	case REG_QUEUE_DEVICE_HIGH:
		set_addr_half(&vq->used_gpa, v, off == REG_QUEUE_DEVICE_HIGH);
		break;
	}
}

static void write_reg(struct virtio_mmio *t, uint64_t off, uint32_t v)
{
	uint64_t one = 1;

	switch (off) {
	case REG_DEVICE_FEATURES_SEL:
		t->dev_features_sel = v;
		break;
	case REG_DRIVER_FEATURES:
		/* Features are frozen once the device accepted them. */
		if (t->status & VIRTIO_STATUS_FEATURES_OK)
			break;
		if (t->drv_features_sel == 0)
			t->drv_features =
				(t->drv_features & ~0xffffffffULL) | v;
		else if (t->drv_features_sel == 1)
			t->drv_features = (t->drv_features & 0xffffffffULL) |
					  ((uint64_t)v << 32);
		break;
	case REG_DRIVER_FEATURES_SEL:
		t->drv_features_sel = v;
		break;
	case REG_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case REG_QUEUE_NOTIFY:
		/* Reached only when no ioeventfd caught the write in the kernel. */
		if (v < t->ops->nr_queues &&
		    write(t->notify_fd[v], &one, sizeof(one)) < 0)
			pr_debug("%s: cannot signal queue %u", t->ops->name, v);
		break;
	case REG_INTERRUPT_ACK:
		__atomic_fetch_and(&t->isr, ~v, __ATOMIC_SEQ_CST);
		break;
	case REG_STATUS:
		write_status(t, v);
		break;
	default:
		write_queue_reg(t, off, v);
		break;
	}
}

static uint32_t read_reg(struct virtio_mmio *t, uint64_t off)
{
	struct virtq *vq = selected(t);
	uint64_t features;

	switch (off) {
	case REG_MAGIC:
		return VIRTIO_MMIO_MAGIC;
	case REG_VERSION:
		return 2;
	case REG_DEVICE_ID:
		return t->ops->device_id;
	case REG_VENDOR_ID:
		return VIRTIO_MMIO_VENDOR;
	case REG_DEVICE_FEATURES:
		features = device_features(t);
		if (t->dev_features_sel == 0)
			return (uint32_t)features;
		if (t->dev_features_sel == 1)
			return (uint32_t)(features >> 32);
		return 0;
	case REG_QUEUE_NUM_MAX:
		return vq ? t->ops->queue_max : 0;
	case REG_QUEUE_READY:
		return vq ? vq->ready : 0;
	case REG_INTERRUPT_STATUS:
		return __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST);
	case REG_STATUS:
		return t->status |
		       (__atomic_load_n(&t->broken, __ATOMIC_SEQ_CST)
				? VIRTIO_STATUS_NEEDS_RESET
				: 0);
	case REG_CONFIG_GENERATION:
		/* Config space never changes under the driver: one generation. */
		return 0;
	default:
		return 0;
	}
}

static void mmio_read(struct device *dev, uint64_t off, void *data,
		      uint32_t len)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	uint32_t v;

	memset(data, 0, len);
	pthread_mutex_lock(&t->lock);
	if (off >= REG_CONFIG) {
		uint64_t coff = off - REG_CONFIG;

		if (coff < t->ops->config_size &&
		    len <= t->ops->config_size - coff)
			t->ops->config_read(t->vdev, coff, data, len);
	} else if (len == 4 && !(off & 3)) {
		v = read_reg(t, off);
		memcpy(data, &v, 4);
	}
	pthread_mutex_unlock(&t->lock);
}

static void mmio_write(struct device *dev, uint64_t off, const void *data,
		       uint32_t len)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	uint32_t v;

	/* Registers are 32-bit only (4.2.2); config space is read-only here. */
	if (off >= REG_CONFIG || len != 4 || (off & 3))
		return;
	memcpy(&v, data, 4);
	pthread_mutex_lock(&t->lock);
	write_reg(t, off, v);
	pthread_mutex_unlock(&t->lock);
}

static void release_fds(struct virtio_mmio *t)
{
	unsigned int i;

	for (i = 0; i < t->ops->nr_queues; i++) {
		if (t->ioeventfd[i] &&
		    vm__ioeventfd(t->dev.vm, t->dev.base + REG_QUEUE_NOTIFY, 4,
				  i, t->notify_fd[i], false) < 0)
			pr_debug("%s: cannot remove ioeventfd %u", t->ops->name,
				 i);
		if (t->notify_fd[i] >= 0)
			close(t->notify_fd[i]);
		t->notify_fd[i] = -1;
		t->ioeventfd[i] = false;
	}
	if (t->irqfd &&
	    vm__irqfd(t->dev.vm, (uint32_t)t->dev.irq, t->irq_fd, false) < 0)
		pr_debug("%s: cannot remove irqfd", t->ops->name);
	if (t->irq_fd >= 0)
		close(t->irq_fd);
	t->irq_fd = -1;
	t->irqfd = false;
}

static void mmio_destroy(struct device *dev)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);

	pthread_mutex_lock(&t->lock);
	/* A device paused through its own hook still holds its state. */
	if (t->active && (!t->paused || t->ops->pause))
		t->ops->reset(t->vdev);
	t->active = false;
	t->paused = false;
	pthread_mutex_unlock(&t->lock);
	release_fds(t);
	t->ops->destroy(t->vdev);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static int mmio_fdt_props(struct device *dev, void *fdt, uint32_t clock_phandle)
{
	(void)dev;
	(void)clock_phandle;
	/* Guest memory is ordinary cacheable RAM to us: no cache maintenance needed. */
	return fdt_property(fdt, "dma-coherent", NULL, 0) < 0 ? -ENOSPC : 0;
}

/*
 * The vCPUs are parked, so the register file is ours; the device's thread
 * stops. A device with a pause hook keeps its own state through it; the
 * others are stopped as by a reset and started again by activate().
 */
static int mmio_pause(struct device *dev)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	int err = 0;

	pthread_mutex_lock(&t->lock);
	if (t->active && !t->paused) {
		if (t->ops->pause)
			err = t->ops->pause(t->vdev);
		else
			t->ops->reset(t->vdev);
		t->paused = !err;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

static void mmio_resume(struct device *dev)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	int err;

	pthread_mutex_lock(&t->lock);
	if (t->paused) {
		t->paused = false;
		err = t->ops->resume ? t->ops->resume(t->vdev)
				     : t->ops->activate(t->vdev);
		if (err) {
			pr_err("%s: cannot restart the device: %s",
			       t->ops->name, strerror(-err));
			/* Still active with a hook: its kept state awaits reset(). */
			t->active = t->ops->resume != NULL;
			__atomic_store_n(&t->broken, true, __ATOMIC_SEQ_CST);
		}
	}
	pthread_mutex_unlock(&t->lock);
}

static int mmio_save(struct device *dev, struct state_buf *b)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	unsigned int i;
	int err = 0;

	pthread_mutex_lock(&t->lock);
	state__put_u32(b, t->ops->device_id);
	state__put_u32(b, t->ops->nr_queues);
	state__put_u32(b, t->status);
	state__put_u8(b, __atomic_load_n(&t->broken, __ATOMIC_SEQ_CST));
	state__put_u32(b, __atomic_load_n(&t->isr, __ATOMIC_SEQ_CST));
	state__put_u32(b, t->dev_features_sel);
	state__put_u32(b, t->drv_features_sel);
	state__put_u64(b, t->drv_features);
	state__put_u32(b, t->queue_sel);
	for (i = 0; i < t->ops->nr_queues; i++)
		virtq__save(&t->vqs[i], b);
	if (t->ops->save)
		err = t->ops->save(t->vdev, b);
	pthread_mutex_unlock(&t->lock);
	return err ? err : state__err(b);
}

static int mmio_restore(struct device *dev, struct state_reader *r)
{
	struct virtio_mmio *t = container_of(dev, struct virtio_mmio, dev);
	uint32_t id, nr, isr;
	unsigned int i;
	bool broken;
	int err = 0;

	pthread_mutex_lock(&t->lock);
	id = state__get_u32(r);
	nr = state__get_u32(r);
	if (state__rerr(r) || id != t->ops->device_id ||
	    nr != t->ops->nr_queues) {
		pr_err("%s: the snapshot holds another kind of virtio device here",
		       t->ops->name);
		err = -EBADMSG;
		goto out;
	}
	t->status = state__get_u32(r) & ~(uint32_t)VIRTIO_STATUS_NEEDS_RESET;
	broken = state__get_u8(r);
	isr = state__get_u32(r) & (VIRTIO_INT_USED | VIRTIO_INT_CONFIG);
	t->dev_features_sel = state__get_u32(r);
	t->drv_features_sel = state__get_u32(r);
	t->drv_features = state__get_u64(r);
	t->queue_sel = state__get_u32(r);
	for (i = 0; i < t->ops->nr_queues && !err; i++) {
		err = virtq__restore(&t->vqs[i], r);
		if (!err && t->vqs[i].size > t->ops->queue_max)
			err = -EBADMSG;
	}
	if (err || state__rerr(r)) {
		pr_err("%s: malformed state record", t->ops->name);
		err = -EBADMSG;
		goto out;
	}
	/* The device kind logs its own refusal. */
	if (t->ops->restore) {
		err = t->ops->restore(t->vdev, r);
		if (err)
			goto out;
	}
	if ((t->status & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_acceptable(t)) {
		pr_err("%s: the snapshot's driver features do not fit this device",
		       t->ops->name);
		err = -EBADMSG;
		goto out;
	}
	__atomic_store_n(&t->isr, isr, __ATOMIC_SEQ_CST);
	__atomic_store_n(&t->broken, broken, __ATOMIC_SEQ_CST);
	/* A device that was serving goes on; its queues are as the driver left them. */
	if ((t->status & VIRTIO_STATUS_DRIVER_OK) &&
	    (t->status & VIRTIO_STATUS_FEATURES_OK) && !broken)
		activate(t);
out:
	if (err) {
		for (i = 0; i < t->ops->nr_queues; i++)
			virtq__reset(&t->vqs[i]);
		t->status = 0;
	}
	pthread_mutex_unlock(&t->lock);
	return err;
}

static const struct device_ops virtio_mmio_ops = {
	.name = "virtio_mmio",
	.mmio_read = mmio_read,
	.mmio_write = mmio_write,
	.fdt_compatible = "virtio,mmio",
	.fdt_compatible_len = sizeof("virtio,mmio"),
	/* irqfd injects an edge: a level SPI could lose it before the guest acks. */
	.irq_edge = true,
	.fdt_props = mmio_fdt_props,
	.destroy = mmio_destroy,
	.pause = mmio_pause,
	.resume = mmio_resume,
	.save = mmio_save,
	.restore = mmio_restore,
};

static int make_fds(struct virtio_mmio *t)
{
	unsigned int i;
	int err;

	for (i = 0; i < t->ops->nr_queues; i++) {
		t->notify_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->notify_fd[i] < 0) {
			err = -errno;
			pr_err("%s: eventfd: %s", t->ops->name, strerror(-err));
			return err;
		}
		err = vm__ioeventfd(t->dev.vm, t->dev.base + REG_QUEUE_NOTIFY,
				    4, i, t->notify_fd[i], true);
		if (err) {
			pr_err("%s: KVM_IOEVENTFD: %s", t->ops->name,
			       strerror(-err));
			return err;
		}
		t->ioeventfd[i] = true;
	}
	t->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->irq_fd < 0) {
		err = -errno;
		pr_err("%s: eventfd: %s", t->ops->name, strerror(-err));
		return err;
	}
	err = vm__irqfd(t->dev.vm, (uint32_t)t->dev.irq, t->irq_fd, true);
	if (err) {
		pr_err("%s: KVM_IRQFD: %s", t->ops->name, strerror(-err));
		return err;
	}
	t->irqfd = true;
	return 0;
}

int virtio_mmio__new(struct vm *vm, uint64_t base, uint32_t irq,
		     const struct virtio_dev_ops *ops, void *dev,
		     struct virtio_mmio **out)
{
	struct virtio_mmio *t;
	unsigned int i;
	int err;

	*out = NULL;
	if (!ops->nr_queues || ops->nr_queues > VIRTIO_MMIO_MAX_QUEUES)
		return -EINVAL;
	t = calloc(1, sizeof(*t));
	if (!t) {
		pr_err("%s: out of memory", ops->name);
		return -ENOMEM;
	}
	t->dev.ops = &virtio_mmio_ops;
	t->dev.vm = vm;
	t->dev.base = base;
	t->dev.size = VIRTIO_MMIO_SIZE;
	t->dev.irq = (int)irq;
	t->ops = ops;
	t->vdev = dev;
	t->irq_fd = -1;
	pthread_mutex_init(&t->lock, NULL);
	for (i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++) {
		t->notify_fd[i] = -1;
		virtq__init(&t->vqs[i], vm__mem(vm));
	}
	err = make_fds(t);
	if (err) {
		release_fds(t);
		pthread_mutex_destroy(&t->lock);
		free(t);
		return err;
	}
	*out = t;
	return 0;
}
