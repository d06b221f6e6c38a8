/* SPDX-License-Identifier: Apache-2.0 */
/* virtio-blk request parsing: a descriptor chain in, an I/O to run or a status out. */
#ifndef SANDBOX_VIRTIO_BLK_REQ_H
#define SANDBOX_VIRTIO_BLK_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../../vmm/util.h"
#include "virtq.h"

/* Request types and status values (virtio 1.2, 5.2.6). */
#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SECTOR 512ULL
#define VIRTIO_BLK_ID_BYTES 20
/* Data segments per request we advertise (seg_max); header and status ride on top. */
#define VIRTIO_BLK_SEG_MAX 126
#define VIRTIO_BLK_CHAIN_MAX (VIRTIO_BLK_SEG_MAX + 2)
/*
 * The most data one IN/OUT request may carry (advertised as size_max per
 * segment too). Linux sends at most 1.25 MiB (BLK_DEF_MAX_SECTORS); the cap
 * bounds what a guest can make the host allocate (the engine's O_DIRECT
 * bounce buffer is as large as the request).
 */
#define VIRTIO_BLK_MAX_REQ_BYTES (2U << 20)
/* One discard or write-zeroes range per request (max_discard_seg = 1). */
#define VIRTIO_BLK_MAX_RANGE_SECTORS 0x400000U /* 2 GiB */

struct virtio_blk_outhdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};
_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio-blk header");

struct virtio_blk_range {
	uint64_t sector;
	uint32_t num_sectors;
	uint32_t flags;
};
_Static_assert(sizeof(struct virtio_blk_range) == 16, "virtio-blk range");

/* What the disk behind the device allows; supported ops are those set. */
struct blk_disk {
	uint64_t sectors;
	bool ro;
	bool discard;
	bool write_zeroes;
};

/* A parsed request: what to run, and where its status byte goes. */
struct blk_req {
	uint32_t type;
	uint64_t offset; /* bytes */
	uint64_t len; /* data bytes (IN/OUT), range bytes (DISCARD, WRITE_ZEROES) */
	struct iovec
		iov[VIRTIO_BLK_CHAIN_MAX]; /* IN/OUT/GET_ID data, in guest memory */
	int iovcnt;
	uint8_t *status; /* the last device-writable byte of the chain */
};

/*
 * Parses the chain @c (as virtq__pop() returned it) against @disk into *@r.
 * Returns:
 *  - VIRTIO_BLK_S_OK: *@r describes an I/O to run (IN, OUT, FLUSH, DISCARD,
 *    WRITE_ZEROES) or a GET_ID whose data iov is to be filled;
 *  - VIRTIO_BLK_S_IOERR or VIRTIO_BLK_S_UNSUPP: the request fails with that
 *    status, which goes to r->status (unknown type, write to a read-only
 *    disk, out-of-range sector, data not a whole number of sectors, bad
 *    discard range...);
 *  - -EPROTO: the chain has no header or no status byte, so no status can be
 *    reported: the driver broke the protocol and the device needs a reset.
 * Never touches memory outside the segments of @c.
 */
int blk_req__parse(const struct virtq_chain *c, const struct blk_disk *disk,
		   struct blk_req *r) __must_check;

#endif
