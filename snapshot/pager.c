// SPDX-License-Identifier: Apache-2.0
// Guest memory from a snapshot: eager decode, MAP_PRIVATE file mapping, or a userfaultfd page server.
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "../vmm/log.h"
#include "pager.h"

/* Fault messages read per read(2). */
#define MSG_BATCH 32
/* Retries of an ioctl that made no progress because the mm was changing. */
#define MAX_AGAIN 1000

struct pager {
	struct snap *s;
	enum pager_mode mode;
	uint8_t *hva;
	uint64_t size;
	uint32_t page_size;
	uint32_t chunk_size;
	pager_fail_fn fail;
	void *fail_arg;
	int uffd;
	int stop_fd;
	pthread_t thread;
	bool thread_started;
	/* The rest is the page-server thread's alone, the counters excepted. */
	uint8_t *buf; /* one chunk, decoded before UFFDIO_COPY */
	uint64_t *installed; /* bit per chunk */
	bool failed; /* fail() was called */
	bool warned; /* an ioctl failure was logged */
	pthread_mutex_t lock; /* stats */
	struct pager_stats stats;
};

static void count(struct pager *p, uint64_t faults, uint64_t copied,
		  uint64_t zeroed, uint64_t bytes)
{
	pthread_mutex_lock(&p->lock);
	p->stats.faults += faults;
	p->stats.chunks_copied += copied;
	p->stats.chunks_zeroed += zeroed;
	p->stats.bytes_installed += bytes;
	pthread_mutex_unlock(&p->lock);
}

/*
 * Decodes through a bounce buffer and copies only the pages that are not
 * zero: writing zeros into the fresh anonymous mapping would allocate pages
 * that read as zero anyway.
 */
static int start_eager(struct pager *p)
{
	const struct snap_info *info = snap__info(p->s);
	uint64_t i;
	int err;

	for (i = 0; i < info->mem.chunks; i++) {
		uint64_t off = i * p->chunk_size,
			 len = snap__chunk_len(p->s, i);
		uint64_t bytes = 0, j;

		if (snap__chunk_is_zero(p->s, i))
			continue;
		err = snap__read_chunk(p->s, i, p->buf);
		if (err)
			return err;
		for (j = 0; j < len; j += p->page_size) {
			if (snap__page_is_zero(p->buf + j, p->page_size))
				continue;
			memcpy(p->hva + off + j, p->buf + j, p->page_size);
			bytes += p->page_size;
		}
		count(p, 0, 1, 0, bytes);
	}
	return 0;
}

static int start_file(struct pager *p)
{
	uint64_t offset;
	void *m;
	int fd, err;

	err = snap__raw_image(p->s, &fd, &offset);
	if (err) {
		pr_err("snapshot memory: mapping the file needs a raw snapshot, this one is zstd");
		return err;
	}
	err = snap__verify_memory(p->s);
	if (err)
		return err;
	m = mmap(p->hva, p->size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_FIXED, fd, (off_t)offset);
	if (m == MAP_FAILED) {
		err = -errno;
		pr_err("snapshot memory: mapping the image: %s",
		       strerror(-err));
		return err;
	}
	return 0;
}

/* /dev/userfaultfd works where the syscall is limited to privileged users (vm.unprivileged_userfaultfd=0). */
static int open_uffd(void)
{
	int dev, fd;

	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd >= 0)
			return fd;
	}
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	return fd < 0 ? -errno : fd;
}

static void wake(struct pager *p, uint64_t off, uint64_t len)
{
	struct uffdio_range r = { (uintptr_t)p->hva + off, len };

	if (ioctl(p->uffd, UFFDIO_WAKE, &r) < 0 && !p->warned) {
		p->warned = true;
		pr_err("snapshot memory: UFFDIO_WAKE: %s", strerror(errno));
	}
}

/*
 * Installs [@off, @off + @len) with one UFFDIO_COPY from p->buf (@copy) or
 * UFFDIO_ZEROPAGE, which wake the faulting threads. A page already present
 * stops the kernel short: the rest is retried past it and the range woken.
 * Returns the bytes installed, or -errno.
 */
static int64_t install(struct pager *p, bool copy, uint64_t off, uint64_t len)
{
	uint64_t done = 0, bytes = 0;
	unsigned int again = 0;
	bool skipped = false;

	while (done < len) {
		int64_t n;
		int r;

		if (copy) {
			struct uffdio_copy c = {
				.dst = (uintptr_t)p->hva + off + done,
				.src = (uintptr_t)p->buf + done,
				.len = len - done,
			};

			r = ioctl(p->uffd, UFFDIO_COPY, &c);
			n = c.copy;
		} else {
			struct uffdio_zeropage z = {
				.range = { (uintptr_t)p->hva + off + done,
					   len - done },
			};

			r = ioctl(p->uffd, UFFDIO_ZEROPAGE, &z);
			n = z.zeropage;
		}
		if (r == 0) {
			bytes += len - done;
			break;
		}
		if (n > 0) {
			done += (uint64_t)n;
			bytes += (uint64_t)n;
		} else if (errno == EEXIST) {
			done += p->page_size;
			skipped = true;
		} else if (errno != EAGAIN || ++again >= MAX_AGAIN) {
			return -errno;
		}
	}
	if (skipped)
		wake(p, off, len);
	return (int64_t)bytes;
}

static void fail_once(struct pager *p, int err)
{
	if (p->failed)
		return;
	p->failed = true;
	if (p->fail)
		p->fail(p->fail_arg, err);
}

static void serve_chunk(struct pager *p, uint64_t i)
{
	uint64_t off = i * p->chunk_size, len = snap__chunk_len(p->s, i);
	bool zero = snap__chunk_is_zero(p->s, i);
	int64_t n;
	int err;

	if (!zero) {
		/* Logged by snap__read_chunk(); zeros keep the faulting thread from hanging. */
		err = snap__read_chunk(p->s, i, p->buf);
		if (err) {
			fail_once(p, err);
			zero = true;
		}
	}
	n = install(p, !zero, off, len);
	if (n < 0) {
		/* Left uninstalled: the woken thread faults again and we retry. */
		if (!p->warned) {
			p->warned = true;
			pr_err("snapshot memory: installing chunk %llu: %s",
			       (unsigned long long)i, strerror((int)-n));
		}
		wake(p, off, len);
		return;
	}
	p->installed[i / 64] |= 1ULL << (i % 64);
	count(p, 0, !zero, zero, (uint64_t)n);
}

static void serve_fault(struct pager *p, uint64_t addr)
{
	uint64_t off = addr - (uintptr_t)p->hva, i;

	if (addr < (uintptr_t)p->hva || off >= p->size)
		return;
	off = ALIGN_DOWN(off, p->page_size);
	i = off / p->chunk_size;
	count(p, 1, 0, 0, 0);
	if (!(p->installed[i / 64] & (1ULL << (i % 64)))) {
		serve_chunk(p, i);
		return;
	}
	/*
	 * Either the fault was queued before the chunk went in (the page is
	 * there: wake the thread), or the page was dropped since (say by
	 * MADV_DONTNEED), and anonymous memory then reads as zeros.
	 */
	if (install(p, false, off, p->page_size) < 0)
		wake(p, off, p->page_size);
}

static void *serve(void *arg)
{
	struct pager *p = arg;
	struct uffd_msg msgs[MSG_BATCH];
	struct pollfd pfd[2] = { { .fd = p->uffd, .events = POLLIN },
				 { .fd = p->stop_fd, .events = POLLIN } };
	sigset_t all;

	/* Signals meant for vCPU threads must not land here. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	for (;;) {
		ssize_t n, k;

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			pr_err("snapshot memory: poll: %s", strerror(errno));
			break;
		}
		if (pfd[1].revents)
			break;
		n = read(p->uffd, msgs, sizeof(msgs));
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			pr_err("snapshot memory: reading userfaultfd: %s",
			       strerror(errno));
			break;
		}
		for (k = 0; k < n / (ssize_t)sizeof(msgs[0]); k++)
			if (msgs[k].event == UFFD_EVENT_PAGEFAULT)
				serve_fault(p, msgs[k].arg.pagefault.address);
	}
	return NULL;
}

static int start_uffd(struct pager *p)
{
	uint64_t need = 1ULL << _UFFDIO_COPY | 1ULL << _UFFDIO_ZEROPAGE |
			1ULL << _UFFDIO_WAKE;
	struct uffdio_api api = { .api = UFFD_API };
	struct uffdio_register reg = {
		.range = { (uintptr_t)p->hva, p->size },
		.mode = UFFDIO_REGISTER_MODE_MISSING,
	};
	uint64_t chunks = snap__info(p->s)->mem.chunks;
	int err;

	p->installed = calloc((chunks + 63) / 64, sizeof(uint64_t));
	if (!p->installed) {
		pr_err("snapshot memory: out of memory");
		return -ENOMEM;
	}
	p->uffd = open_uffd();
	if (p->uffd < 0) {
		err = p->uffd;
		pr_err("snapshot memory: userfaultfd is unavailable: %s",
		       strerror(-err));
		return err;
	}
	if (ioctl(p->uffd, UFFDIO_API, &api) < 0 ||
	    ioctl(p->uffd, UFFDIO_REGISTER, &reg) < 0) {
		err = -errno;
		pr_err("snapshot memory: userfaultfd setup: %s",
		       strerror(-err));
		return err;
	}
	if ((reg.ioctls & need) != need) {
		pr_err("snapshot memory: userfaultfd cannot copy or zero pages here");
		return -ENOSYS;
	}
	p->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (p->stop_fd < 0) {
		err = -errno;
		pr_err("snapshot memory: eventfd: %s", strerror(-err));
		return err;
	}
	err = pthread_create(&p->thread, NULL, serve, p);
	if (err) {
		pr_err("snapshot memory: cannot start the page server: %s",
		       strerror(err));
		return -err;
	}
	pthread_setname_np(p->thread, "snap-pager");
	p->thread_started = true;
	return 0;
}

int pager__start(struct snap *s, enum pager_mode mode, void *hva, uint64_t size,
		 pager_fail_fn fail, void *fail_arg, struct pager **out)
{
	const struct snap_info *info = snap__info(s);
	struct pager *p;
	int err;

	*out = NULL;
	if (!hva || size != info->mem_size ||
	    !IS_ALIGNED((uintptr_t)hva, info->page_size) ||
	    (mode != PAGER_UFFD && mode != PAGER_EAGER && mode != PAGER_FILE)) {
		pr_err("snapshot memory: bad mode %d or mapping %p+0x%llx for %llu bytes of memory",
		       (int)mode, hva, (unsigned long long)size,
		       (unsigned long long)info->mem_size);
		return -EINVAL;
	}
	p = calloc(1, sizeof(*p));
	if (!p) {
		pr_err("snapshot memory: out of memory");
		return -ENOMEM;
	}
	p->s = s;
	p->mode = mode;
	p->hva = hva;
	p->size = size;
	p->page_size = info->page_size;
	p->chunk_size = info->chunk_size;
	p->fail = fail;
	p->fail_arg = fail_arg;
	p->uffd = p->stop_fd = -1;
	p->buf = MAP_FAILED;
	pthread_mutex_init(&p->lock, NULL);
	if (mode != PAGER_FILE) {
		p->buf = mmap(NULL, p->chunk_size, PROT_READ | PROT_WRITE,
			      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (p->buf == MAP_FAILED) {
			err = -errno;
			pr_err("snapshot memory: out of memory");
			goto err;
		}
	}
	switch (mode) {
	case PAGER_EAGER:
		err = start_eager(p);
		break;
	case PAGER_FILE:
		err = start_file(p);
		break;
	default:
		err = start_uffd(p);
		break;
	}
	if (err)
		goto err;
	*out = p;
	return 0;
err:
	pager__free(p);
	return err;
}

void pager__stats(struct pager *p, struct pager_stats *out)
{
	pthread_mutex_lock(&p->lock);
	*out = p->stats;
	pthread_mutex_unlock(&p->lock);
}

void pager__free(struct pager *p)
{
	uint64_t one = 1;

	if (!p)
		return;
	if (p->thread_started) {
		/* Cannot fail on a fresh eventfd; if it did, leaking beats freeing under the thread. */
		if (write(p->stop_fd, &one, sizeof(one)) != sizeof(one)) {
			pr_err("snapshot memory: cannot stop the page server: %s",
			       strerror(errno));
			return;
		}
		pthread_join(p->thread, NULL);
	}
	/* Closing unregisters the range: pages never installed read as zeros. */
	if (p->uffd >= 0)
		close(p->uffd);
	if (p->stop_fd >= 0)
		close(p->stop_fd);
	if (p->buf != MAP_FAILED)
		munmap(p->buf, p->chunk_size);
	free(p->installed);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
