/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-mmio transport, version 2: registers, features, queues, ioeventfd and irqfd. */
#ifndef SANDBOX_VIRTIO_MMIO_H
#define SANDBOX_VIRTIO_MMIO_H

#include <stdbool.h>
#include <stdint.h>

#include "../../vmm/device.h"
#include "virtq.h"

#define VIRTIO_MMIO_SIZE 0x200ULL
#define VIRTIO_MMIO_MAX_QUEUES 8

/* Feature bits the transport itself owns (virtio 1.2, 6). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* Device status bits (virtio 1.2, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

#define VIRTIO_INT_USED 1
#define VIRTIO_INT_CONFIG 2

struct virtio_mmio;

/*
 * One static const instance per virtio device kind. The transport calls
 * these from vCPU threads with its register lock held, never concurrently.
 */
struct virtio_dev_ops {
	const char *name; /* device-tree node name prefix and messages */
	uint32_t device_id; /* virtio device type (2: block, 19: vsock) */
	unsigned int nr_queues; /* 1..VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_max; /* largest queue size offered, a power of two */
	/* Device-specific feature bits (the transport adds VERSION_1, EVENT_IDX, INDIRECT_DESC). */
	uint64_t (*features)(void *dev);
	/* Reads @len bytes of config space at @off; the transport checked the bounds. */
	void (*config_read)(void *dev, uint64_t off, void *data, uint32_t len);
	uint32_t config_size;
	/*
	 * The driver set DRIVER_OK: start serving the queues (typically on a
	 * thread of the device's own). 0, or -errno to fail the device
	 * (NEEDS_RESET is then reported to the driver).
	 */
	int (*activate)(void *dev);
	/*
	 * The driver reset the device, or the VM is going away: stop serving,
	 * and return only when no request is in flight and nothing will touch
	 * guest memory or the queues any more. Called only after activate().
	 */
	void (*reset)(void *dev);
	/* Frees the device kind's object. */
	void (*destroy)(void *dev);
	/*
	 * Pausing for a snapshot (both optional, together or not at all).
	 * Without them the transport pauses with reset() and resumes with
	 * activate(), which suits a device whose state all lives in the
	 * queues. A device with state of its own beyond them (vsock's
	 * connections) keeps it: pause() returns, like reset(), only when
	 * nothing touches guest memory or the queues any more, but forgets
	 * nothing; resume() serves again from where pause() stopped. Both are
	 * called only while the device is active (after activate(), before
	 * reset()); reset() may follow pause() without a resume() in between,
	 * and must then drop the kept state. pause(): 0, or -errno after
	 * logging and the device still serving (the VM's pause fails).
	 * resume(): 0, or -errno after logging, which the transport reports
	 * to the driver as NEEDS_RESET, as for a failed activate().
	 */
	int (*pause)(void *dev);
	int (*resume)(void *dev);
	/*
	 * Snapshots (optional): the device kind's own state beyond what the
	 * transport saves (registers, features, queues). restore() runs on a
	 * device created with the same configuration, before activate(), and
	 * refuses (-EBADMSG, logged) a record that does not match it.
	 */
	int (*save)(void *dev, struct state_buf *b);
	int (*restore)(void *dev, struct state_reader *r);
};

/*
 * Creates the transport for a virtio device at guest physical @base (a
 * VIRTIO_MMIO_SIZE window) with interrupt line @irq, serving @dev through
 * @ops. It makes one eventfd per queue registered as a KVM ioeventfd on
 * QueueNotify (data-matched on the queue index) and one irqfd. On success
 * the transport owns @dev (ops->destroy() runs when the transport is
 * destroyed through its device ops); on failure the caller still owns @dev.
 * Returns 0 and the transport in *@out, or -errno.
 */
int virtio_mmio__new(struct vm *vm, uint64_t base, uint32_t irq,
		     const struct virtio_dev_ops *ops, void *dev,
		     struct virtio_mmio **out) __must_check;

/* The embedded generic device, for vm__add_device(). */
struct device *virtio_mmio__device(struct virtio_mmio *t);

/* Queue @i (< ops->nr_queues); valid from activate() until reset() returns. */
struct virtq *virtio_mmio__queue(struct virtio_mmio *t, unsigned int i);

/*
 * The eventfd that becomes readable when the driver notifies queue @i.
 * The device reads it (8 bytes) to clear it. Owned by the transport.
 */
int virtio_mmio__notify_fd(struct virtio_mmio *t, unsigned int i);

/* Whether the driver accepted feature bit @bit. */
bool virtio_mmio__has_feature(const struct virtio_mmio *t, unsigned int bit);

/*
 * Tells the driver that used buffers are waiting: sets the "used buffer"
 * interrupt status bit and raises the interrupt. Callable from any thread.
 */
void virtio_mmio__signal_used(struct virtio_mmio *t);

/*
 * Marks the device broken because the driver handed it something malformed:
 * sets DEVICE_NEEDS_RESET and raises a configuration-change interrupt, as
 * virtio 1.2, 2.1.2 asks. The device stops serving until the driver resets
 * it. Callable from the device's thread.
 */
void virtio_mmio__needs_reset(struct virtio_mmio *t);

#endif
