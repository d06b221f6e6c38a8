/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-blk: a guest block device backed by a host file through the io_uring engine. */
#ifndef SANDBOX_VIRTIO_BLK_H
#define SANDBOX_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>

#include "../../vmm/device.h"

struct blk_drive {
	const char *path;
	bool ro; /* the guest sees VIRTIO_BLK_F_RO; the file is opened read-only */
	bool direct; /* O_DIRECT when the filesystem allows it */
};

/*
 * Creates a virtio-blk device for @drive behind a virtio-mmio transport at
 * guest physical @base with interrupt line @irq. Requests are served on a
 * thread of the device's own, started when the driver sets DRIVER_OK.
 * Returns 0 and the transport's generic device in *@out (the VM owns it after
 * vm__add_device(); destroy through its ops), or -errno after logging:
 * the backing file's open errors, -EINVAL for a file that is not a regular
 * file, -ENOMEM.
 */
int virtio_blk__new(struct vm *vm, uint64_t base, uint32_t irq,
		    const struct blk_drive *drive,
		    struct device **out) __must_check;

#endif
