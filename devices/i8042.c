// SPDX-License-Identifier: Apache-2.0
// i8042 keyboard controller, reduced to its reset line: how an x86 guest reboots, or panics.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../vmm/mem.h"
#include "i8042.h"

#define I8042_COMMAND 4 /* 0x64: status on read, command on write */
#define CMD_RESET_CPU 0xfe /* pulse output port bit 0: the CPU reset line */

/* BIOS data area: the word a BIOS reads on reset to choose a warm restart. */
#define WARM_RESET_FLAG_GPA 0x472
#define WARM_RESET_MAGIC 0x1234

static void i8042_read(struct device *dev, uint64_t off, void *data,
		       uint32_t len)
{
	(void)dev;
	(void)off;
	/* Status 0: output buffer empty, input buffer empty (Linux's kb_wait passes). */
	memset(data, 0, len);
}

/*
 * Linux writes the flag just before the reset command: 0x1234 when its
 * reboot mode is warm, which reboot=k,panic_warm makes true of a panic
 * reboot only. A microVM ends on either; the flag tells which exit it was.
 */
static enum vm_exit reset_reason(struct device *dev)
{
	const struct guest_mem *mem = vm__mem(dev->vm);
	const uint8_t *p;

	p = mem ? mem__gpa_to_hva(mem, WARM_RESET_FLAG_GPA, 2) : NULL;
	if (p && (p[0] | (uint16_t)p[1] << 8) == WARM_RESET_MAGIC)
		return VM_EXIT_PANIC;
	return VM_EXIT_POWEROFF;
}

static void i8042_write(struct device *dev, uint64_t off, const void *data,
			uint32_t len)
{
	(void)len;
	if (off == I8042_COMMAND && *(const uint8_t *)data == CMD_RESET_CPU)
		vm__request_stop(dev->vm, reset_reason(dev));
}

static void i8042_destroy(struct device *dev)
{
	free(dev);
}

static const struct device_ops i8042_ops = {
	.name = "i8042",
	.mmio_read = i8042_read,
	.mmio_write = i8042_write,
	.destroy = i8042_destroy,
};

int i8042__new(struct vm *vm, uint64_t base, struct device **out)
{
	struct device *dev = calloc(1, sizeof(*dev));

	*out = NULL;
	if (!dev)
		return -ENOMEM;
	dev->ops = &i8042_ops;
	dev->vm = vm;
	dev->base = base;
	dev->size = I8042_PORTS;
	dev->irq = -1;
	*out = dev;
	return 0;
}
