// SPDX-License-Identifier: Apache-2.0
// The i8042 as Linux's reboot path uses it: an idle status, and the reset line telling panic from reboot.
#include <criterion/criterion.h>
#include <string.h>

#include "../../devices/i8042.h"
#include "../../vmm/mem.h"
#include "fakes.h"

#define DATA 0
#define STATUS 4

static struct guest_mem mem;
static struct device *dev;

static void setup(void)
{
	fakes_reset();
	cr_assert_eq(mem__init(&mem, 0, SZ_64K), 0);
	fake_mem = &mem;
	cr_assert_eq(i8042__new(NULL, 0x60, &dev), 0);
}

static void teardown(void)
{
	dev->ops->destroy(dev);
	mem__exit(&mem);
}

TestSuite(i8042, .init = setup, .fini = teardown);

static uint8_t rd(uint64_t off)
{
	uint8_t v = 0xaa;

	dev->ops->mmio_read(dev, off, &v, 1);
	return v;
}

static void wr(uint64_t off, uint8_t v)
{
	dev->ops->mmio_write(dev, off, &v, 1);
}

static void set_flag(uint16_t flag)
{
	uint8_t le[2] = { (uint8_t)flag, (uint8_t)(flag >> 8) };

	cr_assert_eq(mem__write(&mem, 0x472, le, 2), 0);
}

Test(i8042, describes_its_port_window)
{
	cr_assert_eq(dev->base, 0x60);
	cr_assert_eq(dev->size, I8042_PORTS);
	cr_assert_eq(dev->irq, -1);
	cr_assert_null(dev->ops->fdt_compatible);
}

Test(i8042, status_and_data_read_zero)
{
	uint32_t wide = 0xffffffff;

	/* kb_wait() waits for bit 1 (input buffer full) to clear. */
	cr_assert_eq(rd(STATUS), 0);
	cr_assert_eq(rd(DATA), 0);
	dev->ops->mmio_read(dev, 0, &wide, 4);
	cr_assert_eq(wide, 0);
}

Test(i8042, reset_without_the_warm_flag_powers_off)
{
	set_flag(0);
	wr(STATUS, 0xfe);
	cr_assert_eq(fake_stop_reason, VM_EXIT_POWEROFF);
}

Test(i8042, reset_with_the_warm_flag_is_a_panic)
{
	set_flag(0x1234);
	wr(STATUS, 0xfe);
	cr_assert_eq(fake_stop_reason, VM_EXIT_PANIC);
}

Test(i8042, only_the_exact_flag_means_panic)
{
	set_flag(0x3412);
	wr(STATUS, 0xfe);
	cr_assert_eq(fake_stop_reason, VM_EXIT_POWEROFF);
}

Test(i8042, without_guest_memory_a_reset_still_stops)
{
	fake_mem = NULL;
	wr(STATUS, 0xfe);
	cr_assert_eq(fake_stop_reason, VM_EXIT_POWEROFF);
}

Test(i8042, other_writes_are_ignored)
{
	set_flag(0x1234);
	wr(STATUS, 0xff);
	wr(STATUS, 0xaa);
	wr(STATUS, 0xd1);
	wr(DATA, 0xfe);
	wr(1, 0xfe);
	wr(3, 0xfe);
	cr_assert_eq(fake_stop_reason, VM_EXIT_NONE);
	cr_assert_eq(rd(STATUS), 0);
}
