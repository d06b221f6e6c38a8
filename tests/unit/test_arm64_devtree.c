// SPDX-License-Identifier: Apache-2.0
// arm64 device tree builder, read back with libfdt.
#include <criterion/criterion.h>
#include <errno.h>
#include <libfdt.h>
#include <string.h>

#include "../../vmm/arch/arm64/devtree.h"

static int props_called;

static int uart_props(struct device *dev, void *fdt, uint32_t clock_phandle)
{
	(void)dev;
	props_called++;
	return fdt_property_u32(fdt, "test-clock", clock_phandle) ? -ENOSPC : 0;
}

static const struct device_ops uart_ops = {
	.name = "pl011",
	.fdt_compatible = "arm,pl011\0arm,primecell",
	.fdt_compatible_len = sizeof("arm,pl011\0arm,primecell"),
	.fdt_props = uart_props,
};

static const struct device_ops edge_ops = {
	.name = "virtio_mmio",
	.fdt_compatible = "virtio,mmio",
	.fdt_compatible_len = sizeof("virtio,mmio"),
	.irq_edge = true,
};

static const struct device_ops hidden_ops = {
	.name = "hidden",
};

static struct device uart = {
	.ops = &uart_ops, .base = 0x9000000, .size = 0x1000, .irq = 3
};
static struct device vio = {
	.ops = &edge_ops, .base = 0xa000000, .size = 0x200, .irq = 7
};
static struct device hidden = {
	.ops = &hidden_ops, .base = 0xb000000, .size = 0x10, .irq = -1
};
static struct device *devs[] = { &uart, &vio, &hidden };
static const uint64_t mpidrs[] = { 0x80000000, 0x80000001 };
static char buf[65536];

static struct arm64_fdt_layout layout(void)
{
	struct arm64_fdt_layout l = {
		.ram_base = 0x40000000,
		.ram_size = 256ULL << 20,
		.nr_cpus = 2,
		.mpidrs = mpidrs,
		.gicd_base = 0x8000000,
		.gicd_size = 0x10000,
		.gicr_base = 0x80a0000,
		.gicr_size = 2 * 0x20000,
		.cmdline = "console=ttyAMA0 quiet",
		.initrd_start = 0x4f000000,
		.initrd_size = 0x12345,
		.devs = devs,
		.nr_devs = 3,
		.stdout_dev = &uart,
	};
	return l;
}

static const fdt32_t *prop32(const char *path, const char *name, int *len)
{
	int node = fdt_path_offset(buf, path);

	cr_assert_geq(node, 0, "no node %s", path);
	return fdt_getprop(buf, node, name, len);
}

static uint64_t read64(const fdt32_t *p)
{
	return ((uint64_t)fdt32_to_cpu(p[0]) << 32) | fdt32_to_cpu(p[1]);
}

static void build(void)
{
	struct arm64_fdt_layout l = layout();

	props_called = 0;
	cr_assert_eq(fdt__build(&l, buf, sizeof(buf)), 0);
	cr_assert_eq(fdt_check_header(buf), 0);
}

Test(devtree, describes_memory_and_chosen)
{
	const fdt32_t *reg;
	const char *s;
	int len;

	build();
	reg = prop32("/memory@40000000", "reg", &len);
	cr_assert_eq(len, 16);
	cr_assert_eq(read64(reg), 0x40000000);
	cr_assert_eq(read64(reg + 2), 256ULL << 20);
	s = (const char *)prop32("/chosen", "bootargs", &len);
	cr_assert_str_eq(s, "console=ttyAMA0 quiet");
	cr_assert_eq(read64(prop32("/chosen", "linux,initrd-start", &len)),
		     0x4f000000);
	cr_assert_eq(read64(prop32("/chosen", "linux,initrd-end", &len)),
		     0x4f000000 + 0x12345);
}

Test(devtree, stdout_path_names_the_uart)
{
	const char *path;
	int node, len;

	build();
	path = (const char *)prop32("/chosen", "stdout-path", &len);
	cr_assert_str_eq(path, "/pl011@9000000");
	node = fdt_path_offset(buf, path);
	cr_assert_geq(node, 0);
	cr_assert_eq(fdt_node_check_compatible(buf, node, "arm,pl011"), 0);
	cr_assert_eq(fdt_node_check_compatible(buf, node, "arm,primecell"), 0);
	cr_assert_eq(props_called, 1);
}

Test(devtree, cpus_use_psci_and_mpidr)
{
	const fdt32_t *reg;
	const char *s;
	int len;

	build();
	reg = prop32("/cpus/cpu@1", "reg", &len);
	cr_assert_eq(len, 4);
	cr_assert_eq(fdt32_to_cpu(*reg), 1);
	s = (const char *)prop32("/cpus/cpu@0", "enable-method", &len);
	cr_assert_str_eq(s, "psci");
	cr_assert_lt(fdt_path_offset(buf, "/cpus/cpu@2"), 0);
	s = (const char *)prop32("/psci", "method", &len);
	cr_assert_str_eq(s, "hvc");
}

Test(devtree, gic_and_interrupts)
{
	const fdt32_t *p;
	int gic, len;

	build();
	gic = fdt_node_offset_by_compatible(buf, -1, "arm,gic-v3");
	cr_assert_geq(gic, 0);
	p = fdt_getprop(buf, gic, "reg", &len);
	cr_assert_eq(len, 32);
	cr_assert_eq(read64(p), 0x8000000);
	cr_assert_eq(read64(p + 4), 0x80a0000);
	cr_assert_eq(read64(p + 6), 0x40000);
	cr_assert_eq(fdt_get_phandle(buf, gic),
		     fdt32_to_cpu(*prop32("/", "interrupt-parent", &len)));

	p = prop32("/pl011@9000000", "interrupts", &len);
	cr_assert_eq(len, 12);
	cr_assert_eq(fdt32_to_cpu(p[0]), 0); /* SPI */
	cr_assert_eq(fdt32_to_cpu(p[1]), 3);
	cr_assert_eq(fdt32_to_cpu(p[2]), 4); /* level high */
	p = prop32("/virtio_mmio@a000000", "interrupts", &len);
	cr_assert_eq(fdt32_to_cpu(p[1]), 7);
	cr_assert_eq(fdt32_to_cpu(p[2]), 1); /* edge rising */
	p = prop32("/timer", "interrupts", &len);
	cr_assert_eq(len, 4 * 12);
	cr_assert_eq(fdt32_to_cpu(p[0]), 1); /* PPI */
}

Test(devtree, uart_clock_points_at_fixed_clock)
{
	const fdt32_t *p;
	int clk, len;

	build();
	p = prop32("/pl011@9000000", "test-clock", &len);
	clk = fdt_node_offset_by_phandle(buf, fdt32_to_cpu(*p));
	cr_assert_geq(clk, 0);
	cr_assert_eq(fdt_node_check_compatible(buf, clk, "fixed-clock"), 0);
}

Test(devtree, devices_without_compatible_get_no_node)
{
	build();
	cr_assert_lt(fdt_path_offset(buf, "/hidden@b000000"), 0);
}

Test(devtree, no_initrd_no_initrd_props)
{
	struct arm64_fdt_layout l = layout();
	int len;

	l.initrd_size = 0;
	cr_assert_eq(fdt__build(&l, buf, sizeof(buf)), 0);
	cr_assert_null(prop32("/chosen", "linux,initrd-start", &len));
}

Test(devtree, reports_a_small_buffer_and_bad_layouts)
{
	struct arm64_fdt_layout l = layout();

	cr_assert_eq(fdt__build(&l, buf, 256), -ENOSPC);
	l.nr_cpus = 0;
	cr_assert_eq(fdt__build(&l, buf, sizeof(buf)), -EINVAL);
	l = layout();
	l.cmdline = NULL;
	cr_assert_eq(fdt__build(&l, buf, sizeof(buf)), -EINVAL);
}
