// SPDX-License-Identifier: Apache-2.0
// MMIO bus: a sorted table of device windows searched by binary search.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

/* Index of the first device whose window starts above @addr. */
static size_t upper_bound(const struct bus *bus, uint64_t addr)
{
	size_t lo = 0, hi = bus->nr;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (bus->devs[mid]->base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Last byte of a window; callers have checked that it does not wrap. */
static uint64_t last_byte(const struct device *dev)
{
	return dev->base + dev->size - 1;
}

int bus__register(struct bus *bus, struct device *dev)
{
	size_t i;

	if (!dev->size || dev->base + dev->size - 1 < dev->base)
		return -EINVAL;
	i = upper_bound(bus, dev->base);
	if (i > 0 && last_byte(bus->devs[i - 1]) >= dev->base)
		return -EEXIST;
	if (i < bus->nr && bus->devs[i]->base <= last_byte(dev))
		return -EEXIST;
	if (bus->nr == bus->cap) {
		size_t cap = bus->cap ? bus->cap * 2 : 8;
		struct device **devs = realloc(bus->devs, cap * sizeof(*devs));

		if (!devs)
			return -ENOMEM;
		bus->devs = devs;
		bus->cap = cap;
	}
	memmove(&bus->devs[i + 1], &bus->devs[i],
		(bus->nr - i) * sizeof(*bus->devs));
	bus->devs[i] = dev;
	bus->nr++;
	return 0;
}

struct device *bus__find(const struct bus *bus, uint64_t addr, uint32_t len,
			 uint64_t *off)
{
	size_t i = upper_bound(bus, addr);
	struct device *dev;
	uint64_t o;

	if (i == 0 || !len)
		return NULL;
	dev = bus->devs[i - 1];
	o = addr - dev->base;
	if (o >= dev->size || len > dev->size - o)
		return NULL;
	*off = o;
	return dev;
}

int bus__dispatch(const struct bus *bus, uint64_t addr, void *data,
		  uint32_t len, bool is_write)
{
	struct device *dev;
	uint64_t off;

	if (len != 1 && len != 2 && len != 4 && len != 8)
		return -EINVAL;
	dev = bus__find(bus, addr, len, &off);
	if (!is_write)
		memset(data, 0, len);
	if (!dev)
		return -ENOENT;
	if (is_write) {
		if (dev->ops->mmio_write)
			dev->ops->mmio_write(dev, off, data, len);
	} else if (dev->ops->mmio_read) {
		dev->ops->mmio_read(dev, off, data, len);
	}
	return 0;
}

void bus__exit(struct bus *bus)
{
	free(bus->devs);
	memset(bus, 0, sizeof(*bus));
}
