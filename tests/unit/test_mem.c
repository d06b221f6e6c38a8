// SPDX-License-Identifier: Apache-2.0
// Guest memory: the one bounds-checked translation every guest address goes through.
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/mem.h"

#define BASE 0x40000000ULL
#define SIZE (4ULL << 20)

static struct guest_mem mem;

static void setup(void)
{
	cr_assert_eq(mem__init(&mem, BASE, SIZE), 0);
}

static void teardown(void)
{
	mem__exit(&mem);
}

TestSuite(mem, .init = setup, .fini = teardown);

Test(mem, translates_addresses_inside_ram)
{
	char *base = mem.ram.hva;

	cr_assert_eq(mem__gpa_to_hva(&mem, BASE, 1), base);
	cr_assert_eq(mem__gpa_to_hva(&mem, BASE + 0x1234, 16), base + 0x1234);
	cr_assert_eq(mem__gpa_to_hva(&mem, BASE, SIZE), base);
	cr_assert_eq(mem__gpa_to_hva(&mem, BASE + SIZE - 1, 1),
		     base + SIZE - 1);
	cr_assert_eq(mem__gpa_to_hva(&mem, BASE + SIZE, 0), base + SIZE);
}

Test(mem, refuses_ranges_outside_ram)
{
	cr_assert_null(mem__gpa_to_hva(&mem, BASE - 1, 1));
	cr_assert_null(mem__gpa_to_hva(&mem, BASE - 1, 2));
	cr_assert_null(mem__gpa_to_hva(&mem, BASE + SIZE, 1));
	cr_assert_null(mem__gpa_to_hva(&mem, BASE + SIZE - 1, 2));
	cr_assert_null(mem__gpa_to_hva(&mem, BASE, SIZE + 1));
	cr_assert_null(mem__gpa_to_hva(&mem, 0, 1));
}

Test(mem, refuses_wrapping_ranges)
{
	cr_assert_null(mem__gpa_to_hva(&mem, BASE + 16, UINT64_MAX));
	cr_assert_null(mem__gpa_to_hva(&mem, BASE + 16, UINT64_MAX - 15));
	cr_assert_null(mem__gpa_to_hva(&mem, UINT64_MAX, 2));
}

Test(mem, writes_only_whole_ranges)
{
	const char msg[] = "hello";
	char *base = mem.ram.hva;

	cr_assert_eq(mem__write(&mem, BASE + 100, msg, sizeof(msg)), 0);
	cr_assert_str_eq(base + 100, "hello");
	cr_assert_eq(mem__write(&mem, BASE + SIZE - 2, msg, sizeof(msg)),
		     -EFAULT);
	cr_assert_eq(base[SIZE - 2], 0);
}

Test(mem, starts_zeroed)
{
	const unsigned char *p = mem.ram.hva;
	uint64_t i;

	for (i = 0; i < SIZE; i += 4096)
		cr_assert_eq(p[i], 0);
}

Test(mem_layout, rejects_bad_layouts)
{
	struct guest_mem m;

	cr_assert_eq(mem__init(&m, BASE, 0), -EINVAL);
	cr_assert_eq(mem__init(&m, BASE + 0x1000, SIZE), -EINVAL);
	cr_assert_eq(mem__init(&m, BASE, SIZE + 0x1000), -EINVAL);
	cr_assert_eq(mem__init(&m, UINT64_MAX - 0xffff, 0x20000), -EINVAL);
	cr_assert_null(mem__gpa_to_hva(&m, BASE, 1));
	mem__exit(&m);
}
