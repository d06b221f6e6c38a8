/* SPDX-License-Identifier: Apache-2.0 */
/* ARM PL011 UART: the arm64 guest's serial console. */
#ifndef SANDBOX_PL011_H
#define SANDBOX_PL011_H

#include <stdint.h>

#include "../vmm/device.h"

#define PL011_MMIO_SIZE 0x1000ULL

struct pl011;

/*
 * Creates a PL011 at guest physical @base raising interrupt line @irq on
 * @vm. What the guest transmits is written to @out_fd; bytes read from
 * @in_fd (-1: none) are received by the guest, read by a thread of the
 * device's own that stops at EOF. The caller keeps ownership of both fds.
 * Returns 0 and the device in *@out (its struct device is the first member
 * reachable via pl011__device(); destroy through its ops), or -errno.
 */
int pl011__new(struct vm *vm, uint64_t base, uint32_t irq, int in_fd,
	       int out_fd, struct pl011 **out) __must_check;

/* The embedded generic device, for vm__add_device(). */
struct device *pl011__device(struct pl011 *uart);

/*
 * Delivers @len received bytes to the guest as if they arrived on the line.
 * Returns how many fitted in the receive FIFO (the rest are not taken).
 */
size_t pl011__receive(struct pl011 *uart, const uint8_t *buf, size_t len);

#endif
