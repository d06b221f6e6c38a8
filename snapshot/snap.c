// SPDX-License-Identifier: Apache-2.0
// Snapshot file: atomic writer, validating reader, and the zstd/raw guest memory codec.
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include "../vmm/log.h"
#include "snap.h"

/* The byte layout is specified in docs/snapshot-format.md; keep both in step. */
static const uint8_t snap_magic[8] = { 'S', 'B', 'X', 'S', 'N', 'A', 'P', 0 };

#define HDR_SIZE 512
#define NR_SECTIONS 6
#define SEC_INDEX 4 /* section table slots; the state sections come first */
#define SEC_DATA 5
#define MAX_LEVEL 19
/* Writes are gathered into this much before reaching the file system. */
#define WBUF_SIZE (8U << 20)
/* Pages are at least 4 KiB on every host this runs on. */
#define MAX_BITMAP_WORDS (SNAP_MAX_CHUNK_SIZE / 4096 / 64)
/* Idle decompression contexts kept for reuse by snap__read_chunk(). */
#define DCTX_POOL 8

struct disk_region {
	uint64_t gpa;
	uint64_t size;
};

struct disk_section {
	uint32_t type; /* slot + 1: fixed order */
	uint32_t flags; /* 0 */
	uint64_t offset; /* from the start of the file */
	uint64_t length;
	uint64_t checksum; /* XXH3-64 of the section's bytes; see docs */
};

struct disk_header {
	uint8_t magic[8];
	uint32_t version;
	uint32_t arch;
	uint32_t page_size;
	uint32_t chunk_size;
	uint32_t encoding;
	int32_t level;
	uint32_t nr_regions;
	uint32_t nr_sections;
	uint32_t flags; /* 0 */
	uint32_t reserved0; /* 0 */
	uint64_t mem_size;
	uint64_t nr_chunks;
	struct disk_region regions[SNAP_MAX_REGIONS];
	struct disk_section sections[NR_SECTIONS];
	uint8_t reserved[184]; /* 0 */
	uint64_t checksum; /* XXH3-64 of the 504 bytes before it */
};

/* One memory index entry; a zero-page bitmap of 64-bit words follows it. */
struct disk_chunk {
	uint64_t offset; /* from the start of the memory data section */
	uint32_t length; /* stored bytes; 0 for an all-zero chunk */
	uint32_t reserved; /* 0 */
	uint64_t checksum; /* XXH3-64 of the stored bytes; 0 for an all-zero chunk */
};

_Static_assert(sizeof(struct disk_region) == 16, "disk_region layout");
_Static_assert(sizeof(struct disk_section) == 32, "disk_section layout");
_Static_assert(sizeof(struct disk_chunk) == 24, "disk_chunk layout");
_Static_assert(sizeof(struct disk_header) == HDR_SIZE, "disk_header layout");
_Static_assert(offsetof(struct disk_header, version) == 8, "version offset");
_Static_assert(offsetof(struct disk_header, mem_size) == 48, "mem_size offset");
_Static_assert(offsetof(struct disk_header, regions) == 64, "regions offset");
_Static_assert(offsetof(struct disk_header, sections) == 128,
	       "sections offset");
_Static_assert(offsetof(struct disk_header, checksum) == HDR_SIZE - 8,
	       "checksum offset");
_Static_assert(SEC_INDEX == SNAP_NR_STATES, "state sections come first");
_Static_assert(ZSTD_COMPRESSBOUND(SNAP_MAX_CHUNK_SIZE) <= WBUF_SIZE,
	       "a compressed chunk fits the write buffer");
_Static_assert(ZSTD_COMPRESSBOUND(SNAP_MAX_CHUNK_SIZE) <= UINT32_MAX,
	       "a stored length fits 32 bits");

static const char *const section_names[NR_SECTIONS] = {
	"config", "vcpus", "irqchip", "devices", "memory index", "memory data",
};

/* A chunk's index entry in host order; its zero bitmap lives in snap.zero_bits. */
struct chunk {
	uint64_t offset;
	uint32_t length;
	uint32_t nonzero; /* pages not marked zero */
	uint64_t checksum;
};

struct snap {
	char *path; /* for messages */
	int fd;
	const uint8_t *map; /* the whole file, PROT_READ */
	uint64_t map_len;
	struct snap_info info;
	uint64_t sec_off[NR_SECTIONS], sec_len[NR_SECTIONS],
		sec_sum[NR_SECTIONS];
	/*
	 * Copies, checked once: the file could change under a MAP_PRIVATE
	 * mapping after validation, and these are trusted from then on.
	 */
	uint8_t *states;
	size_t state_off[SNAP_NR_STATES];
	struct chunk *chunks;
	uint64_t *zero_bits; /* bitmap_words per chunk, bit set = zero page */
	unsigned int bitmap_words;
	unsigned int pages_per_chunk;
	pthread_mutex_t lock; /* the decompression context pool */
	ZSTD_DCtx *dctx[DCTX_POOL];
	unsigned int nr_dctx;
	bool mem_verified; /* snap__verify_memory() has nothing left to do */
};

static void put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint32_t get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

static bool is_pow2(uint64_t x)
{
	return x && !(x & (x - 1));
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

static unsigned int bitmap_words_for(unsigned int pages)
{
	return (pages + 63) / 64;
}

static size_t entry_size_for(unsigned int pages)
{
	return sizeof(struct disk_chunk) + 8 * (size_t)bitmap_words_for(pages);
}

static bool test_bit(const uint64_t *bits, unsigned int i)
{
	return (bits[i / 64] >> (i % 64)) & 1;
}

/*
 * Data pages almost always differ from zero in their first words, so the
 * common case returns after one cache line; zero pages cost one pass at
 * memory bandwidth (the OR of eight words vectorizes). @p is 8-aligned.
 */
bool snap__page_is_zero(const void *p, size_t len)
{
	const uint64_t *w = p;
	size_t i, n = len / 8;

	for (i = 0; i < n; i += 8)
		if (w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] |
		    w[i + 5] | w[i + 6] | w[i + 7])
			return false;
	return true;
}

static uint32_t host_page_size(void)
{
	return (uint32_t)sysconf(_SC_PAGESIZE);
}

static int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* ---- writer ---------------------------------------------------------------- */

/* Guest memory as one linear image: the regions laid end to end. */
struct image {
	const struct snap_region *regions;
	void *const *hvas;
	unsigned int nr;
	uint64_t size;
};

/* Host address of [@off, @off + @len) of the image, or NULL if it spans regions. */
static uint8_t *image_ptr(const struct image *im, uint64_t off, uint64_t len)
{
	uint64_t base = 0;
	unsigned int r;

	for (r = 0; r < im->nr; r++) {
		uint64_t size = im->regions[r].size;

		if (off - base < size)
			return len <= size - (off - base)
				       ? (uint8_t *)im->hvas[r] + (off - base)
				       : NULL;
		base += size;
	}
	return NULL;
}

struct writer {
	const char *path;
	int fd;
	uint64_t pos; /* file offset of buf[0] */
	uint8_t *buf;
	size_t len;
};

static int wr_flush(struct writer *w)
{
	int err = pwrite_all(w->fd, w->buf, w->len, w->pos);

	if (err) {
		pr_err("snapshot %s: write: %s", w->path, strerror(-err));
		return err;
	}
	w->pos += w->len;
	w->len = 0;
	return 0;
}

/* Continues writing at @pos (> the current end): the gap stays a hole. */
static int wr_seek(struct writer *w, uint64_t pos)
{
	int err = wr_flush(w);

	if (!err)
		w->pos = pos;
	return err;
}

static int wr_append(struct writer *w, const void *p, size_t n)
{
	int err;

	if (!n)
		return 0;
	if (w->len + n > WBUF_SIZE) {
		err = wr_flush(w);
		if (err)
			return err;
	}
	if (n > WBUF_SIZE) {
		err = pwrite_all(w->fd, p, n, w->pos);
		if (err) {
			pr_err("snapshot %s: write: %s", w->path,
			       strerror(-err));
			return err;
		}
		w->pos += n;
		return 0;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
	return 0;
}

static int wr_pad(struct writer *w, uint64_t align)
{
	static const uint8_t zeros[64];
	uint64_t end = w->pos + w->len;

	return wr_append(w, zeros, ALIGN_UP(end, align) - end);
}

struct mem_writer {
	struct writer *w;
	const struct image *im;
	uint32_t page_size;
	uint32_t chunk_size;
	uint64_t nr_chunks;
	uint8_t *index; /* the memory index section being built */
	size_t entry_size;
	uint64_t data_off; /* file offset of the memory data section */
	uint64_t data_len;
	XXH3_state_t *data_sum;
	struct snap_mem_stats stats;
};

static const uint8_t *page_at(const struct mem_writer *mw, uint64_t chunk,
			      unsigned int j)
{
	return image_ptr(mw->im,
			 chunk * mw->chunk_size + (uint64_t)j * mw->page_size,
			 mw->page_size);
}

/*
 * Marks chunk @i's zero pages in its index entry, in host words in @bits
 * (cleared by the caller), and returns how many pages are not zero.
 */
static unsigned int scan_chunk(struct mem_writer *mw, uint64_t i,
			       uint64_t *bits, unsigned int *npages)
{
	uint64_t len =
		min_u64(mw->chunk_size, mw->im->size - i * mw->chunk_size);
	unsigned int j, nz = 0;

	*npages = (unsigned int)(len / mw->page_size);
	for (j = 0; j < *npages; j++) {
		if (snap__page_is_zero(page_at(mw, i, j), mw->page_size))
			bits[j / 64] |= 1ULL << (j % 64);
		else
			nz++;
	}
	return nz;
}

static void put_entry(struct mem_writer *mw, uint64_t i, uint64_t off,
		      uint32_t len, uint64_t sum, const uint64_t *bits,
		      unsigned int npages)
{
	uint8_t *e = mw->index + i * mw->entry_size;
	unsigned int k;

	put_le64(e + offsetof(struct disk_chunk, offset), off);
	put_le32(e + offsetof(struct disk_chunk, length), len);
	put_le32(e + offsetof(struct disk_chunk, reserved), 0);
	put_le64(e + offsetof(struct disk_chunk, checksum), sum);
	for (k = 0; k < bitmap_words_for(npages); k++)
		put_le64(e + sizeof(struct disk_chunk) + 8 * k, bits[k]);
}

static void count_chunk(struct mem_writer *mw, unsigned int npages,
			unsigned int nz, uint64_t stored)
{
	mw->stats.pages += npages;
	mw->stats.zero_pages += npages - nz;
	mw->stats.chunks++;
	mw->stats.zero_chunks += nz == 0;
	mw->stats.raw_bytes += (uint64_t)nz * mw->page_size;
	mw->stats.stored_bytes += stored;
}

static int write_zstd(struct mem_writer *mw, int level)
{
	struct writer *w = mw->w;
	uint64_t bits[MAX_BITMAP_WORDS];
	unsigned int npages, nz, j;
	uint8_t *pack;
	ZSTD_CCtx *cctx;
	uint64_t i;
	int err = -ENOMEM;

	pack = malloc(mw->chunk_size);
	cctx = ZSTD_createCCtx();
	if (!pack || !cctx) {
		pr_err("snapshot %s: out of memory", w->path);
		goto out;
	}
	/* Frames carry their content size; XXH3 in the index replaces zstd's checksum. */
	if (ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel,
						level)) ||
	    ZSTD_isError(
		    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(
		    ZSTD_CCtx_setParameter(cctx, ZSTD_c_contentSizeFlag, 1))) {
		pr_err("snapshot %s: zstd rejects level %d", w->path, level);
		err = -EINVAL;
		goto out;
	}
	for (i = 0; i < mw->nr_chunks; i++) {
		uint64_t coff = i * mw->chunk_size;
		const uint8_t *src;
		size_t n;

		memset(bits, 0, sizeof(bits));
		nz = scan_chunk(mw, i, bits, &npages);
		if (!nz) {
			put_entry(mw, i, 0, 0, 0, bits, npages);
			count_chunk(mw, npages, 0, 0);
			continue;
		}
		/* Compress straight from guest memory when no page needs leaving out. */
		src = nz == npages ? image_ptr(mw->im, coff,
					       (uint64_t)npages * mw->page_size)
				   : NULL;
		if (!src) {
			unsigned int k = 0;

			for (j = 0; j < npages; j++)
				if (!test_bit(bits, j))
					memcpy(pack + (size_t)k++ *
							       mw->page_size,
					       page_at(mw, i, j),
					       mw->page_size);
			src = pack;
		}
		if (WBUF_SIZE - w->len < ZSTD_COMPRESSBOUND(mw->chunk_size)) {
			err = wr_flush(w);
			if (err)
				goto out;
		}
		n = ZSTD_compress2(cctx, w->buf + w->len, WBUF_SIZE - w->len,
				   src, (size_t)nz * mw->page_size);
		if (ZSTD_isError(n)) {
			pr_err("snapshot %s: zstd: %s", w->path,
			       ZSTD_getErrorName(n));
			err = -ENOMEM;
			goto out;
		}
		put_entry(mw, i, mw->data_len, (uint32_t)n,
			  XXH3_64bits(w->buf + w->len, n), bits, npages);
		XXH3_64bits_update(mw->data_sum, w->buf + w->len, n);
		w->len += n;
		mw->data_len += n;
		count_chunk(mw, npages, nz, n);
	}
	err = wr_flush(w);
out:
	ZSTD_freeCCtx(cctx);
	free(pack);
	return err;
}

/* Writes a run of non-zero pages straight from guest memory to its place in the image. */
static int flush_run(struct mem_writer *mw, const uint8_t *p, uint64_t off,
		     uint64_t len)
{
	int err;

	if (!len)
		return 0;
	err = pwrite_all(mw->w->fd, p, len, mw->data_off + off);
	if (err)
		pr_err("snapshot %s: write: %s", mw->w->path, strerror(-err));
	return err;
}

static int write_raw(struct mem_writer *mw)
{
	uint64_t bits[MAX_BITMAP_WORDS];
	const uint8_t *run = NULL;
	uint64_t run_off = 0, run_len = 0, i;
	unsigned int npages, nz, j;
	XXH3_state_t *sum;
	int err = 0;

	sum = XXH3_createState();
	if (!sum) {
		pr_err("snapshot %s: out of memory", mw->w->path);
		return -ENOMEM;
	}
	for (i = 0; i < mw->nr_chunks && !err; i++) {
		uint64_t coff = i * mw->chunk_size;

		memset(bits, 0, sizeof(bits));
		nz = scan_chunk(mw, i, bits, &npages);
		XXH3_64bits_reset(sum);
		for (j = 0; j < npages && !err; j++) {
			uint64_t off = coff + (uint64_t)j * mw->page_size;
			const uint8_t *p;

			if (test_bit(bits, j))
				continue;
			p = page_at(mw, i, j);
			XXH3_64bits_update(sum, p, mw->page_size);
			XXH3_64bits_update(mw->data_sum, p, mw->page_size);
			if (run_len && run + run_len == p &&
			    run_off + run_len == off) {
				run_len += mw->page_size;
				continue;
			}
			err = flush_run(mw, run, run_off, run_len);
			run = p;
			run_off = off;
			run_len = mw->page_size;
		}
		if (nz)
			put_entry(mw, i, coff, (uint32_t)npages * mw->page_size,
				  XXH3_64bits_digest(sum), bits, npages);
		else
			put_entry(mw, i, 0, 0, 0, bits, npages);
		count_chunk(mw, npages, nz, (uint64_t)nz * mw->page_size);
	}
	if (!err)
		err = flush_run(mw, run, run_off, run_len);
	mw->data_len = mw->im->size;
	XXH3_freeState(sum);
	return err;
}

static int check_write_args(const char *path, const struct snap_write_opts *o,
			    const struct snap_blob *states,
			    const struct snap_region *regions,
			    void *const *hvas, unsigned int nr,
			    uint32_t page_size, uint64_t *mem_size)
{
	uint64_t sum = 0;
	unsigned int i;

	if (o->arch != SNAP_ARCH_X86_64 && o->arch != SNAP_ARCH_ARM64) {
		pr_err("snapshot %s: unknown arch %u", path, o->arch);
		return -EINVAL;
	}
	if (o->encoding != SNAP_ENC_ZSTD && o->encoding != SNAP_ENC_RAW) {
		pr_err("snapshot %s: unknown encoding %d", path,
		       (int)o->encoding);
		return -EINVAL;
	}
	if (o->encoding == SNAP_ENC_ZSTD &&
	    (o->level < 1 || o->level > MAX_LEVEL)) {
		pr_err("snapshot %s: zstd level %d is not in 1..%d", path,
		       o->level, MAX_LEVEL);
		return -EINVAL;
	}
	if (!is_pow2(o->chunk_size) || o->chunk_size < SNAP_MIN_CHUNK_SIZE ||
	    o->chunk_size > SNAP_MAX_CHUNK_SIZE || o->chunk_size < page_size) {
		pr_err("snapshot %s: chunk size %u is not a power of two in %u..%u and at least the page size",
		       path, o->chunk_size, SNAP_MIN_CHUNK_SIZE,
		       SNAP_MAX_CHUNK_SIZE);
		return -EINVAL;
	}
	for (i = 0; i < SNAP_NR_STATES; i++) {
		if (states[i].len > SNAP_MAX_STATE_SIZE) {
			pr_err("snapshot %s: %s state of %zu bytes is over the %u byte limit",
			       path, section_names[i], states[i].len,
			       SNAP_MAX_STATE_SIZE);
			return -E2BIG;
		}
		if (states[i].len && !states[i].data) {
			pr_err("snapshot %s: %s state has no data", path,
			       section_names[i]);
			return -EINVAL;
		}
	}
	if (!nr || nr > SNAP_MAX_REGIONS) {
		pr_err("snapshot %s: %u memory regions, not 1..%u", path, nr,
		       SNAP_MAX_REGIONS);
		return -EINVAL;
	}
	for (i = 0; i < nr; i++) {
		const struct snap_region *r = &regions[i];

		if (!r->size || !IS_ALIGNED(r->size, page_size) ||
		    !IS_ALIGNED(r->gpa, page_size) ||
		    r->gpa + r->size < r->gpa ||
		    (i && r->gpa < regions[i - 1].gpa + regions[i - 1].size)) {
			pr_err("snapshot %s: memory region %u (0x%llx+0x%llx) is empty, unaligned, or out of order",
			       path, i, (unsigned long long)r->gpa,
			       (unsigned long long)r->size);
			return -EINVAL;
		}
		if (!hvas[i] || !IS_ALIGNED((uintptr_t)hvas[i], page_size)) {
			pr_err("snapshot %s: memory region %u: host address %p is not page-aligned",
			       path, i, hvas[i]);
			return -EINVAL;
		}
		if (r->size > SNAP_MAX_MEM_SIZE - sum) {
			pr_err("snapshot %s: guest memory over the %llu GiB limit",
			       path, SNAP_MAX_MEM_SIZE >> 30);
			return -E2BIG;
		}
		sum += r->size;
	}
	*mem_size = sum;
	return 0;
}

/* Makes the rename durable: a crash must not bring back the old file or none. */
static int sync_dir(const char *path)
{
	char *copy = strdup(path);
	int fd, err = 0;

	if (!copy)
		return -ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		err = -errno;
	if (fd >= 0)
		close(fd);
	free(copy);
	return err;
}

static void fill_header(struct disk_header *h, const struct snap_write_opts *o,
			uint32_t page_size, uint64_t mem_size,
			uint64_t nr_chunks, const struct snap_region *regions,
			unsigned int nr, const uint64_t *off,
			const uint64_t *len, const uint64_t *sum)
{
	unsigned int i;

	memset(h, 0, sizeof(*h));
	memcpy(h->magic, snap_magic, sizeof(h->magic));
	h->version = htole32(SNAP_VERSION);
	h->arch = htole32(o->arch);
	h->page_size = htole32(page_size);
	h->chunk_size = htole32(o->chunk_size);
	h->encoding = htole32((uint32_t)o->encoding);
	h->level = (int32_t)htole32(
		(uint32_t)(o->encoding == SNAP_ENC_ZSTD ? o->level : 0));
	h->nr_regions = htole32(nr);
	h->nr_sections = htole32(NR_SECTIONS);
	h->mem_size = htole64(mem_size);
	h->nr_chunks = htole64(nr_chunks);
	for (i = 0; i < nr; i++) {
		h->regions[i].gpa = htole64(regions[i].gpa);
		h->regions[i].size = htole64(regions[i].size);
	}
	for (i = 0; i < NR_SECTIONS; i++) {
		h->sections[i].type = htole32(i + 1);
		h->sections[i].offset = htole64(off[i]);
		h->sections[i].length = htole64(len[i]);
		h->sections[i].checksum = htole64(sum[i]);
	}
	h->checksum =
		htole64(XXH3_64bits(h, offsetof(struct disk_header, checksum)));
}

int snap__write(const char *path, const struct snap_write_opts *opts,
		const struct snap_blob states[SNAP_NR_STATES],
		const struct snap_region *regions, void *const *hvas,
		unsigned int nr_regions, struct snap_mem_stats *stats)
{
	uint64_t off[NR_SECTIONS], len[NR_SECTIONS], sum[NR_SECTIONS];
	uint32_t page_size = host_page_size();
	struct writer w = { .path = path, .fd = -1 };
	struct mem_writer mw = { .w = &w };
	struct image im = { regions, hvas, nr_regions, 0 };
	struct disk_header h;
	char *tmp = NULL;
	unsigned int i;
	int err;

	err = check_write_args(path, opts, states, regions, hvas, nr_regions,
			       page_size, &im.size);
	if (err)
		return err;
	mw.im = &im;
	mw.page_size = page_size;
	mw.chunk_size = opts->chunk_size;
	mw.nr_chunks = (im.size + opts->chunk_size - 1) / opts->chunk_size;
	mw.entry_size = entry_size_for(opts->chunk_size / page_size);

	/* The layout is fixed up front; only the memory data length is learnt while writing. */
	off[0] = HDR_SIZE;
	for (i = 0; i < NR_SECTIONS; i++) {
		if (i)
			off[i] = ALIGN_UP(off[i - 1] + len[i - 1], 8);
		if (i < SNAP_NR_STATES)
			len[i] = states[i].len;
		else if (i == SEC_INDEX)
			len[i] = mw.nr_chunks * mw.entry_size;
	}
	/* Page-aligned so a raw image can be mapped; harmless for zstd. */
	off[SEC_DATA] = ALIGN_UP(off[SEC_INDEX] + len[SEC_INDEX], page_size);
	mw.data_off = off[SEC_DATA];

	err = -ENOMEM;
	tmp = malloc(strlen(path) + sizeof(".tmp.XXXXXX"));
	w.buf = malloc(WBUF_SIZE);
	mw.index = calloc(mw.nr_chunks, mw.entry_size);
	mw.data_sum = XXH3_createState();
	if (!tmp || !w.buf || !mw.index || !mw.data_sum) {
		pr_err("snapshot %s: out of memory", path);
		goto out;
	}
	XXH3_64bits_reset(mw.data_sum);
	sprintf(tmp, "%s.tmp.XXXXXX", path);
	w.fd = mkostemp(tmp, O_CLOEXEC);
	if (w.fd < 0) {
		err = -errno;
		pr_err("snapshot %s: cannot create a temporary file beside it: %s",
		       path, strerror(-err));
		goto out;
	}

	w.pos = HDR_SIZE;
	for (i = 0; i < SNAP_NR_STATES; i++) {
		err = wr_pad(&w, 8);
		if (!err)
			err = wr_append(&w, states[i].data, states[i].len);
		if (err)
			goto out_unlink;
		sum[i] = XXH3_64bits(states[i].data, states[i].len);
	}
	err = wr_seek(&w, off[SEC_DATA]);
	if (err)
		goto out_unlink;
	err = opts->encoding == SNAP_ENC_ZSTD ? write_zstd(&mw, opts->level)
					      : write_raw(&mw);
	if (err)
		goto out_unlink;
	len[SEC_DATA] = mw.data_len;
	sum[SEC_DATA] = XXH3_64bits_digest(mw.data_sum);
	sum[SEC_INDEX] = XXH3_64bits(mw.index, len[SEC_INDEX]);

	fill_header(&h, opts, page_size, im.size, mw.nr_chunks, regions,
		    nr_regions, off, len, sum);
	err = pwrite_all(w.fd, mw.index, len[SEC_INDEX], off[SEC_INDEX]);
	if (!err)
		err = pwrite_all(w.fd, &h, sizeof(h), 0);
	/* Sets the size when the image ends in zero pages (raw) or the data is empty. */
	if (!err && ftruncate(w.fd, (off_t)(off[SEC_DATA] + len[SEC_DATA])) < 0)
		err = -errno;
	if (!err && fsync(w.fd) < 0)
		err = -errno;
	if (err) {
		pr_err("snapshot %s: write: %s", path, strerror(-err));
		goto out_unlink;
	}
	err = close(w.fd) < 0 ? -errno : 0;
	w.fd = -1;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err) {
		pr_err("snapshot %s: cannot put the snapshot in place: %s",
		       path, strerror(-err));
		goto out_unlink;
	}
	err = sync_dir(path);
	if (err) {
		pr_err("snapshot %s: written, but syncing its directory failed: %s",
		       path, strerror(-err));
		goto out;
	}
	if (stats)
		*stats = mw.stats;
	goto out;

out_unlink:
	if (w.fd >= 0)
		close(w.fd);
	w.fd = -1;
	unlink(tmp);
out:
	XXH3_freeState(mw.data_sum);
	free(mw.index);
	free(w.buf);
	free(tmp);
	return err;
}

/* ---- reader ---------------------------------------------------------------- */

static int __printf(3, 4)
	bad(const struct snap *s, int err, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pr_err("snapshot %s: %s", s->path, msg);
	return err;
}

static const uint64_t *chunk_bits(const struct snap *s, uint64_t i)
{
	return s->zero_bits + i * s->bitmap_words;
}

uint64_t snap__chunk_len(const struct snap *s, uint64_t i)
{
	uint64_t off = i * s->info.chunk_size;

	if (i >= s->info.mem.chunks)
		return 0;
	return min_u64(s->info.chunk_size, s->info.mem_size - off);
}

static const char *arch_name(uint32_t arch)
{
	switch (arch) {
	case SNAP_ARCH_X86_64:
		return "x86_64";
	case SNAP_ARCH_ARM64:
		return "arm64";
	default:
		return "unknown";
	}
}

static int check_regions(struct snap *s, const struct disk_header *h)
{
	uint32_t ps = s->info.page_size;
	uint64_t sum = 0, end = 0;
	unsigned int i, nr = le32toh(h->nr_regions);

	if (!nr || nr > SNAP_MAX_REGIONS)
		return bad(s, -EBADMSG, "%u memory regions, not 1..%u", nr,
			   SNAP_MAX_REGIONS);
	for (i = 0; i < SNAP_MAX_REGIONS; i++) {
		uint64_t gpa = le64toh(h->regions[i].gpa);
		uint64_t size = le64toh(h->regions[i].size);

		if (i >= nr) {
			if (gpa || size)
				return bad(s, -EBADMSG,
					   "unused region slot %u is not zero",
					   i);
			continue;
		}
		if (!size || !IS_ALIGNED(size, ps) || !IS_ALIGNED(gpa, ps) ||
		    gpa + size < gpa || (i && gpa < end))
			return bad(
				s, -EBADMSG,
				"memory region %u (0x%llx+0x%llx) is empty, unaligned, or out of order",
				i, (unsigned long long)gpa,
				(unsigned long long)size);
		if (size > SNAP_MAX_MEM_SIZE - sum)
			return bad(s, -EBADMSG,
				   "guest memory over the %llu GiB limit",
				   SNAP_MAX_MEM_SIZE >> 30);
		sum += size;
		end = gpa + size;
		s->info.regions[i].gpa = gpa;
		s->info.regions[i].size = size;
	}
	s->info.nr_regions = nr;
	s->info.mem_size = le64toh(h->mem_size);
	if (sum != s->info.mem_size)
		return bad(
			s, -EBADMSG,
			"memory size %llu is not the sum of its regions (%llu)",
			(unsigned long long)s->info.mem_size,
			(unsigned long long)sum);
	return 0;
}

/* Bounds, limits and overlaps of the section table, in that order. */
static int check_sections(struct snap *s, const struct disk_header *h)
{
	unsigned int i, j;
	uint64_t end = HDR_SIZE;

	if (le32toh(h->nr_sections) != NR_SECTIONS)
		return bad(s, -EBADMSG, "%u sections, not %u",
			   le32toh(h->nr_sections), NR_SECTIONS);
	for (i = 0; i < NR_SECTIONS; i++) {
		const struct disk_section *d = &h->sections[i];
		uint64_t o = le64toh(d->offset), l = le64toh(d->length);

		if (le32toh(d->type) != i + 1 || d->flags)
			return bad(
				s, -EBADMSG,
				"section %u has type %u flags 0x%x, not type %u flags 0",
				i, le32toh(d->type), le32toh(d->flags), i + 1);
		if (o < HDR_SIZE || o + l < o)
			return bad(
				s, -EBADMSG,
				"%s section at %llu+%llu overlaps the header or wraps",
				section_names[i], (unsigned long long)o,
				(unsigned long long)l);
		if (o + l > s->map_len)
			return bad(
				s, -ENODATA,
				"%s section (bytes %llu..%llu) is beyond the end of the file (%llu bytes): truncated",
				section_names[i], (unsigned long long)o,
				(unsigned long long)(o + l),
				(unsigned long long)s->map_len);
		if (i < SNAP_NR_STATES && l > SNAP_MAX_STATE_SIZE)
			return bad(
				s, -EBADMSG,
				"%s section of %llu bytes is over the %u byte limit",
				section_names[i], (unsigned long long)l,
				SNAP_MAX_STATE_SIZE);
		s->sec_off[i] = o;
		s->sec_len[i] = l;
		s->sec_sum[i] = le64toh(d->checksum);
		if (o + l > end)
			end = o + l;
	}
	/* Empty sections take no bytes and overlap nothing. */
	for (i = 0; i < NR_SECTIONS; i++)
		for (j = i + 1; j < NR_SECTIONS; j++)
			if (s->sec_len[i] && s->sec_len[j] &&
			    s->sec_off[i] < s->sec_off[j] + s->sec_len[j] &&
			    s->sec_off[j] < s->sec_off[i] + s->sec_len[i])
				return bad(s, -EBADMSG,
					   "sections %s and %s overlap",
					   section_names[i], section_names[j]);
	if (end != s->map_len)
		return bad(s, -EBADMSG, "%llu bytes after the last section",
			   (unsigned long long)(s->map_len - end));
	return 0;
}

static int check_header(struct snap *s, uint32_t arch)
{
	struct disk_header h;
	uint32_t cs, ps, enc;
	uint64_t chunks;
	unsigned int i;
	int err;

	memcpy(&h, s->map, sizeof(h));
	if (memcmp(h.magic, snap_magic, sizeof(h.magic)))
		return bad(s, -EBADMSG, "not a snapshot (bad magic)");
	/* Before the checksum: a newer format may lay out the rest differently. */
	if (le32toh(h.version) != SNAP_VERSION)
		return bad(s, -EPROTONOSUPPORT,
			   "format version %u, this build reads version %u",
			   le32toh(h.version), SNAP_VERSION);
	if (XXH3_64bits(s->map, offsetof(struct disk_header, checksum)) !=
	    le64toh(h.checksum))
		return bad(s, -EBADMSG,
			   "header checksum mismatch (header corrupt)");
	for (i = 0; i < sizeof(h.reserved); i++)
		if (h.reserved[i])
			break;
	if (h.flags || h.reserved0 || i < sizeof(h.reserved))
		return bad(s, -EBADMSG,
			   "header flags or reserved bytes are not zero");

	s->info.version = SNAP_VERSION;
	s->info.arch = le32toh(h.arch);
	if (arch && s->info.arch != arch)
		return bad(s, -EXDEV, "a snapshot for %s (%u), not %s (%u)",
			   arch_name(s->info.arch), s->info.arch,
			   arch_name(arch), arch);
	ps = s->info.page_size = le32toh(h.page_size);
	if (ps != host_page_size())
		return bad(s, -EXDEV, "page size %u, the host's is %u", ps,
			   host_page_size());
	cs = s->info.chunk_size = le32toh(h.chunk_size);
	if (!is_pow2(cs) || cs < SNAP_MIN_CHUNK_SIZE ||
	    cs > SNAP_MAX_CHUNK_SIZE || cs < ps)
		return bad(s, -EBADMSG, "bad chunk size %u", cs);
	enc = le32toh(h.encoding);
	s->info.level = (int32_t)le32toh((uint32_t)h.level);
	if (enc == SNAP_ENC_ZSTD) {
		if (s->info.level < 1 || s->info.level > MAX_LEVEL)
			return bad(s, -EBADMSG, "bad zstd level %d",
				   s->info.level);
	} else if (enc == SNAP_ENC_RAW) {
		if (s->info.level)
			return bad(s, -EBADMSG, "raw encoding with level %d",
				   s->info.level);
	} else {
		return bad(s, -EBADMSG, "unknown memory encoding %u", enc);
	}
	s->info.encoding = (enum snap_encoding)enc;
	err = check_regions(s, &h);
	if (err)
		return err;
	chunks = s->info.mem_size / cs + !!(s->info.mem_size % cs);
	if (le64toh(h.nr_chunks) != chunks)
		return bad(s, -EBADMSG,
			   "%llu chunks recorded, the memory size makes %llu",
			   (unsigned long long)le64toh(h.nr_chunks),
			   (unsigned long long)chunks);
	s->info.mem.chunks = chunks;
	s->info.mem.pages = s->info.mem_size / ps;
	s->pages_per_chunk = cs / ps;
	s->bitmap_words = bitmap_words_for(s->pages_per_chunk);
	err = check_sections(s, &h);
	if (err)
		return err;
	if (s->sec_len[SEC_INDEX] !=
	    chunks * entry_size_for(s->pages_per_chunk))
		return bad(s, -EBADMSG,
			   "memory index of %llu bytes, %llu chunks need %llu",
			   (unsigned long long)s->sec_len[SEC_INDEX],
			   (unsigned long long)chunks,
			   (unsigned long long)(chunks *
						entry_size_for(
							s->pages_per_chunk)));
	if (enc == SNAP_ENC_RAW && (!IS_ALIGNED(s->sec_off[SEC_DATA], ps) ||
				    s->sec_len[SEC_DATA] != s->info.mem_size))
		return bad(
			s, -EBADMSG,
			"raw memory image at %llu+%llu is not page-aligned or not the memory size",
			(unsigned long long)s->sec_off[SEC_DATA],
			(unsigned long long)s->sec_len[SEC_DATA]);
	return 0;
}

static int load_states(struct snap *s)
{
	size_t total = 0;
	unsigned int i;

	for (i = 0; i < SNAP_NR_STATES; i++) {
		s->state_off[i] = total;
		total += s->sec_len[i];
	}
	s->states = malloc(total ? total : 1);
	if (!s->states)
		return bad(s, -ENOMEM, "out of memory");
	for (i = 0; i < SNAP_NR_STATES; i++) {
		uint8_t *p = s->states + s->state_off[i];

		memcpy(p, s->map + s->sec_off[i], s->sec_len[i]);
		if (XXH3_64bits(p, s->sec_len[i]) != s->sec_sum[i])
			return bad(
				s, -EBADMSG,
				"%s section checksum mismatch (section corrupt)",
				section_names[i]);
	}
	return 0;
}

static int check_entry(struct snap *s, uint64_t i, const struct chunk *c,
		       unsigned int npages, uint64_t *next)
{
	uint64_t data_len = s->sec_len[SEC_DATA];

	if (!c->nonzero) {
		if (c->offset || c->length || c->checksum)
			return bad(
				s, -EBADMSG,
				"memory index: chunk %llu is all zero pages but has stored bytes",
				(unsigned long long)i);
		return 0;
	}
	if (s->info.encoding == SNAP_ENC_RAW) {
		if (c->offset != i * s->info.chunk_size ||
		    c->length != (uint64_t)npages * s->info.page_size)
			return bad(
				s, -EBADMSG,
				"memory index: raw chunk %llu is not at its place in the image",
				(unsigned long long)i);
		return 0;
	}
	/* zstd chunks are stored back to back in index order. */
	if (c->offset != *next || !c->length ||
	    c->length > ZSTD_COMPRESSBOUND((uint64_t)c->nonzero *
					   s->info.page_size) ||
	    c->length > data_len - c->offset)
		return bad(
			s, -EBADMSG,
			"memory index: chunk %llu stored at %llu+%u is out of place or outside the data section",
			(unsigned long long)i, (unsigned long long)c->offset,
			c->length);
	*next = c->offset + c->length;
	return 0;
}

static int load_index(struct snap *s)
{
	uint64_t i, chunks = s->info.mem.chunks, next = 0;
	size_t esz = entry_size_for(s->pages_per_chunk);
	struct snap_mem_stats *st = &s->info.mem;
	uint8_t *copy;
	int err = 0;

	copy = malloc(s->sec_len[SEC_INDEX] ? s->sec_len[SEC_INDEX] : 1);
	s->chunks = calloc(chunks, sizeof(*s->chunks));
	s->zero_bits = calloc(chunks * s->bitmap_words, sizeof(uint64_t));
	if (!copy || !s->chunks || !s->zero_bits) {
		err = bad(s, -ENOMEM, "out of memory");
		goto out;
	}
	memcpy(copy, s->map + s->sec_off[SEC_INDEX], s->sec_len[SEC_INDEX]);
	if (XXH3_64bits(copy, s->sec_len[SEC_INDEX]) != s->sec_sum[SEC_INDEX]) {
		err = bad(s, -EBADMSG,
			  "memory index checksum mismatch (section corrupt)");
		goto out;
	}
	for (i = 0; i < chunks && !err; i++) {
		const uint8_t *e = copy + i * esz;
		struct chunk *c = &s->chunks[i];
		uint64_t *bits = s->zero_bits + i * s->bitmap_words;
		unsigned int npages, zeros = 0, k;

		npages = (unsigned int)(snap__chunk_len(s, i) /
					s->info.page_size);
		c->offset = get_le64(e + offsetof(struct disk_chunk, offset));
		c->length = get_le32(e + offsetof(struct disk_chunk, length));
		c->checksum =
			get_le64(e + offsetof(struct disk_chunk, checksum));
		if (get_le32(e + offsetof(struct disk_chunk, reserved))) {
			err = bad(
				s, -EBADMSG,
				"memory index: chunk %llu has reserved bits set",
				(unsigned long long)i);
			break;
		}
		for (k = 0; k < s->bitmap_words; k++) {
			uint64_t w =
				get_le64(e + sizeof(struct disk_chunk) + 8 * k);
			/* Bits past the chunk's last page must be clear. */
			uint64_t valid =
				npages >= 64 * (k + 1) ? ~0ULL
				: npages > 64 * k
					? (1ULL << (npages - 64 * k)) - 1
					: 0;

			if (w & ~valid) {
				err = bad(
					s, -EBADMSG,
					"memory index: chunk %llu marks pages beyond its end",
					(unsigned long long)i);
				break;
			}
			bits[k] = w;
			zeros += (unsigned int)__builtin_popcountll(w);
		}
		if (err)
			break;
		c->nonzero = npages - zeros;
		err = check_entry(s, i, c, npages, &next);
		st->zero_pages += zeros;
		st->zero_chunks += !c->nonzero;
		st->raw_bytes += (uint64_t)c->nonzero * s->info.page_size;
		st->stored_bytes +=
			s->info.encoding == SNAP_ENC_RAW
				? (uint64_t)c->nonzero * s->info.page_size
				: c->length;
	}
	if (!err && s->info.encoding == SNAP_ENC_ZSTD &&
	    next != s->sec_len[SEC_DATA])
		err = bad(
			s, -EBADMSG,
			"memory data section has %llu bytes no chunk accounts for",
			(unsigned long long)(s->sec_len[SEC_DATA] - next));
out:
	free(copy);
	return err;
}

int snap__open(const char *path, uint32_t arch, struct snap **out)
{
	uint8_t head[sizeof(snap_magic)];
	struct snap *s;
	struct stat st;
	int err;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path))) {
		free(s);
		pr_err("snapshot %s: out of memory", path);
		return -ENOMEM;
	}
	s->map = MAP_FAILED;
	pthread_mutex_init(&s->lock, NULL);
	s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (s->fd < 0) {
		err = -errno;
		bad(s, err, "%s", strerror(-err));
		goto err;
	}
	if (fstat(s->fd, &st) < 0) {
		err = -errno;
		bad(s, err, "%s", strerror(-err));
		goto err;
	}
	if (!S_ISREG(st.st_mode)) {
		err = bad(s, -EINVAL, "not a regular file");
		goto err;
	}
	s->map_len = (uint64_t)st.st_size;
	s->info.file_size = s->map_len;
	if (s->map_len < HDR_SIZE) {
		/* A short file that is not even a snapshot's beginning is no snapshot. */
		size_t n = (size_t)min_u64(s->map_len, sizeof(head));

		if (pread(s->fd, head, n, 0) != (ssize_t)n ||
		    memcmp(head, snap_magic, n))
			err = bad(s, -EBADMSG, "not a snapshot (bad magic)");
		else
			err = bad(
				s, -ENODATA,
				"truncated: %llu bytes, shorter than the header",
				(unsigned long long)s->map_len);
		goto err;
	}
	s->map = mmap(NULL, s->map_len, PROT_READ, MAP_PRIVATE, s->fd, 0);
	if (s->map == MAP_FAILED) {
		err = -errno;
		bad(s, err, "mmap: %s", strerror(-err));
		goto err;
	}
	err = check_header(s, arch);
	if (!err)
		err = load_states(s);
	if (!err)
		err = load_index(s);
	if (err)
		goto err;
	*out = s;
	return 0;
err:
	snap__close(s);
	return err;
}

void snap__close(struct snap *s)
{
	unsigned int i;

	if (!s)
		return;
	for (i = 0; i < s->nr_dctx; i++)
		ZSTD_freeDCtx(s->dctx[i]);
	pthread_mutex_destroy(&s->lock);
	if (s->map != MAP_FAILED)
		munmap((void *)s->map, s->map_len);
	if (s->fd >= 0)
		close(s->fd);
	free(s->zero_bits);
	free(s->chunks);
	free(s->states);
	free(s->path);
	free(s);
}

const struct snap_info *snap__info(const struct snap *s)
{
	return &s->info;
}

const void *snap__state(const struct snap *s, enum snap_state which,
			size_t *len)
{
	if ((unsigned int)which >= SNAP_NR_STATES) {
		*len = 0;
		return NULL;
	}
	*len = s->sec_len[which];
	return s->states + s->state_off[which];
}

bool snap__chunk_is_zero(const struct snap *s, uint64_t i)
{
	return i < s->info.mem.chunks && !s->chunks[i].nonzero;
}

int snap__raw_image(const struct snap *s, int *fd, uint64_t *offset)
{
	if (s->info.encoding != SNAP_ENC_RAW)
		return -EINVAL;
	*fd = s->fd;
	*offset = s->sec_off[SEC_DATA];
	return 0;
}

static const uint8_t *stored(const struct snap *s, const struct chunk *c)
{
	return s->map + s->sec_off[SEC_DATA] + c->offset;
}

/* Checksum of raw chunk @i's non-zero pages in the file, updating @all as well. */
static uint64_t raw_chunk_sum(const struct snap *s, uint64_t i,
			      XXH3_state_t *one, XXH3_state_t *all)
{
	const uint64_t *bits = chunk_bits(s, i);
	const uint8_t *p = stored(s, &s->chunks[i]);
	unsigned int j, npages = (unsigned int)(snap__chunk_len(s, i) /
						s->info.page_size);

	XXH3_64bits_reset(one);
	for (j = 0; j < npages; j++, p += s->info.page_size) {
		if (test_bit(bits, j))
			continue;
		XXH3_64bits_update(one, p, s->info.page_size);
		if (all)
			XXH3_64bits_update(all, p, s->info.page_size);
	}
	return XXH3_64bits_digest(one);
}

/*
 * A raw image is mapped as it is, so pages the index calls zero must read
 * as zero in the file too. Holes are skipped without reading them.
 */
static int check_raw_holes(struct snap *s)
{
	uint64_t start = s->sec_off[SEC_DATA];
	uint64_t end = start + s->sec_len[SEC_DATA];
	uint64_t pos = start, ps = s->info.page_size;

	while (pos < end) {
		off_t data = lseek(s->fd, (off_t)pos, SEEK_DATA);
		off_t hole;
		uint64_t p;

		if (data < 0 && errno == ENXIO)
			break;
		/* No SEEK_DATA here: treat everything as data. */
		if (data < 0)
			data = (off_t)pos;
		if ((uint64_t)data >= end)
			break;
		hole = lseek(s->fd, data, SEEK_HOLE);
		if (hole < 0 || (uint64_t)hole > end)
			hole = (off_t)end;
		for (p = ALIGN_DOWN((uint64_t)data - start, ps);
		     p < (uint64_t)hole - start; p += ps) {
			uint64_t i = p / s->info.chunk_size;
			unsigned int j =
				(unsigned int)(p % s->info.chunk_size / ps);

			if (test_bit(chunk_bits(s, i), j) &&
			    !snap__page_is_zero(s->map + start + p, ps))
				return bad(
					s, -EBADMSG,
					"memory data: chunk %llu page %u is recorded as zero but holds data",
					(unsigned long long)i, j);
		}
		pos = (uint64_t)hole;
	}
	return 0;
}

void snap__memory_verified(struct snap *s)
{
	s->mem_verified = true;
}

int snap__verify_memory(struct snap *s)
{
	XXH3_state_t *all, *one;
	uint64_t i;
	int err = 0;

	if (s->mem_verified)
		return 0;
	all = XXH3_createState();
	one = XXH3_createState();

	if (!all || !one) {
		err = bad(s, -ENOMEM, "out of memory");
		goto out;
	}
	XXH3_64bits_reset(all);
	for (i = 0; i < s->info.mem.chunks; i++) {
		const struct chunk *c = &s->chunks[i];
		uint64_t sum;

		if (!c->nonzero)
			continue;
		if (s->info.encoding == SNAP_ENC_RAW) {
			sum = raw_chunk_sum(s, i, one, all);
		} else {
			sum = XXH3_64bits(stored(s, c), c->length);
			XXH3_64bits_update(all, stored(s, c), c->length);
		}
		if (sum != c->checksum) {
			err = bad(
				s, -EBADMSG,
				"memory data: chunk %llu checksum mismatch (chunk corrupt)",
				(unsigned long long)i);
			goto out;
		}
	}
	if (XXH3_64bits_digest(all) != s->sec_sum[SEC_DATA]) {
		err = bad(s, -EBADMSG,
			  "memory data checksum mismatch (section corrupt)");
		goto out;
	}
	if (s->info.encoding == SNAP_ENC_RAW)
		err = check_raw_holes(s);
	s->mem_verified = !err;
out:
	XXH3_freeState(one);
	XXH3_freeState(all);
	return err;
}

static ZSTD_DCtx *get_dctx(struct snap *s)
{
	ZSTD_DCtx *d = NULL;

	pthread_mutex_lock(&s->lock);
	if (s->nr_dctx)
		d = s->dctx[--s->nr_dctx];
	pthread_mutex_unlock(&s->lock);
	return d ? d : ZSTD_createDCtx();
}

static void put_dctx(struct snap *s, ZSTD_DCtx *d)
{
	pthread_mutex_lock(&s->lock);
	if (s->nr_dctx < DCTX_POOL) {
		s->dctx[s->nr_dctx++] = d;
		d = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	ZSTD_freeDCtx(d);
}

/*
 * Moves the packed non-zero pages at the start of @dst to their places and
 * zero-fills the zero pages. Going from the last page down, a packed page
 * always moves up (or stays), past every packed page still to move.
 */
static void scatter(const struct snap *s, uint64_t i, uint8_t *dst)
{
	const uint64_t *bits = chunk_bits(s, i);
	size_t ps = s->info.page_size;
	unsigned int p = (unsigned int)(snap__chunk_len(s, i) / ps);
	unsigned int k = s->chunks[i].nonzero;

	while (p--) {
		if (test_bit(bits, p)) {
			memset(dst + p * ps, 0, ps);
			continue;
		}
		if (--k != p)
			memcpy(dst + p * ps, dst + k * ps, ps);
	}
}

static int read_zstd(struct snap *s, uint64_t i, uint8_t *dst)
{
	const struct chunk *c = &s->chunks[i];
	const uint8_t *src = stored(s, c);
	size_t want = (size_t)c->nonzero * s->info.page_size, n;
	ZSTD_DCtx *d;

	if (XXH3_64bits(src, c->length) != c->checksum)
		return bad(
			s, -EBADMSG,
			"memory data: chunk %llu checksum mismatch (chunk corrupt)",
			(unsigned long long)i);
	if (ZSTD_findFrameCompressedSize(src, c->length) != c->length)
		return bad(s, -EBADMSG,
			   "memory data: chunk %llu is not one zstd frame",
			   (unsigned long long)i);
	d = get_dctx(s);
	if (!d)
		return bad(s, -ENOMEM, "out of memory");
	n = ZSTD_decompressDCtx(d, dst, want, src, c->length);
	put_dctx(s, d);
	if (ZSTD_isError(n))
		return bad(s, -EBADMSG, "memory data: chunk %llu: zstd: %s",
			   (unsigned long long)i, ZSTD_getErrorName(n));
	if (n != want)
		return bad(
			s, -EBADMSG,
			"memory data: chunk %llu decodes to %zu bytes, not %zu",
			(unsigned long long)i, n, want);
	scatter(s, i, dst);
	return 0;
}

/* Copies first, then checks the copy: the file may change under the mapping. */
static int read_raw(struct snap *s, uint64_t i, uint8_t *dst)
{
	const uint64_t *bits = chunk_bits(s, i);
	const uint8_t *src = stored(s, &s->chunks[i]);
	size_t ps = s->info.page_size;
	unsigned int j, npages = (unsigned int)(snap__chunk_len(s, i) / ps);
	XXH3_state_t *sum = XXH3_createState();

	if (!sum)
		return bad(s, -ENOMEM, "out of memory");
	XXH3_64bits_reset(sum);
	for (j = 0; j < npages; j++) {
		if (test_bit(bits, j)) {
			memset(dst + j * ps, 0, ps);
			continue;
		}
		memcpy(dst + j * ps, src + j * ps, ps);
		XXH3_64bits_update(sum, dst + j * ps, ps);
	}
	if (XXH3_64bits_digest(sum) != s->chunks[i].checksum) {
		XXH3_freeState(sum);
		return bad(
			s, -EBADMSG,
			"memory data: chunk %llu checksum mismatch (chunk corrupt)",
			(unsigned long long)i);
	}
	XXH3_freeState(sum);
	return 0;
}

int snap__read_chunk(struct snap *s, uint64_t i, void *dst)
{
	if (i >= s->info.mem.chunks)
		return bad(s, -EINVAL, "no chunk %llu", (unsigned long long)i);
	if (!s->chunks[i].nonzero) {
		memset(dst, 0, snap__chunk_len(s, i));
		return 0;
	}
	if (s->info.encoding == SNAP_ENC_RAW)
		return read_raw(s, i, dst);
	return read_zstd(s, i, dst);
}
