/* SPDX-License-Identifier: Apache-2.0 */
/* virtio 1.x split virtqueue, device side: chains, used ring, notifications. */
#ifndef SANDBOX_VIRTQ_H
#define SANDBOX_VIRTQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../vmm/mem.h"

/*
 * Guest-visible layout (virtio 1.2, 2.7). All fields are little-endian.
 *
 *   descriptor table  16 * size bytes, 16-byte aligned
 *   available ring    flags, idx, ring[size], used_event (event idx only);
 *                     2-byte aligned
 *   used ring         flags, idx, {id, len}[size], avail_event (event idx
 *                     only); 4-byte aligned
 */
#define VIRTQ_MAX_SIZE 32768U

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4

#define VRING_AVAIL_F_NO_INTERRUPT 1
#define VRING_USED_F_NO_NOTIFY 1

struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};
_Static_assert(sizeof(struct virtq_desc) == 16, "virtq_desc layout");
_Static_assert(offsetof(struct virtq_desc, flags) == 12, "virtq_desc layout");

struct virtq_avail {
	uint16_t flags;
	uint16_t idx;
	uint16_t ring[]; /* then uint16_t used_event */
};
_Static_assert(offsetof(struct virtq_avail, ring) == 4, "virtq_avail layout");

struct virtq_used_elem {
	uint32_t id;
	uint32_t len;
};
_Static_assert(sizeof(struct virtq_used_elem) == 8, "virtq_used_elem layout");

struct virtq_used {
	uint16_t flags;
	uint16_t idx;
	struct virtq_used_elem ring[]; /* then uint16_t avail_event */
};
_Static_assert(offsetof(struct virtq_used, ring) == 4, "virtq_used layout");

/*
 * One queue. Every field is plain data apart from @mem, so a snapshot can
 * copy the struct and restore it with the new VM's guest_mem.
 *
 * The transport writes @size, @desc_gpa, @avail_gpa, @used_gpa and
 * @event_idx while the queue is not ready, then calls virtq__set_ready().
 * The rest belongs to this module. A queue is used by one thread at a time:
 * the transport keeps reset and set_ready from running while the device's
 * thread pops or pushes.
 */
struct virtq {
	const struct guest_mem *mem;
	uint64_t desc_gpa;
	uint64_t avail_gpa;
	uint64_t used_gpa;
	uint32_t size; /* entries; a power of two, 1..VIRTQ_MAX_SIZE */
	bool ready;
	bool event_idx; /* VIRTIO_F_EVENT_IDX negotiated */
	uint16_t last_avail_idx; /* next avail ring entry to consume */
	uint16_t used_idx; /* next used ring entry to fill */
	uint16_t used_published; /* last value stored to used->idx */
	uint16_t signalled_used; /* used->idx at the last interrupt check */
	bool signalled_used_valid; /* false: interrupt on the next check */
};

/* One guest buffer of a chain, already translated and bounds-checked. */
struct virtq_seg {
	void *hva;
	uint32_t len; /* never 0 */
	bool write; /* device-writable */
};

/*
 * A popped chain. The caller sets @segs and @max_segs to an array of its
 * own; virtq__pop() fills the rest. Device-readable segments come first,
 * then device-writable ones. The host pointers stay valid as long as guest
 * memory is mapped, but the guest may change the bytes at any time: copy
 * what you parse before validating it.
 */
struct virtq_chain {
	struct virtq_seg *segs;
	uint32_t max_segs;
	uint32_t nr_segs;
	uint16_t head; /* descriptor index to hand back to virtq__push() */
	uint64_t readable; /* total bytes in device-readable segments */
	uint64_t writable; /* total bytes in device-writable segments */
};

/*
 * Zeroes @vq and binds it to @mem, which must outlive it. The queue starts
 * not ready. Pair with nothing: the queue owns no resources.
 */
void virtq__init(struct virtq *vq, const struct guest_mem *mem);

/*
 * Device reset (or the driver writing QUEUE_RESET): forgets the
 * configuration and every index, keeps @mem. Guest memory is not touched.
 */
void virtq__reset(struct virtq *vq);

/*
 * The driver set QUEUE_READY: checks the configuration and, if it is sound,
 * marks the queue ready with all indices at 0 (a freshly initialised ring).
 * Guest memory is not touched.
 * Returns 0, or
 *   -EINVAL  @size is not a power of two in 1..VIRTQ_MAX_SIZE, or a ring is
 *            misaligned (descriptors 16, available ring 2, used ring 4);
 *   -EFAULT  a ring is not entirely inside guest RAM: 16 * size bytes of
 *            descriptors, 4 + 2 * size (+ 2 with event idx) bytes of
 *            available ring, 4 + 8 * size (+ 2 with event idx) of used ring.
 * On error the queue stays not ready.
 */
int virtq__set_ready(struct virtq *vq) __must_check;

/*
 * Takes the next available chain and walks it into @chain, whose @segs and
 * @max_segs the caller has set. Each descriptor is read once; every buffer
 * goes through mem__gpa_to_hva(). Rules, beyond the spec's MUSTs:
 *   - zero-length descriptors are allowed and skipped (no segment, address
 *     not checked), but count towards the chain length;
 *   - an indirect descriptor may end a direct chain (it cannot have NEXT);
 *     its WRITE flag is ignored, it is not counted itself, and its table
 *     needs no particular alignment;
 *   - a chain holds at most @size counted descriptors, direct and indirect
 *     together.
 * Returns 1 with @chain filled and the entry consumed, 0 when nothing is
 * available (or the queue is not ready), or one of these, with nothing
 * consumed (the queue is broken: the transport sets NEEDS_RESET):
 *   -EINVAL   avail->idx is more than @size entries ahead of us;
 *   -ERANGE   a head or next index is out of its table;
 *   -ELOOP    the chain has more than @size descriptors (a loop);
 *   -EBADMSG  an indirect descriptor with NEXT, inside an indirect table,
 *             or whose table length is 0, not a multiple of 16, or over
 *             16 * size bytes;
 *   -EFAULT   a buffer or indirect table not entirely inside guest RAM
 *             (including address + length wrapping);
 *   -EPROTO   a device-readable buffer after a device-writable one;
 *   -ENOBUFS  more non-empty buffers than @chain->max_segs.
 * On error @chain holds no usable result.
 */
int virtq__pop(struct virtq *vq, struct virtq_chain *chain) __must_check;

/*
 * Writes (@head, @written) into the next used ring entry without making it
 * visible: call virtq__publish() after one or a batch of pushes. Should
 * @size entries wait unpublished, they are published first so no entry is
 * overwritten before the driver sees it.
 * Returns 0, or -EINVAL if the queue is not ready or @head >= size.
 */
int virtq__push(struct virtq *vq, uint16_t head, uint32_t written) __must_check;

/*
 * Makes every pushed entry visible to the driver: a release store of
 * used->idx, ordered after the entries. Then ask virtq__should_notify().
 */
void virtq__publish(struct virtq *vq);

/*
 * Whether the driver wants an interrupt for what was published since the
 * previous call: never when nothing new was published; otherwise, without
 * event idx, unless the driver set VRING_AVAIL_F_NO_INTERRUPT; with event
 * idx, when used->idx stepped past used_event (vring_need_event()), or
 * always when the previous point is unknown (first call, or 65536 or more
 * entries since it). Issues a full barrier before reading the driver's fields,
 * pairing with the driver's barrier between its write and its read of
 * used->idx. Calling it records the current used->idx as signalled.
 */
bool virtq__should_notify(struct virtq *vq);

/*
 * Asks the driver to notify us of new buffers again: with event idx, writes
 * avail_event = last_avail_idx; without it, clears VRING_USED_F_NO_NOTIFY.
 * Then, after a full barrier, checks avail->idx again, closing the race with
 * a driver that added buffers before seeing the change.
 * Returns 1 if buffers are available (pop them, then call this again), 0 if
 * not (or the queue is not ready), -EFAULT if a ring is not in RAM.
 *
 * Typical device loop:
 *   for (;;) {
 *           virtq__disable_notify(vq);
 *           while ((r = virtq__pop(vq, &c)) > 0)
 *                   handle, virtq__push();
 *           virtq__publish(vq); if (virtq__should_notify(vq)) interrupt;
 *           if (r < 0) needs reset, break;
 *           if (virtq__enable_notify(vq) <= 0) break;
 *   }
 */
int virtq__enable_notify(struct virtq *vq) __must_check;

/*
 * Tells the driver it need not notify us (we are polling the ring): sets
 * VRING_USED_F_NO_NOTIFY without event idx. With event idx this does
 * nothing: avail_event stays where virtq__enable_notify() put it, and the
 * driver notifies only when it passes that point.
 */
void virtq__disable_notify(struct virtq *vq);

/*
 * vring_need_event(): whether moving used->idx from @old to @new_idx passed
 * @event, all modulo 2^16.
 */
static inline bool virtq__need_event(uint16_t event, uint16_t new_idx,
				     uint16_t old)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old);
}

struct state_buf;
struct state_reader;

/* Appends the queue's addresses, size, flags and ring indices to @b. */
void virtq__save(const struct virtq *vq, struct state_buf *b);

/*
 * Reads what virtq__save() wrote into @vq (which keeps its memory), checking
 * a ready queue's size and ring placement as virtq__set_ready() does.
 * 0, or -EBADMSG for a short or impossible record (the queue is then reset).
 */
int virtq__restore(struct virtq *vq, struct state_reader *r) __must_check;

#endif
