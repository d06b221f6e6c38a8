/* SPDX-License-Identifier: Apache-2.0 */
/* One VM: KVM handles, guest memory, the MMIO bus, devices, vCPUs and the run loop. */
#ifndef SANDBOX_VM_H
#define SANDBOX_VM_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "../devices/virtio/blk.h"
#include "arch.h"
#include "bus.h"
#include "device.h"
#include "mem.h"
#include "state.h"
#include "util.h"

#define VM_MAX_DEVICES 48
#define VM_MAX_DRIVES 8

struct vm_config {
	const char *kernel_path;
	const char *initrd_path; /* NULL: no initrd */
	const char *cmdline;
	uint64_t mem_size; /* bytes */
	unsigned int nr_vcpus;
	int console_in; /* guest console input fd, or -1 */
	int console_out; /* guest console output fd */
	struct blk_drive
		drives[VM_MAX_DRIVES]; /* virtio-blk, in /dev/vdX order */
	unsigned int nr_drives;
	uint64_t vsock_cid; /* virtio-vsock guest CID (>= 3), or 0 for none */
	const char *vsock_uds; /* its host-side Unix socket path */
};

/* Restore from a snapshot (vm__restore()): how guest memory is provided. */
enum vm_mem_mode {
	VM_MEM_UFFD, /* on demand, through userfaultfd */
	VM_MEM_EAGER, /* all decoded before the vCPUs start */
	VM_MEM_FILE, /* a raw snapshot's memory mapped MAP_PRIVATE */
};

struct snap;
struct pager;

struct vcpu {
	struct vm *vm;
	unsigned int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
	struct vcpu_arch arch;
};

struct vm {
	int kvm_fd;
	int vm_fd;
	size_t run_size; /* KVM_GET_VCPU_MMAP_SIZE */
	struct guest_mem mem;
	struct bus mmio;
	struct device *devs[VM_MAX_DEVICES]; /* in creation order */
	unsigned int nr_devs;
	struct vcpu *vcpus;
	unsigned int nr_vcpus;
	uint32_t next_irq;

	pthread_mutex_t lock; /* guards exit, the pause fields; wakes vm__run() */
	pthread_cond_t stopped;
	enum vm_exit exit;
	bool stopping; /* read by vCPU threads without the lock (atomic) */
	bool started; /* the vCPU threads were started */
	bool pause_requested; /* vm__request_pause(): vm__run() pauses */
	bool paused; /* vCPUs must park (atomic for them; set under lock) */
	unsigned int nr_parked; /* vCPU threads waiting in their park */
	unsigned int nr_live; /* vCPU threads not yet returned */
	pthread_cond_t parked; /* a vCPU parked or ended */
	pthread_cond_t resumed; /* paused went false, or stopping */

	/* What the VM was built from, kept for snapshots (owned copies). */
	char *cmdline;
	char *drive_paths[VM_MAX_DRIVES];
	struct blk_drive drives[VM_MAX_DRIVES];
	unsigned int nr_drives;
	uint64_t vsock_cid; /* 0: none */
	struct pager *pager; /* restored VMs: provides guest memory */

	bool arch_inited; /* vm__arch_init() was called: vm__arch_exit() owes an unwind */
	struct vm_arch arch;
};

/*
 * Creates a VM from @cfg, ready to run: KVM VM, guest memory, irqchip,
 * vCPUs, platform devices, kernel, initrd and boot data loaded. Returns 0
 * and the VM in *@out (free with vm__free()), or -errno after logging why:
 * -ENOENT/-EACCES for unreadable files, -ENOEXEC for a kernel the arch cannot
 * boot, -E2BIG when the images do not fit in guest memory, -ENODEV when KVM
 * is unavailable or lacks a capability the arch needs, -EINVAL for a bad
 * config.
 */
int vm__new(const struct vm_config *cfg, struct vm **out) __must_check;

/*
 * Runs the VM until the guest powers off, resets or panics, a vCPU fails, or
 * @timeout_ms passes (0: no limit). Returns 0 with the reason in *@why, or
 * -errno if the vCPU threads could not be started. Call once per VM.
 */
int vm__run(struct vm *vm, unsigned int timeout_ms,
	    enum vm_exit *why) __must_check;

/*
 * Asks a running VM to pause: vm__run() then parks every vCPU outside
 * KVM_RUN, pauses every device (in-flight requests finished) and returns
 * VM_EXIT_PAUSED. Callable from any thread; ignored once the VM stopped.
 */
void vm__request_pause(struct vm *vm);

/*
 * Resumes a VM paused by vm__run(): devices restart, vCPUs leave their park.
 * Call vm__run() again to wait for the VM. 0 or -errno.
 */
int vm__resume(struct vm *vm) __must_check;

struct snap_write_opts;
struct snap_mem_stats;

/*
 * Writes a snapshot of @vm, which must be paused (or never started), to
 * @path: configuration, every vCPU's registers, the irqchip, each device's
 * state and guest memory. Returns 0 (and memory statistics in *@stats when
 * non-NULL) or -errno after logging.
 */
int vm__save(struct vm *vm, const char *path,
	     const struct snap_write_opts *opts,
	     struct snap_mem_stats *stats) __must_check;

/* What a restored VM is connected to; everything else comes from the snapshot. */
struct vm_restore_opts {
	enum vm_mem_mode mem_mode;
	int console_in; /* -1: none */
	int console_out;
	const char
		*vsock_uds; /* host socket of the vsock device, if it has one */
	bool ksm; /* guest memory madvise(MADV_MERGEABLE) before the vCPUs run */
};

/*
 * Creates a VM from snapshot @s (opened by snap__open(); it must stay open
 * until vm__free()): KVM VM, guest memory provided by @o->mem_mode, vCPUs,
 * irqchip and devices rebuilt as recorded and set to their saved state.
 * With @o->ksm, the whole guest RAM mapping is marked MADV_MERGEABLE once
 * the pager has provided it, whatever the mode. Ready for vm__run(). Returns
 * 0 and the VM in *@out, or -errno after logging: -EBADMSG for state that
 * does not fit (a corrupt or foreign snapshot), -EINVAL for a mode the
 * snapshot cannot serve or @o->ksm on a kernel without KSM, the errors of
 * vm__new() otherwise.
 */
int vm__restore(struct snap *s, const struct vm_restore_opts *o,
		struct vm **out) __must_check;

/*
 * For vmm/vm_snapshot.c: vm__new() for a VM whose memory comes from
 * snapshot @from through @mode, without loading boot images.
 */
int vm__build_restored(const struct vm_config *cfg, struct snap *from,
		       enum vm_mem_mode mode, struct vm **out) __must_check;

/* Tears down everything vm__new() built, in reverse order. NULL-safe. */
void vm__free(struct vm *vm);

/*
 * Adds @dev to the VM: its MMIO window (if dev->size) goes on the bus and
 * the VM destroys it in vm__free(). On failure the caller still owns @dev.
 * Returns 0, -ENOSPC when the device table is full, or bus__register()'s
 * error.
 */
int vm__add_device(struct vm *vm, struct device *dev) __must_check;

/*
 * vm__add_device() for a device whose window is on @bus rather than the
 * MMIO bus (x86 port I/O). The caller frees @bus after vm__free() has
 * destroyed the devices.
 */
int vm__add_device_on(struct vm *vm, struct bus *bus,
		      struct device *dev) __must_check;

/* Allocates the next free interrupt line into *@irq. 0 or -ENOSPC. */
int vm__alloc_irq(struct vm *vm, uint32_t *irq) __must_check;

/*
 * Arch hooks, implemented once per arch in vmm/arch/<arch>/, called by
 * vm__new() in this order. Each returns 0 or -errno after logging.
 */
/*
 * After KVM_CREATE_VM and guest memory: in-kernel irqchip and its addresses.
 * vm->arch is zeroed before; vm__arch_exit() is called even when this fails.
 */
int vm__arch_init(struct vm *vm, const struct vm_config *cfg) __must_check;
/* After KVM_CREATE_VCPU for @vcpu: arch vCPU setup (reset state, features). */
int vcpu__arch_init(struct vcpu *vcpu) __must_check;
/*
 * After all vCPUs: platform devices (console, panic notifier, ...) and the
 * irqchip made ready, so that irqfds can be registered afterwards.
 */
int vm__arch_add_devices(struct vm *vm,
			 const struct vm_config *cfg) __must_check;
/* After every device: load kernel/initrd/boot data, set boot registers. */
int vm__arch_load(struct vm *vm, const struct vm_config *cfg) __must_check;
/*
 * Snapshots, called with every vCPU parked or never started: append each
 * vCPU's state to @vcpus and the irqchip's to @irqchip; or, on a VM built
 * by vm__restore() (vCPUs and irqchip initialised, nothing run), set them
 * from those records. 0 or -errno after logging (-EBADMSG: bad record).
 */
int vm__arch_save(struct vm *vm, struct state_buf *vcpus,
		  struct state_buf *irqchip) __must_check;
int vm__arch_restore(struct vm *vm, struct state_reader *vcpus,
		     struct state_reader *irqchip) __must_check;
/* The snapshot arch code (SNAP_ARCH_*) of this build. */
uint32_t vm__arch_snap_id(void);
/* Drives interrupt line @irq to @level. */
int vm__arch_irq_line(struct vm *vm, uint32_t irq, bool level) __must_check;
/*
 * Handles a KVM exit that the generic loop does not know. Returns 0 to keep
 * running, or -errno (after logging) to stop the VM with VM_EXIT_ERROR.
 */
int vcpu__arch_handle_exit(struct vcpu *vcpu) __must_check;
/* Releases what vm__arch_init() acquired. Safe after a partial init. */
void vm__arch_exit(struct vm *vm);

#endif
