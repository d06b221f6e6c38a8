// SPDX-License-Identifier: Apache-2.0
// Split virtqueue: rings laid out in guest memory by a driver, sane or hostile.
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../devices/virtio/virtq.h"

#define BASE 0x40000000ULL
#define RAM_SIZE (1ULL << 20)
#define QSIZE 8
#define DESC (BASE + 0x0000)
#define AVAIL (BASE + 0x1000)
#define USED (BASE + 0x2000)
#define TABLE (BASE + 0x3000) /* indirect tables */
#define DATA (BASE + 0x10000) /* buffers */

static struct guest_mem mem;
static struct virtq vq;
static struct virtq_seg segs[16];
static struct virtq_chain chain;
static uint16_t drv_idx; /* the driver's avail->idx shadow */

static void *hva(uint64_t gpa)
{
	void *p = mem__gpa_to_hva(&mem, gpa, 1);

	cr_assert_not_null(p);
	return p;
}

static uint16_t *u16_at(uint64_t gpa)
{
	return hva(gpa);
}

static void write_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len,
		       uint16_t flags, uint16_t next)
{
	struct virtq_desc d = {
		.addr = addr, .len = len, .flags = flags, .next = next
	};

	cr_assert_eq(mem__write(&mem, table + 16ULL * i, &d, sizeof(d)), 0);
}

static void desc(uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
		 uint16_t next)
{
	write_desc(DESC, i, addr, len, flags, next);
}

static void set_avail_idx(uint16_t idx)
{
	*u16_at(AVAIL + 2) = idx;
}

/* Adds @head to the available ring and publishes it, as a driver does. */
static void offer(uint16_t head)
{
	*u16_at(AVAIL + 4 + 2 * (drv_idx % vq.size)) = head;
	drv_idx++;
	set_avail_idx(drv_idx);
}

static void set_used_event(uint16_t v)
{
	*u16_at(AVAIL + 4 + 2 * vq.size) = v;
}

static uint16_t avail_event(void)
{
	return *u16_at(USED + 4 + 8 * vq.size);
}

static uint16_t used_flags(void)
{
	return *u16_at(USED);
}

static uint16_t used_idx(void)
{
	return *u16_at(USED + 2);
}

static struct virtq_used_elem used_elem(uint16_t idx)
{
	struct virtq_used_elem e;

	memcpy(&e, hva(USED + 4 + 8 * (idx % vq.size)), sizeof(e));
	return e;
}

static void queue_up(uint32_t size, bool event_idx)
{
	virtq__init(&vq, &mem);
	vq.size = size;
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	vq.event_idx = event_idx;
	cr_assert_eq(virtq__set_ready(&vq), 0);
	drv_idx = 0;
}

/* Moves both sides to index @idx, as after a restore mid-stream. */
static void start_at(uint16_t idx)
{
	vq.last_avail_idx = idx;
	vq.used_idx = idx;
	vq.used_published = idx;
	drv_idx = idx;
	set_avail_idx(idx);
	*u16_at(USED + 2) = idx;
}

static int pop(void)
{
	chain.segs = segs;
	chain.max_segs = ARRAY_SIZE(segs);
	return virtq__pop(&vq, &chain);
}

static void setup(void)
{
	cr_assert_eq(mem__init(&mem, BASE, RAM_SIZE), 0);
	memset(segs, 0, sizeof(segs));
	memset(&chain, 0, sizeof(chain));
	queue_up(QSIZE, false);
}

static void teardown(void)
{
	mem__exit(&mem);
}

TestSuite(virtq, .init = setup, .fini = teardown);

/* --- well-formed chains -------------------------------------------------- */

Test(virtq, pops_single_descriptor_chain)
{
	desc(3, DATA, 100, 0, 0);
	offer(3);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 3);
	cr_assert_eq(chain.nr_segs, 1);
	cr_assert_eq(segs[0].hva, hva(DATA));
	cr_assert_eq(segs[0].len, 100);
	cr_assert_not(segs[0].write);
	cr_assert_eq(chain.readable, 100);
	cr_assert_eq(chain.writable, 0);
	cr_assert_eq(vq.last_avail_idx, 1);
	cr_assert_eq(pop(), 0);
}

Test(virtq, counts_readable_and_writable_bytes)
{
	desc(0, DATA, 16, VIRTQ_DESC_F_NEXT, 5);
	desc(5, DATA + 0x100, 32, VIRTQ_DESC_F_NEXT, 2);
	desc(2, DATA + 0x200, 64, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 7);
	desc(7, DATA + 0x300, 1, VIRTQ_DESC_F_WRITE, 0);
	offer(0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 0);
	cr_assert_eq(chain.nr_segs, 4);
	cr_assert_eq(chain.readable, 48);
	cr_assert_eq(chain.writable, 65);
	cr_assert_eq(segs[1].hva, hva(DATA + 0x100));
	cr_assert_not(segs[1].write);
	cr_assert_eq(segs[2].hva, hva(DATA + 0x200));
	cr_assert(segs[2].write);
	cr_assert_eq(segs[3].len, 1);
}

Test(virtq, pops_chains_in_avail_order)
{
	desc(4, DATA, 8, 0, 0);
	desc(1, DATA + 8, 8, 0, 0);
	offer(4);
	offer(1);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 4);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 1);
	cr_assert_eq(pop(), 0);
}

Test(virtq, walks_indirect_table)
{
	write_desc(TABLE, 0, DATA, 10, VIRTQ_DESC_F_NEXT, 2);
	write_desc(TABLE, 2, DATA + 0x100, 20, VIRTQ_DESC_F_WRITE, 0);
	write_desc(TABLE, 1, 0xdead, 999, 0, 0); /* not on the chain */
	/* WRITE on the indirect descriptor itself is ignored (spec). */
	desc(6, TABLE, 3 * 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_WRITE, 0);
	offer(6);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 6);
	cr_assert_eq(chain.nr_segs, 2);
	cr_assert_eq(segs[0].hva, hva(DATA));
	cr_assert_not(segs[0].write);
	cr_assert_eq(segs[1].hva, hva(DATA + 0x100));
	cr_assert(segs[1].write);
	cr_assert_eq(chain.readable, 10);
	cr_assert_eq(chain.writable, 20);
}

Test(virtq, accepts_indirect_table_at_end_of_direct_chain)
{
	write_desc(TABLE, 0, DATA + 0x100, 20, VIRTQ_DESC_F_WRITE, 0);
	desc(0, DATA, 10, VIRTQ_DESC_F_NEXT, 1);
	desc(1, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.nr_segs, 2);
	cr_assert_eq(chain.readable, 10);
	cr_assert_eq(chain.writable, 20);
}

Test(virtq, accepts_unaligned_indirect_table)
{
	write_desc(TABLE + 4, 0, DATA, 10, 0, 0);
	desc(0, TABLE + 4, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.readable, 10);
}

Test(virtq, accepts_chain_of_exactly_size_descriptors)
{
	for (int i = 0; i < QSIZE; i++)
		desc(i, DATA + 16 * i, 16,
		     i < QSIZE - 1 ? VIRTQ_DESC_F_NEXT : 0, i + 1);
	offer(0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.nr_segs, QSIZE);
	cr_assert_eq(chain.readable, 16 * QSIZE);
}

Test(virtq, skips_zero_length_descriptors)
{
	/* Zero length: no segment, and its address is never used. */
	desc(0, DATA, 4, VIRTQ_DESC_F_NEXT, 1);
	desc(1, 0xffffffffffffff00ULL, 0, VIRTQ_DESC_F_NEXT, 2);
	desc(2, DATA + 4, 4, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 3);
	desc(3, 0, 0, 0, 0); /* zero-length readable after writable too */
	offer(0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.nr_segs, 2);
	cr_assert_eq(chain.readable, 4);
	cr_assert_eq(chain.writable, 4);
}

Test(virtq, wraps_avail_index_through_65535)
{
	start_at(65534);
	for (int i = 0; i < 3; i++) {
		desc(i, DATA + 0x100 * i, 8, 0, 0);
		offer(i);
	}
	cr_assert_eq(*u16_at(AVAIL + 2), 1);
	for (int i = 0; i < 3; i++) {
		cr_assert_eq(pop(), 1);
		cr_assert_eq(chain.head, i);
		cr_assert_eq(virtq__push(&vq, chain.head, 0), 0);
	}
	cr_assert_eq(pop(), 0);
	cr_assert_eq(vq.last_avail_idx, 1);
	virtq__publish(&vq);
	cr_assert_eq(used_idx(), 1);
	cr_assert_eq(used_elem(65534).id, 0);
	cr_assert_eq(used_elem(65535).id, 1);
	cr_assert_eq(used_elem(0).id, 2);
}

Test(virtq, empty_queue_pops_nothing)
{
	cr_assert_eq(pop(), 0);
	cr_assert_eq(chain.nr_segs, 0);
	cr_assert_eq(vq.last_avail_idx, 0);
}

Test(virtq, not_ready_queue_pops_nothing)
{
	desc(0, DATA, 8, 0, 0);
	offer(0);
	vq.ready = false;
	cr_assert_eq(pop(), 0);
	virtq__reset(&vq);
	cr_assert_eq(pop(), 0);
	cr_assert_eq(vq.mem, &mem);
	cr_assert_eq(vq.size, 0);
	cr_assert_eq(vq.desc_gpa, 0);
}

Test(virtq, accepts_avail_index_exactly_size_ahead)
{
	desc(0, DATA, 8, 0, 0);
	set_avail_idx(QSIZE); /* ring entries are all 0: head 0 */
	for (int i = 0; i < QSIZE; i++)
		cr_assert_eq(pop(), 1);
	cr_assert_eq(pop(), 0);
}

/* --- malformed chains ---------------------------------------------------- */

Test(virtq, rejects_two_descriptor_loop)
{
	desc(1, DATA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(2, DATA, 8, VIRTQ_DESC_F_NEXT, 1);
	offer(1);
	cr_assert_eq(pop(), -ELOOP);
}

Test(virtq, rejects_self_loop)
{
	desc(4, DATA, 8, VIRTQ_DESC_F_NEXT, 4);
	offer(4);
	cr_assert_eq(pop(), -ELOOP);
}

Test(virtq, rejects_zero_length_self_loop)
{
	desc(4, DATA, 0, VIRTQ_DESC_F_NEXT, 4);
	offer(4);
	cr_assert_eq(pop(), -ELOOP);
}

Test(virtq, rejects_chain_longer_than_size)
{
	/* Two direct buffers and seven indirect ones: 9 > QSIZE. */
	for (int i = 0; i < 7; i++)
		write_desc(TABLE, i, DATA, 1, i < 6 ? VIRTQ_DESC_F_NEXT : 0,
			   i + 1);
	desc(0, DATA, 1, VIRTQ_DESC_F_NEXT, 1);
	desc(1, DATA, 1, VIRTQ_DESC_F_NEXT, 2);
	desc(2, TABLE, 7 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -ELOOP);
}

Test(virtq, rejects_loop_inside_indirect_table)
{
	write_desc(TABLE, 0, DATA, 1, VIRTQ_DESC_F_NEXT, 1);
	write_desc(TABLE, 1, DATA, 1, VIRTQ_DESC_F_NEXT, 0);
	desc(0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -ELOOP);
}

Test(virtq, rejects_head_out_of_range)
{
	offer(QSIZE);
	cr_assert_eq(pop(), -ERANGE);
}

Test(virtq, rejects_next_out_of_range)
{
	desc(0, DATA, 8, VIRTQ_DESC_F_NEXT, QSIZE);
	offer(0);
	cr_assert_eq(pop(), -ERANGE);
}

Test(virtq, rejects_next_out_of_indirect_table)
{
	/* 3 is inside the queue size but outside this 2-entry table. */
	write_desc(TABLE, 0, DATA, 1, VIRTQ_DESC_F_NEXT, 3);
	write_desc(TABLE, 3, DATA, 1, 0, 0);
	desc(0, TABLE, 2 * 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -ERANGE);
}

Test(virtq, rejects_nested_indirect)
{
	write_desc(TABLE + 0x100, 0, DATA, 1, 0, 0);
	write_desc(TABLE, 0, TABLE + 0x100, 16, VIRTQ_DESC_F_INDIRECT, 0);
	desc(0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -EBADMSG);
}

Test(virtq, rejects_indirect_with_next)
{
	write_desc(TABLE, 0, DATA, 1, 0, 0);
	desc(1, DATA, 1, 0, 0);
	desc(0, TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	offer(0);
	cr_assert_eq(pop(), -EBADMSG);
}

Test(virtq, rejects_bad_indirect_lengths)
{
	static const uint32_t bad[] = { 0, 8, 24, 16 * QSIZE + 16, UINT32_MAX };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		desc(0, TABLE, bad[i], VIRTQ_DESC_F_INDIRECT, 0);
		if (i == 0)
			offer(0);
		cr_assert_eq(pop(), -EBADMSG, "length %u", bad[i]);
		cr_assert_eq(vq.last_avail_idx, 0);
	}
	desc(0, TABLE, 16 * QSIZE, VIRTQ_DESC_F_INDIRECT, 0);
	cr_assert_eq(pop(), 1); /* the largest allowed table: zeroed entries */
}

Test(virtq, rejects_indirect_table_outside_ram)
{
	desc(0, BASE + RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -EFAULT);
	desc(0, BASE - 16, 16, VIRTQ_DESC_F_INDIRECT, 0);
	cr_assert_eq(pop(), -EFAULT);
}

Test(virtq, rejects_buffer_outside_ram)
{
	desc(0, BASE + RAM_SIZE - 8, 16, 0, 0);
	offer(0);
	cr_assert_eq(pop(), -EFAULT);
	desc(0, BASE - 8, 8, 0, 0);
	cr_assert_eq(pop(), -EFAULT);
	desc(0, BASE + RAM_SIZE, 1, VIRTQ_DESC_F_WRITE, 0);
	cr_assert_eq(pop(), -EFAULT);
	desc(0, BASE + RAM_SIZE - 8, 8, 0, 0);
	cr_assert_eq(pop(), 1); /* the last bytes of RAM are fine */
}

Test(virtq, rejects_buffer_wrapping_address_space)
{
	desc(0, UINT64_MAX - 3, 16, 0, 0);
	offer(0);
	cr_assert_eq(pop(), -EFAULT);
	desc(0, BASE + 16, UINT32_MAX, VIRTQ_DESC_F_WRITE, 0);
	cr_assert_eq(pop(), -EFAULT);
}

Test(virtq, rejects_readable_after_writable)
{
	desc(0, DATA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(1, DATA + 8, 8, 0, 0);
	offer(0);
	cr_assert_eq(pop(), -EPROTO);
}

Test(virtq, rejects_readable_after_writable_in_indirect_table)
{
	write_desc(TABLE, 0, DATA + 8, 8, 0, 0);
	desc(0, DATA, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	desc(1, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	offer(0);
	cr_assert_eq(pop(), -EPROTO);
}

Test(virtq, rejects_avail_index_jump_beyond_size)
{
	desc(0, DATA, 8, 0, 0);
	set_avail_idx(QSIZE + 1);
	cr_assert_eq(pop(), -EINVAL);
	set_avail_idx(0x8000);
	cr_assert_eq(pop(), -EINVAL);
	set_avail_idx(0xffff); /* "behind" us is a jump too */
	cr_assert_eq(pop(), -EINVAL);
}

Test(virtq, rejects_more_segments_than_caller_holds)
{
	desc(0, DATA, 8, VIRTQ_DESC_F_NEXT, 1);
	desc(1, DATA, 8, VIRTQ_DESC_F_NEXT, 2);
	desc(2, DATA, 8, 0, 0);
	offer(0);
	chain.segs = segs;
	chain.max_segs = 2;
	cr_assert_eq(virtq__pop(&vq, &chain), -ENOBUFS);
	chain.max_segs = 3;
	cr_assert_eq(virtq__pop(&vq, &chain), 1);
	cr_assert_eq(chain.nr_segs, 3);
}

Test(virtq, error_consumes_nothing)
{
	desc(2, DATA, 8, VIRTQ_DESC_F_NEXT, 2);
	offer(2);
	cr_assert_eq(pop(), -ELOOP);
	cr_assert_eq(pop(), -ELOOP);
	cr_assert_eq(vq.last_avail_idx, 0);
	desc(2, DATA, 8, 0, 0);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(chain.head, 2);
}

/* --- used ring ----------------------------------------------------------- */

Test(virtq, push_fills_used_ring_and_publish_makes_it_visible)
{
	cr_assert_eq(virtq__push(&vq, 5, 100), 0);
	cr_assert_eq(virtq__push(&vq, 2, 0), 0);
	cr_assert_eq(used_idx(), 0); /* batched: not visible yet */
	cr_assert_eq(used_elem(0).id, 5);
	cr_assert_eq(used_elem(0).len, 100);
	cr_assert_eq(used_elem(1).id, 2);
	cr_assert_eq(used_elem(1).len, 0);
	virtq__publish(&vq);
	cr_assert_eq(used_idx(), 2);
	cr_assert_eq(vq.used_published, 2);
}

Test(virtq, push_rejects_bad_head_and_unready_queue)
{
	cr_assert_eq(virtq__push(&vq, QSIZE, 1), -EINVAL);
	vq.ready = false;
	cr_assert_eq(virtq__push(&vq, 0, 1), -EINVAL);
	virtq__publish(&vq);
	cr_assert_eq(used_idx(), 0);
	cr_assert_eq(vq.used_idx, 0);
}

Test(virtq, push_publishes_before_overwriting_unseen_entries)
{
	for (int i = 0; i < QSIZE; i++)
		cr_assert_eq(virtq__push(&vq, i, i), 0);
	cr_assert_eq(used_idx(), 0);
	cr_assert_eq(virtq__push(&vq, 7, 70), 0);
	cr_assert_eq(used_idx(), QSIZE);
	cr_assert_eq(used_elem(QSIZE).id, 7);
	cr_assert_eq(used_elem(QSIZE).len, 70);
	virtq__publish(&vq);
	cr_assert_eq(used_idx(), QSIZE + 1);
}

/* --- notifications ------------------------------------------------------- */

Test(virtq, notifies_unless_no_interrupt_without_event_idx)
{
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq));
	cr_assert_not(virtq__should_notify(&vq)); /* nothing new */

	*u16_at(AVAIL) = VRING_AVAIL_F_NO_INTERRUPT;
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert_not(virtq__should_notify(&vq));

	*u16_at(AVAIL) = 0;
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	cr_assert_not(virtq__should_notify(&vq)); /* pushed, not published */
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq));
}

Test(virtq, notifies_when_used_event_is_passed)
{
	queue_up(QSIZE, true);
	*u16_at(AVAIL) = VRING_AVAIL_F_NO_INTERRUPT; /* ignored: event idx */
	set_used_event(0);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq)); /* 0 -> 1 passes 0 */

	set_used_event(1);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq)); /* 1 -> 2 passes 1 */

	set_used_event(5);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert_not(virtq__should_notify(&vq)); /* 2 -> 3 */
	for (int i = 0; i < 2; i++)
		cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert_not(virtq__should_notify(&vq)); /* 3 -> 5 */
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq)); /* 5 -> 6 passes 5 */
}

Test(virtq, first_event_idx_check_always_notifies)
{
	queue_up(QSIZE, true);
	set_used_event(100);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq));
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert_not(virtq__should_notify(&vq));
}

Test(virtq, need_event_wraps_modulo_65536)
{
	cr_assert(virtq__need_event(65535, 0, 65534));
	cr_assert(virtq__need_event(65534, 1, 65534));
	cr_assert_not(virtq__need_event(1, 0, 65534));
	cr_assert_not(virtq__need_event(65533, 0, 65534));
	cr_assert(virtq__need_event(65535, 0, 65535));
	cr_assert_not(virtq__need_event(0, 0, 65535));
}

Test(virtq, notifies_across_used_index_wrap)
{
	queue_up(QSIZE, true);
	start_at(65534);
	vq.signalled_used = 65534;
	vq.signalled_used_valid = true;
	set_used_event(1);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	cr_assert_eq(virtq__push(&vq, 1, 0), 0);
	virtq__publish(&vq);
	cr_assert_eq(used_idx(), 0);
	cr_assert_not(virtq__should_notify(&vq)); /* 65534 -> 0 misses 1 */
	set_used_event(65535);
	cr_assert_eq(virtq__push(&vq, 2, 0), 0);
	virtq__publish(&vq);
	cr_assert_not(virtq__should_notify(&vq)); /* 0 -> 1: 65535 was before */
	set_used_event(1);
	cr_assert_eq(virtq__push(&vq, 3, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq)); /* 1 -> 2 passes 1 */

	start_at(65535);
	vq.signalled_used = 65535;
	set_used_event(65535);
	cr_assert_eq(virtq__push(&vq, 0, 0), 0);
	virtq__publish(&vq);
	cr_assert(virtq__should_notify(&vq)); /* 65535 -> 0 passes 65535 */
}

Test(virtq, notifies_after_65536_unsignalled_entries)
{
	queue_up(QSIZE, true);
	vq.signalled_used_valid = true; /* signalled at 0 */
	set_used_event(0x8000);
	for (int i = 0; i < 65536; i++) {
		cr_assert_eq(virtq__push(&vq, 0, 0), 0);
		virtq__publish(&vq);
	}
	/* Back at 0 with event 0x8000 long passed: must not stay silent. */
	cr_assert_eq(used_idx(), 0);
	cr_assert(virtq__should_notify(&vq));
}

Test(virtq, enable_notify_sets_avail_event_and_rechecks)
{
	queue_up(QSIZE, true);
	desc(0, DATA, 8, 0, 0);
	cr_assert_eq(virtq__enable_notify(&vq), 0);
	cr_assert_eq(avail_event(), 0);
	offer(0);
	offer(0);
	cr_assert_eq(pop(), 1);
	virtq__disable_notify(&vq);
	cr_assert_eq(used_flags(), 0); /* event idx: flags unused */
	cr_assert_eq(virtq__enable_notify(&vq), 1); /* one left */
	cr_assert_eq(avail_event(), 1);
	cr_assert_eq(pop(), 1);
	cr_assert_eq(virtq__enable_notify(&vq), 0);
	cr_assert_eq(avail_event(), 2);
}

Test(virtq, enable_and_disable_notify_use_flags_without_event_idx)
{
	virtq__disable_notify(&vq);
	cr_assert_eq(used_flags(), VRING_USED_F_NO_NOTIFY);
	offer(0);
	cr_assert_eq(virtq__enable_notify(&vq), 1);
	cr_assert_eq(used_flags(), 0);
	cr_assert_eq(avail_event(), 0); /* not written without event idx */
	vq.ready = false;
	cr_assert_eq(virtq__enable_notify(&vq), 0);
}

/* --- ring placement at QUEUE_READY ---------------------------------------- */

static int ready_with(uint32_t size, uint64_t d, uint64_t a, uint64_t u,
		      bool event_idx)
{
	virtq__init(&vq, &mem);
	vq.size = size;
	vq.desc_gpa = d;
	vq.avail_gpa = a;
	vq.used_gpa = u;
	vq.event_idx = event_idx;
	return virtq__set_ready(&vq);
}

Test(virtq, ready_rejects_bad_sizes)
{
	static const uint32_t bad[] = { 0, 3, 6, 100, 65536, 0x80000000 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		cr_assert_eq(ready_with(bad[i], DESC, AVAIL, USED, false),
			     -EINVAL, "size %u", bad[i]);
		cr_assert_not(vq.ready);
	}
	cr_assert_eq(ready_with(1, DESC, AVAIL, USED, false), 0);
	cr_assert_eq(
		ready_with(32768, BASE, BASE + 0x80000, BASE + 0xa0000, true),
		0);
}

Test(virtq, ready_rejects_misaligned_rings)
{
	cr_assert_eq(ready_with(QSIZE, DESC + 8, AVAIL, USED, false), -EINVAL);
	cr_assert_eq(ready_with(QSIZE, DESC, AVAIL + 1, USED, false), -EINVAL);
	cr_assert_eq(ready_with(QSIZE, DESC, AVAIL, USED + 2, false), -EINVAL);
	cr_assert_not(vq.ready);
	cr_assert_eq(ready_with(QSIZE, DESC + 16, AVAIL + 2, USED + 4, false),
		     0);
	cr_assert(vq.ready);
}

Test(virtq, ready_rejects_rings_outside_ram)
{
	uint64_t end = BASE + RAM_SIZE;

	cr_assert_eq(
		ready_with(QSIZE, end - 16 * QSIZE + 16, AVAIL, USED, false),
		-EFAULT);
	cr_assert_eq(ready_with(QSIZE, BASE - 0x1000, AVAIL, USED, false),
		     -EFAULT);
	cr_assert_eq(ready_with(QSIZE, DESC, end - 2, USED, false), -EFAULT);
	cr_assert_eq(ready_with(QSIZE, DESC, AVAIL, end - 8 * QSIZE, false),
		     -EFAULT);
	cr_assert_eq(ready_with(QSIZE, DESC, AVAIL, UINT64_MAX - 3, false),
		     -EFAULT);
	cr_assert_not(vq.ready);
	/* Rings ending exactly at the end of RAM are fine. */
	cr_assert_eq(ready_with(QSIZE, end - 16 * QSIZE, end - 4 - 2 * QSIZE,
				end - 4 - 8 * QSIZE, false),
		     0);
}

Test(virtq, ready_counts_event_idx_fields)
{
	uint64_t end = BASE + RAM_SIZE;

	cr_assert_eq(ready_with(QSIZE, DESC, end - 4 - 2 * QSIZE, USED, false),
		     0);
	cr_assert_eq(ready_with(QSIZE, DESC, end - 4 - 2 * QSIZE, USED, true),
		     -EFAULT);
	cr_assert_eq(ready_with(QSIZE, DESC, AVAIL, end - 4 - 8 * QSIZE, true),
		     -EFAULT);
	cr_assert_eq(ready_with(QSIZE, DESC, end - 6 - 2 * QSIZE,
				end - 0x100 - 8 * QSIZE, true),
		     0);
}

Test(virtq, ready_starts_indices_at_zero)
{
	vq.last_avail_idx = 9;
	vq.used_idx = 9;
	vq.used_published = 9;
	vq.signalled_used_valid = true;
	cr_assert_eq(virtq__set_ready(&vq), 0);
	cr_assert_eq(vq.last_avail_idx, 0);
	cr_assert_eq(vq.used_idx, 0);
	cr_assert_eq(vq.used_published, 0);
	cr_assert_not(vq.signalled_used_valid);
}
