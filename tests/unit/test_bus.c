// SPDX-License-Identifier: Apache-2.0
// MMIO bus: window registration, overlap rejection and dispatch by address.
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "../../vmm/bus.h"

struct probe {
	struct device dev;
	uint64_t last_off;
	uint32_t last_len;
	uint64_t last_write;
	int reads, writes;
};

static void probe_read(struct device *dev, uint64_t off, void *data,
		       uint32_t len)
{
	struct probe *p = (struct probe *)dev;

	p->reads++;
	p->last_off = off;
	p->last_len = len;
	memset(data, 0xab, len);
}

static void probe_write(struct device *dev, uint64_t off, const void *data,
			uint32_t len)
{
	struct probe *p = (struct probe *)dev;

	p->writes++;
	p->last_off = off;
	p->last_len = len;
	p->last_write = 0;
	memcpy(&p->last_write, data, len);
}

static const struct device_ops probe_ops = {
	.name = "probe",
	.mmio_read = probe_read,
	.mmio_write = probe_write,
};

static struct bus bus;

static void setup(void)
{
	memset(&bus, 0, sizeof(bus));
}

static void teardown(void)
{
	bus__exit(&bus);
}

static struct probe probe_at(uint64_t base, uint64_t size)
{
	struct probe p;

	memset(&p, 0, sizeof(p));
	p.dev.ops = &probe_ops;
	p.dev.base = base;
	p.dev.size = size;
	p.dev.irq = -1;
	return p;
}

TestSuite(bus, .init = setup, .fini = teardown);

Test(bus, dispatches_reads_and_writes_with_offset)
{
	struct probe a = probe_at(0x1000, 0x100);
	uint32_t v = 0x12345678;
	uint8_t buf[4];

	cr_assert_eq(bus__register(&bus, &a.dev), 0);
	cr_assert_eq(bus__dispatch(&bus, 0x1010, &v, 4, true), 0);
	cr_assert_eq(a.writes, 1);
	cr_assert_eq(a.last_off, 0x10);
	cr_assert_eq(a.last_write, 0x12345678);
	cr_assert_eq(bus__dispatch(&bus, 0x10ff, buf, 1, false), 0);
	cr_assert_eq(a.reads, 1);
	cr_assert_eq(a.last_off, 0xff);
	cr_assert_eq(buf[0], 0xab);
}

Test(bus, rejects_overlapping_windows)
{
	struct probe a = probe_at(0x1000, 0x100);
	struct probe same = probe_at(0x1000, 0x100);
	struct probe left = probe_at(0xf80, 0x81);
	struct probe right = probe_at(0x10ff, 0x10);
	struct probe inside = probe_at(0x1040, 0x10);
	struct probe around = probe_at(0x0, 0x10000);

	cr_assert_eq(bus__register(&bus, &a.dev), 0);
	cr_assert_eq(bus__register(&bus, &same.dev), -EEXIST);
	cr_assert_eq(bus__register(&bus, &left.dev), -EEXIST);
	cr_assert_eq(bus__register(&bus, &right.dev), -EEXIST);
	cr_assert_eq(bus__register(&bus, &inside.dev), -EEXIST);
	cr_assert_eq(bus__register(&bus, &around.dev), -EEXIST);
	cr_assert_eq(bus.nr, 1);
}

Test(bus, accepts_adjacent_windows_in_any_order)
{
	struct probe c = probe_at(0x3000, 0x1000);
	struct probe a = probe_at(0x1000, 0x1000);
	struct probe b = probe_at(0x2000, 0x1000);
	uint64_t off;

	cr_assert_eq(bus__register(&bus, &c.dev), 0);
	cr_assert_eq(bus__register(&bus, &a.dev), 0);
	cr_assert_eq(bus__register(&bus, &b.dev), 0);
	cr_assert_eq(bus__find(&bus, 0x1fff, 1, &off), &a.dev);
	cr_assert_eq(off, 0xfff);
	cr_assert_eq(bus__find(&bus, 0x2000, 1, &off), &b.dev);
	cr_assert_eq(off, 0);
	cr_assert_eq(bus__find(&bus, 0x3ffc, 4, &off), &c.dev);
}

Test(bus, rejects_empty_and_wrapping_windows)
{
	struct probe empty = probe_at(0x1000, 0);
	struct probe wrap = probe_at(UINT64_MAX - 0xf, 0x20);
	struct probe top = probe_at(UINT64_MAX - 0xf, 0x10);

	cr_assert_eq(bus__register(&bus, &empty.dev), -EINVAL);
	cr_assert_eq(bus__register(&bus, &wrap.dev), -EINVAL);
	cr_assert_eq(bus__register(&bus, &top.dev), 0);
	cr_assert_eq(bus__find(&bus, UINT64_MAX, 1, &(uint64_t){ 0 }),
		     &top.dev);
}

Test(bus, unmapped_and_straddling_accesses_read_zero)
{
	struct probe a = probe_at(0x1000, 0x100);
	uint64_t v = ~0ULL;

	cr_assert_eq(bus__register(&bus, &a.dev), 0);
	cr_assert_eq(bus__dispatch(&bus, 0x0ffc, &v, 8, false), -ENOENT);
	cr_assert_eq(v, 0);
	v = ~0ULL;
	cr_assert_eq(bus__dispatch(&bus, 0x10fc, &v, 8, false), -ENOENT);
	cr_assert_eq(v, 0);
	cr_assert_eq(bus__dispatch(&bus, 0x2000, &v, 4, true), -ENOENT);
	cr_assert_eq(a.reads + a.writes, 0);
}

Test(bus, rejects_odd_access_lengths)
{
	struct probe a = probe_at(0x1000, 0x100);
	uint8_t buf[16];

	cr_assert_eq(bus__register(&bus, &a.dev), 0);
	cr_assert_eq(bus__dispatch(&bus, 0x1000, buf, 3, false), -EINVAL);
	cr_assert_eq(bus__dispatch(&bus, 0x1000, buf, 16, true), -EINVAL);
	cr_assert_eq(bus__dispatch(&bus, 0x1000, buf, 0, true), -EINVAL);
	cr_assert_eq(a.reads + a.writes, 0);
}

Test(bus, keeps_many_windows_sorted)
{
	struct probe p[40];
	uint64_t off;
	int i;

	/* Register in a scrambled order, then find each one. */
	for (i = 0; i < 40; i++) {
		int k = (i * 17) % 40;

		p[k] = probe_at(0x10000 + (uint64_t)k * 0x200, 0x200);
		cr_assert_eq(bus__register(&bus, &p[k].dev), 0);
	}
	for (i = 1; i < 40; i++)
		cr_assert_lt(bus.devs[i - 1]->base, bus.devs[i]->base);
	for (i = 0; i < 40; i++)
		cr_assert_eq(bus__find(&bus, 0x10000 + (uint64_t)i * 0x200 + 4,
				       4, &off),
			     &p[i].dev);
}
