// SPDX-License-Identifier: Apache-2.0
// snapshot analyze: exact page counts on hand-made snapshots, compression figures, the report, the CLI.
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../launcher/cli.h"
#include "../../snapshot/analyze.h"
#include "../../snapshot/snap.h"

#define GPA_A 0x40000000ULL
#define GPA_B1 0x80000000ULL

static char dir[PATH_MAX];
static char pa[PATH_MAX + 32], pb[PATH_MAX + 32], pc[PATH_MAX + 32];
static size_t ps;
static struct analyze *res;

static void setup(void)
{
	ps = (size_t)sysconf(_SC_PAGESIZE);
	snprintf(dir, sizeof(dir), "/tmp/sandbox-analyze-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(pa, sizeof(pa), "%s/a.snap", dir);
	snprintf(pb, sizeof(pb), "%s/b.snap", dir);
	snprintf(pc, sizeof(pc), "%s/c.snap", dir);
	res = NULL;
}

static void teardown(void)
{
	struct dirent *de;
	DIR *dh = opendir(dir);

	analyze__free(res);
	while (dh && (de = readdir(dh)))
		if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
			unlinkat(dirfd(dh), de->d_name, 0);
	if (dh)
		closedir(dh);
	rmdir(dir);
}

TestSuite(analyze, .init = setup, .fini = teardown, .timeout = 60);

/* Page content number @id (0: a zero page): compressible text, distinct per id. */
static void fill(uint8_t *pg, unsigned int id)
{
	size_t off = 0;

	memset(pg, 0, ps);
	while (id && off < ps) {
		char line[64];
		int n = snprintf(line, sizeof(line),
				 "content %u, line %zu: the quick brown fox\n",
				 id, off / 48);
		size_t k = (size_t)n < ps - off ? (size_t)n : ps - off;

		memcpy(pg + off, line, k);
		off += k;
	}
}

/*
 * Writes a snapshot whose linear image holds the contents @ids (one per
 * page), split into regions at @gpas of @sizes pages.
 */
static void make(const char *path, const unsigned int *ids, unsigned int n,
		 const uint64_t *gpas, const unsigned int *sizes,
		 unsigned int nr, enum snap_encoding enc, uint32_t chunk_pages)
{
	struct snap_write_opts o = {
		.arch = SNAP_ARCH_ARM64,
		.encoding = enc,
		.level = enc == SNAP_ENC_ZSTD ? 3 : 0,
		.chunk_size = chunk_pages * (uint32_t)ps,
	};
	struct snap_blob st[SNAP_NR_STATES] = {
		{ "cfg", 3 }, { "cpu", 3 }, { NULL, 0 }, { "dev", 3 }
	};
	struct snap_region regions[SNAP_MAX_REGIONS];
	void *hvas[SNAP_MAX_REGIONS];
	unsigned int i, p = 0, total = 0;

	for (i = 0; i < nr; i++) {
		regions[i].gpa = gpas[i];
		regions[i].size = sizes[i] * ps;
		hvas[i] = mmap(NULL, regions[i].size, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		cr_assert_neq(hvas[i], MAP_FAILED);
		for (unsigned int j = 0; j < sizes[i]; j++, p++)
			fill((uint8_t *)hvas[i] + j * ps, p < n ? ids[p] : 0);
		total += sizes[i];
	}
	cr_assert_eq(total, n);
	cr_assert_eq(snap__write(path, &o, st, regions, hvas, nr, NULL), 0);
	for (i = 0; i < nr; i++)
		munmap(hvas[i], regions[i].size);
}

/*
 * A, the base: 48 pages at GPA_A, zstd in 64 KiB chunks.
 *   0-15   contents 1..16
 *   16-31  zero (an all-zero chunk)
 *   32-47  100 x3, 101 x2, zero x3, 17..24
 */
static void make_a(void)
{
	unsigned int ids[48] = { 0 }, i;
	uint64_t gpa = GPA_A;
	unsigned int size = 48;

	for (i = 0; i < 16; i++)
		ids[i] = i + 1;
	ids[32] = ids[33] = ids[34] = 100;
	ids[35] = ids[36] = 101;
	for (i = 0; i < 8; i++)
		ids[40 + i] = 17 + i;
	make(pa, ids, 48, &gpa, &size, 1, SNAP_ENC_ZSTD, 16);
}

/*
 * B: 64 pages, raw, 32 at GPA_A and 32 at GPA_B1.
 *   0-15   contents 1..16 (A's, at A's addresses)
 *   16-19  1..4 again (in A, elsewhere), then zero
 *   32-34  100 x3 (at A's linear place, but another address), 35-47 200..212
 *   48-63  zero
 */
static void make_b(void)
{
	unsigned int ids[64] = { 0 }, i;
	uint64_t gpas[2] = { GPA_A, GPA_B1 };
	unsigned int sizes[2] = { 32, 32 };

	for (i = 0; i < 16; i++)
		ids[i] = i + 1;
	for (i = 0; i < 4; i++)
		ids[16 + i] = i + 1;
	ids[32] = ids[33] = ids[34] = 100;
	for (i = 0; i < 13; i++)
		ids[35 + i] = 200 + i;
	make(pb, ids, 64, gpas, sizes, 2, SNAP_ENC_RAW, 16);
}

/*
 * C: 32 pages, zstd in 16 KiB chunks (a 64 KiB window spans four), 16 zero
 * pages just below GPA_A, then contents 1..16 at A's addresses.
 */
static void make_c(void)
{
	unsigned int ids[32] = { 0 }, i;
	uint64_t gpas[2] = { GPA_A - 16 * ps, GPA_A };
	unsigned int sizes[2] = { 16, 16 };

	for (i = 0; i < 16; i++)
		ids[16 + i] = i + 1;
	make(pc, ids, 32, gpas, sizes, 2, SNAP_ENC_ZSTD, 4);
}

static struct analyze_opts opts(bool dict)
{
	return (struct analyze_opts){
		.levels = { 1, 3, 19 },
		.nr_levels = 3,
		.dict = dict,
	};
}

static void assert_pages(const struct analyze_snap *r, uint64_t pages,
			 uint64_t zero, uint64_t distinct, uint64_t unique,
			 uint64_t dup, uint64_t dup_contents)
{
	cr_assert_eq(r->pages, pages, "%s pages", r->path);
	cr_assert_eq(r->zero_pages, zero, "%s zero", r->path);
	cr_assert_eq(r->nonzero_pages, pages - zero, "%s non-zero", r->path);
	cr_assert_eq(r->distinct, distinct, "%s distinct", r->path);
	cr_assert_eq(r->unique_pages, unique, "%s unique", r->path);
	cr_assert_eq(r->dup_pages, dup, "%s dup", r->path);
	cr_assert_eq(r->dup_contents, dup_contents, "%s dup contents", r->path);
	cr_assert_eq(r->dup_saved, dup - dup_contents, "%s saved", r->path);
	cr_assert_eq(r->unique_pages + r->dup_pages, r->nonzero_pages);
}

Test(analyze, counts_zero_unique_and_duplicated_pages_of_one_snapshot)
{
	const char *paths[] = { pa };
	struct analyze_opts o = opts(false);

	make_a();
	cr_assert_eq(analyze__run(paths, 1, &o, &res), 0);
	cr_assert_eq(res->set.nr, 1);
	assert_pages(&res->snaps[0], 48, 19, 26, 24, 5, 2);
	cr_assert_eq(res->snaps[0].mem_size, 48 * ps);
	cr_assert_eq(res->snaps[0].arch, SNAP_ARCH_ARM64);
	cr_assert_eq(res->snaps[0].encoding, SNAP_ENC_ZSTD);
	cr_assert_eq(res->snaps[0].shared_pages, 0);
	cr_assert_eq(res->snaps[0].nonzero_chunks, 2);
	cr_assert_eq(res->snaps[0].distinct_chunks, 2);
	cr_assert_eq(res->set.nonzero_pages, 29);
	cr_assert_eq(res->set.distinct, 26);
	cr_assert_not(res->set.dict_ok);
	cr_assert_null(res->set.dict_error);
	cr_assert_eq(res->snaps[0].dict_bytes, 0);
}

Test(analyze, counts_pages_shared_across_snapshots_and_at_the_same_address)
{
	const char *paths[] = { pa, pb, pc };
	struct analyze_opts o = opts(false);
	const struct analyze_snap *a, *b, *c;

	make_a();
	make_b();
	make_c();
	cr_assert_eq(analyze__run(paths, 3, &o, &res), 0);
	a = &res->snaps[0];
	b = &res->snaps[1];
	c = &res->snaps[2];
	assert_pages(a, 48, 19, 26, 24, 5, 2);
	assert_pages(b, 64, 28, 30, 25, 11, 5);
	assert_pages(c, 32, 16, 16, 16, 0, 0);
	cr_assert_eq(b->encoding, SNAP_ENC_RAW);
	/* A: 1..16 and 100 are elsewhere; 101 and 17..24 only here. */
	cr_assert_eq(a->shared_pages, 19);
	cr_assert_eq(b->shared_pages, 23);
	cr_assert_eq(c->shared_pages, 16);
	/* The base is identical to itself; B's 100s sit at another gpa; C's 1..16 at A's. */
	cr_assert_eq(a->same_addr_pages, 29);
	cr_assert_eq(b->same_addr_pages, 16);
	cr_assert_eq(c->same_addr_pages, 16);
	cr_assert_eq(res->set.nonzero_pages, 29 + 36 + 16);
	cr_assert_eq(res->set.distinct, 39);
	cr_assert_eq(res->set.shared_contents, 17);
	/* A's first chunk recurs in B and, from four 16 KiB chunks, in C. */
	cr_assert_eq(b->nonzero_chunks, 3);
	cr_assert_eq(c->nonzero_chunks, 1);
	cr_assert_eq(res->set.nonzero_chunks, 6);
	cr_assert_eq(res->set.distinct_chunks, 4);
}

Test(analyze, level_3_reproduces_the_writers_stored_size)
{
	const char *paths[] = { pa, pb };
	struct analyze_opts o = opts(false);
	const struct analyze_snap *a, *b;
	unsigned int i;

	make_a();
	make_b();
	cr_assert_eq(analyze__run(paths, 2, &o, &res), 0);
	a = &res->snaps[0];
	b = &res->snaps[1];
	/* Same pages, same 64 KiB chunks, same level and framing as snap__write(). */
	cr_assert_eq(a->zstd_bytes[1], a->stored_bytes);
	/* A raw snapshot stores its non-zero pages as they are. */
	cr_assert_eq(b->stored_bytes, b->nonzero_pages * ps);
	for (i = 0; i < o.nr_levels; i++) {
		cr_assert_gt(a->zstd_bytes[i], 0);
		cr_assert_lt(a->zstd_bytes[i], a->nonzero_pages * ps / 4,
			     "level %d: text compresses", o.levels[i]);
	}
	cr_assert_leq(a->zstd_bytes[2], a->zstd_bytes[0]);
	/* Page by page loses what pages share with their neighbours. */
	cr_assert_gt(a->page_zstd_bytes, a->zstd_bytes[1]);
}

Test(analyze, a_dictionary_trained_on_the_base_shrinks_its_pages)
{
	const char *paths[] = { pa, pb };
	struct analyze_opts o = opts(true);
	unsigned int ids[256], i;
	uint64_t gpa = GPA_A;
	unsigned int size = 256;

	/* zstd's trainer wants a few hundred samples. */
	for (i = 0; i < 256; i++)
		ids[i] = i % 8 == 7 ? 0 : i + 1000;
	make(pa, ids, 256, &gpa, &size, 1, SNAP_ENC_ZSTD, 16);
	make_b();
	cr_assert_eq(analyze__run(paths, 2, &o, &res), 0);
	cr_assert(res->set.dict_ok, "%s", res->set.dict_error);
	cr_assert_eq(res->set.dict_samples, 224);
	cr_assert_gt(res->set.dict_size, 0);
	cr_assert_leq(res->set.dict_size, ANALYZE_DICT_CAPACITY);
	for (i = 0; i < 2; i++) {
		cr_assert_gt(res->snaps[i].dict_bytes, 0);
		cr_assert_gt(res->snaps[i].page_dict_bytes, 0);
	}
	cr_assert_lt(res->snaps[0].page_dict_bytes,
		     res->snaps[0].page_zstd_bytes);
}

Test(analyze, a_dictionary_that_cannot_be_trained_is_reported_not_fatal)
{
	const char *paths[] = { pa };
	struct analyze_opts o = opts(true);
	unsigned int ids[2] = { 1, 2 };
	uint64_t gpa = GPA_A;
	unsigned int size = 2;

	make(pa, ids, 2, &gpa, &size, 1, SNAP_ENC_ZSTD, 16);
	cr_assert_eq(analyze__run(paths, 1, &o, &res), 0);
	cr_assert_not(res->set.dict_ok);
	cr_assert_not_null(res->set.dict_error);
	cr_assert_eq(res->snaps[0].dict_bytes, 0);
}

Test(analyze, bad_files_and_options_fail_like_snapshot_inspect)
{
	const char *paths[] = { pa, pb };
	struct analyze_opts o = opts(false);
	uint8_t b;
	off_t off;
	int fd;

	make_a();
	cr_assert_eq(analyze__run(paths, 2, &o, &res), -ENOENT);
	cr_assert_null(res);
	o.levels[0] = 0;
	cr_assert_eq(analyze__run(paths, 1, &o, &res), -EINVAL);
	o = opts(false);
	cr_assert_eq(analyze__run(paths, 0, &o, &res), -EINVAL);
	/* A flipped byte in the last chunk's frame: found when read. */
	fd = open(pa, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	off = lseek(fd, 0, SEEK_END) - 8;
	cr_assert_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x5a;
	cr_assert_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
	cr_assert_eq(analyze__run(paths, 1, &o, &res), -EBADMSG);
	cr_assert_null(res);
}

/* The report to a string. */
static char *print(bool json)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	cr_assert_not_null(f);
	cr_assert_eq(analyze__print(res, f, json), 0);
	fclose(f);
	return buf;
}

Test(analyze, the_json_report_is_one_parseable_object)
{
	char quoted[PATH_MAX + 32], cmd[2 * PATH_MAX + 128],
		jpath[PATH_MAX + 32];
	const char *paths[] = { quoted, pb };
	struct analyze_opts o = opts(false);
	char *js;
	FILE *f;

	/* A path with a quote and a backslash: the report's one free text. */
	snprintf(quoted, sizeof(quoted), "%s/a\"\\.snap", dir);
	make_a();
	make_b();
	cr_assert_eq(rename(pa, quoted), 0);
	cr_assert_eq(analyze__run(paths, 2, &o, &res), 0);
	js = print(true);
	cr_assert_not_null(strstr(js, "/a\\\"\\\\.snap\""), "%s", js);
	cr_assert_not_null(strstr(js, "\"zero_pages\":19,"), "%s", js);
	cr_assert_not_null(strstr(js, "\"shared_pages\":23,"), "%s", js);
	cr_assert_not_null(strstr(js, "\"distinct_contents\":30,"), "%s", js);
	cr_assert_eq(js[0], '{');
	cr_assert_eq(strcmp(js + strlen(js) - 2, "}\n"), 0);
	snprintf(jpath, sizeof(jpath), "%s/report.json", dir);
	f = fopen(jpath, "w");
	cr_assert_not_null(f);
	fputs(js, f);
	fclose(f);
	free(js);
	if (access("/usr/bin/python3", X_OK) == 0) {
		snprintf(
			cmd, sizeof(cmd),
			"python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); "
			"assert d[\"set\"][\"distinct_contents\"] == 39; "
			"assert d[\"snapshots\"][1][\"same_address_as_base_pages\"] == 16; "
			"assert d[\"snapshots\"][0][\"zstd\"][1][\"level\"] == 3' %s",
			jpath);
		cr_assert_eq(system(cmd), 0, "python3 rejects %s", jpath);
	}
}

Test(analyze, the_text_report_names_every_figure)
{
	const char *paths[] = { pa, pb };
	struct analyze_opts o = opts(false);
	char *txt;

	make_a();
	make_b();
	cr_assert_eq(analyze__run(paths, 2, &o, &res), 0);
	txt = print(false);
	cr_assert_not_null(strstr(txt, "(the base)"), "%s", txt);
	cr_assert_not_null(
		strstr(txt, "48 of 4096 bytes: 19 zero, 29 non-zero"), "%s",
		txt);
	cr_assert_not_null(
		strstr(txt, "16 (44.4%) identical at the same address"), "%s",
		txt);
	cr_assert_not_null(strstr(txt, "keeps 39 pages instead of 65"), "%s",
			   txt);
	free(txt);
}

/* ---- the command line ---- */

#define ARGV(...) ((char *const[]){ "sandbox", __VA_ARGS__ })
#define ARGC(...) \
	((int)(sizeof((char *[]){ "sandbox", __VA_ARGS__ }) / sizeof(char *)))
#define PARSE(cli, ...)                                              \
	cli__parse(ARGC(__VA_ARGS__), ARGV(__VA_ARGS__), (cli), err, \
		   sizeof(err))

static char err[256];

Test(analyze_cli, takes_files_and_flags_in_any_order)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "a.snap", "--json",
			   "--levels=1,19", "b.snap", "--no-dict", "--",
			   "--c.snap"),
		     0, "%s", err);
	cr_assert_eq(c.cmd, CLI_SNAPSHOT_ANALYZE);
	cr_assert_eq(c.analyze.nr_files, 3);
	cr_assert_str_eq(c.analyze.files[0], "a.snap");
	cr_assert_str_eq(c.analyze.files[1], "b.snap");
	cr_assert_str_eq(c.analyze.files[2], "--c.snap");
	cr_assert(c.analyze.json);
	cr_assert(c.analyze.no_dict);
	cr_assert_eq(c.analyze.nr_levels, 2);
	cr_assert_eq(c.analyze.levels[0], 1);
	cr_assert_eq(c.analyze.levels[1], 19);
}

Test(analyze_cli, defaults_to_levels_1_3_9_19_with_a_dictionary)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "a.snap"), 0, "%s", err);
	cr_assert_eq(c.analyze.nr_levels, 4);
	cr_assert_eq(c.analyze.levels[0], 1);
	cr_assert_eq(c.analyze.levels[1], 3);
	cr_assert_eq(c.analyze.levels[2], 9);
	cr_assert_eq(c.analyze.levels[3], 19);
	cr_assert_not(c.analyze.json);
	cr_assert_not(c.analyze.no_dict);
}

Test(analyze_cli, rejects_no_files_bad_levels_and_unknown_flags)
{
	struct cli c;

	cr_assert_eq(PARSE(&c, "snapshot", "analyze"), -EINVAL);
	cr_assert_not_null(strstr(err, "one or more snapshot files"), "%s",
			   err);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--json"), -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--levels", "0", "a"),
		     -EINVAL);
	cr_assert_not_null(strstr(err, "out of range"), "%s", err);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--levels=20", "a"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--levels=1,,3", "a"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--levels=3,", "a"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--levels=-1", "a"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze",
			   "--levels=1,2,3,4,5,6,7,8,9", "a"),
		     -EINVAL);
	cr_assert_not_null(strstr(err, "at most 8"), "%s", err);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "a", "--levels"),
		     -EINVAL);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", "--jsn", "a"), -EINVAL);
	cr_assert_not_null(strstr(err, "unknown option '--jsn'"), "%s", err);
	cr_assert_eq(PARSE(&c, "snapshot", "analyze", ""), -EINVAL);
}
