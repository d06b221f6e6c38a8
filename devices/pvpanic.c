// SPDX-License-Identifier: Apache-2.0
// pvpanic-mmio: the guest's panic notifier writes here and the VM stops as panicked.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pvpanic.h"

/* Linux include/uapi/misc/pvpanic.h */
#define PVPANIC_PANICKED (1U << 0)
#define PVPANIC_CRASH_LOADED (1U << 1)

static void pvpanic_read(struct device *dev, uint64_t off, void *data,
			 uint32_t len)
{
	(void)dev;
	memset(data, 0, len);
	/* The guest driver reads which events we accept; crash_loaded means kdump took over. */
	if (off == 0)
		*(uint8_t *)data = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
}

static void pvpanic_write(struct device *dev, uint64_t off, const void *data,
			  uint32_t len)
{
	(void)len;
	if (off == 0 && (*(const uint8_t *)data & PVPANIC_PANICKED))
		vm__request_stop(dev->vm, VM_EXIT_PANIC);
}

static void pvpanic_destroy(struct device *dev)
{
	free(dev);
}

static const struct device_ops pvpanic_ops = {
	.name = "pvpanic",
	.mmio_read = pvpanic_read,
	.mmio_write = pvpanic_write,
	.fdt_compatible = "qemu,pvpanic-mmio",
	.fdt_compatible_len = sizeof("qemu,pvpanic-mmio"),
	.destroy = pvpanic_destroy,
};

int pvpanic__new(struct vm *vm, uint64_t base, struct device **out)
{
	struct device *dev = calloc(1, sizeof(*dev));

	*out = NULL;
	if (!dev)
		return -ENOMEM;
	dev->ops = &pvpanic_ops;
	dev->vm = vm;
	dev->base = base;
	/* The Linux driver maps 2 bytes; a page keeps the window simple. */
	dev->size = PVPANIC_MMIO_SIZE;
	dev->irq = -1;
	*out = dev;
	return 0;
}
