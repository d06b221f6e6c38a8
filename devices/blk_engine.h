/* SPDX-License-Identifier: Apache-2.0 */
/* Block I/O engine: a raw host file served through io_uring, for virtio-blk. */
#ifndef SANDBOX_BLK_ENGINE_H
#define SANDBOX_BLK_ENGINE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "../vmm/util.h"

/*
 * One engine serves one backing file. The device thread queues the requests
 * of one guest notification, submits them as one batch (one io_uring_enter),
 * waits on blk_engine__poll_fd() beside its ioeventfd, and reaps completions
 * in batches. A request is reported complete only once all of its bytes were
 * transferred, or with an error: short transfers are resubmitted for the
 * remainder, -EAGAIN/-EINTR completions are retried, and a transfer that
 * stops making progress (the file shrank under us) fails with -EIO.
 *
 * Threading: blk_engine__new() and blk_engine__free() may run on any thread;
 * every other call must come from one thread at a time (the device thread).
 * io_uring finishes most completions as task work of the submitting thread,
 * so that thread should be the one that polls and reaps; it must not block
 * uninterruptibly while waiting for them.
 *
 * O_DIRECT (BLK_ENGINE_DIRECT): requests whose file offset, memory addresses
 * and segment lengths meet the file's direct I/O alignment go straight to
 * guest memory. Otherwise:
 *  - offset and total length aligned, memory not: through an aligned bounce
 *    buffer, still O_DIRECT (one copy);
 *  - offset or length not aligned: through a second, buffered fd on the same
 *    file. A bounce buffer would need read-modify-write of the partial blocks,
 *    which races with a concurrent request to the other half of the block;
 *    the page cache merges sub-block writes safely instead. Linux writes back
 *    and invalidates the page cache around each direct I/O, so the two fds
 *    stay coherent for requests that do not overlap in time, and a flush
 *    (fsync works on the inode) covers writes made through either.
 * A short direct transfer whose remainder is misaligned, and a direct
 * transfer the kernel refuses with -EINVAL, continue on the buffered fd.
 */

#define BLK_ENGINE_SECTOR_SIZE 512ULL
/* virtio-blk GET_ID: at most 20 bytes, NUL-terminated only when shorter. */
#define BLK_ENGINE_ID_LEN 20
#define BLK_ENGINE_MAX_DEPTH 4096U

/* Flags for blk_engine__new(). */
#define BLK_ENGINE_RDONLY (1U << 0) /* open O_RDONLY, refuse modifications */
#define BLK_ENGINE_DIRECT (1U << 1) /* O_DIRECT when the filesystem allows */

/* Bits of blk_engine__features(). */
#define BLK_ENGINE_F_FLUSH (1U << 0) /* always: fsync(2) via IORING_OP_FSYNC */
#define BLK_ENGINE_F_DISCARD (1U << 1) /* PUNCH_HOLE|KEEP_SIZE works */
#define BLK_ENGINE_F_WRITE_ZEROES (1U << 2) /* ZERO_RANGE|KEEP_SIZE works */
#define BLK_ENGINE_F_RO (1U << 3) /* opened read-only */
#define BLK_ENGINE_F_DIRECT (1U << 4) /* O_DIRECT is in effect */

struct blk_engine;

/* One finished request, as handed back by blk_engine__reap(). */
struct blk_completion {
	void *cookie; /* as given when the request was queued */
	int result; /* 0, or -errno: failed, the range's contents undefined */
	uint64_t bytes; /* read/write: the request's length on success, else 0 */
};

/*
 * Opens the raw image at @path and sets up an io_uring of @queue_depth
 * entries (1..BLK_ENGINE_MAX_DEPTH), with its completion eventfd. @flags
 * is a mask of BLK_ENGINE_RDONLY and BLK_ENGINE_DIRECT. When O_DIRECT is
 * asked for but the filesystem refuses it, the engine warns once and uses
 * the page cache; BLK_ENGINE_F_DIRECT tells which happened. Discard and
 * write-zeroes support is probed on an O_TMPFILE in the image's directory
 * (same filesystem, no side effect on the image); when none can be made,
 * both are reported unsupported. @path must be a regular file; the capacity
 * is its size when opened, rounded down to whole 512-byte sectors.
 * Returns 0 and the engine in *@out (release with blk_engine__free()), or
 * -EINVAL (bad flags or depth, not a regular file), -ESTALE (the path was
 * replaced while being opened), -ENOMEM, or the -errno of open(2) or of
 * io_uring_setup(2) (-ENOSYS/-EPERM when io_uring is unavailable).
 */
int blk_engine__new(const char *path, unsigned int flags,
		    unsigned int queue_depth,
		    struct blk_engine **out) __must_check;

/*
 * Waits for every request already queued or in flight to finish (their
 * completions are dropped: reap first to have them), then closes the ring
 * and the files and frees @eng. NULL is ignored.
 */
void blk_engine__free(struct blk_engine *eng);

/* Capacity in bytes, a multiple of BLK_ENGINE_SECTOR_SIZE. */
uint64_t blk_engine__capacity(const struct blk_engine *eng);

/* Capacity in 512-byte sectors (virtio-blk config "capacity"). */
uint64_t blk_engine__sectors(const struct blk_engine *eng);

/*
 * The file's logical block size: the direct I/O offset alignment the
 * filesystem reports (statx STATX_DIOALIGN, at least 512), 4096 when it
 * reports none under O_DIRECT, else 512. Requests aligned to it never take
 * the bounce or buffered path (virtio-blk config "blk_size").
 */
uint32_t blk_engine__block_size(const struct blk_engine *eng);

/* BLK_ENGINE_F_* bits, fixed after blk_engine__new(). */
uint32_t blk_engine__features(const struct blk_engine *eng);

/*
 * A stable serial for GET_ID: 20 lowercase hex digits, st_dev (major << 20
 * | minor) then the inode number (folded to 48 bits), NUL-terminated. It
 * survives restarts as long as the file keeps its device and inode. Owned by
 * @eng.
 */
const char *blk_engine__id(const struct blk_engine *eng);

/*
 * An eventfd (non-blocking, close-on-exec, owned by @eng) that becomes
 * readable when completions may be waiting; poll or epoll it with the
 * device's other fds, then call blk_engine__reap(). Do not read it: reap
 * clears it, and leaves it readable when completions remain. Wakeups can be
 * spurious (reap returns 0). An epoll_wait(2) on the thread that submits
 * may fail with EINTR when io_uring runs its completion work: retry.
 */
int blk_engine__poll_fd(const struct blk_engine *eng) __must_check;

/*
 * How many more requests can be queued now. At most @queue_depth requests
 * are outstanding (queued or in flight); beyond that the queue functions
 * return -EBUSY and the device leaves further requests in its virtqueue
 * until a reap frees slots. Nothing is buffered without bound.
 */
unsigned int blk_engine__room(const struct blk_engine *eng);

/*
 * Queue a read of the file range [@offset, @offset + total length of @iov)
 * into the @iovcnt buffers of @iov (0..IOV_MAX). Nothing is submitted until
 * blk_engine__submit() (or a reap). The iovec array is copied; the buffers
 * it points to must stay valid until the request's completion is reaped
 * (or blk_engine__free() returns). @cookie comes back in the completion.
 * Returns 0, or -EINVAL (bad @iovcnt, length overflow, range beyond the
 * capacity), -EBUSY (no room: reap, then retry), -ENOMEM (bounce buffer).
 * A request of total length 0 (in range) completes with result 0 through
 * the ring like any other. A failed queue call leaves nothing queued and
 * produces no completion.
 */
int blk_engine__queue_read(struct blk_engine *eng, uint64_t offset,
			   const struct iovec *iov, int iovcnt,
			   void *cookie) __must_check;

/* As blk_engine__queue_read(), writing; -EROFS on a read-only engine. */
int blk_engine__queue_write(struct blk_engine *eng, uint64_t offset,
			    const struct iovec *iov, int iovcnt,
			    void *cookie) __must_check;

/*
 * Queue a flush: fsync(2) of the file, covering every write whose
 * completion was reaped before this call (virtio-blk semantics; it is not
 * ordered against writes still in flight). Returns 0 or -EBUSY.
 */
int blk_engine__queue_flush(struct blk_engine *eng, void *cookie) __must_check;

/*
 * Queue a discard of [@offset, @offset + @len): a hole is punched and the
 * range reads back as zeros, the size is kept; @len 0 completes at once.
 * Returns 0, or -EROFS, -EOPNOTSUPP (no BLK_ENGINE_F_DISCARD), -EINVAL
 * (range), -EBUSY.
 */
int blk_engine__queue_discard(struct blk_engine *eng, uint64_t offset,
			      uint64_t len, void *cookie) __must_check;

/*
 * Queue a write of zeros over [@offset, @offset + @len), by
 * FALLOC_FL_ZERO_RANGE (blocks stay allocated). Returns as
 * blk_engine__queue_discard(), -EOPNOTSUPP without
 * BLK_ENGINE_F_WRITE_ZEROES.
 */
int blk_engine__queue_write_zeroes(struct blk_engine *eng, uint64_t offset,
				   uint64_t len, void *cookie) __must_check;

/*
 * Submits everything queued with one io_uring_enter (more only if the
 * kernel takes part of the batch). Returns how many requests were handed
 * to the kernel (0 if none were queued), or -errno (-EAGAIN, -EBUSY) when
 * the kernel took none: they stay queued, to go with the next submit or
 * reap.
 */
int blk_engine__submit(struct blk_engine *eng) __must_check;

/*
 * Hands back up to @max (> 0) finished requests in @out, in completion
 * order, and submits what is left in the submission queue (remainders of
 * short transfers, requests queued without a submit). With @wait, blocks
 * until at least one completes unless nothing is outstanding. Returns the
 * number of completions written (0..@max), -EINVAL (no @out or @max), or
 * -errno from submitting or waiting (nothing lost: call again).
 */
int blk_engine__reap(struct blk_engine *eng, struct blk_completion *out,
		     unsigned int max, bool wait) __must_check;

#endif
