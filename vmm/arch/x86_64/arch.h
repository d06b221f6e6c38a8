/* SPDX-License-Identifier: Apache-2.0 */
/* x86_64: the guest physical memory map and the arch parts of struct vm and struct vcpu. */
#ifndef SANDBOX_ARCH_X86_64_H
#define SANDBOX_ARCH_X86_64_H

#include <stdint.h>

#include "../../bus.h"

/*
 * Guest physical address space, x86_64 (one RAM slot from 0, below the
 * MMIO hole, so --mem is at most 3 GiB):
 *
 *  0x0000_0000 +------------------------------------+
 *              | RAM: real-mode IVT and BIOS data   |
 *              |   (0x472: the warm-reset flag)     |
 *  0x0000_7000 |   boot_params or hvm_start_info    |
 *  0x0000_8000 |   its e820 / PVH memory map        |
 *  0x0000_9000 |   page tables: PML4, PDPT, PD      |
 *  0x0000_c000 |   GDT                              |
 *  0x0002_0000 |   kernel command line (64 KiB)     |
 *  0x0009_fc00 +------------------------------------+
 *              | EBDA: the MP table                 |  reserved in the e820
 *  0x000a_0000 | (legacy VGA / BIOS hole, RAM here) |
 *  0x0010_0000 +------------------------------------+
 *              | RAM                                |
 *              |   bzImage at 1 MiB, or the ELF     |
 *              |   vmlinux at its physical address  |
 *              |   (16 MiB for Debian's sources)    |
 *              |   ...                              |
 *              |   initrd, at the top of RAM        |
 *              +------------------------------------+ --mem
 *              | (unmapped)                         |
 *  0xd000_0000 +------------------------------------+
 *              | virtio-mmio windows, 512 B each,   |
 *              |   8 slots, announced on the        |
 *              |   command line (virtio_mmio.device=)|
 *  0xd000_1000 +------------------------------------+
 *              | (unmapped)                         |
 *  0xfec0_0000   IOAPIC (in-kernel)
 *  0xfee0_0000   local APICs (in-kernel)
 *  0xfffb_c000   KVM's identity-map page, then its TSS (3 pages)
 *
 * Port I/O: the 16550A UART at 0x3f8 (IRQ 4) and the i8042 at 0x60-0x64;
 * the PICs are KVM's (there is no PIT). Interrupt lines are ISA IRQs /
 * IOAPIC pins: the MP table maps ISA IRQ n to pin n, edge-triggered.
 */
#define X86_WARM_RESET_FLAG 0x472ULL
#define X86_BOOT_INFO 0x7000ULL /* boot_params (4 KiB) or hvm_start_info */
#define X86_BOOT_MEMMAP 0x8000ULL /* PVH: the hvm_memmap_table_entry array */
#define X86_PML4 0x9000ULL
#define X86_PDPT 0xa000ULL
#define X86_PD 0xb000ULL
#define X86_GDT 0xc000ULL
#define X86_CMDLINE 0x20000ULL
#define X86_CMDLINE_MAX 0x10000ULL
#define X86_EBDA 0x9fc00ULL /* the MP table lives here */
#define X86_EBDA_END 0x100000ULL /* EBDA, VGA and BIOS: reserved */
#define X86_HIGH_RAM 0x100000ULL
#define X86_BZIMAGE_LOAD 0x100000ULL
#define X86_VIRTIO_BASE 0xd0000000ULL
#define X86_VIRTIO_STRIDE 0x200ULL
#define X86_VIRTIO_SLOTS 8
#define X86_IOAPIC_BASE 0xfec00000ULL
#define X86_LAPIC_BASE 0xfee00000ULL
#define X86_IDENTITY_MAP 0xfffbc000ULL
#define X86_TSS 0xfffbd000ULL
#define X86_RAM_MAX_SIZE (3ULL << 30)

#define X86_UART_PORT 0x3f8
#define X86_UART_IRQ 4
#define X86_I8042_PORT 0x60
#define X86_IOAPIC_PINS 24

/* What generic code needs from every arch. */
#define ARCH_NAME "x86_64"
#define ARCH_ELF_MACHINE 62 /* EM_X86_64: what fn.bin must be built for */
#define ARCH_KERNEL_NAME "vmlinux" /* default kernel file in the images dir */
#define ARCH_CONSOLE "ttyS0"
#define ARCH_RAM_BASE 0x0ULL
#define ARCH_RAM_MAX_SIZE X86_RAM_MAX_SIZE
#define ARCH_MAX_VCPUS 32
#define ARCH_IRQ_FIRST 5
#define ARCH_VIRTIO_BASE X86_VIRTIO_BASE
#define ARCH_VIRTIO_STRIDE X86_VIRTIO_STRIDE
#define ARCH_VIRTIO_SLOTS X86_VIRTIO_SLOTS
#define ARCH_IRQ_LAST (X86_IOAPIC_PINS - 1)

struct vm_arch {
	struct bus pio; /* port I/O devices: the UART and the i8042 */
	uint32_t tsc_khz; /* the guest's TSC frequency, kept across snapshots */
};

struct vcpu_arch {
	uint32_t apic_id; /* the vCPU's index: the MP table and CPUID agree */
};

#endif
