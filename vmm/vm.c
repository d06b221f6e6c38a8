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

static int setup_memory(struct vm *vm, uint64_t size)
{
	struct kvm_userspace_memory_region region;
	int err;

	err = mem__init(&vm->mem, ARCH_RAM_BASE, size);
	if (err)
		return err;
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
	if (err) {
		pthread_mutex_destroy(&vm->lock);
		return -err;
	}
	return 0;
}

/* virtio-blk drives, one virtio-mmio slot each, in command-line order. */
static int add_drives(struct vm *vm, const struct vm_config *cfg)
{
	unsigned int i;
	int err;

	for (i = 0; i < cfg->nr_drives; i++) {
		struct device *dev;
		uint32_t irq;

		err = vm__alloc_irq(vm, &irq);
		if (err)
			return err;
		err = virtio_blk__new(vm,
				      ARCH_VIRTIO_BASE + i * ARCH_VIRTIO_STRIDE,
				      irq, &cfg->drives[i], &dev);
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

int vm__new(const struct vm_config *cfg, struct vm **out)
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
	err = open_kvm(vm);
	if (err)
		goto fail;
	err = setup_memory(vm, cfg->mem_size);
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
	err = add_drives(vm, cfg);
	if (err)
		goto fail;
	err = vm__arch_load(vm, cfg);
	if (err)
		goto fail;
	*out = vm;
	return 0;
fail:
	vm__free(vm);
	return err;
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

static void stop_vcpus(struct vm *vm)
{
	unsigned int i;

	__atomic_store_n(&vm->stopping, true, __ATOMIC_RELEASE);
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
	for (i = 0; i < vm->nr_vcpus; i++) {
		err = vcpu__start(&vm->vcpus[i]);
		if (err) {
			vm__request_stop(vm, VM_EXIT_ERROR);
			break;
		}
	}
	pthread_mutex_lock(&vm->lock);
	while (vm->exit == VM_EXIT_NONE) {
		if (!timeout_ms) {
			pthread_cond_wait(&vm->stopped, &vm->lock);
		} else if (pthread_cond_timedwait(&vm->stopped, &vm->lock,
						  &deadline) == ETIMEDOUT) {
			if (vm->exit == VM_EXIT_NONE)
				vm->exit = VM_EXIT_TIMEOUT;
		}
	}
	*why = vm->exit;
	pthread_mutex_unlock(&vm->lock);
	stop_vcpus(vm);
	return err;
}

int vm__add_device(struct vm *vm, struct device *dev)
{
	int err;

	if (vm->nr_devs == VM_MAX_DEVICES) {
		pr_err("too many devices (%d)", VM_MAX_DEVICES);
		return -ENOSPC;
	}
	if (dev->size) {
		err = bus__register(&vm->mmio, dev);
		if (err) {
			pr_err("%s at 0x%llx: cannot map its MMIO window: %s",
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
	pthread_cond_destroy(&vm->stopped);
	pthread_mutex_destroy(&vm->lock);
	free(vm);
}
