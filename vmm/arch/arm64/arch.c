// SPDX-License-Identifier: Apache-2.0
// arm64 VM setup: vGICv3, vCPU init with PSCI, platform devices, Linux boot protocol.
#include <asm/kvm.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "../../../devices/pl011.h"
#include "../../../devices/pvpanic.h"
#include "../../loader.h"
#include "../../log.h"
#include "../../vm.h"
#include "devtree.h"
#include "image.h"

#define ARM64_CORE_REG(x)                                      \
	(KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | \
	 KVM_REG_ARM_CORE_REG(x))
#define ARM64_MPIDR_EL1 ARM64_SYS_REG(3, 0, 0, 0, 5)

/* EL1h, MMU off, D, A, I and F masked: what booting.rst asks for at entry. */
#define BOOT_PSTATE \
	(PSR_MODE_EL1h | PSR_D_BIT | PSR_A_BIT | PSR_I_BIT | PSR_F_BIT)

static int gic_attr(struct vm *vm, uint32_t group, uint64_t attr, void *val,
		    const char *what)
{
	struct kvm_device_attr a = {
		.group = group,
		.attr = attr,
		.addr = (uintptr_t)val,
	};

	if (ioctl(vm->arch.gic_fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
		int err = -errno;

		pr_err("vGICv3: %s: %s", what, strerror(-err));
		return err;
	}
	return 0;
}

int vm__arch_init(struct vm *vm, const struct vm_config *cfg)
{
	struct kvm_create_device dev = { .type = KVM_DEV_TYPE_ARM_VGIC_V3 };
	uint64_t dist = ARM64_GICD_BASE, redist = ARM64_GICR_BASE;
	int err;

	(void)cfg;
	vm->arch.gic_fd = -1;
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_ARM_PSCI_0_2) <= 0) {
		pr_err("KVM lacks PSCI 0.2 (KVM_CAP_ARM_PSCI_0_2)");
		return -ENODEV;
	}
	/* Created before the vCPUs so their redistributors get addresses first. */
	if (ioctl(vm->vm_fd, KVM_CREATE_DEVICE, &dev) < 0) {
		err = -errno;
		pr_err("cannot create an in-kernel vGICv3: %s (the host needs a GICv3)",
		       strerror(-err));
		return err == -ENODEV ? -ENODEV : err;
	}
	vm->arch.gic_fd = (int)dev.fd;
	err = gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR,
		       KVM_VGIC_V3_ADDR_TYPE_DIST, &dist,
		       "distributor address");
	if (err)
		return err;
	return gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_ADDR,
			KVM_VGIC_V3_ADDR_TYPE_REDIST, &redist,
			"redistributor address");
}

void vm__arch_exit(struct vm *vm)
{
	if (vm->arch.gic_fd >= 0)
		close(vm->arch.gic_fd);
	vm->arch.gic_fd = -1;
}

static int get_reg(struct vcpu *vcpu, uint64_t id, uint64_t *val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)val };

	if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg) < 0)
		return -errno;
	return 0;
}

static int set_reg(struct vcpu *vcpu, uint64_t id, uint64_t val)
{
	struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)&val };

	if (ioctl(vcpu->fd, KVM_SET_ONE_REG, &reg) < 0)
		return -errno;
	return 0;
}

int vcpu__arch_init(struct vcpu *vcpu)
{
	struct kvm_vcpu_init init;
	int err;

	memset(&init, 0, sizeof(init));
	if (ioctl(vcpu->vm->vm_fd, KVM_ARM_PREFERRED_TARGET, &init) < 0) {
		err = -errno;
		pr_err("KVM_ARM_PREFERRED_TARGET: %s", strerror(-err));
		return err;
	}
	init.features[0] |= 1U << KVM_ARM_VCPU_PSCI_0_2;
	/* Secondaries wait, powered off, for the guest's PSCI CPU_ON. */
	if (vcpu->id > 0)
		init.features[0] |= 1U << KVM_ARM_VCPU_POWER_OFF;
	if (ioctl(vcpu->fd, KVM_ARM_VCPU_INIT, &init) < 0) {
		err = -errno;
		pr_err("vCPU %u: KVM_ARM_VCPU_INIT: %s", vcpu->id,
		       strerror(-err));
		return err;
	}
	err = get_reg(vcpu, ARM64_MPIDR_EL1, &vcpu->arch.mpidr);
	if (err)
		pr_err("vCPU %u: reading MPIDR_EL1: %s", vcpu->id,
		       strerror(-err));
	return err;
}

static int finish_gic(struct vm *vm)
{
	uint32_t nr_irqs = 32 + ARM64_NR_SPIS;
	int err;

	err = gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_NR_IRQS, 0, &nr_irqs,
		       "number of interrupts");
	if (err)
		return err;
	/* Only now: KVM requires every vCPU to exist before the GIC is initialised. */
	return gic_attr(vm, KVM_DEV_ARM_VGIC_GRP_CTRL,
			KVM_DEV_ARM_VGIC_CTRL_INIT, NULL, "init");
}

int vm__arch_add_devices(struct vm *vm, const struct vm_config *cfg)
{
	struct pl011 *uart;
	struct device *panic;
	uint32_t irq;
	int err;

	err = vm__alloc_irq(vm, &irq);
	if (err)
		return err;
	err = pl011__new(vm, ARM64_PL011_BASE, irq, cfg->console_in,
			 cfg->console_out, &uart);
	if (err)
		return err;
	err = vm__add_device(vm, pl011__device(uart));
	if (err) {
		pl011__device(uart)->ops->destroy(pl011__device(uart));
		return err;
	}
	vm->arch.console = pl011__device(uart);

	err = pvpanic__new(vm, ARM64_PVPANIC_BASE, &panic);
	if (err)
		return err;
	err = vm__add_device(vm, panic);
	if (err) {
		panic->ops->destroy(panic);
		return err;
	}
	/* irqfds (virtio devices come next) need the GIC's default routing. */
	return finish_gic(vm);
}

static int load_kernel(struct vm *vm, const struct vm_config *cfg,
		       struct arm64_boot_plan *plan, uint64_t *initrd_size)
{
	uint8_t hdr[ARM64_IMAGE_HEADER_SIZE];
	struct arm64_image img;
	uint64_t ksize, isize = 0;
	int kfd = -1, ifd = -1;
	const char *why;
	void *dst;
	int err;

	err = loader__open(cfg->kernel_path, "kernel", &kfd, &ksize);
	if (err)
		return err;
	memset(hdr, 0, sizeof(hdr));
	err = loader__read(kfd, cfg->kernel_path, hdr,
			   ksize < sizeof(hdr) ? ksize : sizeof(hdr));
	if (err)
		goto out;
	err = image__parse(hdr, ksize < sizeof(hdr) ? ksize : sizeof(hdr),
			   ksize, &img, &why);
	if (err) {
		pr_err("kernel %s: not a bootable arm64 Image: %s",
		       cfg->kernel_path, why);
		goto out;
	}
	if (cfg->initrd_path) {
		err = loader__open(cfg->initrd_path, "initrd", &ifd, &isize);
		if (err)
			goto out;
	}
	err = boot__plan(vm->mem.ram.gpa, vm->mem.ram.size, &img, isize, plan);
	if (err) {
		pr_err("kernel (%llu KiB) and initrd (%llu KiB) do not fit in %llu MiB of guest memory",
		       (unsigned long long)(img.image_size >> 10),
		       (unsigned long long)(isize >> 10),
		       (unsigned long long)(vm->mem.ram.size >> 20));
		goto out;
	}
	dst = mem__gpa_to_hva(&vm->mem, plan->kernel, ksize);
	err = dst ? loader__read(kfd, cfg->kernel_path, dst, ksize) : -E2BIG;
	if (err)
		goto out;
	if (isize) {
		dst = mem__gpa_to_hva(&vm->mem, plan->initrd, isize);
		err = dst ? loader__read(ifd, cfg->initrd_path, dst, isize)
			  : -E2BIG;
	}
	*initrd_size = isize;
out:
	if (ifd >= 0)
		close(ifd);
	close(kfd);
	return err;
}

static int write_fdt(struct vm *vm, const struct vm_config *cfg,
		     const struct arm64_boot_plan *plan, uint64_t initrd_size)
{
	struct arm64_fdt_layout l;
	uint64_t *mpidrs;
	unsigned int i;
	void *dst;
	int err;

	/* boot__plan() put the DTB's 2 MiB block inside RAM. */
	dst = mem__gpa_to_hva(&vm->mem, plan->dtb, ARM64_DTB_MAX_SIZE);
	mpidrs = calloc(vm->nr_vcpus, sizeof(*mpidrs));
	if (!dst || !mpidrs) {
		pr_err("cannot build the device tree: %s",
		       dst ? "out of memory" : "no room in guest memory");
		free(mpidrs);
		return dst ? -ENOMEM : -E2BIG;
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		mpidrs[i] = vm->vcpus[i].arch.mpidr;
	memset(&l, 0, sizeof(l));
	l.ram_base = vm->mem.ram.gpa;
	l.ram_size = vm->mem.ram.size;
	l.nr_cpus = vm->nr_vcpus;
	l.mpidrs = mpidrs;
	l.gicd_base = ARM64_GICD_BASE;
	l.gicd_size = ARM64_GICD_SIZE;
	l.gicr_base = ARM64_GICR_BASE;
	l.gicr_size = ARM64_GICR_STRIDE * vm->nr_vcpus;
	l.cmdline = cfg->cmdline;
	l.initrd_start = plan->initrd;
	l.initrd_size = initrd_size;
	l.devs = vm->devs;
	l.nr_devs = vm->nr_devs;
	l.stdout_dev = vm->arch.console;
	err = fdt__build(&l, dst, ARM64_DTB_MAX_SIZE);
	free(mpidrs);
	if (err)
		pr_err("cannot build the device tree: %s%s", strerror(-err),
		       err == -ENOSPC ? " (command line too long?)" : "");
	return err;
}

int vm__arch_load(struct vm *vm, const struct vm_config *cfg)
{
	struct arm64_boot_plan plan;
	struct vcpu *boot = &vm->vcpus[0];
	uint64_t initrd_size = 0;
	int err;

	err = load_kernel(vm, cfg, &plan, &initrd_size);
	if (err)
		return err;
	err = write_fdt(vm, cfg, &plan, initrd_size);
	if (err)
		return err;
	/* x1-x3 are already 0 after KVM_ARM_VCPU_INIT, as booting.rst requires. */
	err = set_reg(boot, ARM64_CORE_REG(regs.pc), plan.kernel);
	if (!err)
		err = set_reg(boot, ARM64_CORE_REG(regs.regs[0]), plan.dtb);
	if (!err)
		err = set_reg(boot, ARM64_CORE_REG(regs.pstate), BOOT_PSTATE);
	if (err)
		pr_err("setting boot registers: %s", strerror(-err));
	return err;
}

int vm__arch_irq_line(struct vm *vm, uint32_t irq, bool level)
{
	struct kvm_irq_level l = {
		.irq = (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) |
		       ((32 + irq) << KVM_ARM_IRQ_NUM_SHIFT),
		.level = level,
	};

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

int vcpu__arch_handle_exit(struct vcpu *vcpu)
{
	pr_err("vCPU %u: unexpected KVM exit reason %u", vcpu->id,
	       vcpu->run->exit_reason);
	return -EIO;
}
