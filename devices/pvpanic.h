/* SPDX-License-Identifier: Apache-2.0 */
/* pvpanic (MMIO flavour): how a guest kernel tells the VMM it panicked. */
#ifndef SANDBOX_PVPANIC_H
#define SANDBOX_PVPANIC_H

#include <stdint.h>

#include "../vmm/device.h"

#define PVPANIC_MMIO_SIZE 0x1000ULL

/*
 * Creates a pvpanic device at guest physical @base of @vm. A guest write
 * with the "panicked" bit stops the VM with VM_EXIT_PANIC. Returns 0 and the
 * device in *@out (destroy through its ops), or -ENOMEM.
 */
int pvpanic__new(struct vm *vm, uint64_t base,
		 struct device **out) __must_check;

#endif
