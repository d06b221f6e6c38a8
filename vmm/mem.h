/* SPDX-License-Identifier: Apache-2.0 */
/* Guest physical memory: host mappings and the one checked gpa-to-hva path. */
#ifndef SANDBOX_MEM_H
#define SANDBOX_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "util.h"

/* One contiguous range of guest RAM backed by one host mapping. */
struct mem_region {
	uint64_t gpa;
	uint64_t size;
	void *hva;
};

struct guest_mem {
	struct mem_region ram;
};

/*
 * Maps @size bytes of anonymous, zero-filled host memory as guest RAM at @gpa.
 * @gpa and @size must be 64 KiB aligned (the largest guest page size), @size
 * non-zero and gpa + size must not wrap. Returns 0, -EINVAL for a bad layout,
 * or -errno from mmap(). Pair with mem__exit().
 */
int mem__init(struct guest_mem *mem, uint64_t gpa, uint64_t size) __must_check;

/* Unmaps what mem__init() mapped. Safe on a zeroed or already exited struct. */
void mem__exit(struct guest_mem *mem);

/*
 * Returns the host address of guest range [@gpa, @gpa + @len), or NULL when
 * any byte of it lies outside guest RAM or the range wraps. Every access to
 * guest memory on behalf of a guest or a file goes through here. @len may be
 * 0, in which case @gpa itself must lie within RAM or at its very end.
 */
void *mem__gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len);

/*
 * Copies @len bytes from @src into guest memory at @gpa. Returns 0, or -EFAULT
 * when the range is not entirely inside guest RAM (nothing is copied then).
 */
int mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src,
	       uint64_t len) __must_check;

#endif
