// SPDX-License-Identifier: Apache-2.0
// snapshot analyze: hashes every guest page of one or more snapshots and measures what sharing and compression would save.
#define ZDICT_STATIC_LINKING_ONLY
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>
#include <zdict.h>
#include <zstd.h>

#include "../vmm/log.h"
#include "analyze.h"
#include "snap.h"

/* What one read of a snapshot does; the base is read up to three times. */
enum {
	SCAN_HASH = 1 << 0, /* page hashes, zero pages, same-address pages */
	SCAN_LEVELS = 1 << 1, /* compressed size at each level */
	SCAN_SAMPLE = 1 << 2, /* gather the dictionary's training pages */
	SCAN_DICT = 1 << 3, /* compressed size with the dictionary */
};

/* One snapshot's pages and chunks as hashes. */
struct pages {
	XXH128_hash_t
		*nonzero; /* non-zero pages' hashes, sorted after scanning */
	uint64_t nr; /* entries in nonzero */
	uint64_t cap;
	XXH128_hash_t *chunks; /* chunks holding a non-zero page, sorted after */
	uint64_t nr_chunks;
};

/* The ANALYZE_CHUNK_SIZE window of the linear image being read. */
struct window {
	uint64_t no; /* which one */
	uint8_t *buf; /* its non-zero pages, in order */
	size_t len;
	/*
	 * Its identity: the hashes of its non-zero pages with their places in
	 * it, which determine its bytes without hashing its zero pages.
	 */
	XXH3_state_t *id;
};

/* The first snapshot, page by page, for same-address comparisons and dictionary samples. */
struct base_map {
	const struct snap_info *info; /* valid while the base's figures are */
	struct snap_region regions[SNAP_MAX_REGIONS];
	unsigned int nr_regions;
	uint32_t page_size;
	XXH128_hash_t *hash; /* per page of the linear image */
	uint8_t *zero; /* per page: 1 when zero */
	uint64_t pages;
};

struct sampler {
	XXH128_hash_t *distinct; /* the base's distinct contents, sorted */
	uint64_t nr_distinct;
	uint8_t *taken; /* per distinct content */
	uint64_t stride; /* take every stride-th new content */
	uint64_t seen;
	uint8_t *buf;
	size_t *sizes;
	uint64_t nr; /* samples in buf */
	uint64_t max; /* room in buf, in samples */
};

struct ctx {
	const struct analyze_opts *opts;
	struct base_map base;
	struct sampler sampler;
	ZSTD_CCtx *cctx; /* plain levels */
	ZSTD_CCtx *page_cctx; /* each page on its own, ANALYZE_DICT_LEVEL */
	ZSTD_CCtx *dict_cctx; /* with the dictionary */
	ZSTD_CDict *cdict;
	void *out; /* compression output, one window's bound */
	size_t out_cap;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static bool hash_eq(XXH128_hash_t a, XXH128_hash_t b)
{
	return a.low64 == b.low64 && a.high64 == b.high64;
}

static int cmp_hash(const void *a, const void *b)
{
	return XXH128_cmp(a, b);
}

/* The guest physical address of byte @off of @info's linear image. */
static uint64_t linear_to_gpa(const struct snap_info *info, uint64_t off)
{
	unsigned int i;

	for (i = 0; i < info->nr_regions; i++) {
		if (off < info->regions[i].size)
			return info->regions[i].gpa + off;
		off -= info->regions[i].size;
	}
	return UINT64_MAX;
}

/* The base's page index at @gpa, or UINT64_MAX when the base has no memory there. */
static uint64_t base_page_at(const struct base_map *b, uint64_t gpa)
{
	uint64_t off = 0;
	unsigned int i;

	for (i = 0; i < b->nr_regions; i++) {
		const struct snap_region *r = &b->regions[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return (off + gpa - r->gpa) / b->page_size;
		off += r->size;
	}
	return UINT64_MAX;
}

/* The index of @h in the sorted distinct array, or UINT64_MAX. */
static uint64_t find_distinct(const struct sampler *sm, XXH128_hash_t h)
{
	uint64_t lo = 0, hi = sm->nr_distinct;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = XXH128_cmp(&sm->distinct[mid], &h);

		if (!c)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return UINT64_MAX;
}

static int compress_window(struct ctx *c, unsigned int flags,
			   struct analyze_snap *r, const void *src, size_t len)
{
	unsigned int i;
	size_t n;

	for (i = 0; (flags & SCAN_LEVELS) && i < c->opts->nr_levels; i++) {
		n = ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel,
					   c->opts->levels[i]);
		if (!ZSTD_isError(n))
			n = ZSTD_compress2(c->cctx, c->out, c->out_cap, src,
					   len);
		if (ZSTD_isError(n))
			goto fail;
		r->zstd_bytes[i] += n;
	}
	if ((flags & SCAN_DICT) && c->cdict) {
		n = ZSTD_compress2(c->dict_cctx, c->out, c->out_cap, src, len);
		if (ZSTD_isError(n))
			goto fail;
		r->dict_bytes += n;
	}
	return 0;
fail:
	pr_err("snapshot %s: zstd: %s", r->path, ZSTD_getErrorName(n));
	return -ENOMEM;
}

/* Each page as its own frame, as a page-granular store would keep it. */
static int compress_page(struct ctx *c, unsigned int flags,
			 struct analyze_snap *r, const void *src, size_t len)
{
	size_t n = 0;

	if (flags & SCAN_LEVELS) {
		n = ZSTD_compress2(c->page_cctx, c->out, c->out_cap, src, len);
		if (ZSTD_isError(n))
			goto fail;
		r->page_zstd_bytes += n;
	}
	if ((flags & SCAN_DICT) && c->cdict) {
		n = ZSTD_compress2(c->dict_cctx, c->out, c->out_cap, src, len);
		if (ZSTD_isError(n))
			goto fail;
		r->page_dict_bytes += n;
	}
	return 0;
fail:
	pr_err("snapshot %s: zstd: %s", r->path, ZSTD_getErrorName(n));
	return -ENOMEM;
}

/* Adds the page at place @j of the window, with content hash @h, to its identity. */
static int window_add(struct window *w, uint32_t j, XXH128_hash_t h)
{
	XXH128_canonical_t canon;

	XXH128_canonicalFromHash(&canon, h);
	if (XXH3_128bits_update(w->id, &j, sizeof(j)) != XXH_OK ||
	    XXH3_128bits_update(w->id, &canon, sizeof(canon)) != XXH_OK)
		return -ENOMEM;
	return 0;
}

static int flush_window(struct ctx *c, unsigned int flags,
			struct analyze_snap *r, struct pages *pg,
			struct window *w)
{
	int err;

	if (!w->len)
		return 0;
	err = compress_window(c, flags, r, w->buf, w->len);
	if (err)
		return err;
	if (flags & SCAN_HASH)
		pg->chunks[pg->nr_chunks++] = XXH3_128bits_digest(w->id);
	w->len = 0;
	return XXH3_128bits_reset(w->id) == XXH_OK ? 0 : -ENOMEM;
}

/* One page of the base as a dictionary sample, if its content is new and its turn has come. */
static void sample_page(struct sampler *sm, const uint8_t *pg, size_t ps,
			XXH128_hash_t h)
{
	uint64_t i = find_distinct(sm, h);

	if (i == UINT64_MAX || sm->taken[i] || sm->nr == sm->max)
		return;
	sm->taken[i] = 1;
	if (sm->seen++ % sm->stride)
		return;
	memcpy(sm->buf + sm->nr * ps, pg, ps);
	sm->sizes[sm->nr++] = ps;
}

/*
 * Reads the snapshot @r->path chunk by chunk and does what @flags ask; with
 * SCAN_HASH, @idx 0 fills the base map and others compare with it.
 */
static int scan(struct ctx *c, unsigned int flags, unsigned int idx,
		struct analyze_snap *r, struct pages *pg)
{
	const struct snap_info *info;
	struct window w = { 0 };
	uint8_t *chunk = NULL;
	uint64_t i, p, chunk_pages;
	size_t ps, win_size;
	struct snap *s;
	double t0 = now_ms();
	int err;

	err = snap__open(r->path, 0, &s);
	if (err)
		return err;
	info = snap__info(s);
	ps = info->page_size;
	chunk_pages = info->chunk_size / ps;
	win_size = ANALYZE_CHUNK_SIZE;
	if (ps > win_size || win_size % ps) {
		pr_err("snapshot %s: pages of %zu bytes do not tile %zu-byte windows",
		       r->path, ps, win_size);
		err = -EINVAL;
		goto out;
	}
	if (flags & SCAN_HASH) {
		r->arch = info->arch;
		r->page_size = info->page_size;
		r->encoding = info->encoding;
		r->level = info->level;
		r->mem_size = info->mem_size;
		r->file_size = info->file_size;
		r->stored_bytes = info->mem.stored_bytes;
		r->pages = info->mem.pages;
		/* The index's zero pages are zero; other pages may read as zero too. */
		pg->cap = info->mem.pages - info->mem.zero_pages;
		pg->nonzero =
			malloc((pg->cap ? pg->cap : 1) * sizeof(*pg->nonzero));
		pg->chunks = malloc((info->mem_size / win_size + 1) *
				    sizeof(*pg->chunks));
		err = pg->nonzero && pg->chunks ? 0 : -ENOMEM;
		if (!err && idx == 0) {
			struct base_map *b = &c->base;

			b->nr_regions = info->nr_regions;
			memcpy(b->regions, info->regions, sizeof(b->regions));
			b->page_size = info->page_size;
			b->pages = info->mem.pages;
			b->hash = malloc(b->pages * sizeof(*b->hash));
			b->zero = calloc(b->pages, 1);
			if (!b->hash || !b->zero)
				err = -ENOMEM;
		}
		if (err)
			goto out;
	}
	chunk = malloc(info->chunk_size);
	w.buf = malloc(win_size);
	w.id = XXH3_createState();
	if (!chunk || !w.buf || !w.id || XXH3_128bits_reset(w.id) != XXH_OK) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < info->mem.chunks; i++) {
		uint64_t n = snap__chunk_len(s, i) / ps, j;

		if (snap__chunk_is_zero(s, i)) {
			if (flags & SCAN_HASH) {
				r->zero_pages += n;
				for (j = 0; idx == 0 && j < n; j++)
					c->base.zero[i * chunk_pages + j] = 1;
			}
			continue;
		}
		err = snap__read_chunk(s, i, chunk);
		if (err)
			goto out;
		for (j = 0; j < n; j++) {
			const uint8_t *page = chunk + j * ps;
			XXH128_hash_t h;

			p = i * chunk_pages + j;
			if (p * ps / win_size != w.no) {
				err = flush_window(c, flags, r, pg, &w);
				if (err)
					goto out;
				w.no = p * ps / win_size;
			}
			if (snap__page_is_zero(page, ps)) {
				if (flags & SCAN_HASH) {
					r->zero_pages++;
					if (idx == 0)
						c->base.zero[p] = 1;
				}
				continue;
			}
			memcpy(w.buf + w.len, page, ps);
			w.len += ps;
			err = compress_page(c, flags, r, page, ps);
			if (err)
				goto out;
			if (!(flags & (SCAN_HASH | SCAN_SAMPLE)))
				continue;
			h = XXH3_128bits(page, ps);
			if (flags & SCAN_SAMPLE)
				sample_page(&c->sampler, page, ps, h);
			if (!(flags & SCAN_HASH))
				continue;
			if (window_add(&w,
				       (uint32_t)(p - w.no * (win_size / ps)),
				       h)) {
				err = -ENOMEM;
				goto out;
			}
			if (pg->nr == pg->cap) {
				/* snap__read_chunk() zero-fills the index's zero pages. */
				pr_err("snapshot %s: more non-zero pages than its index records",
				       r->path);
				err = -EBADMSG;
				goto out;
			}
			pg->nonzero[pg->nr++] = h;
			if (idx == 0) {
				c->base.hash[p] = h;
				r->same_addr_pages++;
			} else {
				uint64_t b = base_page_at(
					&c->base, linear_to_gpa(info, p * ps));

				if (b != UINT64_MAX && !c->base.zero[b] &&
				    hash_eq(c->base.hash[b], h))
					r->same_addr_pages++;
			}
		}
	}
	err = flush_window(c, flags, r, pg, &w);
	if (!err && (flags & SCAN_HASH))
		r->nonzero_pages = pg->nr;
out:
	XXH3_freeState(w.id);
	free(w.buf);
	free(chunk);
	snap__close(s);
	r->ms += now_ms() - t0;
	return err;
}

/* Zero, unique and duplicated pages from the sorted hashes. */
static void count_dups(struct analyze_snap *r, struct pages *pg)
{
	uint64_t i, run;

	qsort(pg->nonzero, pg->nr, sizeof(*pg->nonzero), cmp_hash);
	for (i = 0; i < pg->nr; i += run) {
		for (run = 1; i + run < pg->nr &&
			      hash_eq(pg->nonzero[i], pg->nonzero[i + run]);
		     run++)
			;
		r->distinct++;
		if (run == 1) {
			r->unique_pages++;
		} else {
			r->dup_pages += run;
			r->dup_contents++;
		}
	}
	r->dup_saved = r->dup_pages - r->dup_contents;
	qsort(pg->chunks, pg->nr_chunks, sizeof(*pg->chunks), cmp_hash);
	r->nonzero_chunks = pg->nr_chunks;
	for (i = 0; i < pg->nr_chunks; i++)
		if (!i || !hash_eq(pg->chunks[i], pg->chunks[i - 1]))
			r->distinct_chunks++;
}

struct tagged {
	XXH128_hash_t h;
	uint32_t snap;
};

static int cmp_tagged(const void *a, const void *b)
{
	return XXH128_cmp(&((const struct tagged *)a)->h,
			  &((const struct tagged *)b)->h);
}

/* Set-wide distinct contents, and each snapshot's pages shared with another. */
static int count_shared(struct analyze *a, struct pages *pgs)
{
	struct tagged *all;
	XXH128_hash_t *shared;
	uint64_t total = 0, n = 0, nr_shared = 0, i, run;
	unsigned int k;

	for (k = 0; k < a->set.nr; k++)
		total += a->snaps[k].distinct;
	all = malloc((total ? total : 1) * sizeof(*all));
	shared = malloc((total ? total : 1) * sizeof(*shared));
	if (!all || !shared) {
		free(all);
		free(shared);
		return -ENOMEM;
	}
	for (k = 0; k < a->set.nr; k++)
		for (i = 0; i < pgs[k].nr; i++)
			if (!i ||
			    !hash_eq(pgs[k].nonzero[i], pgs[k].nonzero[i - 1]))
				all[n++] =
					(struct tagged){ pgs[k].nonzero[i], k };
	qsort(all, n, sizeof(*all), cmp_tagged);
	/* Each snapshot lists a content once, so a run's length is how many hold it. */
	for (i = 0; i < n; i += run) {
		for (run = 1; i + run < n && hash_eq(all[i].h, all[i + run].h);
		     run++)
			;
		a->set.distinct++;
		if (run > 1)
			shared[nr_shared++] = all[i].h;
	}
	a->set.shared_contents = nr_shared;
	for (k = 0; k < a->set.nr; k++) {
		uint64_t j = 0;

		a->set.nonzero_pages += a->snaps[k].nonzero_pages;
		/* Both sorted: one merge-like walk. */
		for (i = 0; i < pgs[k].nr; i++) {
			while (j < nr_shared &&
			       XXH128_cmp(&shared[j], &pgs[k].nonzero[i]) < 0)
				j++;
			if (j < nr_shared &&
			    hash_eq(shared[j], pgs[k].nonzero[i]))
				a->snaps[k].shared_pages++;
		}
	}
	free(shared);
	free(all);
	return 0;
}

/* Distinct chunks over the set: what a store of ANALYZE_CHUNK_SIZE chunks would keep. */
static int count_chunks(struct analyze *a, struct pages *pgs)
{
	XXH128_hash_t *all;
	uint64_t n = 0, i;
	unsigned int k;

	for (k = 0; k < a->set.nr; k++)
		a->set.nonzero_chunks += pgs[k].nr_chunks;
	all = malloc((a->set.nonzero_chunks ? a->set.nonzero_chunks : 1) *
		     sizeof(*all));
	if (!all)
		return -ENOMEM;
	for (k = 0; k < a->set.nr; k++)
		for (i = 0; i < pgs[k].nr_chunks; i++)
			all[n++] = pgs[k].chunks[i];
	qsort(all, n, sizeof(*all), cmp_hash);
	for (i = 0; i < n; i++)
		if (!i || !hash_eq(all[i], all[i - 1]))
			a->set.distinct_chunks++;
	free(all);
	return 0;
}

/*
 * Trains the dictionary on distinct non-zero pages of the base (every
 * stride-th one when they exceed ANALYZE_DICT_SAMPLE_BYTES). A failure to
 * train is a finding, left in set.dict_error; only -ENOMEM and read errors
 * are returned.
 */
static int train(struct ctx *c, struct analyze *a, struct pages *base_pg)
{
	struct sampler *sm = &c->sampler;
	struct analyze_snap *r = &a->snaps[0];
	uint64_t ps = r->page_size, i, n = 0;
	struct analyze_snap scratch = { .path = r->path };
	void *dict = NULL;
	double t0 = now_ms();
	size_t len;
	int err = -ENOMEM;

	sm->distinct =
		malloc((base_pg->nr ? base_pg->nr : 1) * sizeof(*sm->distinct));
	sm->taken = calloc(r->distinct ? r->distinct : 1, 1);
	if (!sm->distinct || !sm->taken)
		goto out;
	for (i = 0; i < base_pg->nr; i++)
		if (!i ||
		    !hash_eq(base_pg->nonzero[i], base_pg->nonzero[i - 1]))
			sm->distinct[n++] = base_pg->nonzero[i];
	sm->nr_distinct = n;
	sm->max = ANALYZE_DICT_SAMPLE_BYTES / ps;
	sm->stride = (n + sm->max - 1) / sm->max;
	if (!sm->stride)
		sm->stride = 1;
	if (sm->max > n)
		sm->max = n;
	sm->buf = malloc((sm->max ? sm->max : 1) * ps);
	sm->sizes = malloc((sm->max ? sm->max : 1) * sizeof(*sm->sizes));
	dict = malloc(ANALYZE_DICT_CAPACITY);
	if (!sm->buf || !sm->sizes || !dict)
		goto out;
	err = scan(c, SCAN_SAMPLE, 0, &scratch, NULL);
	if (err)
		goto out;
	a->set.dict_samples = sm->nr;
	len = ZDICT_trainFromBuffer(dict, ANALYZE_DICT_CAPACITY, sm->buf,
				    sm->sizes, (unsigned int)sm->nr);
	a->set.dict_ms = now_ms() - t0;
	if (ZDICT_isError(len)) {
		a->set.dict_error = ZDICT_getErrorName(len);
		goto out;
	}
	c->cdict = ZSTD_createCDict(dict, len, ANALYZE_DICT_LEVEL);
	c->dict_cctx = ZSTD_createCCtx();
	if (!c->cdict || !c->dict_cctx ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c->dict_cctx,
						ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_refCDict(c->dict_cctx, c->cdict))) {
		err = -ENOMEM;
		goto out;
	}
	a->set.dict_ok = true;
	a->set.dict_size = len;
out:
	free(dict);
	free(sm->buf);
	free(sm->sizes);
	free(sm->taken);
	free(sm->distinct);
	memset(sm, 0, sizeof(*sm));
	return err;
}

static int check_opts(const struct analyze_opts *o, unsigned int nr)
{
	unsigned int i;

	if (!nr || o->nr_levels > ANALYZE_MAX_LEVELS)
		return -EINVAL;
	for (i = 0; i < o->nr_levels; i++)
		if (o->levels[i] < 1 || o->levels[i] > ZSTD_maxCLevel())
			return -EINVAL;
	return 0;
}

int analyze__run(const char *const *paths, unsigned int nr,
		 const struct analyze_opts *opts, struct analyze **out)
{
	struct ctx c = { .opts = opts };
	struct pages *pgs = NULL;
	struct analyze *a;
	double t0 = now_ms();
	unsigned int k;
	int err;

	if (check_opts(opts, nr)) {
		pr_err("analyze: bad options");
		return -EINVAL;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->opts = *opts;
	a->set.nr = nr;
	a->snaps = calloc(nr, sizeof(*a->snaps));
	pgs = calloc(nr, sizeof(*pgs));
	c.cctx = ZSTD_createCCtx();
	c.page_cctx = ZSTD_createCCtx();
	c.out_cap = ZSTD_compressBound(ANALYZE_CHUNK_SIZE);
	c.out = malloc(c.out_cap);
	err = -ENOMEM;
	if (!a->snaps || !pgs || !c.cctx || !c.page_cctx || !c.out)
		goto out;
	/* As the snapshot writer frames its chunks. */
	if (ZSTD_isError(
		    ZSTD_CCtx_setParameter(c.cctx, ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c.page_cctx,
						ZSTD_c_checksumFlag, 0)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(
		    c.page_cctx, ZSTD_c_compressionLevel, ANALYZE_DICT_LEVEL)))
		goto out;
	for (k = 0; k < nr; k++)
		a->snaps[k].path = paths[k];
	err = scan(&c, SCAN_HASH | SCAN_LEVELS, 0, &a->snaps[0], &pgs[0]);
	if (err)
		goto out;
	count_dups(&a->snaps[0], &pgs[0]);
	if (opts->dict) {
		err = train(&c, a, &pgs[0]);
		if (!err && c.cdict)
			err = scan(&c, SCAN_DICT, 0, &a->snaps[0], NULL);
		if (err)
			goto out;
	}
	for (k = 1; k < nr; k++) {
		err = scan(&c, SCAN_HASH | SCAN_LEVELS | SCAN_DICT, k,
			   &a->snaps[k], &pgs[k]);
		if (err)
			goto out;
		count_dups(&a->snaps[k], &pgs[k]);
	}
	err = count_shared(a, pgs);
	if (!err)
		err = count_chunks(a, pgs);
out:
	for (k = 0; pgs && k < nr; k++) {
		free(pgs[k].nonzero);
		free(pgs[k].chunks);
	}
	free(pgs);
	free(c.base.hash);
	free(c.base.zero);
	free(c.out);
	ZSTD_freeCDict(c.cdict);
	ZSTD_freeCCtx(c.dict_cctx);
	ZSTD_freeCCtx(c.page_cctx);
	ZSTD_freeCCtx(c.cctx);
	if (err) {
		if (err == -ENOMEM)
			pr_err("analyze: out of memory");
		analyze__free(a);
		return err;
	}
	a->set.ms = now_ms() - t0;
	*out = a;
	return 0;
}

void analyze__free(struct analyze *a)
{
	if (!a)
		return;
	free(a->snaps);
	free(a);
}

/* ---- the report ---- */

static double mib(uint64_t bytes)
{
	return (double)bytes / (1 << 20);
}

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

static const char *arch_name(uint32_t arch)
{
	return arch == SNAP_ARCH_ARM64	  ? "arm64"
	       : arch == SNAP_ARCH_X86_64 ? "x86_64"
					  : "unknown";
}

static const char *encoding_name(int e)
{
	return e == SNAP_ENC_ZSTD ? "zstd" : e == SNAP_ENC_RAW ? "raw" : "?";
}

/* A JSON string: the path is the only free text in the report. */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void print_json(const struct analyze *a, FILE *f)
{
	const struct analyze_set *st = &a->set;
	unsigned int k, i;

	fprintf(f, "{\"hash\":\"XXH128\",\"chunk_bytes\":%u,\"levels\":[",
		ANALYZE_CHUNK_SIZE);
	for (i = 0; i < a->opts.nr_levels; i++)
		fprintf(f, "%s%d", i ? "," : "", a->opts.levels[i]);
	fprintf(f, "],\"snapshots\":[");
	for (k = 0; k < st->nr; k++) {
		const struct analyze_snap *r = &a->snaps[k];
		uint64_t nz = r->nonzero_pages * r->page_size;

		fprintf(f, "%s{\"path\":", k ? "," : "");
		json_str(f, r->path);
		fprintf(f,
			",\"arch\":\"%s\",\"encoding\":\"%s\",\"level\":%d,"
			"\"page_size\":%u,\"mem_bytes\":%llu,\"file_bytes\":%llu,"
			"\"stored_bytes\":%llu,\"pages\":%llu,\"zero_pages\":%llu,"
			"\"nonzero_pages\":%llu,\"nonzero_bytes\":%llu,"
			"\"distinct_contents\":%llu,\"unique_pages\":%llu,"
			"\"duplicated_pages\":%llu,\"duplicated_contents\":%llu,"
			"\"duplicates_saved_pages\":%llu,\"shared_pages\":%llu,"
			"\"same_address_as_base_pages\":%llu,"
			"\"nonzero_chunks\":%llu,\"distinct_chunks\":%llu,"
			"\"zstd\":[",
			arch_name(r->arch), encoding_name(r->encoding),
			r->level, r->page_size, (unsigned long long)r->mem_size,
			(unsigned long long)r->file_size,
			(unsigned long long)r->stored_bytes,
			(unsigned long long)r->pages,
			(unsigned long long)r->zero_pages,
			(unsigned long long)r->nonzero_pages,
			(unsigned long long)nz, (unsigned long long)r->distinct,
			(unsigned long long)r->unique_pages,
			(unsigned long long)r->dup_pages,
			(unsigned long long)r->dup_contents,
			(unsigned long long)r->dup_saved,
			(unsigned long long)r->shared_pages,
			(unsigned long long)r->same_addr_pages,
			(unsigned long long)r->nonzero_chunks,
			(unsigned long long)r->distinct_chunks);
		for (i = 0; i < a->opts.nr_levels; i++)
			fprintf(f,
				"%s{\"level\":%d,\"bytes\":%llu,\"ratio\":%.3f}",
				i ? "," : "", a->opts.levels[i],
				(unsigned long long)r->zstd_bytes[i],
				ratio(nz, r->zstd_bytes[i]));
		fprintf(f, "],\"dict\":");
		if (st->dict_ok)
			fprintf(f,
				"{\"level\":%d,\"bytes\":%llu,\"ratio\":%.3f}",
				ANALYZE_DICT_LEVEL,
				(unsigned long long)r->dict_bytes,
				ratio(nz, r->dict_bytes));
		else
			fprintf(f, "null");
		fprintf(f,
			",\"per_page\":{\"level\":%d,\"bytes\":%llu,"
			"\"ratio\":%.3f,\"dict_bytes\":",
			ANALYZE_DICT_LEVEL,
			(unsigned long long)r->page_zstd_bytes,
			ratio(nz, r->page_zstd_bytes));
		if (st->dict_ok)
			fprintf(f, "%llu,\"dict_ratio\":%.3f}",
				(unsigned long long)r->page_dict_bytes,
				ratio(nz, r->page_dict_bytes));
		else
			fprintf(f, "null,\"dict_ratio\":null}");
		fprintf(f, ",\"ms\":%.1f}", r->ms);
	}
	fprintf(f,
		"],\"set\":{\"snapshots\":%u,\"nonzero_pages\":%llu,"
		"\"distinct_contents\":%llu,\"shared_contents\":%llu,"
		"\"saved_pages\":%llu,\"nonzero_mib\":%.2f,\"distinct_mib\":%.2f,"
		"\"ratio\":%.3f,\"nonzero_chunks\":%llu,\"distinct_chunks\":%llu,"
		"\"chunk_ratio\":%.3f},\"dict\":",
		st->nr, (unsigned long long)st->nonzero_pages,
		(unsigned long long)st->distinct,
		(unsigned long long)st->shared_contents,
		(unsigned long long)(st->nonzero_pages - st->distinct),
		mib(st->nonzero_pages * a->snaps[0].page_size),
		mib(st->distinct * a->snaps[0].page_size),
		ratio(st->nonzero_pages, st->distinct),
		(unsigned long long)st->nonzero_chunks,
		(unsigned long long)st->distinct_chunks,
		ratio(st->nonzero_chunks, st->distinct_chunks));
	if (st->dict_ok) {
		fprintf(f, "{\"trained_on\":");
		json_str(f, a->snaps[0].path);
		fprintf(f,
			",\"capacity\":%u,\"bytes\":%llu,"
			"\"samples\":%llu,\"level\":%d,\"ms\":%.1f}",
			ANALYZE_DICT_CAPACITY,
			(unsigned long long)st->dict_size,
			(unsigned long long)st->dict_samples,
			ANALYZE_DICT_LEVEL, st->dict_ms);
	} else if (st->dict_error) {
		fprintf(f, "{\"error\":");
		json_str(f, st->dict_error);
		fprintf(f, "}");
	} else {
		fprintf(f, "null");
	}
	fprintf(f, ",\"ms\":%.1f}\n", st->ms);
}

static void print_text(const struct analyze *a, FILE *f)
{
	const struct analyze_set *st = &a->set;
	unsigned int k, i;

	fprintf(f,
		"page identity: XXH128 of each page; compression: zstd frames of the non-zero pages of each %u KiB chunk of the linear image, as the snapshot writer makes them, and of each page alone\n",
		ANALYZE_CHUNK_SIZE >> 10);
	for (k = 0; k < st->nr; k++) {
		const struct analyze_snap *r = &a->snaps[k];
		uint64_t nz = r->nonzero_pages * r->page_size;

		fprintf(f, "\nsnapshot %u: %s%s\n", k + 1, r->path,
			k || st->nr == 1 ? "" : " (the base)");
		fprintf(f,
			"  %s, %.1f MiB of guest memory; file %.2f MiB, memory stored as %s",
			arch_name(r->arch), mib(r->mem_size), mib(r->file_size),
			encoding_name(r->encoding));
		if (r->encoding == SNAP_ENC_ZSTD)
			fprintf(f, " level %d", r->level);
		fprintf(f, ": %.2f MiB\n", mib(r->stored_bytes));
		fprintf(f,
			"  pages: %llu of %u bytes: %llu zero, %llu non-zero (%.2f MiB)\n",
			(unsigned long long)r->pages, r->page_size,
			(unsigned long long)r->zero_pages,
			(unsigned long long)r->nonzero_pages, mib(nz));
		fprintf(f,
			"  non-zero: %llu distinct contents; %llu pages unique, %llu duplicated within (%llu contents; one copy of each saves %llu pages, %.2f MiB)\n",
			(unsigned long long)r->distinct,
			(unsigned long long)r->unique_pages,
			(unsigned long long)r->dup_pages,
			(unsigned long long)r->dup_contents,
			(unsigned long long)r->dup_saved,
			mib(r->dup_saved * r->page_size));
		if (st->nr > 1) {
			fprintf(f,
				"  across the set: %llu non-zero pages (%.1f%%) also in another snapshot",
				(unsigned long long)r->shared_pages,
				100.0 * ratio(r->shared_pages,
					      r->nonzero_pages));
			if (k)
				fprintf(f,
					"; %llu (%.1f%%) identical at the same address in the base\n",
					(unsigned long long)r->same_addr_pages,
					100.0 * ratio(r->same_addr_pages,
						      r->nonzero_pages));
			else
				fprintf(f, "\n");
		}
		fprintf(f,
			"  %u KiB chunks holding a non-zero page: %llu, %llu distinct\n",
			ANALYZE_CHUNK_SIZE >> 10,
			(unsigned long long)r->nonzero_chunks,
			(unsigned long long)r->distinct_chunks);
		fprintf(f, "  zstd of the non-zero pages:");
		for (i = 0; i < a->opts.nr_levels; i++)
			fprintf(f, "%s level %d %.2f MiB (%.2fx)", i ? "," : "",
				a->opts.levels[i], mib(r->zstd_bytes[i]),
				ratio(nz, r->zstd_bytes[i]));
		if (!a->opts.nr_levels)
			fprintf(f, " not asked for");
		fprintf(f, "\n");
		if (st->dict_ok)
			fprintf(f,
				"  zstd level %d with the base's dictionary%s: %.2f MiB (%.2fx)\n",
				ANALYZE_DICT_LEVEL,
				k ? "" : " (trained on these pages)",
				mib(r->dict_bytes), ratio(nz, r->dict_bytes));
		fprintf(f, "  zstd level %d page by page: %.2f MiB (%.2fx)",
			ANALYZE_DICT_LEVEL, mib(r->page_zstd_bytes),
			ratio(nz, r->page_zstd_bytes));
		if (st->dict_ok)
			fprintf(f, ", with the dictionary %.2f MiB (%.2fx)",
				mib(r->page_dict_bytes),
				ratio(nz, r->page_dict_bytes));
		fprintf(f, "\n  time: %.0f ms\n", r->ms);
	}
	fprintf(f, "\nset of %u snapshot%s:\n", st->nr, st->nr == 1 ? "" : "s");
	fprintf(f,
		"  non-zero pages: %llu (%.2f MiB); distinct contents: %llu (%.2f MiB), %llu of them in 2+ snapshots\n",
		(unsigned long long)st->nonzero_pages,
		mib(st->nonzero_pages * a->snaps[0].page_size),
		(unsigned long long)st->distinct,
		mib(st->distinct * a->snaps[0].page_size),
		(unsigned long long)st->shared_contents);
	fprintf(f,
		"  a content-addressed page store keeps %llu pages instead of %llu: %.2fx fewer, %.2f MiB saved\n",
		(unsigned long long)st->distinct,
		(unsigned long long)st->nonzero_pages,
		ratio(st->nonzero_pages, st->distinct),
		mib((st->nonzero_pages - st->distinct) *
		    a->snaps[0].page_size));
	fprintf(f,
		"  a content-addressed store of %u KiB chunks keeps %llu chunks instead of %llu: %.2fx fewer\n",
		ANALYZE_CHUNK_SIZE >> 10,
		(unsigned long long)st->distinct_chunks,
		(unsigned long long)st->nonzero_chunks,
		ratio(st->nonzero_chunks, st->distinct_chunks));
	if (st->dict_ok)
		fprintf(f,
			"  dictionary: %llu bytes trained on %llu distinct pages of the base in %.0f ms\n",
			(unsigned long long)st->dict_size,
			(unsigned long long)st->dict_samples, st->dict_ms);
	else if (st->dict_error)
		fprintf(f, "  dictionary: none (training failed: %s)\n",
			st->dict_error);
	fprintf(f, "  time: %.0f ms\n", st->ms);
}

int analyze__print(const struct analyze *a, FILE *f, bool json)
{
	if (json)
		print_json(a, f);
	else
		print_text(a, f);
	return fflush(f) || ferror(f) ? -EIO : 0;
}
