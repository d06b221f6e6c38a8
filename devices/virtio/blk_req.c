// SPDX-License-Identifier: Apache-2.0
// virtio-blk request parser: header, data and status located by byte offsets, whatever the framing.
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "blk_req.h"

/*
 * Copies @len bytes starting @skip bytes into the readable part of @c into
 * @dst. Drivers may frame the header any way they like (5.2.6.4: no
 * assumptions on framing), so it may span descriptors.
 */
static bool copy_readable(const struct virtq_chain *c, uint64_t skip, void *dst,
			  uint64_t len)
{
	uint8_t *out = dst;
	uint32_t i;

	if (skip > c->readable || len > c->readable - skip)
		return false;
	for (i = 0; i < c->nr_segs && len; i++) {
		const struct virtq_seg *s = &c->segs[i];
		uint64_t n;

		if (s->write)
			break;
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		n = s->len - skip;
		if (n > len)
			n = len;
		memcpy(out, (uint8_t *)s->hva + skip, n);
		out += n;
		len -= n;
		skip = 0;
	}
	return len == 0;
}

/*
 * Fills r->iov with @len bytes of the chain's readable (@write false) or
 * writable bytes, starting @skip bytes in. Returns false if they are not
 * there or need more iovecs than r->iov holds.
 */
static bool slice(const struct virtq_chain *c, bool write, uint64_t skip,
		  uint64_t len, struct blk_req *r)
{
	uint32_t i;

	r->iovcnt = 0;
	for (i = 0; i < c->nr_segs && len; i++) {
		const struct virtq_seg *s = &c->segs[i];
		uint64_t n;

		if (s->write != write)
			continue;
		if (skip >= s->len) {
			skip -= s->len;
			continue;
		}
		if (r->iovcnt == (int)ARRAY_SIZE(r->iov))
			return false;
		n = s->len - skip;
		if (n > len)
			n = len;
		r->iov[r->iovcnt].iov_base = (uint8_t *)s->hva + skip;
		r->iov[r->iovcnt].iov_len = n;
		r->iovcnt++;
		len -= n;
		skip = 0;
	}
	return len == 0;
}

/* The last writable segment's last byte: where the status goes. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	const struct virtq_seg *last;

	if (!c->writable || !c->nr_segs)
		return NULL;
	last = &c->segs[c->nr_segs - 1];
	if (!last->write || !last->len)
		return NULL;
	return (uint8_t *)last->hva + last->len - 1;
}

static bool in_range(const struct blk_disk *disk, uint64_t sector,
		     uint64_t nr_sectors)
{
	return sector <= disk->sectors && nr_sectors <= disk->sectors - sector;
}

static int parse_rw(const struct virtq_chain *c, const struct blk_disk *disk,
		    uint64_t sector, struct blk_req *r)
{
	bool in = r->type == VIRTIO_BLK_T_IN;
	uint64_t len = in ? c->writable - 1
			  : c->readable - sizeof(struct virtio_blk_outhdr);

	if (!in && disk->ro)
		return VIRTIO_BLK_S_IOERR;
	if (len % VIRTIO_BLK_SECTOR || len > VIRTIO_BLK_MAX_REQ_BYTES ||
	    !in_range(disk, sector, len / VIRTIO_BLK_SECTOR))
		return VIRTIO_BLK_S_IOERR;
	if (!slice(c, in, in ? 0 : sizeof(struct virtio_blk_outhdr), len, r))
		return VIRTIO_BLK_S_IOERR;
	r->offset = sector * VIRTIO_BLK_SECTOR;
	r->len = len;
	return VIRTIO_BLK_S_OK;
}

static int parse_range(const struct virtq_chain *c, const struct blk_disk *disk,
		       struct blk_req *r)
{
	struct virtio_blk_range range;
	bool zeroes = r->type == VIRTIO_BLK_T_WRITE_ZEROES;
	uint64_t sector;
	uint32_t n, flags;

	if (!(zeroes ? disk->write_zeroes : disk->discard))
		return VIRTIO_BLK_S_UNSUPP;
	if (disk->ro)
		return VIRTIO_BLK_S_IOERR;
	/* Exactly one range: we advertise max_discard_seg = max_write_zeroes_seg = 1. */
	if (c->readable != sizeof(struct virtio_blk_outhdr) + sizeof(range) ||
	    !copy_readable(c, sizeof(struct virtio_blk_outhdr), &range,
			   sizeof(range)))
		return VIRTIO_BLK_S_UNSUPP;
	sector = le64toh(range.sector);
	n = le32toh(range.num_sectors);
	flags = le32toh(range.flags);
	/* Bit 0 is "unmap", meaningful for write-zeroes only; the rest are reserved. */
	if (flags & ~(zeroes ? 1U : 0U))
		return VIRTIO_BLK_S_UNSUPP;
	if (!n || n > VIRTIO_BLK_MAX_RANGE_SECTORS ||
	    !in_range(disk, sector, n))
		return VIRTIO_BLK_S_IOERR;
	r->offset = sector * VIRTIO_BLK_SECTOR;
	r->len = (uint64_t)n * VIRTIO_BLK_SECTOR;
	return VIRTIO_BLK_S_OK;
}

int blk_req__parse(const struct virtq_chain *c, const struct blk_disk *disk,
		   struct blk_req *r)
{
	struct virtio_blk_outhdr hdr;

	memset(r, 0, offsetof(struct blk_req, iov));
	r->iovcnt = 0;
	r->status = status_byte(c);
	if (!r->status || !copy_readable(c, 0, &hdr, sizeof(hdr)))
		return -EPROTO;
	r->type = le32toh(hdr.type);
	switch (r->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT:
		return parse_rw(c, disk, le64toh(hdr.sector), r);
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		/* Up to 20 bytes; the driver's buffer may be shorter or longer. */
		r->len = c->writable - 1;
		if (r->len > VIRTIO_BLK_ID_BYTES)
			r->len = VIRTIO_BLK_ID_BYTES;
		return slice(c, true, 0, r->len, r) ? VIRTIO_BLK_S_OK
						    : VIRTIO_BLK_S_IOERR;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		return parse_range(c, disk, r);
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}
