/* SPDX-License-Identifier: Apache-2.0 */
/* The arm64 Linux Image header and where the boot protocol lets us place things. */
#ifndef SANDBOX_ARM64_IMAGE_H
#define SANDBOX_ARM64_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "../../util.h"

#define ARM64_IMAGE_HEADER_SIZE 64
#define ARM64_IMAGE_MAGIC 0x644d5241U /* "ARM\x64" at offset 0x38 */

/* Documentation/arm64/booting.rst, "Call the kernel image": all fields little-endian. */
struct arm64_image_header {
	uint32_t code0;
	uint32_t code1;
	uint64_t text_offset;
	uint64_t image_size;
	uint64_t flags;
	uint64_t res2;
	uint64_t res3;
	uint64_t res4;
	uint32_t magic;
	uint32_t res5;
};
_Static_assert(sizeof(struct arm64_image_header) == ARM64_IMAGE_HEADER_SIZE,
	       "arm64 Image header is 64 bytes");

#define ARM64_IMAGE_FLAG_BE (1ULL << 0)

struct arm64_image {
	uint64_t text_offset; /* load offset from a 2 MiB aligned base */
	uint64_t image_size; /* bytes the kernel occupies, bss included */
};

/*
 * Parses the Image header at the start of a kernel file of @file_size bytes,
 * of which @len (at least the header, if the file has one) are in @buf.
 * Returns 0 with the placement facts in *@out, or -ENOEXEC with *@why set to
 * a static sentence saying what is wrong (too short, no magic, big-endian,
 * misaligned text_offset, image size smaller than the file).
 */
int image__parse(const void *buf, size_t len, uint64_t file_size,
		 struct arm64_image *out, const char **why) __must_check;

/* Where the kernel, initrd and DTB go in guest RAM. */
struct arm64_boot_plan {
	uint64_t kernel; /* load address and entry point */
	uint64_t kernel_end; /* first byte past the kernel's image_size */
	uint64_t initrd; /* 0 when there is no initrd */
	uint64_t dtb;
};

/*
 * Places a kernel (@img) and an initrd of @initrd_size bytes (0: none) in
 * RAM [@ram_base, @ram_base + @ram_size): the kernel at the 2 MiB aligned
 * RAM base plus text_offset, the DTB (ARM64_DTB_MAX_SIZE) in the last 2 MiB
 * of RAM, the initrd page-aligned just below the DTB. Returns 0, or -E2BIG
 * when they do not fit without overlapping.
 */
int boot__plan(uint64_t ram_base, uint64_t ram_size,
	       const struct arm64_image *img, uint64_t initrd_size,
	       struct arm64_boot_plan *out) __must_check;

#endif
