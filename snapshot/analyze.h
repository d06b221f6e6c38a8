/* SPDX-License-Identifier: Apache-2.0 */
/* Page-level analysis of snapshots' guest memory: zero, duplicate and shared pages, compressibility. */
#ifndef SANDBOX_ANALYZE_H
#define SANDBOX_ANALYZE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../vmm/util.h"

/*
 * docs/snapshot-analyze.md explains the figures. A page's identity is the
 * XXH128 of its bytes; two pages are "the same content" when their hashes
 * are equal (a collision among 2^20 pages has odds near 2^-88).
 */

#define ANALYZE_MAX_LEVELS 8
/* What a content-addressed store or a pager would compress as one unit. */
#define ANALYZE_CHUNK_SIZE (64U << 10)
#define ANALYZE_DICT_CAPACITY (110U << 10) /* zstd's CLI default */
/* The level of the dictionary figures: the snapshot writer's default. */
#define ANALYZE_DICT_LEVEL 3
/*
 * At most this many bytes of distinct pages train the dictionary: zstd
 * advises about 100x the dictionary's size, and more only costs time.
 */
#define ANALYZE_DICT_SAMPLE_BYTES (32U << 20)

struct analyze_opts {
	int levels[ANALYZE_MAX_LEVELS]; /* zstd levels, 1..19 */
	unsigned int nr_levels; /* 0..ANALYZE_MAX_LEVELS */
	bool dict; /* train a dictionary on the first snapshot */
};

/* The figures for one snapshot; page counts are in pages of page_size. */
struct analyze_snap {
	const char *path; /* the caller's string */
	uint32_t arch;
	uint32_t page_size;
	int encoding; /* enum snap_encoding */
	int level; /* the writer's zstd level, 0 for raw */
	uint64_t mem_size; /* bytes of guest memory */
	uint64_t file_size;
	uint64_t stored_bytes; /* the memory data as stored (raw: non-zero pages) */
	uint64_t pages;
	uint64_t zero_pages;
	uint64_t nonzero_pages;
	uint64_t distinct; /* distinct non-zero contents */
	uint64_t unique_pages; /* non-zero pages whose content occurs once here */
	uint64_t dup_pages; /* pages whose content occurs more than once here */
	uint64_t dup_contents; /* distinct contents among dup_pages */
	/* dup_pages - dup_contents: what keeping one copy of each would save. */
	uint64_t dup_saved;
	/* Non-zero pages whose content occurs in another snapshot of the set. */
	uint64_t shared_pages;
	/*
	 * Non-zero pages equal to the first snapshot's page at the same guest
	 * physical address (for the first snapshot itself: all of them).
	 */
	uint64_t same_addr_pages;
	/* ANALYZE_CHUNK_SIZE windows of the linear image with a non-zero page. */
	uint64_t nonzero_chunks;
	uint64_t distinct_chunks; /* of those, distinct contents */
	/*
	 * zstd frames of each window's non-zero pages (the snapshot writer's
	 * frames for 64 KiB chunks), per opts.levels[].
	 */
	uint64_t zstd_bytes[ANALYZE_MAX_LEVELS];
	/* The same at ANALYZE_DICT_LEVEL with the dictionary; 0 without one. */
	uint64_t dict_bytes;
	/* One frame per non-zero page, at ANALYZE_DICT_LEVEL: without, with the dictionary. */
	uint64_t page_zstd_bytes;
	uint64_t page_dict_bytes;
	double ms; /* reading, hashing and compressing this snapshot */
};

/* The figures for the set of snapshots together. */
struct analyze_set {
	unsigned int nr;
	uint64_t nonzero_pages; /* summed over the snapshots */
	uint64_t distinct; /* distinct non-zero contents over all of them */
	/* Pages of content present in 2 or more snapshots, counted once. */
	uint64_t shared_contents;
	uint64_t nonzero_chunks; /* summed over the snapshots */
	uint64_t distinct_chunks; /* over all of them */
	bool dict_ok; /* a dictionary was trained */
	const char *dict_error; /* why not, when asked for and !dict_ok */
	uint64_t dict_size; /* bytes */
	uint64_t dict_samples; /* pages it was trained on */
	double dict_ms; /* training time */
	double ms; /* the whole analysis */
};

struct analyze {
	struct analyze_opts opts;
	struct analyze_snap *snaps; /* nr of them, in the caller's order */
	struct analyze_set set;
};

/*
 * Analyzes the snapshots at @paths[0..@nr) (@nr >= 1; the first is the
 * base for same-address and dictionary figures), reading each chunk by
 * chunk through snap__read_chunk() (checksums checked); only per-page
 * hashes and one chunk at a time stay in memory, besides the dictionary's
 * training sample. Snapshots of any arch are read; their page sizes must
 * equal the host's (snap__open()). @paths must outlive *@out. Returns 0 and
 * the result in *@out (free with analyze__free()), or -errno after logging:
 * snap__open()'s errors, -EBADMSG for a chunk that fails its checksum,
 * -EINVAL for bad options, -ENOMEM. A dictionary that cannot be trained is
 * not an error: set.dict_error says why.
 */
int analyze__run(const char *const *paths, unsigned int nr,
		 const struct analyze_opts *opts,
		 struct analyze **out) __must_check;

/* Releases what analyze__run() returned. NULL-safe. */
void analyze__free(struct analyze *a);

/*
 * Prints @a to @f: a human-readable report, or with @json one JSON object
 * (docs/snapshot-analyze.md lists its keys). Returns 0, or -EIO when
 * writing failed.
 */
int analyze__print(const struct analyze *a, FILE *f, bool json) __must_check;

#endif
