// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: virtio-blk request parsing over arbitrary chains and disks.
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../devices/virtio/blk_req.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_SEGS 12
#define ARENA 8192

static void check(bool ok)
{
	if (!ok)
		abort();
}

/* Every iovec must lie inside one segment of the chain. */
static bool inside(const struct virtq_chain *c, const void *p, size_t len)
{
	const uint8_t *b = p;
	uint32_t i;

	for (i = 0; i < c->nr_segs; i++) {
		const uint8_t *s = c->segs[i].hva;

		if (b >= s && b + len <= s + c->segs[i].len)
			return true;
	}
	return false;
}

/*
 * Input: disk sectors (2 bytes), ro/discard/write_zeroes flags (1), number
 * of segments (1), then per segment a length (2 bytes) and a writable flag
 * (1); the rest fills the arena the segments point into. Readable segments
 * are placed before writable ones, as virtq__pop() guarantees.
 */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t arena[ARENA];
	struct virtq_seg segs[MAX_SEGS];
	struct virtq_chain c = { .segs = segs, .max_segs = MAX_SEGS };
	struct blk_disk disk;
	struct blk_req r;
	size_t off = 0, used = 0;
	unsigned int n, i, pass;
	uint64_t total;
	int st, k;

	if (size < 4)
		return 0;
	disk.sectors = (uint64_t)data[0] | ((uint64_t)data[1] << 8);
	disk.ro = data[2] & 1;
	disk.discard = data[2] & 2;
	disk.write_zeroes = data[2] & 4;
	n = data[3] % (MAX_SEGS + 1);
	off = 4;
	if (size < off + 3 * n)
		return 0;
	memset(arena, 0, sizeof(arena));
	memcpy(arena, data + off + 3 * n,
	       size - off - 3 * n < ARENA ? size - off - 3 * n : ARENA);
	for (pass = 0; pass < 2; pass++) {
		for (i = 0; i < n; i++) {
			const uint8_t *d = data + off + 3 * i;
			uint32_t len =
				((uint32_t)d[0] | ((uint32_t)d[1] << 8)) % 600 +
				1;
			bool w = d[2] & 1;

			if (w != (pass == 1) || used + len > ARENA)
				continue;
			segs[c.nr_segs].hva = arena + used;
			segs[c.nr_segs].len = len;
			segs[c.nr_segs].write = w;
			if (w)
				c.writable += len;
			else
				c.readable += len;
			c.nr_segs++;
			used += len;
		}
	}
	st = blk_req__parse(&c, &disk, &r);
	check(st == -EPROTO || st == VIRTIO_BLK_S_OK ||
	      st == VIRTIO_BLK_S_IOERR || st == VIRTIO_BLK_S_UNSUPP);
	if (st < 0)
		return 0;
	check(inside(&c, r.status, 1) && c.segs[c.nr_segs - 1].write);
	if (st != VIRTIO_BLK_S_OK)
		return 0;
	total = 0;
	for (k = 0; k < r.iovcnt; k++) {
		check(inside(&c, r.iov[k].iov_base, r.iov[k].iov_len));
		total += r.iov[k].iov_len;
	}
	switch (r.type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		check(total == r.len && r.len % 512 == 0);
		check(r.offset / 512 + r.len / 512 <= disk.sectors);
		check(r.type == VIRTIO_BLK_T_IN || !disk.ro);
		/* The data never covers the status byte. */
		for (k = 0; k < r.iovcnt; k++)
			check(!((uint8_t *)r.iov[k].iov_base <= r.status &&
				r.status < (uint8_t *)r.iov[k].iov_base +
						   r.iov[k].iov_len));
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		check(!disk.ro && r.len &&
		      r.offset / 512 + r.len / 512 <= disk.sectors);
		break;
	case VIRTIO_BLK_T_GET_ID:
		check(total == r.len && r.len <= VIRTIO_BLK_ID_BYTES);
		break;
	}
	return 0;
}
