// SPDX-License-Identifier: Apache-2.0
// io_uring block engine: batched reads, writes, flushes and hole punching on a raw image.
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <linux/falloc.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "../vmm/log.h"
#include "blk_engine.h"

/* Most virtio-blk requests carry few data segments; more go to the heap. */
#define INLINE_IOV 8
/* -EAGAIN/-EINTR completions retried in a row before the request fails. */
#define MAX_RETRIES 16
/* O_DIRECT alignment assumed when the filesystem does not report one. */
#define DEFAULT_DIO_ALIGN 4096U
/* Per-SQE length of IORING_OP_READ/WRITE; the rest goes as a short transfer. */
#define MAX_SQE_LEN (1U << 30)

enum req_op {
	OP_READ,
	OP_WRITE,
	OP_FLUSH,
	OP_DISCARD,
	OP_WRITE_ZEROES,
	OP_NOP, /* zero-length request: completes through the ring like others */
};

struct blk_req {
	void *cookie;
	enum req_op op;
	int fd; /* where the next SQE of this request goes */
	uint64_t offset; /* next file byte to transfer */
	uint64_t left; /* bytes still to transfer, or fallocate length */
	uint64_t done;
	struct iovec *iov; /* what is left to transfer: in vec or bounce_iov */
	int iovcnt;
	struct iovec *vec; /* the caller's vector, copied: inline_vec or heap */
	int veccnt;
	void *bounce;
	struct iovec bounce_iov;
	unsigned int retries;
	unsigned int next_free;
	struct iovec inline_vec[INLINE_IOV];
};

struct blk_engine {
	struct io_uring ring;
	int fd; /* O_DIRECT when direct */
	int buffered_fd; /* fd itself unless direct */
	int efd;
	bool ro, direct;
	uint32_t features;
	uint64_t capacity;
	uint32_t block_size; /* direct I/O offset and segment length alignment */
	uint32_t mem_align; /* direct I/O memory alignment */
	char id[BLK_ENGINE_ID_LEN + 1];
	struct blk_req *reqs;
	unsigned int depth;
	unsigned int used; /* slots queued or in flight */
	unsigned int free_head; /* first free slot, depth when none */
};

static bool is_pow2(uint32_t x)
{
	return x && !(x & (x - 1));
}

/*
 * Opens @path, refusing anything but a regular file. O_NONBLOCK keeps a FIFO
 * from blocking the open and is dropped afterwards: io_uring would turn it
 * into -EAGAIN completions instead of blocking in its workers.
 */
static int open_regular(const char *path, int oflags, struct stat *st)
{
	int fd, fl, ret;

	fd = open(path, oflags | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		ret = -errno;
		goto err;
	}
	if (!S_ISREG(st->st_mode)) {
		ret = -EINVAL;
		goto err;
	}
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		ret = -errno;
		goto err;
	}
	return fd;
err:
	close(fd);
	return ret;
}

static int open_backing(struct blk_engine *eng, const char *path, bool direct,
			struct stat *st)
{
	int acc = eng->ro ? O_RDONLY : O_RDWR;
	struct stat dst = { 0 };
	int fd;

	st->st_mode = 0;
	fd = open_regular(path, acc, st);
	if (fd < 0) {
		if (fd == -EINVAL && st->st_mode)
			pr_err("%s: not a regular file", path);
		else
			pr_err("%s: %s", path, strerror(-fd));
		return fd;
	}
	eng->fd = eng->buffered_fd = fd;
	if (!direct)
		return 0;

	/* EINVAL from open(2) itself, before fstat filled dst: no O_DIRECT. */
	fd = open_regular(path, acc | O_DIRECT, &dst);
	if (fd == -EINVAL && !dst.st_mode) {
		pr_warn("%s: the filesystem refuses O_DIRECT, using the page cache",
			path);
		return 0;
	}
	if (fd < 0) {
		pr_err("%s: cannot open with O_DIRECT: %s", path,
		       strerror(-fd));
		goto err;
	}
	if (dst.st_dev != st->st_dev || dst.st_ino != st->st_ino) {
		pr_err("%s: replaced while being opened", path);
		close(fd);
		fd = -ESTALE;
		goto err;
	}
	eng->fd = fd;
	eng->direct = true;
	return 0;
err:
	close(eng->buffered_fd);
	eng->fd = eng->buffered_fd = -1;
	return fd;
}

static void read_geometry(struct blk_engine *eng, const char *path,
			  const struct stat *st)
{
	uint64_t size = (uint64_t)st->st_size;
	uint64_t ino = (uint64_t)st->st_ino;
	uint32_t dev, off_align = 0, mem_align = 0;
	struct statx stx;

	eng->capacity = ALIGN_DOWN(size, BLK_ENGINE_SECTOR_SIZE);
	if (eng->capacity != size)
		pr_warn("%s: size %llu is not a multiple of 512, its last %llu bytes are not visible",
			path, (unsigned long long)size,
			(unsigned long long)(size - eng->capacity));

	/* The new_encode_dev() layout: 12-bit major, 20-bit minor. */
	dev = (major(st->st_dev) & 0xfffU) << 20 |
	      (minor(st->st_dev) & 0xfffffU);
	ino = (ino & 0xffffffffffffULL) ^ (ino >> 48);
	snprintf(eng->id, sizeof(eng->id), "%08x%012llx", dev,
		 (unsigned long long)ino);

	if (statx(eng->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &stx) == 0 &&
	    (stx.stx_mask & STATX_DIOALIGN)) {
		off_align = stx.stx_dio_offset_align;
		mem_align = stx.stx_dio_mem_align;
	}
	if (!is_pow2(off_align) || off_align > SZ_64K) {
		/* tmpfs takes O_DIRECT but reports no alignment: stay safe. */
		off_align = eng->direct ? DEFAULT_DIO_ALIGN : 512;
		mem_align = off_align;
	}
	if (!is_pow2(mem_align))
		mem_align = off_align;
	eng->block_size = off_align < 512 ? 512 : off_align;
	eng->mem_align = mem_align;
}

/*
 * Which fallocate modes the image's filesystem implements, tried on an
 * unnamed temporary file beside it: probing the image itself would change
 * its contents or its allocation.
 */
static uint32_t probe_fallocate(const char *path)
{
	uint32_t features = 0;
	char *real;
	int fd;

	real = realpath(path, NULL);
	if (!real) {
		pr_warn("%s: %s; discard and write-zeroes are off", path,
			strerror(errno));
		return 0;
	}
	fd = open(dirname(real), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0) {
		pr_warn("%s: cannot probe fallocate beside it (%s); discard and write-zeroes are off",
			path, strerror(errno));
		goto out;
	}
	if (ftruncate(fd, 2 * SZ_4K) == 0) {
		if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
			      SZ_4K) == 0)
			features |= BLK_ENGINE_F_DISCARD;
		if (fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			      SZ_4K, SZ_4K) == 0)
			features |= BLK_ENGINE_F_WRITE_ZEROES;
	}
	close(fd);
out:
	free(real);
	return features;
}

int blk_engine__new(const char *path, unsigned int flags,
		    unsigned int queue_depth, struct blk_engine **out)
{
	struct blk_engine *eng;
	struct stat st;
	unsigned int i;
	int ret;

	if (!path || !out ||
	    (flags & ~(BLK_ENGINE_RDONLY | BLK_ENGINE_DIRECT)) ||
	    !queue_depth || queue_depth > BLK_ENGINE_MAX_DEPTH)
		return -EINVAL;

	eng = calloc(1, sizeof(*eng));
	if (!eng)
		return -ENOMEM;
	eng->ro = flags & BLK_ENGINE_RDONLY;
	eng->depth = queue_depth;

	ret = open_backing(eng, path, flags & BLK_ENGINE_DIRECT, &st);
	if (ret)
		goto err_free;
	read_geometry(eng, path, &st);

	eng->features = BLK_ENGINE_F_FLUSH;
	if (eng->ro)
		eng->features |= BLK_ENGINE_F_RO;
	else
		eng->features |= probe_fallocate(path);
	if (eng->direct)
		eng->features |= BLK_ENGINE_F_DIRECT;

	eng->reqs = calloc(queue_depth, sizeof(*eng->reqs));
	if (!eng->reqs) {
		ret = -ENOMEM;
		goto err_close;
	}
	for (i = 0; i < queue_depth; i++)
		eng->reqs[i].next_free = i + 1;
	eng->free_head = 0;

	eng->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (eng->efd < 0) {
		ret = -errno;
		pr_err("%s: eventfd: %s", path, strerror(-ret));
		goto err_reqs;
	}
	/* Its fd is close-on-exec; the CQ (twice the SQ) cannot overflow. */
	ret = io_uring_queue_init(queue_depth, &eng->ring, 0);
	if (ret < 0) {
		pr_err("%s: io_uring_setup: %s", path, strerror(-ret));
		goto err_efd;
	}
	ret = io_uring_register_eventfd(&eng->ring, eng->efd);
	if (ret < 0) {
		pr_err("%s: io_uring eventfd: %s", path, strerror(-ret));
		goto err_ring;
	}
	*out = eng;
	return 0;

err_ring:
	io_uring_queue_exit(&eng->ring);
err_efd:
	close(eng->efd);
err_reqs:
	free(eng->reqs);
err_close:
	if (eng->buffered_fd != eng->fd)
		close(eng->buffered_fd);
	close(eng->fd);
err_free:
	free(eng);
	return ret;
}

uint64_t blk_engine__capacity(const struct blk_engine *eng)
{
	return eng->capacity;
}

uint64_t blk_engine__sectors(const struct blk_engine *eng)
{
	return eng->capacity / BLK_ENGINE_SECTOR_SIZE;
}

uint32_t blk_engine__block_size(const struct blk_engine *eng)
{
	return eng->block_size;
}

uint32_t blk_engine__features(const struct blk_engine *eng)
{
	return eng->features;
}

const char *blk_engine__id(const struct blk_engine *eng)
{
	return eng->id;
}

int blk_engine__poll_fd(const struct blk_engine *eng)
{
	return eng->efd;
}

unsigned int blk_engine__room(const struct blk_engine *eng)
{
	return eng->depth - eng->used;
}

static struct blk_req *get_req(struct blk_engine *eng)
{
	struct blk_req *r;
	unsigned int next;

	if (eng->free_head == eng->depth)
		return NULL;
	r = &eng->reqs[eng->free_head];
	next = r->next_free;
	memset(r, 0, offsetof(struct blk_req, inline_vec));
	eng->free_head = next;
	eng->used++;
	return r;
}

static void put_req(struct blk_engine *eng, struct blk_req *r)
{
	if (r->vec != r->inline_vec)
		free(r->vec);
	free(r->bounce);
	r->vec = NULL;
	r->bounce = NULL;
	r->next_free = eng->free_head;
	eng->free_head = (unsigned int)(r - eng->reqs);
	eng->used--;
}

static int check_range(const struct blk_engine *eng, uint64_t offset,
		       uint64_t len)
{
	uint64_t end;

	if (__builtin_add_overflow(offset, len, &end) || end > eng->capacity)
		return -EINVAL;
	return 0;
}

/* Adds the SQE for what is left of @r; the ring has one entry per slot. */
static int push(struct blk_engine *eng, struct blk_req *r)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&eng->ring);
	unsigned int n;

	if (!sqe)
		return -EBUSY;
	switch (r->op) {
	case OP_READ:
	case OP_WRITE:
		if (r->iovcnt > 1) {
			if (r->op == OP_READ)
				io_uring_prep_readv(sqe, r->fd, r->iov,
						    (unsigned int)r->iovcnt,
						    r->offset);
			else
				io_uring_prep_writev(sqe, r->fd, r->iov,
						     (unsigned int)r->iovcnt,
						     r->offset);
			break;
		}
		n = r->iov->iov_len > MAX_SQE_LEN
			    ? MAX_SQE_LEN
			    : (unsigned int)r->iov->iov_len;
		if (r->op == OP_READ)
			io_uring_prep_read(sqe, r->fd, r->iov->iov_base, n,
					   r->offset);
		else
			io_uring_prep_write(sqe, r->fd, r->iov->iov_base, n,
					    r->offset);
		break;
	case OP_FLUSH:
		io_uring_prep_fsync(sqe, r->fd, 0);
		break;
	case OP_DISCARD:
		io_uring_prep_fallocate(
			sqe, r->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			(off_t)r->offset, (off_t)r->left);
		break;
	case OP_WRITE_ZEROES:
		io_uring_prep_fallocate(
			sqe, r->fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
			(off_t)r->offset, (off_t)r->left);
		break;
	case OP_NOP:
		io_uring_prep_nop(sqe);
		break;
	}
	io_uring_sqe_set_data(sqe, r);
	return 0;
}

static bool iov_dio_aligned(const struct blk_engine *eng,
			    const struct iovec *iov, int iovcnt)
{
	int i;

	for (i = 0; i < iovcnt; i++)
		if (!IS_ALIGNED((uintptr_t)iov[i].iov_base, eng->mem_align) ||
		    !IS_ALIGNED(iov[i].iov_len, eng->block_size))
			return false;
	return true;
}

static bool dio_ok(const struct blk_engine *eng, const struct blk_req *r)
{
	return IS_ALIGNED(r->offset, eng->block_size) &&
	       iov_dio_aligned(eng, r->iov, r->iovcnt);
}

static void copy_from_iov(void *dst, const struct iovec *iov, int iovcnt)
{
	char *p = dst;
	int i;

	for (i = 0; i < iovcnt; i++) {
		memcpy(p, iov[i].iov_base, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

static void copy_to_iov(const struct iovec *iov, int iovcnt, const void *src)
{
	const char *p = src;
	int i;

	for (i = 0; i < iovcnt; i++) {
		memcpy(iov[i].iov_base, p, iov[i].iov_len);
		p += iov[i].iov_len;
	}
}

/* Picks the fd (and maybe a bounce buffer) for a transfer under O_DIRECT. */
static int route_direct(struct blk_engine *eng, struct blk_req *r)
{
	size_t align = eng->mem_align < SZ_4K ? SZ_4K : eng->mem_align;

	if (dio_ok(eng, r)) {
		r->fd = eng->fd;
		return 0;
	}
	if (!IS_ALIGNED(r->offset, eng->block_size) ||
	    !IS_ALIGNED(r->left, eng->block_size)) {
		r->fd = eng->buffered_fd;
		return 0;
	}
	if (posix_memalign(&r->bounce, align, r->left)) {
		r->bounce = NULL;
		return -ENOMEM;
	}
	if (r->op == OP_WRITE)
		copy_from_iov(r->bounce, r->vec, r->veccnt);
	r->bounce_iov.iov_base = r->bounce;
	r->bounce_iov.iov_len = r->left;
	r->iov = &r->bounce_iov;
	r->iovcnt = 1;
	r->fd = eng->fd;
	return 0;
}

static int queue_rw(struct blk_engine *eng, enum req_op op, uint64_t offset,
		    const struct iovec *iov, int iovcnt, void *cookie)
{
	struct blk_req *r;
	uint64_t total = 0;
	int i, ret;

	if (op == OP_WRITE && eng->ro)
		return -EROFS;
	if (iovcnt < 0 || iovcnt > IOV_MAX || (iovcnt && !iov))
		return -EINVAL;
	for (i = 0; i < iovcnt; i++)
		if (__builtin_add_overflow(total, iov[i].iov_len, &total))
			return -EINVAL;
	ret = check_range(eng, offset, total);
	if (ret)
		return ret;
	r = get_req(eng);
	if (!r)
		return -EBUSY;
	r->cookie = cookie;
	r->fd = eng->fd;
	r->offset = offset;
	r->left = total;
	r->vec = r->inline_vec;
	if (!total) {
		r->op = OP_NOP;
		goto push;
	}
	r->op = op;
	if (iovcnt > INLINE_IOV) {
		r->vec = malloc(sizeof(*iov) * (size_t)iovcnt);
		if (!r->vec) {
			ret = -ENOMEM;
			goto err;
		}
	}
	memcpy(r->vec, iov, sizeof(*iov) * (size_t)iovcnt);
	r->veccnt = iovcnt;
	r->iov = r->vec;
	r->iovcnt = iovcnt;
	if (eng->direct) {
		ret = route_direct(eng, r);
		if (ret)
			goto err;
	}
push:
	ret = push(eng, r);
	if (ret)
		goto err;
	return 0;
err:
	put_req(eng, r);
	return ret;
}

int blk_engine__queue_read(struct blk_engine *eng, uint64_t offset,
			   const struct iovec *iov, int iovcnt, void *cookie)
{
	return queue_rw(eng, OP_READ, offset, iov, iovcnt, cookie);
}

int blk_engine__queue_write(struct blk_engine *eng, uint64_t offset,
			    const struct iovec *iov, int iovcnt, void *cookie)
{
	return queue_rw(eng, OP_WRITE, offset, iov, iovcnt, cookie);
}

static int queue_simple(struct blk_engine *eng, enum req_op op, uint64_t offset,
			uint64_t len, void *cookie)
{
	struct blk_req *r;
	int ret;

	r = get_req(eng);
	if (!r)
		return -EBUSY;
	r->cookie = cookie;
	r->op = (len || op == OP_FLUSH) ? op : OP_NOP;
	r->fd = eng->fd;
	r->offset = offset;
	r->left = len;
	r->vec = r->inline_vec;
	ret = push(eng, r);
	if (ret)
		put_req(eng, r);
	return ret;
}

int blk_engine__queue_flush(struct blk_engine *eng, void *cookie)
{
	return queue_simple(eng, OP_FLUSH, 0, 0, cookie);
}

static int queue_fallocate(struct blk_engine *eng, enum req_op op,
			   uint32_t feature, uint64_t offset, uint64_t len,
			   void *cookie)
{
	int ret;

	if (eng->ro)
		return -EROFS;
	if (!(eng->features & feature))
		return -EOPNOTSUPP;
	ret = check_range(eng, offset, len);
	if (ret)
		return ret;
	return queue_simple(eng, op, offset, len, cookie);
}

int blk_engine__queue_discard(struct blk_engine *eng, uint64_t offset,
			      uint64_t len, void *cookie)
{
	return queue_fallocate(eng, OP_DISCARD, BLK_ENGINE_F_DISCARD, offset,
			       len, cookie);
}

int blk_engine__queue_write_zeroes(struct blk_engine *eng, uint64_t offset,
				   uint64_t len, void *cookie)
{
	return queue_fallocate(eng, OP_WRITE_ZEROES, BLK_ENGINE_F_WRITE_ZEROES,
			       offset, len, cookie);
}

int blk_engine__submit(struct blk_engine *eng)
{
	int total = 0, ret;

	/* The kernel may stop early (a bad SQE, no memory): send the rest. */
	while (io_uring_sq_ready(&eng->ring)) {
		ret = io_uring_submit(&eng->ring);
		if (ret == -EINTR)
			continue;
		if (ret < 0 || !ret) {
			/*
			 * Entries left queued: no completion will wake the
			 * caller, so wake it ourselves; its next reap submits
			 * them again.
			 */
			eventfd_write(eng->efd, 1);
			return ret < 0 && !total ? ret : total;
		}
		total += ret;
	}
	return total;
}

static void iov_advance(struct blk_req *r, uint64_t n)
{
	r->done += n;
	r->offset += n;
	r->left -= n;
	while (r->iovcnt && n >= r->iov->iov_len) {
		n -= r->iov->iov_len;
		r->iov++;
		r->iovcnt--;
	}
	if (n) {
		r->iov->iov_base = (char *)r->iov->iov_base + n;
		r->iov->iov_len -= n;
	}
}

static void finish(struct blk_engine *eng, struct blk_req *r, int result,
		   struct blk_completion *c)
{
	if (!result && r->op == OP_READ && r->bounce)
		copy_to_iov(r->vec, r->veccnt, r->bounce);
	c->cookie = r->cookie;
	c->result = result;
	c->bytes = !result && (r->op == OP_READ || r->op == OP_WRITE) ? r->done
								      : 0;
	put_req(eng, r);
}

/*
 * Accounts one CQE of @r. Returns true when @r is finished and described in
 * *@c, false when the rest of it was queued again.
 */
static bool complete(struct blk_engine *eng, struct blk_req *r, int res,
		     struct blk_completion *c)
{
	bool rw = r->op == OP_READ || r->op == OP_WRITE;

	if (res == -EAGAIN || res == -EINTR) {
		if (++r->retries > MAX_RETRIES)
			goto out;
	} else if (res == -EINVAL && rw && r->fd != eng->buffered_fd) {
		/* The filesystem's direct I/O rules are stricter than it said. */
		r->fd = eng->buffered_fd;
	} else if (res < 0 || !rw) {
		goto out;
	} else if (!res || (uint64_t)res > r->left) {
		/* No progress (EOF: the file shrank under us) or nonsense. */
		res = -EIO;
		goto out;
	} else {
		iov_advance(r, (uint64_t)res);
		res = 0;
		if (!r->left)
			goto out;
		r->retries = 0;
		if (r->fd != eng->buffered_fd && !dio_ok(eng, r))
			r->fd = eng->buffered_fd;
	}
	res = push(eng, r);
	if (!res)
		return false;
out:
	finish(eng, r, res < 0 ? res : 0, c);
	return true;
}

int blk_engine__reap(struct blk_engine *eng, struct blk_completion *out,
		     unsigned int max, bool wait)
{
	struct io_uring_cqe *cqe;
	struct blk_req *r;
	unsigned int n = 0;
	eventfd_t cnt;
	int res, ret;

	if (!out || !max)
		return -EINVAL;
	for (;;) {
		/* Clear before looking: a CQE posted after this re-arms it. */
		(void)eventfd_read(eng->efd, &cnt);
		while (n < max && io_uring_peek_cqe(&eng->ring, &cqe) == 0) {
			r = io_uring_cqe_get_data(cqe);
			res = cqe->res;
			io_uring_cqe_seen(&eng->ring, cqe);
			if (complete(eng, r, res, &out[n]))
				n++;
		}
		/* Remainders of short transfers, and anything left queued. */
		ret = blk_engine__submit(eng);
		if (ret < 0 && !n)
			return ret;
		if (n || !wait || !eng->used)
			break;
		ret = io_uring_wait_cqe(&eng->ring, &cqe);
		if (ret < 0 && ret != -EINTR)
			return ret;
	}
	/* Keep the fd readable while work is left for the next call. */
	if (io_uring_cq_ready(&eng->ring) || io_uring_sq_ready(&eng->ring))
		(void)eventfd_write(eng->efd, 1);
	return (int)n;
}

void blk_engine__free(struct blk_engine *eng)
{
	struct blk_completion c;
	int ret;

	if (!eng)
		return;
	while (eng->used) {
		ret = blk_engine__reap(eng, &c, 1, true);
		if (ret < 0) {
			/* The kernel may still write their buffers: leak them. */
			pr_err("blk_engine: %u requests left in flight: %s",
			       eng->used, strerror(-ret));
			eng->reqs = NULL;
			break;
		}
	}
	io_uring_queue_exit(&eng->ring);
	close(eng->efd);
	if (eng->buffered_fd != eng->fd)
		close(eng->buffered_fd);
	close(eng->fd);
	free(eng->reqs);
	free(eng);
}
