/* SPDX-License-Identifier: Apache-2.0 */
/* arm64: the guest physical memory map and the arch parts of struct vm and struct vcpu. */
#ifndef SANDBOX_ARCH_ARM64_H
#define SANDBOX_ARCH_ARM64_H

#include <stdint.h>

/*
 * Guest physical address space (IPA), arm64:
 *
 *  0x0000_0000 +------------------------------------+
 *              | (unmapped)                         |
 *  0x0800_0000 +------------------------------------+
 *              | GICv3 distributor          64 KiB  |
 *  0x080a_0000 +------------------------------------+
 *              | GICv3 redistributors              |
 *              |   128 KiB per vCPU, 32 at most     |
 *  0x084a_0000 +------------------------------------+
 *              | (unmapped)                         |
 *  0x0900_0000 +------------------------------------+
 *              | PL011 UART                  4 KiB  |
 *  0x0900_1000 +------------------------------------+
 *              | pvpanic                     4 KiB  |
 *  0x0900_2000 +------------------------------------+
 *              | (unmapped)                         |
 *  0x0a00_0000 +------------------------------------+
 *              | virtio-mmio windows, 512 B each,   |
 *              |   32 slots                         |
 *  0x0a00_4000 +------------------------------------+
 *              | (unmapped)                         |
 *  0x4000_0000 +------------------------------------+ ARM64_RAM_BASE
 *              | RAM                                |
 *              |   kernel Image at base+text_offset |
 *              |   ...                              |
 *              |   initrd, just below the DTB       |
 *              |   DTB, in the last 2 MiB           |
 *              +------------------------------------+ base + --mem
 *
 * Interrupts: SPIs are numbered from 0 here (INTID 32 + n); the arch timer
 * uses the architected PPIs (EL1 physical 14 (INTID 30), virtual 11 (27)).
 */
#define ARM64_GICD_BASE 0x08000000ULL
#define ARM64_GICD_SIZE 0x10000ULL
#define ARM64_GICR_BASE 0x080a0000ULL
#define ARM64_GICR_STRIDE 0x20000ULL
#define ARM64_PL011_BASE 0x09000000ULL
#define ARM64_PL011_SIZE 0x1000ULL
#define ARM64_PVPANIC_BASE 0x09001000ULL
#define ARM64_PVPANIC_SIZE 0x1000ULL
#define ARM64_VIRTIO_BASE 0x0a000000ULL
#define ARM64_VIRTIO_STRIDE 0x200ULL
#define ARM64_VIRTIO_SLOTS 32
#define ARM64_RAM_BASE 0x40000000ULL
/* 40-bit IPA space (KVM's default) ends at 1 TiB; keep RAM well inside it. */
#define ARM64_RAM_MAX_SIZE (256ULL << 30)

#define ARM64_NR_SPIS \
	64 /* KVM wants the total (32 private + SPIs) a multiple of 32 */
#define ARM64_DTB_MAX_SIZE 0x10000ULL

/* What generic code needs from every arch. */
#define ARCH_NAME "arm64"
#define ARCH_ELF_MACHINE 183 /* EM_AARCH64: what fn.bin must be built for */
#define ARCH_KERNEL_NAME "Image" /* default kernel file in the images dir */
#define ARCH_CONSOLE \
	"ttyAMA0" /* the serial console's device name in the guest */
#define ARCH_RAM_BASE ARM64_RAM_BASE
#define ARCH_RAM_MAX_SIZE ARM64_RAM_MAX_SIZE
#define ARCH_MAX_VCPUS 32
#define ARCH_IRQ_FIRST 0
#define ARCH_VIRTIO_BASE ARM64_VIRTIO_BASE
#define ARCH_VIRTIO_STRIDE ARM64_VIRTIO_STRIDE
#define ARCH_VIRTIO_SLOTS ARM64_VIRTIO_SLOTS
#define ARCH_IRQ_LAST (ARM64_NR_SPIS - 1)

struct vm_arch {
	int gic_fd;
	struct device *console; /* the PL011: the DT's stdout-path */
};

struct vcpu_arch {
	uint64_t mpidr;
};

#endif
