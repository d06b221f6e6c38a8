// SPDX-License-Identifier: Apache-2.0
// arm64 Image header parsing and the placement of kernel, initrd and DTB in guest RAM.
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "image.h"

/* Kernels before 3.17 leave image_size 0 and expect this text_offset. */
#define LEGACY_TEXT_OFFSET 0x80000ULL

int image__parse(const void *buf, size_t len, uint64_t file_size,
		 struct arm64_image *out, const char **why)
{
	struct arm64_image_header h;

	if (len < sizeof(h) || file_size < sizeof(h)) {
		*why = "file is too short to hold an arm64 Image header";
		return -ENOEXEC;
	}
	memcpy(&h, buf, sizeof(h));
	if (le32toh(h.magic) != ARM64_IMAGE_MAGIC) {
		*why = "no arm64 Image magic (\"ARM\\x64\" at offset 0x38); a compressed vmlinuz, an ELF vmlinux or another arch's kernel is not accepted";
		return -ENOEXEC;
	}
	if (!le64toh(h.image_size)) {
		out->text_offset = LEGACY_TEXT_OFFSET;
		out->image_size = file_size;
		return 0;
	}
	if (le64toh(h.flags) & ARM64_IMAGE_FLAG_BE) {
		*why = "big-endian arm64 kernel; only little-endian guests are supported";
		return -ENOEXEC;
	}
	out->text_offset = le64toh(h.text_offset);
	out->image_size = le64toh(h.image_size);
	if (!IS_ALIGNED(out->text_offset, SZ_4K) || out->text_offset >= SZ_2M) {
		*why = "Image header text_offset is not a 4 KiB multiple below 2 MiB";
		return -ENOEXEC;
	}
	if (out->image_size < file_size) {
		*why = "Image header image_size is smaller than the file";
		return -ENOEXEC;
	}
	return 0;
}

int boot__plan(uint64_t ram_base, uint64_t ram_size,
	       const struct arm64_image *img, uint64_t initrd_size,
	       struct arm64_boot_plan *out)
{
	uint64_t ram_end = ram_base + ram_size;
	uint64_t kernel = ALIGN_UP(ram_base, SZ_2M) + img->text_offset;

	memset(out, 0, sizeof(*out));
	/* The DTB gets a 2 MiB block of its own, as the kernel maps it with one. */
	if (ram_size < 2 * SZ_2M || img->image_size > ram_size)
		return -E2BIG;
	out->dtb = ALIGN_DOWN(ram_end - SZ_2M, SZ_2M);
	out->kernel = kernel;
	out->kernel_end = kernel + img->image_size;
	if (out->kernel_end > out->dtb)
		return -E2BIG;
	if (initrd_size) {
		if (initrd_size > out->dtb - out->kernel_end)
			return -E2BIG;
		out->initrd = ALIGN_DOWN(out->dtb - initrd_size, SZ_4K);
		if (out->initrd < out->kernel_end)
			return -E2BIG;
	}
	return 0;
}
