// SPDX-License-Identifier: Apache-2.0
// Snapshot paging: userfaultfd on demand (real faults, two threads), eager decode, private file maps.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../snapshot/pager.h"

/* Where the memory data section's offset lies in the header (docs/snapshot-format.md). */
#define HDR_DATA_OFFSET (128 + 5 * 32 + 8)
#define HDR_DATA_LENGTH (128 + 5 * 32 + 16)
#define CHUNK (64U << 10)
#define NR_CHUNKS 40

static char dir[PATH_MAX];
static char path[PATH_MAX + 32];
static size_t ps, mem_size;
static uint8_t *orig; /* what the guest memory held */
static struct snap *snap;
static struct pager *pager;
static void *guest[2];

struct fail_log {
	atomic_int calls;
	atomic_int err;
};

static struct fail_log fails;

static void on_fail(void *arg, int err)
{
	struct fail_log *f = arg;

	atomic_store(&f->err, err);
	atomic_fetch_add(&f->calls, 1);
}

static void setup(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	mem_size = NR_CHUNKS * CHUNK - 3 * ps; /* a short last chunk */
	snprintf(dir, sizeof(dir), "/tmp/sandbox-pager-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.snap", dir);
	orig = NULL;
	snap = NULL;
	pager = NULL;
	guest[0] = guest[1] = MAP_FAILED;
	atomic_store(&fails.calls, 0);
	atomic_store(&fails.err, 0);
}

static void teardown(void)
{
	unsigned int i;

	pager__free(pager);
	snap__close(snap);
	for (i = 0; i < 2; i++)
		if (guest[i] != MAP_FAILED)
			munmap(guest[i], mem_size);
	free(orig);
	unlink(path);
	rmdir(dir);
}

TestSuite(pager, .init = setup, .fini = teardown, .timeout = 30);

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Chunk 0 random, every fourth chunk all zero, the rest a mix of zero, text and random pages. */
static void build_orig(void)
{
	uint64_t rng = 7;
	size_t p, off;

	orig = calloc(1, mem_size);
	cr_assert_not_null(orig);
	for (p = 0; p < mem_size / ps; p++) {
		size_t c = p * ps / CHUNK;
		uint8_t *pg = orig + p * ps;

		if (c % 4 == 1 || (c && p % 3 == 0))
			continue;
		if (c == 0 || p % 5 == 0) {
			for (off = 0; off < ps; off += 8) {
				uint64_t v = rng_next(&rng);

				memcpy(pg + off, &v, 8);
			}
		} else {
			for (off = 0; off < ps; off++)
				pg[off] = (uint8_t)("guest text "[off % 11] +
						    p % 7);
		}
	}
}

static void write_snap(enum snap_encoding enc)
{
	struct snap_write_opts o = {
		.arch = SNAP_ARCH_X86_64,
		.encoding = enc,
		.level = 3,
		.chunk_size = CHUNK,
	};
	struct snap_blob st[SNAP_NR_STATES] = { { NULL, 0 } };
	struct snap_region r = { 0x40000000, mem_size };
	void *hva = orig;

	/* calloc'd memory is not page-aligned: copy it into a mapping. */
	hva = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(hva, MAP_FAILED);
	memcpy(hva, orig, mem_size);
	cr_assert_eq(snap__write(path, &o, st, &r, &hva, 1, NULL), 0);
	munmap(hva, mem_size);
	cr_assert_eq(snap__open(path, SNAP_ARCH_X86_64, &snap), 0);
}

static void *fresh_guest(int i)
{
	guest[i] = mmap(NULL, mem_size, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	cr_assert_neq(guest[i], MAP_FAILED);
	return guest[i];
}

static void start(enum pager_mode mode, void *hva)
{
	int err = pager__start(snap, mode, hva, mem_size, on_fail, &fails,
			       &pager);

	if (mode == PAGER_UFFD && (err == -ENOSYS || err == -EPERM))
		cr_skip_test("userfaultfd unavailable: %s", strerror(-err));
	cr_assert_eq(err, 0, "pager__start: %s", strerror(-err));
}

static void flip_byte(uint64_t off)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);
	uint8_t b;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &b, 1, (off_t)off), 1);
	b ^= 0xff;
	cr_assert_eq(pwrite(fd, &b, 1, (off_t)off), 1);
	close(fd);
}

static uint64_t header_u64(uint64_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t v;

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, &v, 8, (off_t)off), 8);
	close(fd);
	return le64toh(v);
}

struct walker {
	const uint8_t *mem;
	bool backwards;
	size_t bad_pages;
};

/* Reads every page, as a vCPU would, comparing with the original. */
static void *walk(void *arg)
{
	struct walker *w = arg;
	size_t n = mem_size / ps, k;

	for (k = 0; k < n; k++) {
		size_t p = w->backwards ? n - 1 - k : k;

		if (memcmp(w->mem + p * ps, orig + p * ps, ps))
			w->bad_pages++;
	}
	return NULL;
}

/*
 * The counters, once @chunks chunks are in: the page server counts a chunk
 * just after the ioctl that already woke the faulting thread.
 */
static void settled_stats(uint64_t chunks, struct pager_stats *st)
{
	int ms;

	for (ms = 0; ms < 2000; ms++) {
		pager__stats(pager, st);
		if (st->chunks_copied + st->chunks_zeroed >= chunks)
			return;
		usleep(1000);
	}
}

Test(pager, uffd_serves_every_page_to_concurrent_readers)
{
	struct walker a = { 0 }, b = { 0 };
	struct pager_stats st;
	pthread_t t;
	uint8_t *mem;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	start(PAGER_UFFD, mem);
	a.mem = b.mem = mem;
	b.backwards = true;
	cr_assert_eq(pthread_create(&t, NULL, walk, &b), 0);
	walk(&a);
	pthread_join(t, NULL);
	cr_assert_eq(a.bad_pages, 0);
	cr_assert_eq(b.bad_pages, 0);

	settled_stats(NR_CHUNKS, &st);
	cr_assert_gt(st.faults, 0);
	cr_assert_eq(st.chunks_copied + st.chunks_zeroed, NR_CHUNKS,
		     "every chunk once: %llu + %llu",
		     (unsigned long long)st.chunks_copied,
		     (unsigned long long)st.chunks_zeroed);
	cr_assert_eq(st.chunks_zeroed, snap__info(snap)->mem.zero_chunks);
	cr_assert_leq(st.bytes_installed, mem_size);
	cr_assert_eq(st.bytes_installed, mem_size,
		     "each byte once, none twice");
	cr_assert_eq(atomic_load(&fails.calls), 0);
}

Test(pager, uffd_installs_only_the_touched_chunk)
{
	volatile uint8_t *mem;
	struct pager_stats st;
	size_t off = 6 * CHUNK + 3 * ps + 17;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	start(PAGER_UFFD, (void *)mem);
	pager__stats(pager, &st);
	cr_assert_eq(st.faults, 0);

	cr_assert_eq(mem[off], orig[off]);
	settled_stats(1, &st);
	cr_assert_eq(st.faults, 1);
	cr_assert_eq(st.chunks_copied, 1);
	cr_assert_eq(st.chunks_zeroed, 0);
	cr_assert_eq(st.bytes_installed, CHUNK);
	/* The rest of the chunk came with it: no more faults. */
	cr_assert_eq(mem[6 * CHUNK], orig[6 * CHUNK]);
	cr_assert_eq(mem[7 * CHUNK - 1], orig[7 * CHUNK - 1]);
	pager__stats(pager, &st);
	cr_assert_eq(st.faults, 1);

	/* Chunk 1 is all zero: installed as zero pages, not decoded. */
	cr_assert(snap__chunk_is_zero(snap, 1));
	cr_assert_eq(mem[CHUNK + 100], 0);
	settled_stats(2, &st);
	cr_assert_eq(st.faults, 2);
	cr_assert_eq(st.chunks_copied, 1);
	cr_assert_eq(st.chunks_zeroed, 1);

	/* Writes land in installed memory and stay. */
	mem[off] = (uint8_t)~orig[off];
	cr_assert_eq(mem[off], (uint8_t)~orig[off]);
	/* The short last chunk. */
	cr_assert_eq(mem[mem_size - 1], orig[mem_size - 1]);
	settled_stats(3, &st);
	cr_assert_eq(st.chunks_copied, 2);
	cr_assert_eq(st.bytes_installed, 2 * CHUNK + (CHUNK - 3 * ps));
}

static bool is_zero(const volatile uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i])
			return false;
	return true;
}

Test(pager, uffd_corrupt_chunk_reads_as_zeros_and_reports_once)
{
	size_t last = (NR_CHUNKS - 1) * CHUNK, k, nonzero = 0;
	volatile uint8_t *mem;
	uint64_t data;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	snap__close(snap);
	snap = NULL;
	/* Chunk 0 is stored first, the last chunk last: damage both. */
	data = header_u64(HDR_DATA_OFFSET);
	flip_byte(data + 100);
	flip_byte(data + header_u64(HDR_DATA_LENGTH) - 5);
	cr_assert_eq(snap__open(path, 0, &snap), 0);
	mem = fresh_guest(0);
	start(PAGER_UFFD, (void *)mem);

	/* No access may hang: the suite's timeout is the guard. */
	for (k = 0; k < CHUNK; k += ps) {
		cr_assert_not(is_zero(orig + k, ps));
		cr_assert(is_zero(mem + k, ps), "page %zu", k / ps);
	}
	for (k = last; k < mem_size; k += ps) {
		nonzero += !is_zero(orig + k, ps);
		cr_assert(is_zero(mem + k, ps), "page %zu", k / ps);
	}
	cr_assert_gt(nonzero, 0);
	cr_assert_eq(atomic_load(&fails.calls), 1);
	cr_assert_eq(atomic_load(&fails.err), -EBADMSG);
	/* The pager keeps serving the good chunks. */
	for (k = 2 * CHUNK; k < 3 * CHUNK; k += ps)
		cr_assert_eq(memcmp((const uint8_t *)mem + k, orig + k, ps), 0);
	cr_assert_eq(atomic_load(&fails.calls), 1);
}

Test(pager, untouched_pages_read_as_zeros_after_free)
{
	volatile uint8_t *mem;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	start(PAGER_UFFD, (void *)mem);
	cr_assert_eq(mem[0], orig[0]);
	pager__free(pager);
	pager = NULL;
	cr_assert_eq(mem[1], orig[1]);
	cr_assert_eq(mem[3 * CHUNK], 0);
}

Test(pager, eager_decodes_everything_and_leaves_zero_pages_unallocated)
{
	unsigned char resident[NR_CHUNKS * CHUNK / 4096];
	struct pager_stats st;
	struct walker w = { 0 };
	uint8_t *mem;
	size_t p;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	start(PAGER_EAGER, mem);
	pager__stats(pager, &st);
	cr_assert_eq(st.faults, 0);
	cr_assert_eq(st.chunks_copied,
		     NR_CHUNKS - snap__info(snap)->mem.zero_chunks);
	cr_assert_eq(st.bytes_installed, snap__info(snap)->mem.raw_bytes);
	/* Checked before reading: reading zero pages maps them. */
	cr_assert_eq(mincore(mem, mem_size, resident), 0);
	for (p = 0; p < mem_size / ps; p++) {
		static const uint8_t zero[65536];

		if (!memcmp(orig + p * ps, zero, ps))
			cr_assert_not(resident[p] & 1, "zero page %zu", p);
		else
			cr_assert(resident[p] & 1, "page %zu", p);
	}
	w.mem = mem;
	walk(&w);
	cr_assert_eq(w.bad_pages, 0);
}

Test(pager, eager_refuses_corrupt_memory)
{
	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	snap__close(snap);
	snap = NULL;
	flip_byte(header_u64(HDR_DATA_OFFSET) + 100);
	cr_assert_eq(snap__open(path, 0, &snap), 0);
	cr_assert_eq(pager__start(snap, PAGER_EAGER, fresh_guest(0), mem_size,
				  NULL, NULL, &pager),
		     -EBADMSG);
	cr_assert_null(pager);
}

Test(pager, file_mappings_are_private_and_independent)
{
	struct walker w = { 0 };
	struct pager *second = NULL;
	uint8_t *a, *b, byte;
	size_t off = 2 * CHUNK + 5 * ps + 9;
	int fd;

	build_orig();
	write_snap(SNAP_ENC_RAW);
	a = fresh_guest(0);
	b = fresh_guest(1);
	start(PAGER_FILE, a);
	cr_assert_eq(pager__start(snap, PAGER_FILE, b, mem_size, NULL, NULL,
				  &second),
		     0);
	w.mem = a;
	walk(&w);
	cr_assert_eq(w.bad_pages, 0);

	a[off] = (uint8_t)~orig[off];
	a[CHUNK + 1] = 0x77; /* a hole in the file */
	cr_assert_eq(b[off], orig[off]);
	cr_assert_eq(b[CHUNK + 1], 0);
	b[off] = 0x11;
	cr_assert_eq(a[off], (uint8_t)~orig[off]);

	fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(
		pread(fd, &byte, 1, (off_t)(header_u64(HDR_DATA_OFFSET) + off)),
		1);
	cr_assert_eq(byte, orig[off], "a guest write reached the file");
	close(fd);
	pager__free(second);
}

Test(pager, file_mode_needs_a_sound_raw_snapshot)
{
	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	cr_assert_eq(pager__start(snap, PAGER_FILE, fresh_guest(0), mem_size,
				  NULL, NULL, &pager),
		     -EINVAL);
	snap__close(snap);
	snap = NULL;
	write_snap(SNAP_ENC_RAW);
	snap__close(snap);
	snap = NULL;
	flip_byte(header_u64(HDR_DATA_OFFSET) + 3 * CHUNK - 1);
	cr_assert_eq(snap__open(path, 0, &snap), 0);
	cr_assert_eq(pager__start(snap, PAGER_FILE, guest[0], mem_size, NULL,
				  NULL, &pager),
		     -EBADMSG);
	cr_assert_null(pager);
}

Test(pager, refuses_a_mapping_of_the_wrong_size_or_alignment)
{
	uint8_t *mem;

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	cr_assert_eq(pager__start(snap, PAGER_UFFD, mem, mem_size - ps, NULL,
				  NULL, &pager),
		     -EINVAL);
	cr_assert_eq(pager__start(snap, PAGER_EAGER, mem + 8, mem_size, NULL,
				  NULL, &pager),
		     -EINVAL);
	cr_assert_eq(pager__start(snap, (enum pager_mode)9, mem, mem_size, NULL,
				  NULL, &pager),
		     -EINVAL);
	cr_assert_null(pager);
	pager__free(NULL);
}

Test(pager, a_page_dropped_after_install_reads_as_zeros)
{
	volatile uint8_t *mem;
	struct pager_stats st;
	size_t off = 2 * CHUNK + 2 * ps; /* not a zero page */

	build_orig();
	write_snap(SNAP_ENC_ZSTD);
	mem = fresh_guest(0);
	start(PAGER_UFFD, (void *)mem);
	cr_assert_eq(memcmp((const uint8_t *)mem + off, orig + off, ps), 0);
	cr_assert_not(is_zero(orig + off, ps));
	/* As a balloon would: the chunk is installed, the page is gone again. */
	cr_assert_eq(madvise((void *)(mem + off), ps, MADV_DONTNEED), 0);
	cr_assert(is_zero(mem + off, ps));
	cr_assert_eq(
		memcmp((const uint8_t *)mem + off + ps, orig + off + ps, ps),
		0);
	settled_stats(1, &st);
	cr_assert_eq(st.faults, 2);
	cr_assert_eq(st.chunks_copied, 1);
}
