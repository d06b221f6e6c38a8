/* SPDX-License-Identifier: Apache-2.0 */
/* The snapshot file: header, checksummed sections, and guest memory in zstd chunks. */
#ifndef SANDBOX_SNAP_H
#define SANDBOX_SNAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../vmm/util.h"

/*
 * docs/snapshot-format.md specifies the layout. In short: a fixed header
 * (magic, version, arch, page size, chunk size, memory layout, section
 * table), then the sections, each checksummed with XXH3-64. Guest memory is
 * one linear image (the regions laid end to end) cut into chunks of
 * chunk_size bytes; the memory index records per chunk where its stored
 * bytes are and a bitmap of its zero pages. Zero pages are never stored.
 */

#define SNAP_VERSION 1
#define SNAP_MAX_REGIONS 4
/* The largest guest memory image a snapshot may describe. */
#define SNAP_MAX_MEM_SIZE (256ULL << 30)
/* The largest non-memory section (vCPU, irqchip, device state, config). */
#define SNAP_MAX_STATE_SIZE (16U << 20)
#define SNAP_DEFAULT_LEVEL 3 /* zstd level; see docs/benchmarks.md */
#define SNAP_DEFAULT_CHUNK_SIZE (64U << 10) /* see docs/benchmarks.md */
#define SNAP_MIN_CHUNK_SIZE (4U << 10)
#define SNAP_MAX_CHUNK_SIZE (4U << 20)

/* Arch codes are ELF e_machine values. */
#define SNAP_ARCH_X86_64 62
#define SNAP_ARCH_ARM64 183

/* The VMM-defined state sections, opaque to this module. */
enum snap_state {
	SNAP_STATE_CONFIG, /* what the VM was built from: memory, vCPUs, drives */
	SNAP_STATE_VCPUS, /* every vCPU's registers and MP state */
	SNAP_STATE_IRQCHIP, /* the in-kernel interrupt controller */
	SNAP_STATE_DEVICES, /* each device's own record */
	SNAP_NR_STATES,
};

enum snap_encoding {
	/* Each stored chunk is one zstd frame of its non-zero pages. */
	SNAP_ENC_ZSTD = 1,
	/* Memory data is the image itself, zero pages left as holes. */
	SNAP_ENC_RAW = 2,
};

struct snap_region {
	uint64_t gpa;
	uint64_t size; /* a multiple of the page size */
};

struct snap_blob {
	const void *data;
	size_t len; /* <= SNAP_MAX_STATE_SIZE */
};

struct snap_write_opts {
	uint32_t arch; /* SNAP_ARCH_* */
	enum snap_encoding encoding;
	int level; /* zstd level 1..19, for SNAP_ENC_ZSTD */
	uint32_t chunk_size; /* power of two, SNAP_MIN..MAX_CHUNK_SIZE, >= page size */
};

/* Memory statistics, filled by the writer and by the reader. */
struct snap_mem_stats {
	uint64_t pages; /* guest pages in the image */
	uint64_t zero_pages; /* recorded in the index, not stored */
	uint64_t chunks;
	uint64_t zero_chunks; /* chunks whose every page is zero */
	uint64_t raw_bytes; /* non-zero pages * page size */
	/* Stored in the memory data section; for raw, the non-zero pages only. */
	uint64_t stored_bytes;
};

/*
 * Writes a snapshot to @path: @states (SNAP_NR_STATES blobs, in enum order)
 * and guest memory given as @nr_regions regions, region i being @regions[i]
 * mapped at host address @hvas[i]. The file is written under a temporary
 * name in the same directory, fsynced, and renamed over @path (then the
 * directory is fsynced), so @path never holds a partial snapshot; on failure
 * the temporary file is removed. The file is created mode 0600: it holds
 * guest memory. Host addresses must be page-aligned and the regions sorted
 * by gpa without overlap. Fills *@stats when non-NULL. Returns 0, or
 * -errno after logging: -EINVAL for bad options or layout, -E2BIG for a
 * state blob or memory over the limits, I/O errors from the file system.
 */
int snap__write(const char *path, const struct snap_write_opts *opts,
		const struct snap_blob states[SNAP_NR_STATES],
		const struct snap_region *regions, void *const *hvas,
		unsigned int nr_regions,
		struct snap_mem_stats *stats) __must_check;

struct snap;

struct snap_info {
	uint32_t version;
	uint32_t arch;
	uint32_t page_size;
	uint32_t chunk_size;
	enum snap_encoding encoding;
	int level; /* as recorded by the writer; 0 for raw */
	unsigned int nr_regions;
	struct snap_region regions[SNAP_MAX_REGIONS];
	uint64_t mem_size; /* sum of the regions */
	uint64_t file_size;
	struct snap_mem_stats mem;
};

/*
 * Opens and validates the snapshot at @path: magic, version, @arch (unless
 * 0), page size equal to the host's, header checksum, section table bounds
 * and overlaps, the checksum of every section except memory data (see
 * snap__verify_memory()), and the memory index's consistency (every stored
 * chunk inside the data section). Returns 0 and the snapshot in *@out (free
 * with snap__close()), or -errno after logging a message that names the
 * file and what was wrong:
 *   -ENOENT/-EACCES  the file cannot be opened (-EINVAL: not a regular file)
 *   -EBADMSG   wrong magic, a checksum mismatch, or an inconsistent table
 *   -EPROTONOSUPPORT  an unknown format version
 *   -EXDEV     a snapshot of another arch or page size than asked/host
 *   -ENODATA   the file is truncated (a section or header beyond its end)
 * The file stays open and mapped until snap__close(); it must not be
 * truncated meanwhile (reading a page past the new end raises SIGBUS).
 */
int snap__open(const char *path, uint32_t arch, struct snap **out) __must_check;

/* Releases what snap__open() acquired. NULL-safe. */
void snap__close(struct snap *s);

const struct snap_info *snap__info(const struct snap *s);

/* State section @which: its bytes (valid until snap__close()) and length. */
const void *snap__state(const struct snap *s, enum snap_state which,
			size_t *len);

/*
 * Checks the memory data section's checksum and every chunk's. Reads the
 * whole section. 0 or -EBADMSG after logging which chunk was wrong.
 */
int snap__verify_memory(struct snap *s) __must_check;

/*
 * Whoever handed us this file verified its memory already (a pool's daemon,
 * once for all its workers): snap__verify_memory() returns 0 from now on.
 */
void snap__memory_verified(struct snap *s);

/* Whether the @len bytes at @p (8-aligned, @len a multiple of 64) are all zero. */
bool snap__page_is_zero(const void *p, size_t len);

/* Whether chunk @i (< info.mem.chunks) is entirely zero pages. */
bool snap__chunk_is_zero(const struct snap *s, uint64_t i);

/*
 * Decodes chunk @i into @dst (chunk_size bytes, or less for a short last
 * chunk: see snap__chunk_len()), zero pages included, after checking the
 * chunk's checksum. Thread-safe for distinct @dst buffers (each call uses
 * its own decompression context from @s's pool or allocates one).
 * 0, -EBADMSG (checksum or zstd error, logged), -ENOMEM.
 */
int snap__read_chunk(struct snap *s, uint64_t i, void *dst) __must_check;

/* Length in bytes of chunk @i: chunk_size, except possibly the last one. */
uint64_t snap__chunk_len(const struct snap *s, uint64_t i);

/*
 * For SNAP_ENC_RAW: the open file descriptor and the file offset of the
 * memory image (page-aligned), for mapping it MAP_PRIVATE. -EINVAL for a
 * zstd snapshot.
 */
int snap__raw_image(const struct snap *s, int *fd,
		    uint64_t *offset) __must_check;

#endif
