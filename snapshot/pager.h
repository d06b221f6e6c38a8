/* SPDX-License-Identifier: Apache-2.0 */
/* Guest memory from a snapshot: eager decode, MAP_PRIVATE file mapping, or userfaultfd on demand. */
#ifndef SANDBOX_PAGER_H
#define SANDBOX_PAGER_H

#include <stdint.h>

#include "../vmm/util.h"
#include "snap.h"

enum pager_mode {
	PAGER_UFFD, /* pages installed on first touch by a page-server thread */
	PAGER_EAGER, /* everything decoded before pager__start() returns */
	PAGER_FILE, /* the raw image mapped MAP_PRIVATE: clean pages shared */
};

struct pager_stats {
	uint64_t faults; /* userfaultfd page faults served */
	uint64_t chunks_copied; /* chunks decoded and installed (UFFDIO_COPY or eager) */
	uint64_t chunks_zeroed; /* all-zero chunks installed with UFFDIO_ZEROPAGE */
	uint64_t bytes_installed; /* guest bytes made present by the pager */
};

/* Called once, from the page-server thread, when the snapshot proves corrupt. */
typedef void (*pager_fail_fn)(void *arg, int err);

struct pager;

/*
 * Provides guest memory for a VM restored from @s (which must outlive the
 * pager). @hva is the caller's anonymous, untouched, private mapping of
 * snap__info(s)->mem_size bytes (the regions laid end to end).
 *   PAGER_EAGER: decodes and checks every chunk into @hva now.
 *   PAGER_FILE:  needs a SNAP_ENC_RAW snapshot (-EINVAL otherwise, logged);
 *                checks the memory checksum, then maps the image over @hva
 *                (MAP_FIXED | MAP_PRIVATE): writes stay private to this VM.
 *   PAGER_UFFD:  registers @hva with a userfaultfd (/dev/userfaultfd, else the
 *                syscall) for missing-page faults and starts a thread that
 *                answers each fault by installing the whole chunk holding it
 *                (UFFDIO_COPY, or UFFDIO_ZEROPAGE for an all-zero chunk). A
 *                chunk failing its checksum is installed as zeros (so no
 *                thread stays blocked) and @fail is called.
 * Returns 0 and the pager in *@out (free with pager__free()), or -errno after
 * logging: -EBADMSG for corrupt memory (eager, file), -ENOSYS/-EPERM when
 * userfaultfd is unavailable, -ENOMEM.
 */
int pager__start(struct snap *s, enum pager_mode mode, void *hva, uint64_t size,
		 pager_fail_fn fail, void *fail_arg,
		 struct pager **out) __must_check;

/*
 * A consistent copy of the counters so far. The page server counts a chunk
 * right after the ioctl that installed it, which has already woken the
 * faulting thread: that thread may briefly not see its chunk counted.
 */
void pager__stats(struct pager *p, struct pager_stats *out);

/*
 * Stops the page-server thread and closes the userfaultfd (the mapping stays,
 * and pages never touched read as zeros afterwards). Call after every thread
 * that may touch guest memory has stopped. NULL-safe.
 */
void pager__free(struct pager *p);

#endif
