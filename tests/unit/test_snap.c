// SPDX-License-Identifier: Apache-2.0
// Snapshot file: round trips, statistics, and every kind of damage a reader must reject.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "../../snapshot/snap.h"

/* The byte layout of docs/snapshot-format.md, restated so the test checks the document. */
#define HDR_SIZE 512
#define HDR_VERSION 8
#define HDR_ARCH 12
#define HDR_PAGE_SIZE 16
#define HDR_CHUNK_SIZE 20
#define HDR_MEM_SIZE 48
#define HDR_REGIONS 64
#define HDR_SECTIONS 128
#define HDR_CHECKSUM 504
#define SEC_SIZE 32
#define SEC_OFFSET 8
#define SEC_LENGTH 16
#define SEC_CHECKSUM 24
#define NR_SECTIONS 6
#define SEC_INDEX 4
#define SEC_DATA 5
#define ENTRY_LENGTH 8

/* Image layout in pages, regions split inside a chunk to cover the straddling path. */
#define CHUNK_PAGES 16
#define NR_PAGES (10 * CHUNK_PAGES + 5)
#define R0_PAGES (3 * CHUNK_PAGES + 4)

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];
static bool mounted;
static size_t ps;

struct image {
	uint8_t *linear; /* what the guest memory holds, end to end */
	size_t size;
	struct snap_region regions[2];
	void *hvas[2];
	unsigned int nr;
};

static struct image img;
static struct snap *snap;

static void rm_tree(const char *d)
{
	struct dirent *de;
	DIR *dh = opendir(d);

	if (!dh)
		return;
	while ((de = readdir(dh)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(dh), de->d_name, 0);
	closedir(dh);
}

static void setup(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	snprintf(dir, sizeof(dir), "/tmp/sandbox-snap-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.snap", dir);
	mounted = false;
	snap = NULL;
	memset(&img, 0, sizeof(img));
}

static void teardown(void)
{
	unsigned int i;

	snap__close(snap);
	for (i = 0; i < img.nr; i++)
		munmap(img.hvas[i], img.regions[i].size);
	free(img.linear);
	rm_tree(dir);
	if (mounted)
		umount2(dir, MNT_DETACH);
	rmdir(dir);
}

TestSuite(snap, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

enum page_kind { ZERO, RANDOM, TEXT };

/* Zero, incompressible and compressible pages, with whole-zero chunks. */
static enum page_kind kind_of(unsigned int p)
{
	unsigned int c = p / CHUNK_PAGES, j = p % CHUNK_PAGES;

	switch (c) {
	case 0:
		return RANDOM;
	case 1:
	case 4:
		return ZERO;
	case 2:
		return j % 2 ? RANDOM : ZERO;
	case 3:
		return j == 7 ? ZERO : TEXT;
	case 5:
		return j == 15 ? RANDOM : ZERO;
	case 6:
		return j == 0 ? TEXT : ZERO;
	case 8:
		return j >= 4 && j < 12 ? RANDOM : TEXT;
	case 10:
		return j == 0 || j == 2 ? RANDOM : ZERO;
	default:
		return TEXT;
	}
}

static void fill_page(uint8_t *pg, unsigned int p, uint64_t *rng)
{
	size_t off = 0;

	switch (kind_of(p)) {
	case ZERO:
		memset(pg, 0, ps);
		break;
	case RANDOM:
		for (off = 0; off < ps; off += 8) {
			uint64_t v = rng_next(rng);

			memcpy(pg + off, &v, 8);
		}
		break;
	case TEXT:
		while (off < ps) {
			char line[64];
			int n = snprintf(
				line, sizeof(line),
				"page %u line %zu: the quick brown fox\n", p,
				off / 40);
			size_t k = (size_t)n < ps - off ? (size_t)n : ps - off;

			memcpy(pg + off, line, k);
			off += k;
		}
		break;
	}
}

/* The test image in two regions of fresh mappings, and its linear copy. */
static void build_image(void)
{
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	unsigned int p;

	img.size = NR_PAGES * ps;
	img.linear = malloc(img.size);
	cr_assert_not_null(img.linear);
	for (p = 0; p < NR_PAGES; p++)
		fill_page(img.linear + p * ps, p, &rng);
	img.nr = 2;
	img.regions[0].gpa = 0x40000000;
	img.regions[0].size = R0_PAGES * ps;
	img.regions[1].gpa = 0x80000000;
	img.regions[1].size = (NR_PAGES - R0_PAGES) * ps;
	for (p = 0; p < img.nr; p++) {
		img.hvas[p] =
			mmap(NULL, img.regions[p].size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(img.hvas[p], MAP_FAILED);
	}
	memcpy(img.hvas[0], img.linear, img.regions[0].size);
	memcpy(img.hvas[1], img.linear + img.regions[0].size,
	       img.regions[1].size);
}

static const char cfg[] = "mem=660k vcpus=2";
static uint8_t vcpu_state[5000];
static const char irq_state[] = "gic";
static const char dev_state[] = "serial, virtio-blk";

static void states_of(struct snap_blob st[SNAP_NR_STATES], bool empty_irqchip)
{
	size_t i;

	for (i = 0; i < sizeof(vcpu_state); i++)
		vcpu_state[i] = (uint8_t)(i * 7 + i / 256);
	st[SNAP_STATE_CONFIG] = (struct snap_blob){ cfg, sizeof(cfg) };
	st[SNAP_STATE_VCPUS] =
		(struct snap_blob){ vcpu_state, sizeof(vcpu_state) };
	st[SNAP_STATE_IRQCHIP] =
		empty_irqchip
			? (struct snap_blob){ NULL, 0 }
			: (struct snap_blob){ irq_state, sizeof(irq_state) };
	st[SNAP_STATE_DEVICES] =
		(struct snap_blob){ dev_state, sizeof(dev_state) };
}

static struct snap_write_opts opts_of(enum snap_encoding enc, uint32_t cs)
{
	return (struct snap_write_opts){
		.arch = SNAP_ARCH_X86_64,
		.encoding = enc,
		.level = enc == SNAP_ENC_ZSTD ? 3 : 0,
		.chunk_size = cs,
	};
}

static int write_snap(const char *to, enum snap_encoding enc, uint32_t cs,
		      struct snap_mem_stats *stats)
{
	struct snap_write_opts o = opts_of(enc, cs);
	struct snap_blob st[SNAP_NR_STATES];

	states_of(st, false);
	return snap__write(to, &o, st, img.regions, img.hvas, img.nr, stats);
}

/* Writes the standard image with full state sections and opens it. */
static void write_default(enum snap_encoding enc)
{
	build_image();
	cr_assert_eq(write_snap(path, enc, CHUNK_PAGES * ps, NULL), 0);
}

/* ---- raw file access ---- */

static uint64_t file_size(const char *p)
{
	struct stat st;

	cr_assert_eq(stat(p, &st), 0);
	return (uint64_t)st.st_size;
}

static void file_read(const char *p, uint64_t off, void *buf, size_t len)
{
	int fd = open(p, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void file_write(const char *p, uint64_t off, const void *buf, size_t len)
{
	int fd = open(p, O_WRONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static uint64_t file_u64(uint64_t off)
{
	uint64_t v;

	file_read(path, off, &v, sizeof(v));
	return le64toh(v);
}

static void file_put_u32(uint64_t off, uint32_t v)
{
	v = htole32(v);
	file_write(path, off, &v, sizeof(v));
}

static void file_put_u64(uint64_t off, uint64_t v)
{
	v = htole64(v);
	file_write(path, off, &v, sizeof(v));
}

static void flip_byte(uint64_t off)
{
	uint8_t b;

	file_read(path, off, &b, 1);
	b ^= 0x5a;
	file_write(path, off, &b, 1);
}

static uint64_t sec_off(unsigned int i)
{
	return file_u64(HDR_SECTIONS + i * SEC_SIZE + SEC_OFFSET);
}

static uint64_t sec_len(unsigned int i)
{
	return file_u64(HDR_SECTIONS + i * SEC_SIZE + SEC_LENGTH);
}

/* Recomputes the checksum of section @i, then the header's, as a careful forger would. */
static void reseal(int i)
{
	uint8_t hdr[HDR_SIZE];

	if (i >= 0) {
		size_t len = sec_len(i);
		uint8_t *buf = malloc(len ? len : 1);

		file_read(path, sec_off(i), buf, len);
		file_put_u64(HDR_SECTIONS + i * SEC_SIZE + SEC_CHECKSUM,
			     XXH3_64bits(buf, len));
		free(buf);
	}
	file_read(path, 0, hdr, sizeof(hdr));
	file_put_u64(HDR_CHECKSUM, XXH3_64bits(hdr, HDR_CHECKSUM));
}

static int open_snap(uint32_t arch)
{
	snap__close(snap);
	snap = NULL;
	return snap__open(path, arch, &snap);
}

/* ---- checks ---- */

static struct snap_mem_stats expected_stats(uint32_t cs)
{
	struct snap_mem_stats e = { 0 };
	size_t c, p;

	e.pages = NR_PAGES;
	e.chunks = (img.size + cs - 1) / cs;
	for (c = 0; c < e.chunks; c++) {
		size_t first = c * cs / ps, end = first + cs / ps, zeros = 0;

		if (end > NR_PAGES)
			end = NR_PAGES;
		for (p = first; p < end; p++)
			zeros += kind_of(p) == ZERO;
		e.zero_pages += zeros;
		e.zero_chunks += zeros == end - first;
	}
	e.raw_bytes = (e.pages - e.zero_pages) * ps;
	return e;
}

static void assert_stats_eq(const struct snap_mem_stats *a,
			    const struct snap_mem_stats *b)
{
	cr_assert_eq(a->pages, b->pages);
	cr_assert_eq(a->zero_pages, b->zero_pages);
	cr_assert_eq(a->chunks, b->chunks);
	cr_assert_eq(a->zero_chunks, b->zero_chunks);
	cr_assert_eq(a->raw_bytes, b->raw_bytes);
	cr_assert_eq(a->stored_bytes, b->stored_bytes);
}

static void assert_chunks_decode(struct snap *s)
{
	const struct snap_info *info = snap__info(s);
	uint8_t *buf = malloc(info->chunk_size);
	uint64_t i;

	for (i = 0; i < info->mem.chunks; i++) {
		uint64_t off = i * info->chunk_size,
			 len = snap__chunk_len(s, i);
		bool zero = true;
		uint64_t k;

		cr_assert_eq(len, img.size - off < info->chunk_size
					  ? img.size - off
					  : info->chunk_size);
		memset(buf, 0xa5, info->chunk_size);
		cr_assert_eq(snap__read_chunk(s, i, buf), 0, "chunk %llu",
			     (unsigned long long)i);
		cr_assert_arr_eq(buf, img.linear + off, len, "chunk %llu",
				 (unsigned long long)i);
		for (k = 0; k < len && zero; k++)
			zero = !img.linear[off + k];
		cr_assert_eq(snap__chunk_is_zero(s, i), zero);
	}
	cr_assert_eq(snap__chunk_len(s, info->mem.chunks), 0);
	free(buf);
}

static void assert_states(struct snap *s, bool empty_irqchip)
{
	struct snap_blob st[SNAP_NR_STATES];
	unsigned int i;

	states_of(st, empty_irqchip);
	for (i = 0; i < SNAP_NR_STATES; i++) {
		size_t len = 99;
		const void *p = snap__state(s, i, &len);

		cr_assert_eq(len, st[i].len, "state %u", i);
		if (len)
			cr_assert_arr_eq(p, st[i].data, len);
	}
}

static void round_trip(enum snap_encoding enc, uint32_t cs)
{
	struct snap_write_opts o = opts_of(enc, cs);
	struct snap_blob st[SNAP_NR_STATES];
	struct snap_mem_stats ws, e = expected_stats(cs);
	const struct snap_info *info;

	states_of(st, true);
	cr_assert_eq(
		snap__write(path, &o, st, img.regions, img.hvas, img.nr, &ws),
		0);
	cr_assert_eq(open_snap(SNAP_ARCH_X86_64), 0);
	info = snap__info(snap);
	cr_assert_eq(info->version, SNAP_VERSION);
	cr_assert_eq(info->arch, SNAP_ARCH_X86_64);
	cr_assert_eq(info->page_size, ps);
	cr_assert_eq(info->chunk_size, cs);
	cr_assert_eq(info->encoding, enc);
	cr_assert_eq(info->level, enc == SNAP_ENC_ZSTD ? 3 : 0);
	cr_assert_eq(info->nr_regions, 2);
	cr_assert_eq(info->regions[0].gpa, img.regions[0].gpa);
	cr_assert_eq(info->regions[0].size, img.regions[0].size);
	cr_assert_eq(info->regions[1].gpa, img.regions[1].gpa);
	cr_assert_eq(info->regions[1].size, img.regions[1].size);
	cr_assert_eq(info->mem_size, img.size);
	cr_assert_eq(info->file_size, file_size(path));

	e.stored_bytes = ws.stored_bytes;
	assert_stats_eq(&ws, &e);
	assert_stats_eq(&info->mem, &ws);
	if (enc == SNAP_ENC_RAW)
		cr_assert_eq(ws.stored_bytes, ws.raw_bytes);
	else
		cr_assert_eq(ws.stored_bytes, sec_len(SEC_DATA));
	assert_states(snap, true);
	cr_assert_eq(snap__verify_memory(snap), 0);
	assert_chunks_decode(snap);
}

Test(snap, round_trips_zstd_with_zero_pages_and_a_short_last_chunk)
{
	build_image();
	round_trip(SNAP_ENC_ZSTD, CHUNK_PAGES * ps);
	/* Compressible pages compress; zero pages take no room. */
	cr_assert_lt(snap__info(snap)->mem.stored_bytes,
		     snap__info(snap)->mem.raw_bytes);
}

Test(snap, round_trips_raw_as_a_sparse_mappable_image)
{
	uint64_t off;
	uint8_t *file;
	struct stat st;
	int fd;

	build_image();
	round_trip(SNAP_ENC_RAW, CHUNK_PAGES * ps);
	cr_assert_eq(snap__raw_image(snap, &fd, &off), 0);
	cr_assert_eq(off % ps, 0);
	cr_assert_eq(off, sec_off(SEC_DATA));
	cr_assert_eq(off + img.size, file_size(path));
	file = malloc(img.size);
	file_read(path, off, file, img.size);
	cr_assert_arr_eq(file, img.linear, img.size);
	free(file);
	/* Zero pages are holes: the file holds little more than the data pages. */
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_lt((uint64_t)st.st_blocks * 512,
		     snap__info(snap)->mem.raw_bytes + off + 16 * ps);
}

Test(snap, round_trips_every_chunk_size)
{
	static const uint32_t sizes[] = { SNAP_MIN_CHUNK_SIZE, 16 << 10,
					  1 << 20, SNAP_MAX_CHUNK_SIZE };
	unsigned int i;

	build_image();
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		if (sizes[i] < ps)
			continue;
		round_trip(SNAP_ENC_ZSTD, sizes[i]);
		round_trip(SNAP_ENC_RAW, sizes[i]);
	}
}

Test(snap, stats_without_a_stats_pointer_and_of_an_all_zero_image)
{
	struct snap_write_opts o = opts_of(SNAP_ENC_ZSTD, 4 * ps);
	struct snap_blob st[SNAP_NR_STATES] = { { NULL, 0 } };
	struct snap_region r = { 0, 8 * ps };
	void *hva = mmap(NULL, 8 * ps, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	const struct snap_info *info;
	uint8_t buf[4 * 65536];

	cr_assert_neq(hva, MAP_FAILED);
	cr_assert_eq(snap__write(path, &o, st, &r, &hva, 1, NULL), 0);
	cr_assert_eq(open_snap(0), 0);
	info = snap__info(snap);
	cr_assert_eq(info->mem.pages, 8);
	cr_assert_eq(info->mem.zero_pages, 8);
	cr_assert_eq(info->mem.chunks, 2);
	cr_assert_eq(info->mem.zero_chunks, 2);
	cr_assert_eq(info->mem.raw_bytes, 0);
	cr_assert_eq(info->mem.stored_bytes, 0);
	cr_assert_eq(sec_len(SEC_DATA), 0);
	cr_assert_eq(snap__verify_memory(snap), 0);
	memset(buf, 1, sizeof(buf));
	cr_assert_eq(snap__read_chunk(snap, 1, buf), 0);
	cr_assert_eq(buf[0], 0);
	cr_assert_eq(buf[4 * ps - 1], 0);
	cr_assert_eq(buf[4 * ps], 1, "wrote past the chunk");
	munmap(hva, 8 * ps);
}

struct reader_arg {
	struct snap *s;
	int failures;
};

static void *read_all(void *arg)
{
	struct reader_arg *a = arg;
	const struct snap_info *info = snap__info(a->s);
	uint8_t *buf = malloc(info->chunk_size);
	unsigned int round;
	uint64_t i;

	for (round = 0; round < 20; round++)
		for (i = 0; i < info->mem.chunks; i++)
			if (snap__read_chunk(a->s, i, buf) ||
			    memcmp(buf, img.linear + i * info->chunk_size,
				   snap__chunk_len(a->s, i)))
				a->failures++;
	free(buf);
	return NULL;
}

Test(snap, read_chunk_is_thread_safe)
{
	struct reader_arg args[4];
	pthread_t t[4];
	unsigned int i;

	write_default(SNAP_ENC_ZSTD);
	cr_assert_eq(open_snap(0), 0);
	for (i = 0; i < 4; i++) {
		args[i] = (struct reader_arg){ snap, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, read_all, &args[i]),
			     0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_assert_eq(args[i].failures, 0);
	}
}

/* ---- damage ---- */

Test(snap, a_flipped_byte_in_any_checksummed_part_is_caught)
{
	static const enum snap_encoding encs[] = { SNAP_ENC_ZSTD,
						   SNAP_ENC_RAW };
	uint8_t *buf;
	unsigned int e, i;

	build_image();
	buf = malloc(CHUNK_PAGES * ps);
	for (e = 0; e < 2; e++) {
		/* The header: a region's gpa, the section table, a reserved byte. */
		static const uint64_t hdr_bytes[] = { HDR_REGIONS + 3,
						      HDR_SECTIONS + 40, 400 };

		for (i = 0; i < 3; i++) {
			cr_assert_eq(write_snap(path, encs[e], CHUNK_PAGES * ps,
						NULL),
				     0);
			flip_byte(hdr_bytes[i]);
			cr_assert_eq(open_snap(0), -EBADMSG);
		}
		/* The four state sections and the memory index. */
		for (i = 0; i <= SEC_INDEX; i++) {
			cr_assert_eq(write_snap(path, encs[e], CHUNK_PAGES * ps,
						NULL),
				     0);
			cr_assert_gt(sec_len(i), 0);
			flip_byte(sec_off(i) + sec_len(i) / 2);
			cr_assert_eq(open_snap(0), -EBADMSG, "section %u", i);
		}
		/* Memory data: found when verified or when its chunk is read, only then. */
		cr_assert_eq(write_snap(path, encs[e], CHUNK_PAGES * ps, NULL),
			     0);
		flip_byte(sec_off(SEC_DATA) + 10);
		cr_assert_eq(open_snap(0), 0);
		cr_assert_eq(snap__verify_memory(snap), -EBADMSG);
		cr_assert_eq(snap__read_chunk(snap, 0, buf), -EBADMSG);
		cr_assert_eq(snap__read_chunk(snap, 2, buf), 0);
		cr_assert_arr_eq(buf, img.linear + 2 * CHUNK_PAGES * ps,
				 CHUNK_PAGES * ps);
	}
	free(buf);
}

Test(snap, data_in_a_raw_hole_fails_verification)
{
	uint8_t junk = 1;

	write_default(SNAP_ENC_RAW);
	/* Chunk 1 is all zero pages, chunk 2's page 0 too: both holes. */
	file_write(path, sec_off(SEC_DATA) + CHUNK_PAGES * ps + 5, &junk, 1);
	cr_assert_eq(open_snap(0), 0);
	cr_assert_eq(snap__verify_memory(snap), -EBADMSG);

	cr_assert_eq(write_snap(path, SNAP_ENC_RAW, CHUNK_PAGES * ps, NULL), 0);
	file_write(path, sec_off(SEC_DATA) + 2 * CHUNK_PAGES * ps + 7, &junk,
		   1);
	cr_assert_eq(open_snap(0), 0);
	cr_assert_eq(snap__verify_memory(snap), -EBADMSG);
}

/* A pool's workers trust what their daemon checked for them. */
Test(snap, memory_vouched_for_is_not_read_again)
{
	uint8_t junk = 1;

	write_default(SNAP_ENC_RAW);
	file_write(path, sec_off(SEC_DATA) + CHUNK_PAGES * ps + 5, &junk, 1);
	cr_assert_eq(open_snap(0), 0);
	snap__memory_verified(snap);
	cr_assert_eq(snap__verify_memory(snap), 0);
}

Test(snap, truncation_anywhere_is_reported_as_truncation)
{
	static const enum snap_encoding encs[] = { SNAP_ENC_ZSTD,
						   SNAP_ENC_RAW };
	uint64_t cuts[3 * NR_SECTIONS + 8];
	unsigned int e, i, n;

	build_image();
	for (e = 0; e < 2; e++) {
		cr_assert_eq(write_snap(path, encs[e], CHUNK_PAGES * ps, NULL),
			     0);
		n = 0;
		cuts[n++] = 0;
		cuts[n++] = 4; /* inside the magic */
		cuts[n++] = 100; /* inside the header */
		cuts[n++] = HDR_SIZE - 1;
		cuts[n++] = HDR_SIZE;
		cuts[n++] = file_size(path) - 1;
		for (i = 0; i < NR_SECTIONS; i++) {
			cuts[n++] = sec_off(i);
			cuts[n++] = sec_off(i) + sec_len(i) / 2;
			if (sec_off(i) + sec_len(i) < file_size(path))
				cuts[n++] = sec_off(i) + sec_len(i);
		}
		for (i = 0; i < n; i++) {
			cr_assert_eq(write_snap(path, encs[e], CHUNK_PAGES * ps,
						NULL),
				     0);
			cr_assert_eq(truncate(path, (off_t)cuts[i]), 0);
			cr_assert_eq(open_snap(0), -ENODATA, "cut at %llu",
				     (unsigned long long)cuts[i]);
		}
	}
}

Test(snap, trailing_bytes_are_rejected)
{
	write_default(SNAP_ENC_ZSTD);
	cr_assert_eq(truncate(path, (off_t)file_size(path) + 1), 0);
	cr_assert_eq(open_snap(0), -EBADMSG);
}

Test(snap, wrong_magic_is_not_a_snapshot)
{
	write_default(SNAP_ENC_ZSTD);
	flip_byte(1);
	cr_assert_eq(open_snap(0), -EBADMSG);
	/* Nor is a short file that does not start like one. */
	cr_assert_eq(truncate(path, 5), 0);
	cr_assert_eq(open_snap(0), -EBADMSG);
}

Test(snap, unknown_version_is_unsupported_even_when_well_sealed)
{
	write_default(SNAP_ENC_ZSTD);
	file_put_u32(HDR_VERSION, 99);
	reseal(-1);
	cr_assert_eq(open_snap(0), -EPROTONOSUPPORT);
}

Test(snap, another_arch_or_page_size_is_refused)
{
	write_default(SNAP_ENC_ZSTD);
	cr_assert_eq(open_snap(SNAP_ARCH_ARM64), -EXDEV);
	cr_assert_eq(open_snap(SNAP_ARCH_X86_64), 0);
	cr_assert_eq(open_snap(0), 0);
	file_put_u32(HDR_ARCH, SNAP_ARCH_ARM64);
	reseal(-1);
	cr_assert_eq(open_snap(SNAP_ARCH_X86_64), -EXDEV);
	cr_assert_eq(open_snap(SNAP_ARCH_ARM64), 0);
	file_put_u32(HDR_PAGE_SIZE, 4 * ps);
	reseal(-1);
	cr_assert_eq(open_snap(0), -EXDEV);
}

/* Well-sealed but inconsistent: a forger who recomputes checksums still fails. */
Test(snap, inconsistent_tables_are_rejected_despite_valid_checksums)
{
	uint64_t esz = 24 + 8 * ((CHUNK_PAGES + 63) / 64);

	write_default(SNAP_ENC_ZSTD);
	file_put_u32(HDR_CHUNK_SIZE, 3 * 4096);
	reseal(-1);
	cr_assert_eq(open_snap(0), -EBADMSG, "chunk size not a power of two");

	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u64(HDR_MEM_SIZE, img.size + ps);
	reseal(-1);
	cr_assert_eq(open_snap(0), -EBADMSG, "regions do not sum up");

	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u64(HDR_SECTIONS + 1 * SEC_SIZE + SEC_OFFSET, sec_off(0));
	reseal(-1);
	cr_assert_eq(open_snap(0), -EBADMSG, "overlapping sections");

	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u64(HDR_SECTIONS + SEC_DATA * SEC_SIZE + SEC_LENGTH,
		     UINT64_MAX - 10);
	reseal(-1);
	cr_assert_eq(open_snap(0), -EBADMSG, "wrapping section");

	/* Chunk 1 is all zero pages: give it stored bytes. */
	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u32(sec_off(SEC_INDEX) + esz + ENTRY_LENGTH, 10);
	reseal(SEC_INDEX);
	cr_assert_eq(open_snap(0), -EBADMSG, "zero chunk with data");

	/* Chunk 0 stored past the end of the data section. */
	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u32(sec_off(SEC_INDEX) + ENTRY_LENGTH,
		     (uint32_t)sec_len(SEC_DATA) + 1);
	reseal(SEC_INDEX);
	cr_assert_eq(open_snap(0), -EBADMSG, "chunk outside the data");

	/* The last chunk has 5 pages: a zero bit beyond them. */
	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u64(sec_off(SEC_INDEX) + 10 * esz + 24, 1ULL << 6 | 1 << 1);
	reseal(SEC_INDEX);
	cr_assert_eq(open_snap(0), -EBADMSG, "bitmap past the chunk");

	/* The index one entry short. */
	cr_assert_eq(write_snap(path, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     0);
	file_put_u64(HDR_SECTIONS + SEC_INDEX * SEC_SIZE + SEC_LENGTH,
		     sec_len(SEC_INDEX) - esz);
	reseal(SEC_INDEX);
	cr_assert_eq(open_snap(0), -EBADMSG, "index length");
}

/* ---- writing ---- */

/* Names in @d other than . and .., joined by spaces. */
static void dir_listing(const char *d, char *out, size_t len)
{
	struct dirent *de;
	DIR *dh = opendir(d);

	cr_assert_not_null(dh);
	out[0] = 0;
	while ((de = readdir(dh)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
			strncat(out, de->d_name, len - strlen(out) - 2);
			strcat(out, " ");
		}
	closedir(dh);
}

Test(snap, bad_write_options_are_rejected_before_any_file_exists)
{
	struct snap_blob st[SNAP_NR_STATES];
	struct snap_write_opts o;
	struct snap_region r[2];
	void *hvas[2];
	char names[256];

	build_image();
	states_of(st, false);
#define EXPECT_WRITE(err, what)                                               \
	cr_assert_eq(snap__write(path, &o, st, r, hvas, 2, NULL), err, what); \
	o = opts_of(SNAP_ENC_ZSTD, CHUNK_PAGES * ps);                         \
	memcpy(r, img.regions, sizeof(r));                                    \
	memcpy(hvas, img.hvas, sizeof(hvas));                                 \
	states_of(st, false)

	o = opts_of(SNAP_ENC_ZSTD, CHUNK_PAGES * ps);
	memcpy(r, img.regions, sizeof(r));
	memcpy(hvas, img.hvas, sizeof(hvas));
	o.arch = 3;
	EXPECT_WRITE(-EINVAL, "arch");
	o.encoding = 7;
	EXPECT_WRITE(-EINVAL, "encoding");
	o.level = 0;
	EXPECT_WRITE(-EINVAL, "level 0");
	o.level = 20;
	EXPECT_WRITE(-EINVAL, "level 20");
	o.chunk_size = 3 * 4096;
	EXPECT_WRITE(-EINVAL, "chunk not a power of two");
	o.chunk_size = SNAP_MIN_CHUNK_SIZE / 2;
	EXPECT_WRITE(-EINVAL, "chunk too small");
	o.chunk_size = SNAP_MAX_CHUNK_SIZE * 2;
	EXPECT_WRITE(-EINVAL, "chunk too big");
	st[SNAP_STATE_DEVICES].len = SNAP_MAX_STATE_SIZE + 1;
	EXPECT_WRITE(-E2BIG, "state too big");
	st[SNAP_STATE_CONFIG].data = NULL;
	EXPECT_WRITE(-EINVAL, "state without data");
	r[1].size = ps + 1;
	EXPECT_WRITE(-EINVAL, "region size unaligned");
	r[1].gpa = r[0].gpa + ps;
	EXPECT_WRITE(-EINVAL, "regions overlap");
	r[1].size = SNAP_MAX_MEM_SIZE;
	EXPECT_WRITE(-E2BIG, "memory too big");
	hvas[1] = (uint8_t *)hvas[1] + 8;
	EXPECT_WRITE(-EINVAL, "unaligned host address");
	cr_assert_eq(snap__write(path, &o, st, r, hvas, 0, NULL), -EINVAL);
	cr_assert_eq(
		snap__write(path, &o, st, r, hvas, SNAP_MAX_REGIONS + 1, NULL),
		-EINVAL);
#undef EXPECT_WRITE
	dir_listing(dir, names, sizeof(names));
	cr_assert_str_empty(names);
	/* Raw ignores the level. */
	o = opts_of(SNAP_ENC_RAW, CHUNK_PAGES * ps);
	o.level = 77;
	cr_assert_eq(snap__write(path, &o, st, r, hvas, 2, NULL), 0);
	cr_assert_eq(open_snap(0), 0);
	cr_assert_eq(snap__info(snap)->level, 0);
}

Test(snap, a_missing_directory_leaves_nothing)
{
	char missing[PATH_MAX + 64], names[256];

	build_image();
	snprintf(missing, sizeof(missing), "%s/nodir/vm.snap", dir);
	cr_assert_eq(write_snap(missing, SNAP_ENC_ZSTD, CHUNK_PAGES * ps, NULL),
		     -ENOENT);
	dir_listing(dir, names, sizeof(names));
	cr_assert_str_empty(names);
}

Test(snap, a_failed_write_keeps_the_old_snapshot_and_no_temporary)
{
	struct snap_write_opts o = opts_of(SNAP_ENC_ZSTD, 64 << 10);
	struct snap_blob st[SNAP_NR_STATES];
	struct snap_region r = { 0, 4 << 20 };
	uint64_t rng = 42, *big;
	char names[256];
	size_t i;

	if (unshare(CLONE_NEWNS) < 0)
		cr_skip_test("cannot unshare a mount namespace: %s",
			     strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mount("sandbox-test", dir, "tmpfs", 0, "size=1m"), 0);
	mounted = true;

	write_default(SNAP_ENC_ZSTD);
	big = mmap(NULL, r.size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(big, MAP_FAILED);
	for (i = 0; i < r.size / 8; i++)
		big[i] = rng_next(&rng);
	states_of(st, true);
	/* 4 MiB of random pages cannot fit a 1 MiB file system. */
	cr_assert_eq(snap__write(path, &o, st, &r, (void **)&big, 1, NULL),
		     -ENOSPC);
	dir_listing(dir, names, sizeof(names));
	cr_assert_str_eq(names, "vm.snap ");
	cr_assert_eq(open_snap(0), 0);
	assert_states(snap, false);
	cr_assert_eq(snap__verify_memory(snap), 0);

	/* A read-only file system: nothing can be created at all. */
	cr_assert_eq(mount(NULL, dir, NULL, MS_REMOUNT | MS_RDONLY, NULL), 0);
	cr_assert_eq(snap__write(path, &o, st, &r, (void **)&big, 1, NULL),
		     -EROFS);
	dir_listing(dir, names, sizeof(names));
	cr_assert_str_eq(names, "vm.snap ");
	munmap(big, r.size);
}

Test(snap, writes_replace_atomically_and_fsync)
{
	struct stat st;

	write_default(SNAP_ENC_ZSTD);
	cr_assert_eq(stat(path, &st), 0);
	/* Snapshots hold guest memory: private to their owner. */
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(write_snap(path, SNAP_ENC_RAW, CHUNK_PAGES * ps, NULL), 0);
	cr_assert_eq(open_snap(0), 0);
	cr_assert_eq(snap__info(snap)->encoding, SNAP_ENC_RAW);
}

Test(snap, open_reports_missing_files_and_non_files)
{
	char missing[PATH_MAX + 64];

	snprintf(missing, sizeof(missing), "%s/none", dir);
	cr_assert_eq(snap__open(missing, 0, &snap), -ENOENT);
	cr_assert_null(snap);
	cr_assert_eq(snap__open(dir, 0, &snap), -EINVAL);
	snap__close(NULL);
}
