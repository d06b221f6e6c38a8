// SPDX-License-Identifier: Apache-2.0
// arm64 Image header parsing and boot placement: good, truncated and bogus headers.
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/arch/arm64/image.h"

#define RAM_BASE 0x40000000ULL

static struct arm64_image_header good_header(void)
{
	struct arm64_image_header h;

	memset(&h, 0, sizeof(h));
	h.code0 = 0x91005a4d; /* "MZ" + add: the EFI stub's first word */
	h.text_offset = 0;
	h.image_size = 0x1000000;
	h.flags = 0xa; /* 4 KiB pages, anywhere */
	h.magic = ARM64_IMAGE_MAGIC;
	return h;
}

static const char *why;

Test(image, parses_a_good_header)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;

	cr_assert_eq(image__parse(&h, sizeof(h), 0x800000, &img, &why), 0);
	cr_assert_eq(img.text_offset, 0);
	cr_assert_eq(img.image_size, 0x1000000);
}

Test(image, refuses_truncated_files)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;
	size_t len;

	for (len = 0; len < sizeof(h); len++) {
		cr_assert_eq(image__parse(&h, len, len, &img, &why), -ENOEXEC);
		cr_assert(strstr(why, "too short"), "%s", why);
	}
}

Test(image, refuses_a_missing_magic)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;
	static const char elf[64] = "\x7f"
				    "ELF\x02\x01\x01";

	h.magic = 0x464c457f;
	cr_assert_eq(image__parse(&h, sizeof(h), 4096, &img, &why), -ENOEXEC);
	cr_assert(strstr(why, "magic"), "%s", why);
	cr_assert_eq(image__parse(elf, sizeof(elf), 4096, &img, &why),
		     -ENOEXEC);
}

Test(image, refuses_big_endian_kernels)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;

	h.flags |= ARM64_IMAGE_FLAG_BE;
	cr_assert_eq(image__parse(&h, sizeof(h), 4096, &img, &why), -ENOEXEC);
	cr_assert(strstr(why, "big-endian"), "%s", why);
}

Test(image, refuses_bogus_offsets_and_sizes)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;

	h.text_offset = 0x80001;
	cr_assert_eq(image__parse(&h, sizeof(h), 4096, &img, &why), -ENOEXEC);
	h.text_offset = 0x200000;
	cr_assert_eq(image__parse(&h, sizeof(h), 4096, &img, &why), -ENOEXEC);
	h = good_header();
	cr_assert_eq(image__parse(&h, sizeof(h), 0x1000001, &img, &why),
		     -ENOEXEC);
	cr_assert(strstr(why, "image_size"), "%s", why);
}

Test(image, legacy_header_uses_old_text_offset)
{
	struct arm64_image_header h = good_header();
	struct arm64_image img;

	h.image_size = 0;
	h.text_offset = 0;
	cr_assert_eq(image__parse(&h, sizeof(h), 0x500000, &img, &why), 0);
	cr_assert_eq(img.text_offset, 0x80000);
	cr_assert_eq(img.image_size, 0x500000);
}

Test(boot_plan, places_kernel_initrd_and_dtb)
{
	struct arm64_image img = { .text_offset = 0, .image_size = 0x1200000 };
	struct arm64_boot_plan p;
	uint64_t ram = 128ULL << 20;

	cr_assert_eq(boot__plan(RAM_BASE, ram, &img, 3000000, &p), 0);
	cr_assert_eq(p.kernel, RAM_BASE);
	cr_assert_eq(p.kernel_end, RAM_BASE + 0x1200000);
	cr_assert_eq(p.dtb, RAM_BASE + ram - 0x200000);
	cr_assert_eq(p.dtb % 0x200000, 0);
	cr_assert_eq(p.initrd % 4096, 0);
	cr_assert_geq(p.initrd, p.kernel_end);
	cr_assert_leq(p.initrd + 3000000, p.dtb);
}

Test(boot_plan, honours_text_offset)
{
	struct arm64_image img = { .text_offset = 0x80000,
				   .image_size = 0x100000 };
	struct arm64_boot_plan p;

	cr_assert_eq(boot__plan(RAM_BASE, 64ULL << 20, &img, 0, &p), 0);
	cr_assert_eq(p.kernel, RAM_BASE + 0x80000);
	cr_assert_eq(p.initrd, 0);
}

Test(boot_plan, refuses_what_does_not_fit)
{
	struct arm64_image img = { .text_offset = 0, .image_size = 30 << 20 };
	struct arm64_image huge = { .text_offset = 0,
				    .image_size = UINT64_MAX };
	struct arm64_boot_plan p;

	cr_assert_eq(boot__plan(RAM_BASE, 32ULL << 20, &img, 0, &p), 0);
	cr_assert_eq(boot__plan(RAM_BASE, 32ULL << 20, &img, 1 << 20, &p),
		     -E2BIG);
	cr_assert_eq(boot__plan(RAM_BASE, 16ULL << 20, &img, 0, &p), -E2BIG);
	cr_assert_eq(boot__plan(RAM_BASE, 2ULL << 20, &img, 0, &p), -E2BIG);
	cr_assert_eq(boot__plan(RAM_BASE, 64ULL << 20, &huge, 0, &p), -E2BIG);
	cr_assert_eq(boot__plan(RAM_BASE, 64ULL << 20, &img, UINT64_MAX, &p),
		     -E2BIG);
}
