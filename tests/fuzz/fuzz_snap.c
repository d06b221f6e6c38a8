// SPDX-License-Identifier: Apache-2.0
// libFuzzer target: the snapshot reader and memory decoder over arbitrary, optionally re-sealed, files.
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <xxhash.h>

#include "../../snapshot/snap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The byte layout of docs/snapshot-format.md. */
#define HDR_SIZE 512
#define HDR_PAGE_SIZE 16
#define HDR_CHUNK_SIZE 20
#define HDR_ENCODING 24
#define HDR_SECTIONS 128
#define HDR_CHECKSUM 504
#define NR_SECTIONS 6
#define SEC_INDEX 4
#define SEC_DATA 5
#define ENTRY_SIZE 24
/* Chunks decoded per input, to keep each run short. */
#define MAX_READS 64

/* First input byte: which checksums to recompute before the reader sees the rest. */
#define FIX_CHUNKS 1
#define FIX_SECTIONS 2
#define FIX_HEADER 4

static void check(bool ok)
{
	if (!ok)
		abort();
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return le32toh(v);
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return le64toh(v);
}

static void wr64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, 8);
}

struct layout {
	uint32_t ps, cs, enc;
	size_t esz;
	uint64_t off[NR_SECTIONS], len[NR_SECTIONS];
	bool valid[NR_SECTIONS];
	bool geometry; /* page and chunk sizes make sense */
};

static bool pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static void read_layout(const uint8_t *f, size_t n, struct layout *l)
{
	unsigned int i;

	l->ps = rd32(f + HDR_PAGE_SIZE);
	l->cs = rd32(f + HDR_CHUNK_SIZE);
	l->enc = rd32(f + HDR_ENCODING);
	l->geometry = pow2(l->ps) && l->ps >= 4096 && pow2(l->cs) &&
		      l->cs >= l->ps && l->cs <= SNAP_MAX_CHUNK_SIZE;
	l->esz = l->geometry ? ENTRY_SIZE + 8 * ((l->cs / l->ps + 63) / 64) : 0;
	for (i = 0; i < NR_SECTIONS; i++) {
		const uint8_t *s = f + HDR_SECTIONS + 32 * i;

		l->off[i] = rd64(s + 8);
		l->len[i] = rd64(s + 16);
		l->valid[i] = l->off[i] <= n && l->len[i] <= n - l->off[i];
	}
}

/* The stored bytes of one index entry, hashed as the reader does; false if out of range. */
static bool entry_sum(const uint8_t *f, const struct layout *l,
		      const uint8_t *ent, XXH3_state_t *one, XXH3_state_t *all)
{
	uint64_t o = rd64(ent), len = rd32(ent + 8), j;
	const uint8_t *p;

	if (o > l->len[SEC_DATA] || len > l->len[SEC_DATA] - o)
		return false;
	p = f + l->off[SEC_DATA] + o;
	XXH3_64bits_reset(one);
	if (l->enc != SNAP_ENC_RAW) {
		XXH3_64bits_update(one, p, len);
		XXH3_64bits_update(all, p, len);
		return true;
	}
	for (j = 0; j < len / l->ps && j < l->cs / l->ps; j++) {
		if ((rd64(ent + ENTRY_SIZE + 8 * (j / 64)) >> (j % 64)) & 1)
			continue;
		XXH3_64bits_update(one, p + j * l->ps, l->ps);
		XXH3_64bits_update(all, p + j * l->ps, l->ps);
	}
	return true;
}

/*
 * Recomputes the checksums a mutation broke, so the fuzzer reaches the
 * checks behind them: per-chunk sums in the index, then section sums, then
 * the header's.
 */
static void reseal(uint8_t *f, size_t n, unsigned int flags)
{
	XXH3_state_t *one = XXH3_createState(), *all = XXH3_createState();
	struct layout l;
	unsigned int i;
	uint64_t e;

	if (n < HDR_SIZE || !one || !all)
		goto out;
	read_layout(f, n, &l);
	XXH3_64bits_reset(all);
	if (l.geometry && l.valid[SEC_INDEX] && l.valid[SEC_DATA]) {
		for (e = 0; (e + 1) * l.esz <= l.len[SEC_INDEX]; e++) {
			uint8_t *ent = f + l.off[SEC_INDEX] + e * l.esz;

			if (entry_sum(f, &l, ent, one, all) &&
			    (flags & FIX_CHUNKS))
				wr64(ent + 16, rd32(ent + 8)
						       ? XXH3_64bits_digest(one)
						       : 0);
		}
	}
	for (i = 0; (flags & FIX_SECTIONS) && i < NR_SECTIONS; i++) {
		uint8_t *sum = f + HDR_SECTIONS + 32 * i + 24;

		if (!l.valid[i])
			continue;
		if (i == SEC_DATA) {
			/* Chunk sums and the data sum were gathered before the index changed. */
			if (l.geometry)
				wr64(sum, XXH3_64bits_digest(all));
		} else {
			wr64(sum, XXH3_64bits(f + l.off[i], l.len[i]));
		}
	}
	if (flags & FIX_HEADER)
		wr64(f + HDR_CHECKSUM, XXH3_64bits(f, HDR_CHECKSUM));
out:
	XXH3_freeState(one);
	XXH3_freeState(all);
}

static void exercise(struct snap *s)
{
	static uint8_t buf[SNAP_MAX_CHUNK_SIZE];
	const struct snap_info *info = snap__info(s);
	const struct snap_mem_stats *m = &info->mem;
	uint64_t i, k, len, total = 0;
	unsigned int st;
	int verified, err;

	check(info->mem_size && info->mem_size <= SNAP_MAX_MEM_SIZE);
	check(info->chunk_size >= info->page_size &&
	      info->chunk_size <= SNAP_MAX_CHUNK_SIZE);
	check(m->zero_pages <= m->pages && m->zero_chunks <= m->chunks);
	check(m->raw_bytes == (m->pages - m->zero_pages) * info->page_size);
	for (st = 0; st < SNAP_NR_STATES; st++) {
		size_t n;

		(void)snap__state(s, st, &n);
		check(n <= SNAP_MAX_STATE_SIZE);
	}
	for (i = 0; i < m->chunks; i++)
		total += snap__chunk_len(s, i);
	check(total == info->mem_size);

	verified = snap__verify_memory(s);
	check(verified == 0 || verified == -EBADMSG);
	for (i = 0; i < m->chunks && i < MAX_READS; i++) {
		len = snap__chunk_len(s, i);
		memset(buf, 0xa5, len);
		err = snap__read_chunk(s, i, buf);
		check(err == 0 || err == -EBADMSG);
		/* A raw image that verified has nothing left to fail on. */
		if (!verified && info->encoding == SNAP_ENC_RAW)
			check(err == 0);
		if (err || !snap__chunk_is_zero(s, i))
			continue;
		for (k = 0; k < len; k++)
			check(!buf[k]);
	}
}

/* Input: a flags byte (FIX_*), then the snapshot file. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	static int fd = -1;
	struct snap *s = NULL;
	uint8_t *copy;
	int err;

	if (fd < 0) {
		fd = memfd_create("fuzz-snap", MFD_CLOEXEC);
		check(fd >= 0);
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (!size)
		return 0;
	copy = malloc(size);
	check(copy != NULL);
	memcpy(copy, data + 1, size - 1);
	reseal(copy, size - 1, data[0]);
	check(ftruncate(fd, 0) == 0);
	check(pwrite(fd, copy, size - 1, 0) == (ssize_t)(size - 1));
	free(copy);

	err = snap__open(path, 0, &s);
	check(err == 0 || err == -EBADMSG || err == -ENODATA ||
	      err == -EPROTONOSUPPORT || err == -EXDEV);
	check(!err == (s != NULL));
	if (!err)
		exercise(s);
	snap__close(s);
	return 0;
}
