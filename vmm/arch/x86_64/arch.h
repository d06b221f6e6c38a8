/* SPDX-License-Identifier: Apache-2.0 */
/* x86_64: not implemented yet (issue 8); the arch parts of struct vm and struct vcpu. */
#ifndef SANDBOX_ARCH_X86_64_H
#define SANDBOX_ARCH_X86_64_H

#include <stdint.h>

/*
 * The x86_64 guest memory map is drawn here when the backend lands. Until
 * then this arch builds the generic layers natively (so they stay free of
 * arm64 assumptions) and refuses to create VMs.
 */
#define ARCH_NAME "x86_64"
#define ARCH_ELF_MACHINE 62 /* EM_X86_64: what fn.bin must be built for */
#define ARCH_KERNEL_NAME "vmlinux"
#define ARCH_RAM_BASE 0x0ULL
#define ARCH_RAM_MAX_SIZE (64ULL << 30)
#define ARCH_MAX_VCPUS 32
#define ARCH_IRQ_FIRST 5
#define ARCH_VIRTIO_BASE 0xd0000000ULL
#define ARCH_VIRTIO_STRIDE 0x200ULL
#define ARCH_VIRTIO_SLOTS 8
#define ARCH_IRQ_LAST 23

struct vm_arch {
	int unused;
};

struct vcpu_arch {
	int unused;
};

#endif
