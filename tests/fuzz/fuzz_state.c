// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: device state records from a snapshot, read back into fresh devices.
/*
 * Input: byte 0 picks the record's reader (0: a virtqueue, 1: the virtio-mmio
 * transport with a device kind of its own, 2: the PL011), the rest is the
 * record. Invariants: a record is either taken whole or refused with
 * -EBADMSG; a restored ready queue lies inside guest memory with a power-of-two
 * size; a refused transport record leaves the device reset.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../devices/pl011.h"
#include "../../devices/virtio/mmio.h"
#include "../../vmm/mem.h"
#include "../../vmm/state.h"
#include "../unit/fakes.h"

#define RAM_BASE 0x40000000ULL
#define RAM_SIZE 0x10000ULL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define check(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "invariant failed: %s (line %d)\n", \
				#cond, __LINE__);                           \
			abort();                                            \
		}                                                           \
	} while (0)

static int activations;

static uint64_t fd_features(void *d)
{
	(void)d;
	return 1ULL << 5;
}

static void fd_config_read(void *d, uint64_t off, void *data, uint32_t len)
{
	(void)d;
	(void)off;
	memset(data, 0, len);
}

static int fd_activate(void *d)
{
	(void)d;
	activations++;
	return 0;
}

static void fd_reset(void *d)
{
	(void)d;
}

static void fd_destroy(void *d)
{
	(void)d;
}

static const struct virtio_dev_ops fuzz_ops = {
	.name = "fuzz",
	.device_id = 42,
	.nr_queues = 2,
	.queue_max = 64,
	.features = fd_features,
	.config_read = fd_config_read,
	.config_size = 8,
	.activate = fd_activate,
	.reset = fd_reset,
	.destroy = fd_destroy,
};

static void fuzz_virtq(struct guest_mem *mem, struct state_reader *r)
{
	struct virtq vq;
	int err;

	virtq__init(&vq, mem);
	err = virtq__restore(&vq, r);
	check(err == 0 || err == -EBADMSG);
	if (err) {
		check(!vq.ready);
		return;
	}
	if (vq.ready) {
		check(vq.size && !(vq.size & (vq.size - 1)));
		check(mem__gpa_to_hva(mem, vq.desc_gpa, 16ULL * vq.size));
	}
}

static void fuzz_mmio(struct state_reader *r)
{
	struct virtio_mmio *t;
	struct device *dev;
	uint32_t status = 0;
	int dummy = 0, err;

	if (virtio_mmio__new(NULL, 0xa000000, 3, &fuzz_ops, &dummy, &t))
		return;
	dev = virtio_mmio__device(t);
	activations = 0;
	err = dev->ops->restore(dev, r);
	check(err == 0 || err == -EBADMSG);
	dev->ops->mmio_read(dev, 0x070, &status, 4);
	if (err)
		check(status == 0 && activations == 0);
	for (unsigned int i = 0; i < fuzz_ops.nr_queues; i++) {
		struct virtq *vq = virtio_mmio__queue(t, i);

		check(!vq->ready || vq->size <= fuzz_ops.queue_max);
	}
	dev->ops->destroy(dev);
}

static void fuzz_pl011(struct state_reader *r)
{
	struct pl011 *u;
	struct device *dev;
	int err;

	if (pl011__new(NULL, 0x9000000, 1, -1, -1, &u))
		return;
	dev = pl011__device(u);
	err = dev->ops->restore(dev, r);
	check(err == 0 || err == -EBADMSG);
	dev->ops->destroy(dev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct guest_mem mem;
	struct state_reader r;

	if (!len)
		return 0;
	if (!mem.ram.hva && mem__init(&mem, RAM_BASE, RAM_SIZE))
		abort();
	fakes_reset();
	fake_mem = &mem;
	state__reader(&r, data + 1, len - 1);
	switch (data[0] % 3) {
	case 0:
		fuzz_virtq(&mem, &r);
		break;
	case 1:
		fuzz_mmio(&r);
		break;
	default:
		fuzz_pl011(&r);
		break;
	}
	return 0;
}
