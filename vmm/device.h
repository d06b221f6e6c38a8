/* SPDX-License-Identifier: Apache-2.0 */
/* The device model: typed ops per device kind, and what a device may ask of its VM. */
#ifndef SANDBOX_DEVICE_H
#define SANDBOX_DEVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

struct vm;
struct device;
struct state_buf;
struct state_reader;

/* Why a VM stopped running; the launcher maps each to its own exit status. */
enum vm_exit {
	VM_EXIT_NONE = 0,
	VM_EXIT_POWEROFF, /* the guest powered off (PSCI SYSTEM_OFF, i8042 reset on x86) */
	VM_EXIT_RESET, /* the guest asked for a reboot; a microVM ends there */
	VM_EXIT_PANIC, /* the guest kernel reported a panic (pvpanic) */
	VM_EXIT_TIMEOUT, /* the run exceeded its time limit */
	VM_EXIT_ERROR, /* the VMM or KVM failed; details were logged */
	VM_EXIT_PAUSED, /* vm__request_pause() was honoured: vCPUs and devices parked */
	VM_EXIT_CORRUPT, /* the snapshot it was restored from proved corrupt */
};

/*
 * One static const instance per device kind. MMIO handlers run on vCPU
 * threads, possibly several at once: the device does its own locking.
 * @off is relative to the device's base, @len is 1, 2, 4 or 8 and @data holds
 * the access in guest (little-endian) byte order. The bus guarantees that
 * [off, off + len) lies inside the device's window.
 */
struct device_ops {
	const char *name;
	void (*mmio_read)(struct device *dev, uint64_t off, void *data,
			  uint32_t len);
	void (*mmio_write)(struct device *dev, uint64_t off, const void *data,
			   uint32_t len);
	/*
	 * Device tree: the "compatible" string list (NUL-separated, with its
	 * total length including the last NUL); the arch's FDT builder writes
	 * the node with reg and interrupts itself. NULL: no node.
	 */
	const char *fdt_compatible;
	size_t fdt_compatible_len;
	/* The interrupt is an edge (irqfd pulses) rather than a level. */
	bool irq_edge;
	/* Optional extra properties, called with the node open. 0 or -errno. */
	int (*fdt_props)(struct device *dev, void *fdt, uint32_t clock_phandle);
	/* Frees the device; called once, in reverse order of creation. */
	void (*destroy)(struct device *dev);
	/*
	 * Snapshots (all optional: NULL means the device has neither threads
	 * nor state beyond its construction arguments). pause() returns when
	 * no thread of the device touches guest memory or device state any
	 * more and nothing is in flight; resume() undoes it. Both are called
	 * with every vCPU parked. save() appends the device's guest-visible
	 * state to @b while paused; restore() reads it back into a device
	 * freshly created with the same configuration, before any vCPU runs,
	 * and may start the device's threads. 0 or -errno after logging
	 * (restore: -EBADMSG for a record that does not fit the device).
	 */
	int (*pause)(struct device *dev);
	void (*resume)(struct device *dev);
	int (*save)(struct device *dev, struct state_buf *b);
	int (*restore)(struct device *dev, struct state_reader *r);
};

/* Embedded in each concrete device; the VM keeps them in creation order. */
struct device {
	const struct device_ops *ops;
	struct vm *vm;
	uint64_t base;
	uint64_t size;
	int irq; /* arch-neutral interrupt line, or -1 for none */
};

/*
 * Drives interrupt line @irq of @vm to @level (level-triggered semantics).
 * Returns 0 or -errno from KVM. Callable from any thread.
 */
int irq__set_level(struct vm *vm, uint32_t irq, bool level) __must_check;

/*
 * Asks @vm to stop with reason @why: every vCPU is kicked out of KVM_RUN and
 * vm__run() returns. The first reason recorded wins. Callable from any thread.
 */
void vm__request_stop(struct vm *vm, enum vm_exit why);

struct guest_mem;

/* The VM's guest memory, for devices that read and write guest buffers. */
const struct guest_mem *vm__mem(struct vm *vm);

/*
 * Registers (@assign) or removes an ioeventfd: a guest write of @len bytes
 * equal to @datamatch at guest physical @addr signals eventfd @fd in the
 * kernel, without an exit to userspace. Returns 0 or -errno from KVM.
 */
int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		  uint64_t datamatch, int fd, bool assign) __must_check;

/*
 * Registers (@assign) or removes an irqfd: a write to eventfd @fd injects an
 * edge on interrupt line @irq in the kernel. Returns 0 or -errno from KVM.
 */
int vm__irqfd(struct vm *vm, uint32_t irq, int fd, bool assign) __must_check;

#endif
