/* SPDX-License-Identifier: Apache-2.0 */
/* 16550A UART on port I/O: the x86 guest's serial console (ttyS0). */
#ifndef SANDBOX_UART16550_H
#define SANDBOX_UART16550_H

#include <stddef.h>
#include <stdint.h>

#include "../vmm/device.h"

/* The register window: eight consecutive ports from the base (0x3f8 for COM1). */
#define UART16550_PORTS 8

struct uart16550;

/*
 * Creates a 16550A at port @base raising interrupt line @irq on @vm; its
 * struct device (uart16550__device()) takes port accesses through the
 * mmio_read/mmio_write ops with @off = port - @base. What the guest
 * transmits is written to @out_fd by a thread of the device's own, so a
 * vCPU never blocks on the host console; bytes read from @in_fd (-1: none)
 * are received by the guest, read by another thread that stops at EOF. The
 * caller keeps ownership of both fds. The line is driven high while an
 * interrupt is pending and low otherwise, which suits an edge-triggered ISA
 * pin: each new interrupt after the guest cleared the last is a new edge.
 * Returns 0 and the device in *@out (destroy through its ops), or -errno.
 */
int uart16550__new(struct vm *vm, uint64_t base, uint32_t irq, int in_fd,
		   int out_fd, struct uart16550 **out) __must_check;

/* The embedded generic device, for vm__add_device() on the port I/O bus. */
struct device *uart16550__device(struct uart16550 *uart);

/*
 * Delivers @len received bytes to the guest as if they arrived on the line.
 * Returns how many fitted in the receive FIFO (the rest are not taken; none
 * while the guest holds the UART in loopback mode).
 */
size_t uart16550__receive(struct uart16550 *uart, const uint8_t *buf,
			  size_t len);

#endif
