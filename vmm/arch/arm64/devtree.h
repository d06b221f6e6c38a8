/* SPDX-License-Identifier: Apache-2.0 */
/* The arm64 guest's flattened device tree, built with libfdt. */
#ifndef SANDBOX_ARM64_DEVTREE_H
#define SANDBOX_ARM64_DEVTREE_H

#include <stddef.h>
#include <stdint.h>

#include "../../device.h"
#include "../../util.h"

/* Everything the device tree describes; no KVM handle needed, so tests build one. */
struct arm64_fdt_layout {
	uint64_t ram_base;
	uint64_t ram_size;
	unsigned int nr_cpus;
	const uint64_t *mpidrs; /* nr_cpus MPIDR_EL1 values */
	uint64_t gicd_base;
	uint64_t gicd_size;
	uint64_t gicr_base;
	uint64_t gicr_size; /* all redistributors together */
	const char *cmdline;
	uint64_t initrd_start; /* initrd_size 0: no initrd */
	uint64_t initrd_size;
	struct device *const *devs; /* devices in creation order */
	unsigned int nr_devs;
	const struct device
		*stdout_dev; /* console for chosen/stdout-path, or NULL */
};

/*
 * Writes the device tree for @l into @buf (@size bytes): root, memory, cpus
 * (PSCI enable-method), psci, GICv3, arch timer, a fixed 24 MHz APB clock,
 * one node per device with a compatible string, and chosen (bootargs,
 * stdout-path, initrd). Returns 0, -ENOSPC when it does not fit, -EINVAL for
 * a bad layout.
 */
int fdt__build(const struct arm64_fdt_layout *l, void *buf,
	       size_t size) __must_check;

#endif
