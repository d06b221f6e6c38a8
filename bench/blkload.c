// SPDX-License-Identifier: Apache-2.0
// blkload: a small block-device load generator for benchmark guests; prints one result line.
//
// Usage: blkload [-p PATTERN] [-b BYTES] [-q DEPTH] [-t SEC] [-w SEC] [-n OPS]
//                [-e aio|psync] [-s SEED] [-i SEC] DEVICE
//   -p  seqread | seqwrite | randread | randwrite             (randread)
//   -b  block size in bytes, a multiple of 512                 (4096; 1 MiB for seq*)
//   -q  requests in flight: the AIO queue depth, or threads    (32; 4 for seq*)
//   -t  measured time in seconds, after the warm-up            (5)
//   -w  warm-up in seconds, not counted                        (1)
//   -n  stop after OPS completed operations instead (no warm-up)
//   -e  aio: Linux native AIO, one submitter keeping DEPTH requests in flight;
//       psync: DEPTH threads each doing blocking pread/pwrite  (aio)
//   -s  seed for the random offsets                            (1)
//   -i  also print "BLKLOAD-INTERVAL t=S ops=N iops=I" every SEC seconds of the measurement,
//       to tell a steady rate from stalls                       (off)
// DEVICE is opened with O_DIRECT, so the guest's page cache is not measured.
// Output, on stdout, one line:
//   BLKLOAD pattern=P bs=B qd=Q engine=E bytes=N ops=N seconds=S mbps=M iops=I
// where mbps is 10^6 bytes per second. Errors go to stderr as "blkload: ...", exit status 1;
// bad usage exits 2.
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/aio_abi.h>
#include <linux/fs.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 256
#define BUF_ALIGN 4096

enum pattern { SEQREAD, SEQWRITE, RANDREAD, RANDWRITE };
enum engine { ENGINE_AIO, ENGINE_PSYNC };

static const char *const pattern_names[] = { "seqread", "seqwrite", "randread",
					     "randwrite" };
static const char *const engine_names[] = { "aio", "psync" };

struct job {
	enum pattern pattern;
	enum engine engine;
	uint64_t bs;
	unsigned int depth;
	double seconds;
	double warmup;
	uint64_t max_ops; /* 0: run for seconds */
	uint64_t seed;
	double interval; /* 0: no interval lines */
	double start; /* when measuring started */
	double last_t; /* the last interval line's time and count */
	uint64_t last_ops;
	int fd;
	uint64_t dev_size;
	uint64_t nblocks; /* whole blocks of bs on the device */
	uint64_t next_seq; /* next sequential block, shared under seq_lock */
	pthread_mutex_t seq_lock;
	int stop; /* atomic: psync threads stop when set */
	int failed; /* atomic: an I/O failed */
};

/* One psync thread's state; counters are read by the main thread. */
struct worker {
	struct job *job;
	pthread_t thread;
	uint64_t rng;
	void *buf;
	uint64_t ops; /* atomic */
};

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void die(const char *fmt, ...)
{
	va_list ap;

	fputs("blkload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static void usage(void)
{
	fputs("usage: blkload [-p seqread|seqwrite|randread|randwrite] [-b BYTES] "
	      "[-q DEPTH] [-t SEC] [-w SEC] [-n OPS] [-e aio|psync] [-s SEED] [-i SEC] "
	      "DEVICE\n",
	      stderr);
	exit(2);
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*: plenty for spreading offsets, and the same on every run. */
static uint64_t next_rand(uint64_t *s)
{
	uint64_t x = *s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*s = x;
	return x * 0x2545f4914f6cdd1dULL;
}

static bool is_write(const struct job *j)
{
	return j->pattern == SEQWRITE || j->pattern == RANDWRITE;
}

/* Prints an interval line when one is due; @ops counts from the start of the measurement. */
static void tick(struct job *j, double t, uint64_t ops)
{
	if (j->interval <= 0 || t - j->last_t < j->interval)
		return;
	printf("BLKLOAD-INTERVAL t=%.2f ops=%" PRIu64 " iops=%.0f\n",
	       t - j->start, ops - j->last_ops,
	       (double)(ops - j->last_ops) / (t - j->last_t));
	fflush(stdout);
	j->last_t = t;
	j->last_ops = ops;
}

static uint64_t next_offset(struct job *j, uint64_t *rng)
{
	uint64_t blk;

	if (j->pattern == RANDREAD || j->pattern == RANDWRITE)
		return (next_rand(rng) % j->nblocks) * j->bs;
	pthread_mutex_lock(&j->seq_lock);
	blk = j->next_seq;
	j->next_seq = (blk + 1) % j->nblocks;
	pthread_mutex_unlock(&j->seq_lock);
	return blk * j->bs;
}

static void *alloc_buf(const struct job *j, uint64_t salt)
{
	uint64_t s = salt | 1, *p;
	void *buf;
	size_t i;

	if (posix_memalign(&buf, BUF_ALIGN, j->bs))
		die("cannot allocate %" PRIu64 " bytes", j->bs);
	/* Non-zero data for writes: a host could treat zero pages specially. */
	p = buf;
	for (i = 0; i < j->bs / sizeof(*p); i++)
		p[i] = next_rand(&s);
	return buf;
}

/* --- Linux native AIO, through raw system calls (no libaio in the guest) --- */

static long sys_io_setup(unsigned int nr, aio_context_t *ctx)
{
	return syscall(__NR_io_setup, nr, ctx);
}

static long sys_io_submit(aio_context_t ctx, long n, struct iocb **iocbs)
{
	return syscall(__NR_io_submit, ctx, n, iocbs);
}

static long sys_io_getevents(aio_context_t ctx, long min, long max,
			     struct io_event *ev, struct timespec *ts)
{
	return syscall(__NR_io_getevents, ctx, min, max, ev, ts);
}

static void prep(struct job *j, struct iocb *cb, uint64_t *rng)
{
	cb->aio_lio_opcode = is_write(j) ? IOCB_CMD_PWRITE : IOCB_CMD_PREAD;
	cb->aio_offset = (int64_t)next_offset(j, rng);
}

static void submit_all(aio_context_t ctx, struct iocb **list, long n)
{
	long done = 0, r;

	while (done < n) {
		r = sys_io_submit(ctx, n - done, list + done);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("io_submit: %s", strerror(errno));
		if (r == 0)
			die("io_submit accepted nothing");
		done += r;
	}
}

/* Counts ops completed inside [start, end); returns through the pointers. */
static void run_aio(struct job *j, uint64_t *ops_out, double *secs_out)
{
	struct iocb cbs[MAX_DEPTH], *list[MAX_DEPTH];
	struct io_event ev[MAX_DEPTH];
	aio_context_t ctx = 0;
	uint64_t rng = j->seed, ops = 0;
	unsigned int i, inflight;
	double t0, start, end = 0;
	bool measuring, stopping = false;

	if (sys_io_setup(j->depth, &ctx) < 0)
		die("io_setup: %s (is CONFIG_AIO set?)", strerror(errno));
	memset(cbs, 0, sizeof(cbs));
	for (i = 0; i < j->depth; i++) {
		cbs[i].aio_fildes = (uint32_t)j->fd;
		cbs[i].aio_buf = (uint64_t)(uintptr_t)alloc_buf(j, i + 1);
		cbs[i].aio_nbytes = j->bs;
		cbs[i].aio_data = i;
		prep(j, &cbs[i], &rng);
		list[i] = &cbs[i];
	}
	t0 = now();
	measuring = j->max_ops || j->warmup <= 0;
	start = measuring ? t0 : t0 + j->warmup;
	j->start = j->last_t = start;
	submit_all(ctx, list, j->depth);
	inflight = j->depth;
	while (inflight) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 100000000 };
		long n, k;
		bool count;
		double t;

		n = sys_io_getevents(ctx, 1, MAX_DEPTH, ev, &ts);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			die("io_getevents: %s", strerror(errno));
		t = now();
		inflight -= (unsigned int)n;
		/* What completes by the time the warm-up ends is not counted. */
		count = measuring;
		if (!measuring && t >= start) {
			measuring = true;
			start = j->start = j->last_t = t;
		}
		if (count)
			tick(j, t, ops);
		for (k = 0; k < n; k++) {
			struct iocb *cb = &cbs[ev[k].data];

			if (ev[k].res != (int64_t)j->bs)
				die("%s at offset %" PRIu64 ": %s",
				    is_write(j) ? "write" : "read",
				    (uint64_t)cb->aio_offset,
				    ev[k].res < 0 ? strerror((int)-ev[k].res)
						  : "short transfer");
			if (stopping)
				continue;
			if (count)
				ops++;
			prep(j, cb, &rng);
			list[k] = cb;
		}
		if (!stopping && measuring &&
		    ((j->max_ops && ops >= j->max_ops) ||
		     (!j->max_ops && t - start >= j->seconds))) {
			stopping = true;
			end = t;
			continue;
		}
		if (!stopping && n > 0) {
			submit_all(ctx, list, n);
			inflight += (unsigned int)n;
		}
	}
	*ops_out = ops;
	*secs_out = end - start;
	syscall(__NR_io_destroy, ctx);
}

/* --- psync: blocking pread/pwrite, one request in flight per thread --- */

static void *psync_thread(void *arg)
{
	struct worker *w = arg;
	struct job *j = w->job;
	bool wr = is_write(j);

	while (!__atomic_load_n(&j->stop, __ATOMIC_RELAXED)) {
		uint64_t off = next_offset(j, &w->rng);
		ssize_t r = wr ? pwrite(j->fd, w->buf, j->bs, (off_t)off)
			       : pread(j->fd, w->buf, j->bs, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r != (ssize_t)j->bs) {
			fprintf(stderr,
				"blkload: %s at offset %" PRIu64 ": %s\n",
				wr ? "write" : "read", off,
				r < 0 ? strerror(errno) : "short transfer");
			__atomic_store_n(&j->failed, 1, __ATOMIC_RELAXED);
			__atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
			break;
		}
		__atomic_fetch_add(&w->ops, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static uint64_t total_ops(struct worker *w, unsigned int n)
{
	uint64_t sum = 0;
	unsigned int i;

	for (i = 0; i < n; i++)
		sum += __atomic_load_n(&w[i].ops, __ATOMIC_RELAXED);
	return sum;
}

static void sleep_until(double t)
{
	double left;

	while ((left = t - now()) > 0) {
		struct timespec ts;

		if (left > 0.05)
			left = 0.05;
		ts.tv_sec = 0;
		ts.tv_nsec = (long)(left * 1e9);
		nanosleep(&ts, NULL);
	}
}

static void run_psync(struct job *j, uint64_t *ops_out, double *secs_out)
{
	struct worker *w = calloc(j->depth, sizeof(*w));
	uint64_t base = 0, ops;
	double start, end;
	unsigned int i;
	int err;

	if (!w)
		die("out of memory");
	for (i = 0; i < j->depth; i++) {
		w[i].job = j;
		w[i].rng = j->seed + 0x9e3779b97f4a7c15ULL * (i + 1);
		w[i].buf = alloc_buf(j, i + 1);
		err = pthread_create(&w[i].thread, NULL, psync_thread, &w[i]);
		if (err)
			die("pthread_create: %s", strerror(err));
	}
	start = now();
	if (!j->max_ops && j->warmup > 0) {
		sleep_until(start + j->warmup);
		start = now();
		base = total_ops(w, j->depth);
	}
	j->start = j->last_t = start;
	for (;;) {
		struct timespec ts = { .tv_sec = 0, .tv_nsec = 2000000 };

		if (__atomic_load_n(&j->stop, __ATOMIC_RELAXED))
			break;
		if (j->max_ops) {
			if (total_ops(w, j->depth) - base >= j->max_ops)
				break;
			nanosleep(&ts, NULL);
		} else {
			double t = now(), until = start + j->seconds;

			if (t >= until)
				break;
			if (j->interval > 0 && j->last_t + j->interval < until)
				until = j->last_t + j->interval;
			sleep_until(until);
		}
		tick(j, now(), total_ops(w, j->depth) - base);
	}
	end = now();
	ops = total_ops(w, j->depth) - base;
	__atomic_store_n(&j->stop, 1, __ATOMIC_RELAXED);
	for (i = 0; i < j->depth; i++) {
		pthread_join(w[i].thread, NULL);
		free(w[i].buf);
	}
	free(w);
	if (__atomic_load_n(&j->failed, __ATOMIC_RELAXED))
		exit(1);
	*ops_out = ops;
	*secs_out = end - start;
}

/* --- arguments --- */

static uint64_t parse_u64(const char *s, const char *what)
{
	uint64_t v;
	char *end;

	errno = 0;
	if (*s < '0' || *s > '9')
		usage();
	v = strtoull(s, &end, 10);
	if (errno || *end) {
		fprintf(stderr, "blkload: bad %s '%s'\n", what, s);
		usage();
	}
	return v;
}

static double parse_secs(const char *s, const char *what)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= 0) || v > 1e6) {
		fprintf(stderr, "blkload: bad %s '%s'\n", what, s);
		usage();
	}
	return v;
}

static int lookup(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	fprintf(stderr, "blkload: unknown '%s'\n", s);
	usage();
	return -1;
}

static void parse_args(int argc, char **argv, struct job *j, const char **dev)
{
	bool bs_set = false, depth_set = false;
	int c;

	j->pattern = RANDREAD;
	j->engine = ENGINE_AIO;
	j->seconds = 5;
	j->warmup = 1;
	j->seed = 1;
	while ((c = getopt(argc, argv, "p:b:q:t:w:n:e:s:i:")) != -1) {
		switch (c) {
		case 'p':
			j->pattern =
				(enum pattern)lookup(optarg, pattern_names, 4);
			break;
		case 'b':
			j->bs = parse_u64(optarg, "block size");
			bs_set = true;
			break;
		case 'q':
			j->depth = (unsigned int)parse_u64(optarg, "depth");
			depth_set = true;
			break;
		case 't':
			j->seconds = parse_secs(optarg, "time");
			break;
		case 'w':
			j->warmup = parse_secs(optarg, "warm-up");
			break;
		case 'n':
			j->max_ops = parse_u64(optarg, "count");
			break;
		case 'e':
			j->engine =
				(enum engine)lookup(optarg, engine_names, 2);
			break;
		case 's':
			j->seed = parse_u64(optarg, "seed");
			break;
		case 'i':
			j->interval = parse_secs(optarg, "interval");
			break;
		default:
			usage();
		}
	}
	if (optind != argc - 1)
		usage();
	*dev = argv[optind];
	if (!bs_set)
		j->bs = j->pattern == SEQREAD || j->pattern == SEQWRITE
				? 1048576
				: 4096;
	if (!depth_set)
		j->depth = j->pattern == SEQREAD || j->pattern == SEQWRITE ? 4
									   : 32;
	if (!j->bs || j->bs % 512 || j->bs > (1U << 30)) {
		fprintf(stderr,
			"blkload: block size must be a multiple of 512, at most 1 GiB\n");
		usage();
	}
	if (!j->depth || j->depth > MAX_DEPTH) {
		fprintf(stderr, "blkload: depth must be 1 to %d\n", MAX_DEPTH);
		usage();
	}
	if (!j->max_ops && j->seconds <= 0) {
		fprintf(stderr, "blkload: -t must be positive\n");
		usage();
	}
	if (!j->seed)
		j->seed = 1; /* xorshift's one bad state */
}

int main(int argc, char **argv)
{
	struct job j = { .seq_lock = PTHREAD_MUTEX_INITIALIZER };
	const char *dev;
	uint64_t ops = 0;
	double secs = 0;
	struct stat st;

	parse_args(argc, argv, &j, &dev);
	j.fd = open(dev,
		    (is_write(&j) ? O_RDWR : O_RDONLY) | O_DIRECT | O_CLOEXEC);
	if (j.fd < 0)
		die("open %s with O_DIRECT: %s", dev, strerror(errno));
	if (fstat(j.fd, &st) < 0)
		die("fstat %s: %s", dev, strerror(errno));
	if (S_ISBLK(st.st_mode)) {
		if (ioctl(j.fd, BLKGETSIZE64, &j.dev_size) < 0)
			die("BLKGETSIZE64 %s: %s", dev, strerror(errno));
	} else {
		j.dev_size = (uint64_t)st.st_size;
	}
	j.nblocks = j.dev_size / j.bs;
	if (!j.nblocks)
		die("%s (%" PRIu64 " bytes) is smaller than one block", dev,
		    j.dev_size);

	if (j.engine == ENGINE_AIO)
		run_aio(&j, &ops, &secs);
	else
		run_psync(&j, &ops, &secs);
	if (secs <= 0)
		die("measured no time (too few operations?)");
	printf("BLKLOAD pattern=%s bs=%" PRIu64
	       " qd=%u engine=%s bytes=%" PRIu64 " ops=%" PRIu64
	       " seconds=%.3f mbps=%.2f iops=%.0f\n",
	       pattern_names[j.pattern], j.bs, j.depth, engine_names[j.engine],
	       ops * j.bs, ops, secs, (double)(ops * j.bs) / secs / 1e6,
	       (double)ops / secs);
	fflush(stdout);
	return 0;
}
