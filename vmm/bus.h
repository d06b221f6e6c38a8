/* SPDX-License-Identifier: Apache-2.0 */
/* The MMIO bus: non-overlapping device windows, dispatch by address. */
#ifndef SANDBOX_BUS_H
#define SANDBOX_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "util.h"

/* Devices sorted by base address; built before the vCPUs run, read-only after. */
struct bus {
	struct device **devs;
	size_t nr;
	size_t cap;
};

/*
 * Adds @dev's window [dev->base, dev->base + dev->size). The bus does not own
 * @dev. Returns 0; -EINVAL for an empty or wrapping window; -EEXIST when it
 * overlaps a registered window; -ENOMEM.
 */
int bus__register(struct bus *bus, struct device *dev) __must_check;

/*
 * Returns the device whose window holds all of [@addr, @addr + @len), with
 * the offset into it in *@off, or NULL when no window holds the whole access.
 */
struct device *bus__find(const struct bus *bus, uint64_t addr, uint32_t len,
			 uint64_t *off);

/*
 * Hands a guest access to the device that owns @addr. For a read, @data is
 * filled (with zeroes when nothing is mapped there). Returns 0, or -ENOENT
 * when the access hits no device window entirely (writes are dropped) and
 * -EINVAL for a length other than 1, 2, 4 or 8.
 */
int bus__dispatch(const struct bus *bus, uint64_t addr, void *data,
		  uint32_t len, bool is_write);

/* Frees the bus's table (not the devices). Safe on a zeroed bus. */
void bus__exit(struct bus *bus);

#endif
