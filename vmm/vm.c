// SPDX-License-Identifier: Apache-2.0
// VM lifecycle: build in a fixed order, run until the guest or a limit ends it, unwind.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "../devices/virtio/blk.h"
#include "../devices/virtio/vsock.h"
#include "../snapshot/pager.h"
#include "log.h"
#include "vcpu.h"
#include "vm.h"

static int open_kvm(struct vm *vm)
{
	int ver, sz;

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int err = -errno;

		pr_err("cannot open /dev/kvm: %s", strerror(-err));
		return -ENODEV;
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION) {
		pr_err("KVM API version %d, expected %d", ver, KVM_API_VERSION);
		return -ENODEV;
	}
	sz = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (sz < (int)sizeof(struct kvm_run)) {
		pr_err("KVM_GET_VCPU_MMAP_SIZE: %s",
		       sz < 0 ? strerror(errno) : "too small");
		return -ENODEV;
	}
	vm->run_size = sz;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0UL);
	if (vm->vm_fd < 0) {
		int err = -errno;

		pr_err("KVM_CREATE_VM: %s", strerror(-err));
		return err;
	}
	return 0;
}

static void pager_failed(void *arg, int err)
{
	(void)err;
	vm__request_stop(arg, VM_EXIT_CORRUPT);
}

/* Guest RAM; for a restore, filled by the pager before KVM sees it. */
static int setup_memory(struct vm *vm, uint64_t size, struct snap *from,
			enum vm_mem_mode mode)
{
	static const enum pager_mode modes[] = {
		[VM_MEM_UFFD] = PAGER_UFFD,
		[VM_MEM_EAGER] = PAGER_EAGER,
		[VM_MEM_FILE] = PAGER_FILE,
	};
	struct kvm_userspace_memory_region region;
	int err;

	err = mem__init(&vm->mem, ARCH_RAM_BASE, size);
	if (err)
		return err;
	if (from) {
		err = pager__start(from, modes[mode], vm->mem.ram.hva,
				   vm->mem.ram.size, pager_failed, vm,
				   &vm->pager);
		if (err)
			return err;
	}
	memset(&region, 0, sizeof(region));
	region.slot = 0;
	region.guest_phys_addr = vm->mem.ram.gpa;
	region.memory_size = vm->mem.ram.size;
	region.userspace_addr = (uintptr_t)vm->mem.ram.hva;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &region) < 0) {
		err = -errno;
		pr_err("KVM_SET_USER_MEMORY_REGION: %s", strerror(-err));
		return err;
	}
	return 0;
}

static int check_config(const struct vm_config *cfg)
{
	if (!cfg->nr_vcpus || cfg->nr_vcpus > ARCH_MAX_VCPUS) {
		pr_err("%u vCPUs: must be 1 to %u", cfg->nr_vcpus,
		       ARCH_MAX_VCPUS);
		return -EINVAL;
	}
	if (!cfg->mem_size || cfg->mem_size > ARCH_RAM_MAX_SIZE ||
	    !IS_ALIGNED(cfg->mem_size, SZ_2M)) {
		pr_err("guest memory of %llu bytes: must be a multiple of 2 MiB up to %llu GiB",
		       (unsigned long long)cfg->mem_size,
		       (unsigned long long)(ARCH_RAM_MAX_SIZE >> 30));
		return -EINVAL;
	}
	if (cfg->nr_drives > VM_MAX_DRIVES) {
		pr_err("%u drives: at most %d", cfg->nr_drives, VM_MAX_DRIVES);
		return -EINVAL;
	}
	/* UINT32_MAX is VMADDR_CID_ANY: no guest can have it. */
	if (cfg->vsock_cid &&
	    (cfg->vsock_cid < 3 || cfg->vsock_cid >= UINT32_MAX ||
	     !cfg->vsock_uds)) {
		pr_err("vsock: the guest CID must be 3 to %u, with a socket path",
		       UINT32_MAX - 1);
		return -EINVAL;
	}
	if (!cfg->kernel_path || !cfg->cmdline) {
		pr_err("no kernel or no command line given");
		return -EINVAL;
	}
	return 0;
}

static int init_sync(struct vm *vm)
{
	pthread_condattr_t attr;
	int err;

	err = pthread_mutex_init(&vm->lock, NULL);
	if (err)
		return -err;
	pthread_condattr_init(&attr);
	/* The timeout is a duration: immune to wall-clock steps. */
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	err = pthread_cond_init(&vm->stopped, &attr);
	pthread_condattr_destroy(&attr);
	if (err)
		goto fail_stopped;
	err = pthread_cond_init(&vm->parked, NULL);
	if (err)
		goto fail_parked;
	err = pthread_cond_init(&vm->resumed, NULL);
	if (err)
		goto fail_resumed;
	return 0;
fail_resumed:
	pthread_cond_destroy(&vm->parked);
fail_parked:
	pthread_cond_destroy(&vm->stopped);
fail_stopped:
	pthread_mutex_destroy(&vm->lock);
	return -err;
}

/* The VM keeps what it was built from, so that a snapshot can record it. */
static int copy_config(struct vm *vm, const struct vm_config *cfg)
{
	unsigned int i;

	vm->cmdline = strdup(cfg->cmdline);
	if (!vm->cmdline)
		return -ENOMEM;
	for (i = 0; i < cfg->nr_drives; i++) {
		vm->drive_paths[i] = strdup(cfg->drives[i].path);
		if (!vm->drive_paths[i])
			return -ENOMEM;
		vm->drives[i] = cfg->drives[i];
		vm->drives[i].path = vm->drive_paths[i];
		vm->nr_drives = i + 1;
	}
	return 0;
}

/* virtio-blk drives, one virtio-mmio slot each, in command-line order. */
static int add_drives(struct vm *vm)
{
	unsigned int i;
	int err;

	for (i = 0; i < vm->nr_drives; i++) {
		struct device *dev;
		uint32_t irq;

		err = vm__alloc_irq(vm, &irq);
		if (err)
			return err;
		err = virtio_blk__new(vm,
				      ARCH_VIRTIO_BASE + i * ARCH_VIRTIO_STRIDE,
				      irq, &vm->drives[i], &dev);
		if (err)
			return err;
		err = vm__add_device(vm, dev);
		if (err) {
			dev->ops->destroy(dev);
			return err;
		}
	}
	return 0;
}

/* virtio-vsock, in the virtio-mmio slot after the drives. */
static int add_vsock(struct vm *vm, const struct vm_config *cfg)
{
	struct vsock_config vc = {
		.guest_cid = cfg->vsock_cid,
		.uds_path = cfg->vsock_uds,
	};
	struct device *dev;
	uint32_t irq;
	int err;

	if (!cfg->vsock_cid)
		return 0;
	err = vm__alloc_irq(vm, &irq);
	if (err)
		return err;
	err = virtio_vsock__new(
		vm, ARCH_VIRTIO_BASE + vm->nr_drives * ARCH_VIRTIO_STRIDE, irq,
		&vc, &dev);
	if (err)
		return err;
	err = vm__add_device(vm, dev);
	if (err) {
		dev->ops->destroy(dev);
		return err;
	}
	vm->vsock_cid = cfg->vsock_cid;
	return 0;
}

/*
 * Builds a VM in the order KVM requires: memory, irqchip, vCPUs, devices
 * (the irqchip initialised before irqfds), then either the boot images or,
 * for a restore (@from), nothing: vm__restore() sets the saved state.
 */
static int build(const struct vm_config *cfg, struct snap *from,
		 enum vm_mem_mode mode, struct vm **out)
{
	struct vm *vm;
	unsigned int i;
	int err;

	*out = NULL;
	err = check_config(cfg);
	if (err)
		return err;
	err = vcpu__install_kick_handler();
	if (err)
		return err;
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		pr_err("out of memory");
		return -ENOMEM;
	}
	vm->kvm_fd = -1;
	vm->vm_fd = -1;
	vm->next_irq = ARCH_IRQ_FIRST;
	err = init_sync(vm);
	if (err) {
		pr_err("cannot initialise the VM's lock: %s", strerror(-err));
		free(vm);
		return err;
	}
	err = copy_config(vm, cfg);
	if (err) {
		pr_err("out of memory");
		goto fail;
	}
	err = open_kvm(vm);
	if (err)
		goto fail;
	err = setup_memory(vm, cfg->mem_size, from, mode);
	if (err)
		goto fail;
	vm->arch_inited = true;
	err = vm__arch_init(vm, cfg);
	if (err)
		goto fail;
	vm->vcpus = calloc(cfg->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		pr_err("out of memory");
		err = -ENOMEM;
		goto fail;
	}
	for (i = 0; i < cfg->nr_vcpus; i++) {
		/* Counted before init so vm__free() unwinds a half-made vCPU. */
		vm->nr_vcpus = i + 1;
		err = vcpu__init(&vm->vcpus[i], vm, i);
		if (err)
			goto fail;
	}
	err = vm__arch_add_devices(vm, cfg);
	if (err)
		goto fail;
	err = add_drives(vm);
	if (err)
		goto fail;
	err = add_vsock(vm, cfg);
	if (err)
		goto fail;
	if (!from) {
		err = vm__arch_load(vm, cfg);
		if (err)
			goto fail;
	}
	*out = vm;
	return 0;
fail:
	vm__free(vm);
	return err;
}

int vm__new(const struct vm_config *cfg, struct vm **out)
{
	return build(cfg, NULL, VM_MEM_UFFD, out);
}

int vm__build_restored(const struct vm_config *cfg, struct snap *from,
		       enum vm_mem_mode mode, struct vm **out)
{
	return build(cfg, from, mode, out);
}

void vm__request_stop(struct vm *vm, enum vm_exit why)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_EXIT_NONE) {
		vm->exit = why;
		pthread_cond_broadcast(&vm->stopped);
	}
	pthread_mutex_unlock(&vm->lock);
}

void vm__request_pause(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->exit == VM_EXIT_NONE) {
		vm->pause_requested = true;
		pthread_cond_broadcast(&vm->stopped);
	}
	pthread_mutex_unlock(&vm->lock);
}

/* Devices first resumed last: undo a partial pause. */
static void resume_devices(struct vm *vm, unsigned int n)
{
	while (n-- > 0)
		if (vm->devs[n]->ops->resume)
			vm->devs[n]->ops->resume(vm->devs[n]);
}

static void unpark(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->paused, false, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->resumed);
	pthread_mutex_unlock(&vm->lock);
}

/* Every vCPU out of KVM_RUN and parked, then every device quiet. */
static int pause_vm(struct vm *vm)
{
	unsigned int i;
	int err;

	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->paused, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__kick(&vm->vcpus[i]);
	pthread_mutex_lock(&vm->lock);
	while (vm->nr_parked < vm->nr_live)
		pthread_cond_wait(&vm->parked, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_devs; i++) {
		struct device *dev = vm->devs[i];

		if (!dev->ops->pause)
			continue;
		err = dev->ops->pause(dev);
		if (err) {
			pr_err("%s: cannot pause: %s", dev->ops->name,
			       strerror(-err));
			resume_devices(vm, i);
			unpark(vm);
			return err;
		}
	}
	return 0;
}

int vm__resume(struct vm *vm)
{
	if (!__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE))
		return -EINVAL;
	resume_devices(vm, vm->nr_devs);
	unpark(vm);
	return 0;
}

static void stop_vcpus(struct vm *vm)
{
	unsigned int i;

	pthread_mutex_lock(&vm->lock);
	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&vm->resumed);
	pthread_mutex_unlock(&vm->lock);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__kick(&vm->vcpus[i]);
	for (i = 0; i < vm->nr_vcpus; i++)
		vcpu__join(&vm->vcpus[i]);
}

static void deadline_after(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int vm__run(struct vm *vm, unsigned int timeout_ms, enum vm_exit *why)
{
	struct timespec deadline;
	unsigned int i;
	int err = 0;

	if (timeout_ms)
		deadline_after(&deadline, timeout_ms);
	for (i = 0; !vm->started && i < vm->nr_vcpus; i++) {
		err = vcpu__start(&vm->vcpus[i]);
		if (err) {
			vm__request_stop(vm, VM_EXIT_ERROR);
			break;
		}
	}
	vm->started = true;
	pthread_mutex_lock(&vm->lock);
	while (vm->exit == VM_EXIT_NONE && !vm->pause_requested) {
		if (!timeout_ms) {
			pthread_cond_wait(&vm->stopped, &vm->lock);
		} else if (pthread_cond_timedwait(&vm->stopped, &vm->lock,
						  &deadline) == ETIMEDOUT) {
			if (vm->exit == VM_EXIT_NONE)
				vm->exit = VM_EXIT_TIMEOUT;
		}
	}
	if (vm->exit == VM_EXIT_NONE) {
		vm->pause_requested = false;
		pthread_mutex_unlock(&vm->lock);
		err = pause_vm(vm);
		pthread_mutex_lock(&vm->lock);
		/* A vCPU may have ended the VM (power-off, panic) while it paused. */
		if (!err && vm->exit == VM_EXIT_NONE) {
			pthread_mutex_unlock(&vm->lock);
			*why = VM_EXIT_PAUSED;
			return 0;
		}
		if (err && vm->exit == VM_EXIT_NONE)
			vm->exit = VM_EXIT_ERROR;
	}
	*why = vm->exit;
	pthread_mutex_unlock(&vm->lock);
	stop_vcpus(vm);
	return err;
}

int vm__add_device(struct vm *vm, struct device *dev)
{
	return vm__add_device_on(vm, &vm->mmio, dev);
}

int vm__add_device_on(struct vm *vm, struct bus *bus, struct device *dev)
{
	int err;

	if (vm->nr_devs == VM_MAX_DEVICES) {
		pr_err("too many devices (%d)", VM_MAX_DEVICES);
		return -ENOSPC;
	}
	if (dev->size) {
		err = bus__register(bus, dev);
		if (err) {
			pr_err("%s at 0x%llx: cannot map its window: %s",
			       dev->ops->name, (unsigned long long)dev->base,
			       strerror(-err));
			return err;
		}
	}
	vm->devs[vm->nr_devs++] = dev;
	return 0;
}

int vm__alloc_irq(struct vm *vm, uint32_t *irq)
{
	if (vm->next_irq > ARCH_IRQ_LAST) {
		pr_err("out of interrupt lines");
		return -ENOSPC;
	}
	*irq = vm->next_irq++;
	return 0;
}

int irq__set_level(struct vm *vm, uint32_t irq, bool level)
{
	return vm__arch_irq_line(vm, irq, level);
}

const struct guest_mem *vm__mem(struct vm *vm)
{
	return &vm->mem;
}

int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		  uint64_t datamatch, int fd, bool assign)
{
	struct kvm_ioeventfd io = {
		.datamatch = datamatch,
		.addr = addr,
		.len = len,
		.fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	if (ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0)
		return -errno;
	return 0;
}

int vm__irqfd(struct vm *vm, uint32_t irq, int fd, bool assign)
{
	/* Both arches route GSI n to interrupt line n by default (arm64: SPI n). */
	struct kvm_irqfd irqfd = {
		.fd = (uint32_t)fd,
		.gsi = irq,
		.flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN,
	};

	if (ioctl(vm->vm_fd, KVM_IRQFD, &irqfd) < 0)
		return -errno;
	return 0;
}

void vm__free(struct vm *vm)
{
	unsigned int i;

	if (!vm)
		return;
	/* Threads first: nothing may touch a device or memory being freed. */
	stop_vcpus(vm);
	for (i = vm->nr_devs; i-- > 0;)
		vm->devs[i]->ops->destroy(vm->devs[i]);
	bus__exit(&vm->mmio);
	/* No device thread is left to fault on guest memory. */
	pager__free(vm->pager);
	for (i = vm->nr_vcpus; i-- > 0;)
		vcpu__exit(&vm->vcpus[i]);
	free(vm->vcpus);
	if (vm->arch_inited)
		vm__arch_exit(vm);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	mem__exit(&vm->mem);
	for (i = 0; i < vm->nr_drives; i++)
		free(vm->drive_paths[i]);
	free(vm->cmdline);
	pthread_cond_destroy(&vm->resumed);
	pthread_cond_destroy(&vm->parked);
	pthread_cond_destroy(&vm->stopped);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
