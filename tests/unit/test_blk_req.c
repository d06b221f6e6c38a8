// SPDX-License-Identifier: Apache-2.0
// virtio-blk request parsing: framing, bounds, read-only disks, unsupported and malformed requests.
#include <criterion/criterion.h>
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "../../devices/virtio/blk_req.h"

static uint8_t arena[8192];
static struct virtq_seg segs[8];
static struct virtq_chain chain;
static size_t used;
static struct blk_disk disk = { .sectors = 64,
				.discard = true,
				.write_zeroes = true };

static void setup(void)
{
	memset(arena, 0, sizeof(arena));
	memset(&chain, 0, sizeof(chain));
	chain.segs = segs;
	chain.max_segs = 8;
	used = 0;
}

TestSuite(blk_req, .init = setup);

static uint8_t *seg(uint32_t len, bool write)
{
	uint8_t *p = arena + used;

	segs[chain.nr_segs].hva = p;
	segs[chain.nr_segs].len = len;
	segs[chain.nr_segs].write = write;
	chain.nr_segs++;
	if (write)
		chain.writable += len;
	else
		chain.readable += len;
	used += len;
	return p;
}

static void header(uint8_t *p, uint32_t type, uint64_t sector)
{
	struct virtio_blk_outhdr h = { .type = htole32(type),
				       .sector = htole64(sector) };

	memcpy(p, &h, sizeof(h));
}

Test(blk_req, parses_a_read)
{
	struct blk_req r;
	uint8_t *data, *status;

	header(seg(16, false), VIRTIO_BLK_T_IN, 3);
	data = seg(1024, true);
	status = seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	cr_assert_eq(r.type, VIRTIO_BLK_T_IN);
	cr_assert_eq(r.offset, 3 * 512);
	cr_assert_eq(r.len, 1024);
	cr_assert_eq(r.iovcnt, 1);
	cr_assert_eq(r.iov[0].iov_base, data);
	cr_assert_eq(r.status, status);
}

Test(blk_req, header_data_and_status_may_share_descriptors)
{
	struct blk_req r;
	uint8_t *out, *in;

	/* Header split over two descriptors; data and status in one. */
	out = seg(10, false);
	seg(6 + 512, false);
	header(out, VIRTIO_BLK_T_OUT, 1);
	in = seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	cr_assert_eq(r.type, VIRTIO_BLK_T_OUT);
	cr_assert_eq(r.offset, 512);
	cr_assert_eq(r.len, 512);
	cr_assert_eq(r.iov[0].iov_base, arena + 16);
	cr_assert_eq(r.status, in);

	setup();
	header(seg(16, false), VIRTIO_BLK_T_IN, 0);
	in = seg(513, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	cr_assert_eq(r.len, 512);
	cr_assert_eq(r.status, in + 512);
}

Test(blk_req, refuses_writes_to_read_only_disks)
{
	struct blk_disk ro = disk;
	struct blk_req r;

	ro.ro = true;
	header(seg(16, false), VIRTIO_BLK_T_OUT, 0);
	seg(512, false);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &ro, &r), VIRTIO_BLK_S_IOERR);
	setup();
	header(seg(16, false), VIRTIO_BLK_T_DISCARD, 0);
	seg(16, false);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &ro, &r), VIRTIO_BLK_S_IOERR);
}

Test(blk_req, refuses_out_of_range_and_partial_sectors)
{
	struct blk_req r;

	header(seg(16, false), VIRTIO_BLK_T_IN, 63);
	seg(1024, true);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_IOERR);
	setup();
	header(seg(16, false), VIRTIO_BLK_T_IN, UINT64_MAX);
	seg(512, true);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_IOERR);
	setup();
	header(seg(16, false), VIRTIO_BLK_T_IN, 0);
	seg(100, true);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_IOERR);
}

Test(blk_req, chains_without_header_or_status_break_the_protocol)
{
	struct blk_req r;

	seg(8, false);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), -EPROTO);
	setup();
	header(seg(16, false), VIRTIO_BLK_T_FLUSH, 0);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), -EPROTO);
}

Test(blk_req, unknown_types_are_unsupported)
{
	struct blk_req r;
	uint8_t *status;

	header(seg(16, false), 99, 0);
	status = seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_UNSUPP);
	cr_assert_eq(r.status, status);
}

Test(blk_req, discard_takes_exactly_one_valid_range)
{
	struct virtio_blk_range range = { .sector = htole64(8),
					  .num_sectors = htole32(4) };
	struct blk_disk nodiscard = disk;
	struct blk_req r;

	header(seg(16, false), VIRTIO_BLK_T_DISCARD, 0);
	memcpy(seg(16, false), &range, 16);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	cr_assert_eq(r.offset, 8 * 512);
	cr_assert_eq(r.len, 4 * 512);
	nodiscard.discard = false;
	cr_assert_eq(blk_req__parse(&chain, &nodiscard, &r),
		     VIRTIO_BLK_S_UNSUPP);
	/* The unmap flag belongs to write-zeroes only. */
	range.flags = htole32(1);
	memcpy(arena + 16, &range, 16);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_UNSUPP);
	header(arena, VIRTIO_BLK_T_WRITE_ZEROES, 0);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	range.flags = 0;
	range.num_sectors = htole32(60);
	memcpy(arena + 16, &range, 16);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_IOERR);
}

Test(blk_req, get_id_fills_at_most_twenty_bytes)
{
	struct blk_req r;

	header(seg(16, false), VIRTIO_BLK_T_GET_ID, 0);
	seg(64, true);
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &disk, &r), VIRTIO_BLK_S_OK);
	cr_assert_eq(r.len, VIRTIO_BLK_ID_BYTES);
	cr_assert_eq(r.iovcnt, 1);
	cr_assert_eq(r.iov[0].iov_len, VIRTIO_BLK_ID_BYTES);
}

Test(blk_req, caps_the_size_of_one_request)
{
	struct blk_disk big = { .sectors = 1ULL << 30 };
	struct blk_req r;

	header(seg(16, false), VIRTIO_BLK_T_IN, 0);
	/* Only the header and the status byte are touched by the parser. */
	segs[chain.nr_segs] =
		(struct virtq_seg){ .hva = arena + 512,
				    .len = VIRTIO_BLK_MAX_REQ_BYTES,
				    .write = true };
	chain.nr_segs++;
	chain.writable += VIRTIO_BLK_MAX_REQ_BYTES;
	seg(1, true);
	cr_assert_eq(blk_req__parse(&chain, &big, &r), VIRTIO_BLK_S_OK);
	segs[1].len += 512;
	chain.writable += 512;
	cr_assert_eq(blk_req__parse(&chain, &big, &r), VIRTIO_BLK_S_IOERR);
}
