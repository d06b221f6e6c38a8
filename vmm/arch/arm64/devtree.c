// SPDX-License-Identifier: Apache-2.0
// Device tree for arm64 guests, written with libfdt's sequential-write API.
#include <errno.h>
#include <libfdt.h>
#include <stdio.h>

#include "devtree.h"

enum {
	PHANDLE_GIC = 1,
	PHANDLE_CLOCK,
};

/* Devicetree bindings: interrupt specifier cells for arm,gic-v3. */
#define GIC_FDT_SPI 0
#define GIC_FDT_PPI 1
#define IRQ_TYPE_EDGE_RISING 1
#define IRQ_TYPE_LEVEL_HIGH 4

/* Architected timer PPIs: secure phys, non-secure phys, virtual, hypervisor. */
static const uint32_t timer_ppis[] = { 13, 14, 11, 10 };

/* Every helper returns 0 or -errno; libfdt's own codes are converted here. */
#define TRY(expr)                                 \
	do {                                      \
		int __r = (expr);                 \
		if (__r < 0)                      \
			return fdt_to_errno(__r); \
	} while (0)

static int fdt_to_errno(int fdt_err)
{
	return fdt_err == -FDT_ERR_NOSPACE ? -ENOSPC : -EINVAL;
}

static int prop_u64_pair(void *fdt, const char *name, uint64_t a, uint64_t b)
{
	fdt64_t v[2] = { cpu_to_fdt64(a), cpu_to_fdt64(b) };

	return fdt_property(fdt, name, v, sizeof(v));
}

static int add_cpus(void *fdt, const struct arm64_fdt_layout *l)
{
	unsigned int i;
	char name[32];

	TRY(fdt_begin_node(fdt, "cpus"));
	TRY(fdt_property_u32(fdt, "#address-cells", 1));
	TRY(fdt_property_u32(fdt, "#size-cells", 0));
	for (i = 0; i < l->nr_cpus; i++) {
		/* Aff2..Aff0; Aff3 stays 0 for the vCPU counts KVM gives us here. */
		uint32_t reg = (uint32_t)(l->mpidrs[i] & 0xffffff);

		snprintf(name, sizeof(name), "cpu@%x", reg);
		TRY(fdt_begin_node(fdt, name));
		TRY(fdt_property_string(fdt, "device_type", "cpu"));
		TRY(fdt_property_string(fdt, "compatible", "arm,arm-v8"));
		TRY(fdt_property_string(fdt, "enable-method", "psci"));
		TRY(fdt_property_u32(fdt, "reg", reg));
		TRY(fdt_end_node(fdt));
	}
	TRY(fdt_end_node(fdt));
	return 0;
}

static int add_gic(void *fdt, const struct arm64_fdt_layout *l)
{
	fdt64_t reg[4] = {
		cpu_to_fdt64(l->gicd_base),
		cpu_to_fdt64(l->gicd_size),
		cpu_to_fdt64(l->gicr_base),
		cpu_to_fdt64(l->gicr_size),
	};
	char name[40];

	snprintf(name, sizeof(name), "intc@%llx",
		 (unsigned long long)l->gicd_base);
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property_string(fdt, "compatible", "arm,gic-v3"));
	TRY(fdt_property_u32(fdt, "#interrupt-cells", 3));
	TRY(fdt_property(fdt, "interrupt-controller", NULL, 0));
	TRY(fdt_property_u32(fdt, "#address-cells", 2));
	TRY(fdt_property_u32(fdt, "#size-cells", 2));
	TRY(fdt_property(fdt, "ranges", NULL, 0));
	TRY(fdt_property(fdt, "reg", reg, sizeof(reg)));
	TRY(fdt_property_u32(fdt, "phandle", PHANDLE_GIC));
	TRY(fdt_end_node(fdt));
	return 0;
}

static int add_timer_psci_clock(void *fdt)
{
	fdt32_t irqs[3 * ARRAY_SIZE(timer_ppis)];
	unsigned int i;

	for (i = 0; i < ARRAY_SIZE(timer_ppis); i++) {
		irqs[3 * i] = cpu_to_fdt32(GIC_FDT_PPI);
		irqs[3 * i + 1] = cpu_to_fdt32(timer_ppis[i]);
		irqs[3 * i + 2] = cpu_to_fdt32(IRQ_TYPE_LEVEL_HIGH);
	}
	TRY(fdt_begin_node(fdt, "timer"));
	TRY(fdt_property_string(fdt, "compatible", "arm,armv8-timer"));
	TRY(fdt_property(fdt, "interrupts", irqs, sizeof(irqs)));
	TRY(fdt_property(fdt, "always-on", NULL, 0));
	TRY(fdt_end_node(fdt));

	TRY(fdt_begin_node(fdt, "psci"));
	TRY(fdt_property(fdt, "compatible", "arm,psci-0.2\0arm,psci",
			 sizeof("arm,psci-0.2\0arm,psci")));
	TRY(fdt_property_string(fdt, "method", "hvc"));
	TRY(fdt_end_node(fdt));

	/* The AMBA bus will not probe a PL011 without its apb_pclk. */
	TRY(fdt_begin_node(fdt, "apb-pclk"));
	TRY(fdt_property_string(fdt, "compatible", "fixed-clock"));
	TRY(fdt_property_u32(fdt, "#clock-cells", 0));
	TRY(fdt_property_u32(fdt, "clock-frequency", 24000000));
	TRY(fdt_property_string(fdt, "clock-output-names", "clk24mhz"));
	TRY(fdt_property_u32(fdt, "phandle", PHANDLE_CLOCK));
	TRY(fdt_end_node(fdt));
	return 0;
}

static void node_name(const struct device *dev, char *buf, size_t size)
{
	snprintf(buf, size, "%s@%llx", dev->ops->name,
		 (unsigned long long)dev->base);
}

static int add_device(void *fdt, struct device *dev)
{
	const struct device_ops *ops = dev->ops;
	char name[64];

	if (!ops->fdt_compatible)
		return 0;
	node_name(dev, name, sizeof(name));
	TRY(fdt_begin_node(fdt, name));
	TRY(fdt_property(fdt, "compatible", ops->fdt_compatible,
			 ops->fdt_compatible_len));
	TRY(prop_u64_pair(fdt, "reg", dev->base, dev->size));
	if (dev->irq >= 0) {
		fdt32_t irq[3] = {
			cpu_to_fdt32(GIC_FDT_SPI),
			cpu_to_fdt32((uint32_t)dev->irq),
			cpu_to_fdt32(ops->irq_edge ? IRQ_TYPE_EDGE_RISING
						   : IRQ_TYPE_LEVEL_HIGH),
		};

		TRY(fdt_property(fdt, "interrupts", irq, sizeof(irq)));
	}
	if (ops->fdt_props) {
		int err = ops->fdt_props(dev, fdt, PHANDLE_CLOCK);

		if (err)
			return err;
	}
	TRY(fdt_end_node(fdt));
	return 0;
}

static int add_chosen(void *fdt, const struct arm64_fdt_layout *l)
{
	char path[72];

	TRY(fdt_begin_node(fdt, "chosen"));
	TRY(fdt_property_string(fdt, "bootargs", l->cmdline));
	if (l->stdout_dev) {
		path[0] = '/';
		node_name(l->stdout_dev, path + 1, sizeof(path) - 1);
		TRY(fdt_property_string(fdt, "stdout-path", path));
	}
	if (l->initrd_size) {
		TRY(fdt_property_u64(fdt, "linux,initrd-start",
				     l->initrd_start));
		TRY(fdt_property_u64(fdt, "linux,initrd-end",
				     l->initrd_start + l->initrd_size));
	}
	TRY(fdt_end_node(fdt));
	return 0;
}

int fdt__build(const struct arm64_fdt_layout *l, void *buf, size_t size)
{
	char name[40];
	unsigned int i;
	int err;

	if (!l->nr_cpus || !l->mpidrs || !l->cmdline || !l->ram_size)
		return -EINVAL;
	TRY(fdt_create(buf, (int)size));
	TRY(fdt_finish_reservemap(buf));
	TRY(fdt_begin_node(buf, ""));
	TRY(fdt_property_string(buf, "compatible", "linux,dummy-virt"));
	TRY(fdt_property_u32(buf, "#address-cells", 2));
	TRY(fdt_property_u32(buf, "#size-cells", 2));
	TRY(fdt_property_u32(buf, "interrupt-parent", PHANDLE_GIC));

	snprintf(name, sizeof(name), "memory@%llx",
		 (unsigned long long)l->ram_base);
	TRY(fdt_begin_node(buf, name));
	TRY(fdt_property_string(buf, "device_type", "memory"));
	TRY(prop_u64_pair(buf, "reg", l->ram_base, l->ram_size));
	TRY(fdt_end_node(buf));

	err = add_cpus(buf, l);
	if (err)
		return err;
	err = add_gic(buf, l);
	if (err)
		return err;
	err = add_timer_psci_clock(buf);
	if (err)
		return err;
	for (i = 0; i < l->nr_devs; i++) {
		err = add_device(buf, l->devs[i]);
		if (err)
			return err;
	}
	err = add_chosen(buf, l);
	if (err)
		return err;
	TRY(fdt_end_node(buf));
	TRY(fdt_finish(buf));
	return 0;
}
