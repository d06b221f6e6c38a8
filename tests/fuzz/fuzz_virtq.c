// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: fuzzer bytes as guest memory holding a split virtqueue.
/*
 * Input: a 20-byte header, then bytes copied to the start of guest RAM.
 *   0      log2 of the queue size (low 3 bits: 1..128); with bit 7 set,
 *          the low 7 bits are the size itself (so also invalid ones)
 *   1      bit 0 event idx, bit 1 rings placed by bytes 4..15 (else packed
 *          at the start of RAM: descriptors, avail ring, used ring),
 *          bit 2 signalled_used_valid, bits 3..7 max_segs (0..31)
 *   2..3   starting index of both sides (little-endian)
 *   4..15  desc, avail and used addresses (le32 each)
 *   16     publish after every 1..8 pushes (low 3 bits + 1)
 *   17     the driver adds 0..3 entries after each pop (low 2 bits): it
 *          reuses ring slots, as a concurrent driver would
 *   18..19 reserved
 * Invariants checked: every segment lies inside guest RAM, readable before
 * writable, byte totals match the segments, errors are documented ones and
 * consume nothing, the used ring holds exactly what was pushed.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../devices/virtio/virtq.h"

#define RAM_BASE 0x10000ULL
#define RAM_SIZE 0x10000ULL
#define HDR 20
#define MAX_SEGS 32

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

#define check(cond)                                                         \
	do {                                                                \
		if (!(cond)) {                                              \
			fprintf(stderr, "invariant failed: %s (line %d)\n", \
				#cond, __LINE__);                           \
			abort();                                            \
		}                                                           \
	} while (0)

static uint32_t le32(const uint8_t *p)
{
	return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24;
}

static void check_chain(const struct guest_mem *mem, const struct virtq *vq,
			const struct virtq_chain *c, uint32_t max_segs)
{
	const char *lo = mem->ram.hva, *hi = lo + mem->ram.size;
	uint64_t rd = 0, wr = 0;
	bool seen_write = false;
	volatile char sink;

	check(c->head < vq->size);
	check(c->nr_segs <= max_segs && c->nr_segs <= vq->size);
	for (uint32_t i = 0; i < c->nr_segs; i++) {
		const struct virtq_seg *s = &c->segs[i];
		const char *p = s->hva;

		check(s->len > 0);
		check(p >= lo && p < hi && s->len <= (uint64_t)(hi - p));
		check(!seen_write || s->write);
		seen_write |= s->write;
		if (s->write)
			wr += s->len;
		else
			rd += s->len;
		/* Touch both ends: a bad pointer faults here. */
		sink = p[0];
		sink = p[s->len - 1];
	}
	(void)sink;
	check(rd == c->readable && wr == c->writable);
}

static bool documented(int err)
{
	switch (err) {
	case -EINVAL:
	case -ERANGE:
	case -ELOOP:
	case -EBADMSG:
	case -EFAULT:
	case -EPROTO:
	case -ENOBUFS:
		return true;
	}
	return false;
}

static void run(struct guest_mem *mem, const uint8_t *data, size_t len)
{
	struct virtq_seg segs[MAX_SEGS];
	struct virtq_chain c = { .segs = segs };
	uint16_t heads[256], start, pushed = 0;
	uint32_t lens[256], max_segs, iter, batch = (data[16] & 7) + 1;
	uint16_t bump = data[17] & 3, *aidx;
	struct virtq vq;
	uint64_t used_end;
	bool overlap;
	int r;

	virtq__init(&vq, mem);
	vq.size = data[0] & 0x80 ? data[0] & 0x7f : 1U << (data[0] & 7);
	vq.event_idx = data[1] & 1;
	max_segs = data[1] >> 3;
	start = data[2] | data[3] << 8;
	if (data[1] & 2) {
		vq.desc_gpa = le32(data + 4);
		vq.avail_gpa = le32(data + 8);
		vq.used_gpa = le32(data + 12);
	} else {
		vq.desc_gpa = RAM_BASE;
		vq.avail_gpa = vq.desc_gpa + 16 * vq.size;
		vq.used_gpa = ALIGN_UP(vq.avail_gpa + 6 + 2 * vq.size, 4);
	}
	len -= HDR;
	if (len > RAM_SIZE)
		len = RAM_SIZE;
	memcpy(mem->ram.hva, data + HDR, len);

	r = virtq__set_ready(&vq);
	if (r) {
		check(r == -EINVAL || r == -EFAULT);
		check(!vq.ready);
		check(virtq__pop(&vq, &c) == 0);
		return;
	}
	check(mem__gpa_to_hva(mem, vq.desc_gpa, 16 * vq.size));
	check(mem__gpa_to_hva(mem, vq.avail_gpa, 4 + 2 * vq.size));
	check(mem__gpa_to_hva(mem, vq.used_gpa, 4 + 8 * vq.size));
	vq.last_avail_idx = vq.used_idx = vq.used_published = start;
	vq.signalled_used = start;
	vq.signalled_used_valid = data[1] & 4;
	aidx = mem__gpa_to_hva(mem, vq.avail_gpa + 2, 2);
	/* Our driver's avail->idx writes land in the used ring? */
	used_end = vq.used_gpa + 4 + 8 * vq.size;
	overlap = bump && vq.avail_gpa + 4 > vq.used_gpa &&
		  vq.avail_gpa + 2 < used_end;

	/* Pushes can rewrite an overlapping avail ring: bound the loop. */
	for (iter = 0; iter < 256; iter++) {
		uint16_t before = vq.last_avail_idx;

		c.max_segs = max_segs;
		r = virtq__pop(&vq, &c);
		if (r < 0) {
			check(documented(r));
			check(vq.last_avail_idx == before);
			break;
		}
		if (r == 0) {
			check(vq.last_avail_idx == before);
			break;
		}
		check(r == 1 && vq.last_avail_idx == (uint16_t)(before + 1));
		check_chain(mem, &vq, &c, max_segs);
		heads[iter] = c.head;
		lens[iter] = c.writable > UINT32_MAX ? UINT32_MAX : c.writable;
		check(virtq__push(&vq, c.head, lens[iter]) == 0);
		pushed++;
		if (bump)
			*aidx = *aidx + bump;
		if (pushed % batch == 0) {
			virtq__publish(&vq);
			(void)virtq__should_notify(&vq);
		}
	}
	virtq__publish(&vq);
	(void)virtq__should_notify(&vq);
	check(!virtq__should_notify(&vq));

	if (pushed && !overlap) {
		struct virtq_used *used =
			mem__gpa_to_hva(mem, vq.used_gpa, 4 + 8 * vq.size);

		check(used->idx == (uint16_t)(start + pushed));
		for (uint32_t k = 0; k < pushed && k < vq.size; k++) {
			uint32_t n = pushed - 1 - k;
			struct virtq_used_elem *e =
				&used->ring[(start + n) & (vq.size - 1)];

			check(e->id == heads[n] && e->len == lens[n]);
		}
	}
	r = virtq__enable_notify(&vq);
	check(r == 0 || r == 1);
	virtq__disable_notify(&vq);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	/* libFuzzer calls us millions of times: map guest RAM once. */
	static struct guest_mem mem;
	static bool mapped;

	if (!mapped) {
		if (mem__init(&mem, RAM_BASE, RAM_SIZE))
			abort();
		mapped = true;
	}
	if (len < HDR)
		return 0;
	memset(mem.ram.hva, 0, RAM_SIZE);
	run(&mem, data, len);
	return 0;
}
