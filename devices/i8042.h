/* SPDX-License-Identifier: Apache-2.0 */
/* A minimal i8042 keyboard controller: the x86 guest's reset line, and nothing else. */
#ifndef SANDBOX_I8042_H
#define SANDBOX_I8042_H

#include <stdint.h>

#include "../vmm/device.h"

/* The window: the data port (base + 0) to the status/command port (base + 4). */
#define I8042_PORTS 5

/*
 * Creates the controller at port @base (0x60) of @vm. Its status and data
 * ports read 0: no key, no pending command, so a driver's wait for an
 * empty input buffer returns at once. Command 0xfe on base + 4 (pulse the
 * reset line) stops the VM: VM_EXIT_PANIC when the guest left the BIOS
 * warm-reset flag 0x1234 at guest physical 0x472 (Linux does when booted
 * with reboot=k,panic_warm and rebooting from a panic), VM_EXIT_POWEROFF
 * otherwise. Every other access is ignored. Returns 0 and the device in
 * *@out (destroy through its ops), or -ENOMEM.
 */
int i8042__new(struct vm *vm, uint64_t base, struct device **out) __must_check;

#endif
