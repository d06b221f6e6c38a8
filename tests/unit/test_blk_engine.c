// SPDX-License-Identifier: Apache-2.0
// io_uring block engine against real files: data, batches, flush, holes, O_DIRECT, limits.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../../devices/blk_engine.h"

#define MAX_DIRS 4

/* Scratch directories made by this test (each test runs in its own process). */
static char dirs[MAX_DIRS][PATH_MAX];
static int ndirs;
static bool ramfs_mounted;
static struct blk_engine *eng;

static void setup(void)
{
	ndirs = 0;
	ramfs_mounted = false;
	eng = NULL;
}

static void rm_tree(const char *dir)
{
	struct dirent *de;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(d), de->d_name, 0);
	closedir(d);
	rmdir(dir);
}

static void teardown(void)
{
	int i;

	blk_engine__free(eng);
	for (i = ndirs - 1; i >= 0; i--) {
		rm_tree(dirs[i]);
		if (ramfs_mounted && i == 0)
			umount2(dirs[i], MNT_DETACH);
		rmdir(dirs[i]);
	}
}

TestSuite(blk_engine, .init = setup, .fini = teardown, .timeout = 60);

/* A fresh directory under @base, removed with its files by teardown(). */
static const char *scratch_dir(const char *base)
{
	char *d;

	cr_assert_lt(ndirs, MAX_DIRS);
	d = dirs[ndirs];
	snprintf(d, PATH_MAX, "%s/sandbox-blk-XXXXXX", base);
	cr_assert_not_null(mkdtemp(d), "mkdtemp in %s: %s", base,
			   strerror(errno));
	ndirs++;
	return d;
}

/* No period of 512 or 4096: a sector read from the wrong place shows. */
static uint8_t pattern(uint64_t off)
{
	return (uint8_t)((off >> 9) * 31 + (off & 511) * 7 + 3);
}

static void fill_pattern(uint8_t *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pattern(off + i);
}

static bool is_pattern(const uint8_t *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i] != pattern(off + i))
			return false;
	return true;
}

static bool is_zero(const uint8_t *buf, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

/* Creates @dir/@name of @size bytes, patterned when @fill, else sparse. */
static const char *make_file(const char *dir, const char *name, off_t size,
			     bool fill)
{
	static char path[MAX_DIRS * 4][PATH_MAX];
	static int n;
	char *p = path[n++ % (MAX_DIRS * 4)];
	uint8_t buf[65536];
	off_t off;
	int fd;

	snprintf(p, PATH_MAX, "%s/%s", dir, name);
	fd = open(p, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	cr_assert_geq(fd, 0, "%s: %s", p, strerror(errno));
	cr_assert_eq(ftruncate(fd, size), 0);
	for (off = 0; fill && off < size; off += (off_t)sizeof(buf)) {
		size_t len = (size_t)(size - off) < sizeof(buf)
				     ? (size_t)(size - off)
				     : sizeof(buf);

		fill_pattern(buf, (uint64_t)off, len);
		cr_assert_eq(pwrite(fd, buf, len, off), (ssize_t)len);
	}
	close(fd);
	return p;
}

static void pread_file(const char *path, void *buf, size_t len, off_t off)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	cr_assert_geq(fd, 0);
	cr_assert_eq(pread(fd, buf, len, off), (ssize_t)len);
	close(fd);
}

static struct stat stat_file(const char *path)
{
	struct stat st;

	cr_assert_eq(stat(path, &st), 0);
	return st;
}

/* Reaps until @n completions arrived, waiting as needed. */
static void reap_n(struct blk_completion *out, unsigned int n)
{
	unsigned int got = 0;
	int ret;

	while (got < n) {
		ret = blk_engine__reap(eng, out + got, n - got, true);
		cr_assert_geq(ret, 0, "reap: %s", strerror(-ret));
		cr_assert_gt(ret, 0, "reap waited but returned nothing");
		got += (unsigned int)ret;
	}
}

/* One request through queue, submit, reap; returns its result. */
static int do_rw(bool write, uint64_t off, const struct iovec *iov, int iovcnt)
{
	struct blk_completion c;
	uint64_t len = 0;
	int i, ret;

	for (i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	ret = write ? blk_engine__queue_write(eng, off, iov, iovcnt, &c)
		    : blk_engine__queue_read(eng, off, iov, iovcnt, &c);
	cr_assert_eq(ret, 0, "queue: %s", strerror(-ret));
	cr_assert_eq(blk_engine__submit(eng), 1);
	reap_n(&c, 1);
	cr_assert_eq(c.cookie, &c);
	if (!c.result)
		cr_assert_eq(c.bytes, len);
	return c.result;
}

static int do_buf(bool write, uint64_t off, void *buf, size_t len)
{
	struct iovec iov = { .iov_base = buf, .iov_len = len };

	return do_rw(write, off, &iov, 1);
}

static int do_range(bool discard, uint64_t off, uint64_t len)
{
	struct blk_completion c;
	int ret;

	ret = discard ? blk_engine__queue_discard(eng, off, len, &c)
		      : blk_engine__queue_write_zeroes(eng, off, len, &c);
	if (ret)
		return ret;
	cr_assert_eq(blk_engine__submit(eng), 1);
	reap_n(&c, 1);
	cr_assert_eq(c.cookie, &c);
	cr_assert_eq(c.bytes, 0);
	return c.result;
}

/* File status flags of every fd this process holds on @path. */
static int fd_flags(const char *path, int *flags, int max)
{
	char link[300], target[PATH_MAX], line[128];
	struct dirent *de;
	int n = 0;
	DIR *d;

	d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while ((de = readdir(d)) && n < max) {
		ssize_t len;
		FILE *f;

		snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue;
		target[len] = 0;
		if (strcmp(target, path))
			continue;
		snprintf(link, sizeof(link), "/proc/self/fdinfo/%s",
			 de->d_name);
		f = fopen(link, "re");
		cr_assert_not_null(f);
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "flags: %o", &flags[n]) == 1)
				n++;
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool fs_takes_o_direct(const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0) {
		cr_assert_eq(errno, EINVAL, "%s: %s", path, strerror(errno));
		return false;
	}
	close(fd);
	return true;
}

static bool fs_takes_fallocate(const char *dir, int mode)
{
	const char *p = make_file(dir, "probe", 8192, true);
	int fd = open(p, O_RDWR | O_CLOEXEC);
	bool ok;

	cr_assert_geq(fd, 0);
	ok = fallocate(fd, mode | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0;
	close(fd);
	unlink(p);
	return ok;
}

static void *aligned_buf(size_t align, size_t len)
{
	void *p = NULL;

	cr_assert_eq(posix_memalign(&p, align, len), 0);
	return p;
}

Test(blk_engine, reports_capacity_sectors_block_size_and_id)
{
	const char *dir = scratch_dir("/tmp");
	const char *path = make_file(dir, "disk", SZ_1M + 100, false);
	const char *other = make_file(dir, "other", SZ_1M, false);
	struct stat st = stat_file(path);
	struct blk_engine *again;
	struct statx stx;
	uint32_t bs = 512;
	char want[32];
	uint64_t ino;
	size_t i;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	/* The 100 bytes past the last whole sector are not exposed. */
	cr_assert_eq(blk_engine__capacity(eng), SZ_1M);
	cr_assert_eq(blk_engine__sectors(eng), SZ_1M / 512);

	cr_assert_eq(statx(AT_FDCWD, path, 0, STATX_DIOALIGN, &stx), 0);
	if ((stx.stx_mask & STATX_DIOALIGN) && stx.stx_dio_offset_align > 512)
		bs = stx.stx_dio_offset_align;
	cr_assert_eq(blk_engine__block_size(eng), bs);

	ino = (uint64_t)st.st_ino;
	snprintf(want, sizeof(want), "%08x%012llx",
		 major(st.st_dev) << 20 | minor(st.st_dev),
		 (unsigned long long)((ino & 0xffffffffffffULL) ^ (ino >> 48)));
	cr_assert_str_eq(blk_engine__id(eng), want);
	cr_assert_eq(strlen(blk_engine__id(eng)), BLK_ENGINE_ID_LEN);
	for (i = 0; i < BLK_ENGINE_ID_LEN; i++)
		cr_assert(strchr("0123456789abcdef", blk_engine__id(eng)[i]));

	/* Stable across opens (read-only too), distinct between files. */
	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_RDONLY, 1, &again), 0);
	cr_assert_str_eq(blk_engine__id(again), want);
	blk_engine__free(again);
	cr_assert_eq(blk_engine__new(other, 0, 1, &again), 0);
	cr_assert_str_neq(blk_engine__id(again), want);
	blk_engine__free(again);
	cr_assert(blk_engine__features(eng) & BLK_ENGINE_F_FLUSH);
}

Test(blk_engine, rejects_bad_arguments)
{
	const char *dir = scratch_dir("/tmp");
	const char *path = make_file(dir, "disk", 65536, false);
	char fifo[PATH_MAX];

	cr_assert_eq(blk_engine__new(path, 0, 0, &eng), -EINVAL);
	cr_assert_eq(blk_engine__new(path, 0, BLK_ENGINE_MAX_DEPTH + 1, &eng),
		     -EINVAL);
	cr_assert_eq(blk_engine__new(path, 1U << 7, 8, &eng), -EINVAL);
	cr_assert_eq(blk_engine__new(dir, BLK_ENGINE_RDONLY, 8, &eng), -EINVAL);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	cr_assert_eq(mkfifo(fifo, 0600), 0);
	/* Refused without blocking on the missing writer. */
	cr_assert_eq(blk_engine__new(fifo, BLK_ENGINE_RDONLY, 8, &eng),
		     -EINVAL);
	snprintf(fifo, sizeof(fifo), "%s/missing", dir);
	cr_assert_eq(blk_engine__new(fifo, 0, 8, &eng), -ENOENT);
	cr_assert_null(eng);
	blk_engine__free(NULL);
}

Test(blk_engine, write_then_read_back)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, false);
	static uint8_t out[65536], in[65536], file[65536];

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	fill_pattern(out, 131072, sizeof(out));
	cr_assert_eq(do_buf(true, 131072, out, sizeof(out)), 0);
	cr_assert_eq(do_buf(false, 131072, in, sizeof(in)), 0);
	cr_assert_arr_eq(in, out, sizeof(in));
	pread_file(path, file, sizeof(file), 131072);
	cr_assert_arr_eq(file, out, sizeof(file));
	/* Untouched space around it still reads as zeros. */
	cr_assert_eq(do_buf(false, 131072 - 512, in, 512), 0);
	cr_assert(is_zero(in, 512));
}

Test(blk_engine, vectored_io_scatters_and_gathers)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, false);
	static uint8_t src[8192], dst[8192], file[8192];
	struct iovec wv[5], rv[3];
	size_t wl[5] = { 1000, 24, 3000, 72, 4096 }, rl[3] = { 512, 7000, 680 };
	size_t off;
	int i;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	fill_pattern(src, 4096, sizeof(src));
	for (i = 0, off = 0; i < 5; off += wl[i++])
		wv[i] = (struct iovec){ .iov_base = src + off,
					.iov_len = wl[i] };
	for (i = 0, off = 0; i < 3; off += rl[i++])
		rv[i] = (struct iovec){ .iov_base = dst + off,
					.iov_len = rl[i] };
	cr_assert_eq(do_rw(true, 4096, wv, 5), 0);
	cr_assert_eq(do_rw(false, 4096, rv, 3), 0);
	cr_assert_arr_eq(dst, src, sizeof(src));
	pread_file(path, file, sizeof(file), 4096);
	cr_assert_arr_eq(file, src, sizeof(file));
}

Test(blk_engine, batch_of_64_mixed_requests_goes_in_one_submit)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, true);
	static uint8_t bufs[64][4096], file[4096];
	struct blk_completion c[64];
	bool seen[64] = { false };
	struct iovec iov;
	int i, ret;

	cr_assert_eq(blk_engine__new(path, 0, 64, &eng), 0);
	/* Even: read block 2i (patterned); odd: write block 2i+1 with i. */
	for (i = 0; i < 64; i++) {
		uint64_t off = (uint64_t)i * 8192 + (i & 1) * 4096;

		memset(bufs[i], (i & 1) ? i : 0xee, 4096);
		iov = (struct iovec){ .iov_base = bufs[i], .iov_len = 4096 };
		ret = (i & 1) ? blk_engine__queue_write(eng, off, &iov, 1,
							&seen[i])
			      : blk_engine__queue_read(eng, off, &iov, 1,
						       &seen[i]);
		cr_assert_eq(ret, 0);
	}
	cr_assert_eq(blk_engine__room(eng), 0);
	/* Queued is not submitted: the file is unchanged so far. */
	pread_file(path, file, 4096, 8192 + 4096);
	cr_assert(is_pattern(file, 8192 + 4096, 4096));

	cr_assert_eq(blk_engine__submit(eng), 64);
	reap_n(c, 64);
	for (i = 0; i < 64; i++) {
		int idx = (int)((bool *)c[i].cookie - seen);

		cr_assert(idx >= 0 && idx < 64);
		cr_assert_not(seen[idx], "cookie %d reaped twice", idx);
		seen[idx] = true;
		cr_assert_eq(c[i].result, 0);
		cr_assert_eq(c[i].bytes, 4096);
	}
	cr_assert_eq(blk_engine__room(eng), 64);
	for (i = 0; i < 64; i++) {
		uint64_t off = (uint64_t)i * 8192 + (i & 1) * 4096;

		if (i & 1) {
			pread_file(path, file, 4096, (off_t)off);
			cr_assert_eq(file[0], i);
			cr_assert_eq(file[4095], i);
		} else {
			cr_assert(is_pattern(bufs[i], off, 4096), "read %d", i);
		}
	}
}

Test(blk_engine, poll_fd_signals_completions_and_stays_armed)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, true);
	struct pollfd pfd = { .events = POLLIN };
	static uint8_t buf[4][4096];
	struct blk_completion c[4];
	struct iovec iov;
	int i;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	pfd.fd = blk_engine__poll_fd(eng);
	cr_assert_eq(poll(&pfd, 1, 0), 0);

	/* Zero-length requests complete during the submit itself. */
	for (i = 0; i < 4; i++)
		cr_assert_eq(blk_engine__queue_read(eng, 0, NULL, 0, &c[i]), 0);
	cr_assert_eq(blk_engine__submit(eng), 4);
	cr_assert_eq(poll(&pfd, 1, 5000), 1);
	cr_assert_eq(blk_engine__reap(eng, c, 1, false), 1);
	/* Three are still waiting: the fd must stay readable. */
	cr_assert_eq(poll(&pfd, 1, 0), 1);
	cr_assert_eq(blk_engine__reap(eng, c + 1, 3, false), 3);
	cr_assert_eq(poll(&pfd, 1, 0), 0);
	cr_assert_eq(blk_engine__reap(eng, c, 4, false), 0);

	/* Real reads: wait with poll only, then reap without blocking. */
	for (i = 0; i < 4; i++) {
		iov = (struct iovec){ .iov_base = buf[i], .iov_len = 4096 };
		cr_assert_eq(blk_engine__queue_read(eng, (uint64_t)i * 65536,
						    &iov, 1, &c[i]),
			     0);
	}
	cr_assert_eq(blk_engine__submit(eng), 4);
	for (i = 0; i < 4;) {
		int n;

		cr_assert_eq(poll(&pfd, 1, 5000), 1, "no wakeup for %d", i);
		n = blk_engine__reap(eng, c + i, 4 - (unsigned int)i, false);
		cr_assert_geq(n, 0);
		i += n;
	}
	cr_assert_eq(poll(&pfd, 1, 0), 0);
	for (i = 0; i < 4; i++)
		cr_assert(is_pattern(buf[i], (uint64_t)i * 65536, 4096));
}

Test(blk_engine, flush_completes_after_writes)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, false);
	static uint8_t buf[8192];
	struct blk_completion c;
	int cookie;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	fill_pattern(buf, 0, sizeof(buf));
	cr_assert_eq(do_buf(true, 0, buf, sizeof(buf)), 0);
	cr_assert_eq(blk_engine__queue_flush(eng, &cookie), 0);
	cr_assert_eq(blk_engine__submit(eng), 1);
	reap_n(&c, 1);
	cr_assert_eq(c.cookie, &cookie);
	cr_assert_eq(c.result, 0);
	cr_assert_eq(c.bytes, 0);
}

Test(blk_engine, read_only_refuses_modifications)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, true);
	static uint8_t buf[4096];
	struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) };
	struct blk_completion c;
	int flags[4], n, i;

	cr_assert_eq(chmod(path, 0444), 0);
	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_RDONLY, 4, &eng), 0);
	cr_assert(blk_engine__features(eng) & BLK_ENGINE_F_RO);
	cr_assert_not(blk_engine__features(eng) &
		      (BLK_ENGINE_F_DISCARD | BLK_ENGINE_F_WRITE_ZEROES));
	n = fd_flags(path, flags, 4);
	cr_assert_eq(n, 1);
	for (i = 0; i < n; i++)
		cr_assert_eq(flags[i] & O_ACCMODE, O_RDONLY);

	cr_assert_eq(blk_engine__queue_write(eng, 0, &iov, 1, NULL), -EROFS);
	cr_assert_eq(blk_engine__queue_discard(eng, 0, 4096, NULL), -EROFS);
	cr_assert_eq(blk_engine__queue_write_zeroes(eng, 0, 4096, NULL),
		     -EROFS);
	cr_assert_eq(blk_engine__room(eng), 4);
	cr_assert_eq(blk_engine__reap(eng, &c, 1, false), 0);

	cr_assert_eq(do_buf(false, 8192, buf, sizeof(buf)), 0);
	cr_assert(is_pattern(buf, 8192, sizeof(buf)));
	cr_assert_eq(blk_engine__queue_flush(eng, &c), 0);
	cr_assert_eq(blk_engine__submit(eng), 1);
	reap_n(&c, 1);
	cr_assert_eq(c.result, 0);
}

Test(blk_engine, rejects_out_of_range_and_overflowing_requests)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", 65536, false);
	static uint8_t buf[1024];
	struct iovec iov = { .iov_base = buf, .iov_len = 1024 };
	struct iovec huge[2] = { { buf, SIZE_MAX / 2 + 1 },
				 { buf, SIZE_MAX / 2 + 1 } };
	struct blk_completion c;
	uint32_t f;

	cr_assert_eq(blk_engine__new(path, 0, 4, &eng), 0);
	f = blk_engine__features(eng);
	cr_assert_eq(blk_engine__queue_read(eng, 65536 - 512, &iov, 1, NULL),
		     -EINVAL);
	cr_assert_eq(blk_engine__queue_write(eng, 65536, &iov, 1, NULL),
		     -EINVAL);
	cr_assert_eq(
		blk_engine__queue_read(eng, UINT64_MAX - 511, &iov, 1, NULL),
		-EINVAL);
	cr_assert_eq(blk_engine__queue_read(eng, 0, huge, 2, NULL), -EINVAL);
	cr_assert_eq(blk_engine__queue_read(eng, 0, &iov, -1, NULL), -EINVAL);
	cr_assert_eq(blk_engine__queue_read(eng, 0, &iov, IOV_MAX + 1, NULL),
		     -EINVAL);
	cr_assert_eq(blk_engine__queue_read(eng, 65536 + 512, NULL, 0, NULL),
		     -EINVAL);
	cr_assert_eq(
		blk_engine__queue_discard(eng, UINT64_MAX - 4095, 8192, NULL),
		(f & BLK_ENGINE_F_DISCARD) ? -EINVAL : -EOPNOTSUPP);
	cr_assert_eq(blk_engine__queue_write_zeroes(eng, 61440, 8192, NULL),
		     (f & BLK_ENGINE_F_WRITE_ZEROES) ? -EINVAL : -EOPNOTSUPP);
	/* Nothing was queued by the refusals. */
	cr_assert_eq(blk_engine__room(eng), 4);
	cr_assert_eq(blk_engine__submit(eng), 0);
	cr_assert_eq(blk_engine__reap(eng, &c, 1, true), 0);
	/* The last sector itself is in range. */
	cr_assert_eq(do_buf(false, 65536 - 512, buf, 512), 0);
}

Test(blk_engine, zero_length_requests_complete)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", 65536, false);
	struct blk_completion c[3];
	int ret;

	cr_assert_eq(blk_engine__new(path, 0, 4, &eng), 0);
	cr_assert_eq(blk_engine__queue_read(eng, 65536, NULL, 0, &c[0]), 0);
	cr_assert_eq(blk_engine__queue_write(eng, 0, NULL, 0, &c[1]), 0);
	ret = blk_engine__queue_discard(eng, 4096, 0, &c[2]);
	cr_assert(ret == 0 || ret == -EOPNOTSUPP);
	cr_assert_eq(blk_engine__submit(eng), ret ? 2 : 3);
	reap_n(c, ret ? 2 : 3);
	cr_assert_eq(c[0].result, 0);
	cr_assert_eq(c[0].bytes, 0);
	cr_assert_eq(c[1].result, 0);
}

Test(blk_engine, more_requests_than_depth_get_ebusy_until_reaped)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", SZ_1M, true);
	static uint8_t buf[5][4096];
	struct blk_completion c[4];
	struct iovec iov[5];
	int i;

	cr_assert_eq(blk_engine__new(path, 0, 4, &eng), 0);
	for (i = 0; i < 5; i++)
		iov[i] = (struct iovec){ .iov_base = buf[i], .iov_len = 4096 };
	for (i = 0; i < 4; i++)
		cr_assert_eq(blk_engine__queue_read(eng, (uint64_t)i * 4096,
						    &iov[i], 1, &buf[i]),
			     0);
	cr_assert_eq(blk_engine__room(eng), 0);
	cr_assert_eq(blk_engine__queue_read(eng, 16384, &iov[4], 1, &buf[4]),
		     -EBUSY);
	cr_assert_eq(blk_engine__queue_flush(eng, NULL), -EBUSY);
	cr_assert_eq(blk_engine__submit(eng), 4);
	reap_n(c, 4);
	cr_assert_eq(blk_engine__room(eng), 4);
	cr_assert_eq(do_buf(false, 16384, buf[4], 4096), 0);
	for (i = 0; i < 5; i++)
		cr_assert(is_pattern(buf[i], (uint64_t)i * 4096, 4096));
}

static void check_discard(const char *base)
{
	const char *dir = scratch_dir(base);
	bool supported = fs_takes_fallocate(dir, FALLOC_FL_PUNCH_HOLE);
	const char *path = make_file(dir, "disk", 262144, true);
	static uint8_t buf[262144];
	struct stat before, after;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	cr_assert_eq(!!(blk_engine__features(eng) & BLK_ENGINE_F_DISCARD),
		     supported, "%s: engine and filesystem disagree", base);
	if (!supported) {
		cr_assert_eq(blk_engine__queue_discard(eng, 0, 4096, NULL),
			     -EOPNOTSUPP);
		return;
	}
	before = stat_file(path);
	cr_assert_eq(do_range(true, 65536, 65536), 0);
	/* Not block-aligned: the partial blocks are zeroed too. */
	cr_assert_eq(do_range(true, 200000, 1000), 0);
	after = stat_file(path);
	cr_assert_eq(after.st_size, before.st_size);
	cr_assert_lt(after.st_blocks, before.st_blocks, "no hole punched");

	cr_assert_eq(do_buf(false, 0, buf, sizeof(buf)), 0);
	cr_assert(is_pattern(buf, 0, 65536));
	cr_assert(is_zero(buf + 65536, 65536));
	cr_assert(is_pattern(buf + 131072, 131072, 200000 - 131072));
	cr_assert(is_zero(buf + 200000, 1000));
	cr_assert(is_pattern(buf + 201000, 201000, 262144 - 201000));
}

static void check_write_zeroes(const char *base)
{
	const char *dir = scratch_dir(base);
	bool supported = fs_takes_fallocate(dir, FALLOC_FL_ZERO_RANGE);
	const char *path = make_file(dir, "disk", 262144, true);
	static uint8_t buf[262144];
	struct stat before, after;

	cr_assert_eq(blk_engine__new(path, 0, 8, &eng), 0);
	cr_assert_eq(!!(blk_engine__features(eng) & BLK_ENGINE_F_WRITE_ZEROES),
		     supported, "%s: engine and filesystem disagree", base);
	if (!supported) {
		cr_assert_eq(blk_engine__queue_write_zeroes(eng, 0, 4096, NULL),
			     -EOPNOTSUPP);
		return;
	}
	before = stat_file(path);
	cr_assert_eq(do_range(false, 4096, 131072), 0);
	cr_assert_eq(do_range(false, 150000, 3000), 0);
	after = stat_file(path);
	cr_assert_eq(after.st_size, before.st_size);
	/* Zeroing keeps the blocks allocated, unlike discard. */
	cr_assert_geq(after.st_blocks, before.st_blocks);

	cr_assert_eq(do_buf(false, 0, buf, sizeof(buf)), 0);
	cr_assert(is_pattern(buf, 0, 4096));
	cr_assert(is_zero(buf + 4096, 131072));
	cr_assert(is_pattern(buf + 135168, 135168, 150000 - 135168));
	cr_assert(is_zero(buf + 150000, 3000));
	cr_assert(is_pattern(buf + 153000, 153000, 262144 - 153000));
}

Test(blk_engine, discard_punches_a_zeroed_hole_on_tmp)
{
	check_discard("/tmp");
}

Test(blk_engine, discard_punches_a_zeroed_hole_on_tmpfs)
{
	check_discard("/dev/shm");
}

Test(blk_engine, write_zeroes_zeroes_a_range_on_tmp)
{
	check_write_zeroes("/tmp");
}

Test(blk_engine, write_zeroes_follows_tmpfs_support)
{
	check_write_zeroes("/dev/shm");
}

/*
 * direct=on where the filesystem takes O_DIRECT: the engine must say so and
 * hold an O_DIRECT fd; where it does not, it must say so and still work.
 */
static void check_direct(const char *dir)
{
	const char *path = make_file(dir, "disk", SZ_1M, true);
	bool expect = fs_takes_o_direct(path);
	uint8_t *buf = aligned_buf(4096, 65536);
	uint8_t *file = malloc(65536);
	int flags[4], n, i, ndirect = 0;
	int fd;

	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_DIRECT, 8, &eng), 0);
	cr_assert_eq(!!(blk_engine__features(eng) & BLK_ENGINE_F_DIRECT),
		     expect, "%s: O_DIRECT %s but the engine says otherwise",
		     dir, expect ? "works" : "fails");
	n = fd_flags(path, flags, 4);
	for (i = 0; i < n; i++)
		ndirect += !!(flags[i] & O_DIRECT);
	cr_assert_eq(ndirect, expect ? 1 : 0);
	cr_assert_eq(n, expect ? 2 : 1);

	fill_pattern(buf, 12345, 65536);
	cr_assert_eq(do_buf(true, 65536, buf, 65536), 0);
	pread_file(path, file, 65536, 65536);
	cr_assert_arr_eq(file, buf, 65536);
	/* Written through the page cache, read back directly. */
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	fill_pattern(file, 999, 65536);
	cr_assert_eq(pwrite(fd, file, 65536, 131072), 65536);
	close(fd);
	cr_assert_eq(do_buf(false, 131072, buf, 65536), 0);
	cr_assert_arr_eq(buf, file, 65536);
	free(buf);
	free(file);
}

Test(blk_engine, direct_io_where_the_filesystem_takes_it)
{
	check_direct(scratch_dir("/var/tmp"));
}

Test(blk_engine, direct_io_on_tmpfs_is_reported_as_it_is)
{
	check_direct(scratch_dir("/dev/shm"));
}

Test(blk_engine, direct_io_falls_back_on_ramfs_and_says_so)
{
	const char *dir = scratch_dir("/tmp");

	if (unshare(CLONE_NEWNS) < 0)
		cr_skip_test("cannot unshare a mount namespace: %s (needs "
			     "CAP_SYS_ADMIN)",
			     strerror(errno));
	cr_assert_eq(mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL), 0);
	cr_assert_eq(mount("sandbox-test", dir, "ramfs", 0, "mode=0700"), 0);
	ramfs_mounted = true;
	check_direct(dir);
	cr_assert_not(blk_engine__features(eng) & BLK_ENGINE_F_DIRECT);
}

/* A patterned 1 MiB file where O_DIRECT works, or the test is skipped. */
static const char *direct_file(void)
{
	static const char *const bases[] = { "/var/tmp", "/tmp" };
	const char *path;
	size_t i;

	for (i = 0; i < sizeof(bases) / sizeof(bases[0]); i++) {
		path = make_file(scratch_dir(bases[i]), "disk", SZ_1M, true);
		if (fs_takes_o_direct(path))
			return path;
	}
	cr_skip_test("neither /var/tmp nor /tmp takes O_DIRECT; the fallback "
		     "is checked by the direct_io_* tests");
	return NULL;
}

Test(blk_engine, unaligned_requests_under_direct_are_correct)
{
	const char *path = direct_file();
	uint8_t *mem = aligned_buf(4096, 3 * 65536);
	uint8_t *src = malloc(65536), *file = malloc(65536);
	struct iovec iov[3];

	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_DIRECT, 8, &eng), 0);
	cr_assert(blk_engine__features(eng) & BLK_ENGINE_F_DIRECT);
	cr_assert_leq(blk_engine__block_size(eng), 4096);

	/* Misaligned memory, aligned range: the bounce buffer. */
	fill_pattern(src, 7, 8192);
	memcpy(mem + 1, src, 8192);
	cr_assert_eq(do_buf(true, 4096, mem + 1, 8192), 0);
	memset(mem, 0, 65536);
	cr_assert_eq(do_buf(false, 4096, mem + 3, 8192), 0);
	cr_assert_arr_eq(mem + 3, src, 8192);
	pread_file(path, file, 8192, 4096);
	cr_assert_arr_eq(file, src, 8192);

	/* Misaligned offset and length: the buffered fd. */
	fill_pattern(src, 77, 1000);
	memcpy(mem, src, 1000);
	cr_assert_eq(do_buf(true, 65536 + 100, mem, 1000), 0);
	memset(mem, 0, 65536);
	cr_assert_eq(do_buf(false, 65536 + 100, mem, 1000), 0);
	cr_assert_arr_eq(mem, src, 1000);
	/* Read directly (aligned) around it: the neighbours are intact. */
	cr_assert_eq(do_buf(false, 65536, mem, 4096), 0);
	cr_assert(is_pattern(mem, 65536, 100));
	cr_assert_arr_eq(mem + 100, src, 1000);
	cr_assert(is_pattern(mem + 1100, 65536 + 1100, 4096 - 1100));

	/* Aligned addresses, segment lengths not block multiples: bounce. */
	fill_pattern(src, 5, 4096);
	memcpy(mem, src, 100);
	memcpy(mem + 65536, src + 100, 412);
	memcpy(mem + 2 * 65536, src + 512, 3584);
	iov[0] = (struct iovec){ mem, 100 };
	iov[1] = (struct iovec){ mem + 65536, 412 };
	iov[2] = (struct iovec){ mem + 2 * 65536, 3584 };
	cr_assert_eq(do_rw(true, 131072, iov, 3), 0);
	pread_file(path, file, 4096, 131072);
	cr_assert_arr_eq(file, src, 4096);
	memset(mem, 0, 3 * 65536);
	cr_assert_eq(do_rw(false, 131072, iov, 3), 0);
	cr_assert_arr_eq(mem, src, 100);
	cr_assert_arr_eq(mem + 65536, src + 100, 412);
	cr_assert_arr_eq(mem + 2 * 65536, src + 512, 3584);
	free(mem);
	free(src);
	free(file);
}

/*
 * The kernel moves at most 2 GiB - 4 KiB per call: a 2 GiB read comes back
 * short once, and the engine must read the last 4 KiB itself before it
 * reports the request done. All iovecs share one 2 MiB buffer, so its tail
 * holds the remainder only if it was read.
 */
Test(blk_engine, short_read_is_completed_before_being_reported)
{
	const char *path =
		make_file(scratch_dir("/var/tmp"), "disk", 2 * SZ_1G, false);
	const size_t chunk = 2 * SZ_1M;
	uint8_t *buf = aligned_buf(chunk, chunk), tail[4096];
	struct iovec *iov = calloc(1024, sizeof(*iov));
	struct blk_completion c;
	int fd, i;

	fill_pattern(tail, 2 * SZ_1G - 4096, 4096);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	cr_assert_eq(pwrite(fd, tail, 4096, 2 * SZ_1G - 4096), 4096);
	close(fd);

	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_DIRECT, 4, &eng), 0);
	for (i = 0; i < 1024; i++)
		iov[i] = (struct iovec){ .iov_base = buf, .iov_len = chunk };
	memset(buf, 0xaa, chunk);
	cr_assert_eq(blk_engine__queue_read(eng, 0, iov, 1024, &c), 0);
	cr_assert_eq(blk_engine__submit(eng), 1);
	reap_n(&c, 1);
	cr_assert_eq(c.result, 0, "%s", strerror(-c.result));
	cr_assert_eq(c.bytes, 2 * SZ_1G);
	cr_assert_arr_eq(buf + chunk - 4096, tail, 4096);
	cr_assert(is_zero(buf, chunk - 4096));
	free(iov);
	free(buf);
}

Test(blk_engine, read_past_a_shrunken_file_fails_instead_of_completing)
{
	const char *path = make_file(scratch_dir("/tmp"), "disk", 65536, true);
	static uint8_t buf[65536];

	cr_assert_eq(blk_engine__new(path, 0, 4, &eng), 0);
	cr_assert_eq(truncate(path, 32768 + 512), 0);
	/* The first read stops at the new EOF, the retry gets nothing. */
	cr_assert_eq(do_buf(false, 0, buf, sizeof(buf)), -EIO);
	cr_assert_eq(blk_engine__room(eng), 4);
}

Test(blk_engine, free_waits_for_requests_in_flight)
{
	const char *path =
		make_file(scratch_dir("/var/tmp"), "disk", 4 * SZ_1M, true);
	uint8_t *buf = aligned_buf(4096, 4 * SZ_1M);
	struct iovec iov[16];
	int i;

	cr_assert_eq(blk_engine__new(path, BLK_ENGINE_DIRECT, 16, &eng), 0);
	memset(buf, 0xaa, 4 * SZ_1M);
	for (i = 0; i < 16; i++) {
		iov[i] = (struct iovec){ buf + i * 262144, 262144 };
		cr_assert_eq(blk_engine__queue_read(eng, (uint64_t)i * 262144,
						    &iov[i], 1, NULL),
			     0);
	}
	cr_assert_eq(blk_engine__submit(eng), 16);
	blk_engine__free(eng);
	eng = NULL;
	cr_assert(is_pattern(buf, 0, 4 * SZ_1M));
	free(buf);
}
