// SPDX-License-Identifier: Apache-2.0
// Guest RAM mappings and bounds-checked translation of guest addresses.
#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "log.h"
#include "mem.h"

int mem__init(struct guest_mem *mem, uint64_t gpa, uint64_t size)
{
	void *hva;

	memset(mem, 0, sizeof(*mem));
	if (!size || !IS_ALIGNED(gpa, SZ_64K) || !IS_ALIGNED(size, SZ_64K) ||
	    gpa + size < gpa) {
		pr_err("guest memory: bad layout 0x%llx+0x%llx",
		       (unsigned long long)gpa, (unsigned long long)size);
		return -EINVAL;
	}
	/* MAP_NORESERVE: the guest touches a fraction of its RAM; do not charge it all up front. */
	hva = mmap(NULL, size, PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (hva == MAP_FAILED) {
		int err = -errno;

		pr_err("guest memory: mmap of %llu MiB failed: %s",
		       (unsigned long long)(size >> 20), strerror(-err));
		return err;
	}
	mem->ram.gpa = gpa;
	mem->ram.size = size;
	mem->ram.hva = hva;
	return 0;
}

void mem__exit(struct guest_mem *mem)
{
	if (mem->ram.hva)
		munmap(mem->ram.hva, mem->ram.size);
	memset(mem, 0, sizeof(*mem));
}

void *mem__gpa_to_hva(const struct guest_mem *mem, uint64_t gpa, uint64_t len)
{
	const struct mem_region *r = &mem->ram;
	uint64_t off;

	if (!r->hva || gpa < r->gpa)
		return NULL;
	off = gpa - r->gpa;
	/* Written so that no sum can wrap: off <= size, then len <= size - off. */
	if (off > r->size || len > r->size - off)
		return NULL;
	return (char *)r->hva + off;
}

int mem__write(const struct guest_mem *mem, uint64_t gpa, const void *src,
	       uint64_t len)
{
	void *dst = mem__gpa_to_hva(mem, gpa, len);

	if (!dst)
		return -EFAULT;
	memcpy(dst, src, len);
	return 0;
}
