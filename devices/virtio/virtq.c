// SPDX-License-Identifier: Apache-2.0
// Split virtqueue: every guest index, address and length checked before use.
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/state.h"
#include "virtq.h"

/*
 * The driver writes the rings concurrently from other CPUs. Ring fields are
 * accessed with atomics; a descriptor is copied once into a local and only
 * the copy is looked at.
 */
static uint16_t load16(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_RELAXED));
}

static uint16_t load16_acquire(const uint16_t *p)
{
	return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

static void store16(uint16_t *p, uint16_t v)
{
	__atomic_store_n(p, htole16(v), __ATOMIC_RELAXED);
}

static void store32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, htole32(v), __ATOMIC_RELAXED);
}

static void read_desc(const struct virtq_desc *src, struct virtq_desc *d)
{
	/*
	 * Indirect tables need not be aligned, so no atomics: copy, then keep
	 * the compiler from reloading any field from guest memory.
	 */
	memcpy(d, src, sizeof(*d));
	__asm__ __volatile__("" ::: "memory");
	d->addr = le64toh(d->addr);
	d->len = le32toh(d->len);
	d->flags = le16toh(d->flags);
	d->next = le16toh(d->next);
}

static uint64_t avail_bytes(const struct virtq *vq)
{
	return 4 + 2ULL * vq->size + (vq->event_idx ? 2 : 0);
}

static uint64_t used_bytes(const struct virtq *vq)
{
	return 4 + 8ULL * vq->size + (vq->event_idx ? 2 : 0);
}

/*
 * Validated by virtq__set_ready(), so these only fail if the caller broke
 * the contract by changing the configuration of a ready queue.
 */
static struct virtq_avail *avail_ring(const struct virtq *vq)
{
	return mem__gpa_to_hva(vq->mem, vq->avail_gpa, avail_bytes(vq));
}

static struct virtq_used *used_ring(const struct virtq *vq)
{
	return mem__gpa_to_hva(vq->mem, vq->used_gpa, used_bytes(vq));
}

/* The event idx fields trail the rings; only valid with event_idx set. */
static uint16_t *used_event(const struct virtq *vq, struct virtq_avail *avail)
{
	return (uint16_t *)((char *)avail + 4 + 2ULL * vq->size);
}

static uint16_t *avail_event(const struct virtq *vq, struct virtq_used *used)
{
	return (uint16_t *)((char *)used + 4 + 8ULL * vq->size);
}

void virtq__init(struct virtq *vq, const struct guest_mem *mem)
{
	memset(vq, 0, sizeof(*vq));
	vq->mem = mem;
}

void virtq__reset(struct virtq *vq)
{
	virtq__init(vq, vq->mem);
}

int virtq__set_ready(struct virtq *vq)
{
	uint32_t n = vq->size;

	vq->ready = false;
	if (n == 0 || n > VIRTQ_MAX_SIZE || (n & (n - 1)))
		return -EINVAL;
	if (!IS_ALIGNED(vq->desc_gpa, 16) || !IS_ALIGNED(vq->avail_gpa, 2) ||
	    !IS_ALIGNED(vq->used_gpa, 4))
		return -EINVAL;
	if (!mem__gpa_to_hva(vq->mem, vq->desc_gpa, 16ULL * n) ||
	    !avail_ring(vq) || !used_ring(vq))
		return -EFAULT;
	vq->last_avail_idx = 0;
	vq->used_idx = 0;
	vq->used_published = 0;
	vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->ready = true;
	return 0;
}

static int add_seg(struct virtq *vq, struct virtq_chain *chain,
		   const struct virtq_desc *d, bool *seen_write)
{
	bool write = d->flags & VIRTQ_DESC_F_WRITE;
	struct virtq_seg *seg;
	void *hva;

	if (!write && *seen_write)
		return -EPROTO;
	hva = mem__gpa_to_hva(vq->mem, d->addr, d->len);
	if (!hva)
		return -EFAULT;
	if (chain->nr_segs >= chain->max_segs)
		return -ENOBUFS;
	seg = &chain->segs[chain->nr_segs++];
	seg->hva = hva;
	seg->len = d->len;
	seg->write = write;
	if (write)
		chain->writable += d->len;
	else
		chain->readable += d->len;
	*seen_write |= write;
	return 0;
}

/*
 * Follows the chain from @head through the descriptor table and at most one
 * indirect table. Termination: every step either counts a descriptor
 * (bounded by size) or enters the one allowed indirect table.
 */
static int walk(struct virtq *vq, struct virtq_chain *chain, uint16_t head)
{
	const struct virtq_desc *table;
	uint32_t n = vq->size, count = 0, i = head;
	bool indirect = false, seen_write = false;
	struct virtq_desc d;
	int err;

	table = mem__gpa_to_hva(vq->mem, vq->desc_gpa, 16ULL * n);
	if (!table)
		return -EFAULT;
	for (;;) {
		if (i >= n)
			return -ERANGE;
		read_desc(&table[i], &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (indirect || (d.flags & VIRTQ_DESC_F_NEXT))
				return -EBADMSG;
			if (d.len == 0 || d.len % sizeof(d) ||
			    d.len > sizeof(d) * vq->size)
				return -EBADMSG;
			table = mem__gpa_to_hva(vq->mem, d.addr, d.len);
			if (!table)
				return -EFAULT;
			n = d.len / sizeof(d);
			indirect = true;
			i = 0;
			continue;
		}
		if (++count > vq->size)
			return -ELOOP;
		if (d.len) {
			err = add_seg(vq, chain, &d, &seen_write);
			if (err)
				return err;
		}
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		i = d.next;
	}
}

int virtq__pop(struct virtq *vq, struct virtq_chain *chain)
{
	struct virtq_avail *avail;
	uint16_t avail_idx, pending, head;
	int err;

	chain->nr_segs = 0;
	chain->readable = 0;
	chain->writable = 0;
	if (!vq->ready)
		return 0;
	avail = avail_ring(vq);
	if (!avail)
		return -EFAULT;
	/*
	 * Acquire: the ring entry and descriptors are read after the index
	 * that published them.
	 */
	avail_idx = load16_acquire(&avail->idx);
	pending = avail_idx - vq->last_avail_idx;
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return -EINVAL;
	head = load16(&avail->ring[vq->last_avail_idx & (vq->size - 1)]);
	err = walk(vq, chain, head);
	if (err)
		return err;
	chain->head = head;
	vq->last_avail_idx++;
	return 1;
}

int virtq__push(struct virtq *vq, uint16_t head, uint32_t written)
{
	struct virtq_used_elem *elem;
	struct virtq_used *used;

	if (!vq->ready || head >= vq->size)
		return -EINVAL;
	used = used_ring(vq);
	if (!used)
		return -EINVAL;
	if ((uint16_t)(vq->used_idx - vq->used_published) >= vq->size)
		virtq__publish(vq);
	elem = &used->ring[vq->used_idx & (vq->size - 1)];
	store32(&elem->id, head);
	store32(&elem->len, written);
	vq->used_idx++;
	return 0;
}

void virtq__publish(struct virtq *vq)
{
	uint16_t count = vq->used_idx - vq->used_published;
	struct virtq_used *used;

	if (!vq->ready || !count)
		return;
	used = used_ring(vq);
	if (!used)
		return;
	__atomic_store_n(&used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
	vq->used_published = vq->used_idx;
	/*
	 * More than 2^16 entries since the last interrupt: vring_need_event()
	 * can no longer tell whether used_event was passed.
	 */
	if ((uint16_t)(vq->used_published - vq->signalled_used) < count)
		vq->signalled_used_valid = false;
}

bool virtq__should_notify(struct virtq *vq)
{
	uint16_t old = vq->signalled_used, now = vq->used_published;
	bool valid = vq->signalled_used_valid;
	struct virtq_avail *avail;
	uint16_t event;

	if (!vq->ready)
		return false;
	if (valid && now == old)
		return false;
	vq->signalled_used = now;
	vq->signalled_used_valid = true;
	avail = avail_ring(vq);
	if (!avail)
		return true;
	/*
	 * Store (used->idx) then load (flags or used_event): only a full
	 * barrier orders them; the driver does the mirror image.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!vq->event_idx)
		return !(load16(&avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	event = load16(used_event(vq, avail));
	return virtq__need_event(event, now, old);
}

int virtq__enable_notify(struct virtq *vq)
{
	struct virtq_avail *avail;
	struct virtq_used *used;

	if (!vq->ready)
		return 0;
	avail = avail_ring(vq);
	used = used_ring(vq);
	if (!avail || !used)
		return -EFAULT;
	if (vq->event_idx)
		store16(avail_event(vq, used), vq->last_avail_idx);
	else
		store16(&used->flags, 0);
	/*
	 * Store (our flag) then load (avail->idx): the driver's mirror image
	 * is its store of avail->idx, barrier, load of our flag.
	 */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return load16_acquire(&avail->idx) != vq->last_avail_idx;
}

void virtq__disable_notify(struct virtq *vq)
{
	struct virtq_used *used;

	if (!vq->ready || vq->event_idx)
		return;
	used = used_ring(vq);
	if (used)
		store16(&used->flags, VRING_USED_F_NO_NOTIFY);
}

void virtq__save(const struct virtq *vq, struct state_buf *b)
{
	state__put_u64(b, vq->desc_gpa);
	state__put_u64(b, vq->avail_gpa);
	state__put_u64(b, vq->used_gpa);
	state__put_u32(b, vq->size);
	state__put_u8(b, vq->ready);
	state__put_u8(b, vq->event_idx);
	state__put_u32(b, vq->last_avail_idx);
	state__put_u32(b, vq->used_idx);
	state__put_u32(b, vq->used_published);
	state__put_u32(b, vq->signalled_used);
	state__put_u8(b, vq->signalled_used_valid);
}

int virtq__restore(struct virtq *vq, struct state_reader *r)
{
	uint32_t idx[4];
	bool ready, valid;
	int i;

	virtq__reset(vq);
	vq->desc_gpa = state__get_u64(r);
	vq->avail_gpa = state__get_u64(r);
	vq->used_gpa = state__get_u64(r);
	vq->size = state__get_u32(r);
	ready = state__get_u8(r);
	vq->event_idx = state__get_u8(r);
	for (i = 0; i < 4; i++)
		idx[i] = state__get_u32(r);
	valid = state__get_u8(r);
	if (state__rerr(r) || idx[0] > UINT16_MAX || idx[1] > UINT16_MAX ||
	    idx[2] > UINT16_MAX || idx[3] > UINT16_MAX ||
	    (ready && virtq__set_ready(vq) < 0)) {
		virtq__reset(vq);
		return -EBADMSG;
	}
	vq->last_avail_idx = (uint16_t)idx[0];
	vq->used_idx = (uint16_t)idx[1];
	vq->used_published = (uint16_t)idx[2];
	vq->signalled_used = (uint16_t)idx[3];
	vq->signalled_used_valid = valid;
	return 0;
}
