// SPDX-License-Identifier: Apache-2.0
// x86_64 VM setup: in-kernel irqchip, CPUID and MSRs, port I/O devices, PVH and 64-bit boot.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "../../../devices/i8042.h"
#include "../../../devices/uart16550.h"
#include "../../loader.h"
#include "../../log.h"
#include "../../vm.h"
#include "boot.h"

#define CPUID_HYPERVISOR (1U << 31) /* leaf 1 ECX: running under a hypervisor */
#define CPUID_TSC_DEADLINE \
	(1U << 24) /* leaf 1 ECX: the LAPIC timer's TSC-deadline mode */
#define CPUID_HTT (1U << 28) /* leaf 1 EDX: more than one logical CPU */

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MISC_ENABLE_FAST_STRING 1ULL
#define MTRR_ENABLE_WB ((1ULL << 11) | 6)

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 4U
#define APIC_MODE_EXTINT 7U

#define X86_CR0_PE 0x1ULL
#define X86_CR0_ET 0x10ULL
#define X86_CR0_PG 0x80000000ULL
#define X86_CR4_PAE 0x20ULL
#define X86_EFER_LME 0x100ULL
#define X86_EFER_LMA 0x400ULL
#define BOOT_STACK 0x8ff0ULL
#define GDT_ENTRIES 4

/* Appended to every command line: how the guest ends, and where its devices are. */
#define ARCH_CMDLINE "reboot=k,panic_warm"

int vm__arch_init(struct vm *vm, const struct vm_config *cfg)
{
	uint64_t ident = X86_IDENTITY_MAP;
	int err;

	(void)cfg;
	/* Without the TSC-deadline timer Linux would calibrate its LAPIC timer against a PIT. */
	if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_IRQCHIP) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_EXT_CPUID) <= 0 ||
	    ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION,
		  KVM_CAP_TSC_DEADLINE_TIMER) <= 0) {
		pr_err("KVM lacks an in-kernel irqchip, CPUID control or the TSC-deadline timer");
		return -ENODEV;
	}
	/* Intel VMX needs both below 4 GiB, outside RAM; AMD ignores them. */
	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)X86_TSS) < 0 ||
	    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0) {
		err = -errno;
		pr_err("KVM_SET_TSS_ADDR: %s", strerror(-err));
		return err;
	}
	/*
	 * PICs, IOAPIC and local APICs, but no PIT: the guest keeps time
	 * with kvm-clock and the local APIC's TSC-deadline timer, and
	 * kvm-clock tells Linux to skip its IRQ0 timer check. In the nested
	 * test host an in-kernel PIT froze the host kernel within a few
	 * restores (its one-shot tick, re-armed by every restore), and a
	 * guest without one boots and restores 200 times in a row.
	 */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		err = -errno;
		pr_err("KVM_CREATE_IRQCHIP: %s", strerror(-err));
		return err;
	}
	return 0;
}

void vm__arch_exit(struct vm *vm)
{
	bus__exit(&vm->arch.pio);
}

static struct kvm_cpuid2 *supported_cpuid(struct vm *vm)
{
	struct kvm_cpuid2 *c;
	uint32_t n = 64;

	for (;;) {
		c = calloc(1, sizeof(*c) + n * sizeof(c->entries[0]));
		if (!c)
			return NULL;
		c->nent = n;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG || n >= 1024) {
			pr_err("KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
			return NULL;
		}
		n *= 2;
	}
}

static unsigned int order_of(unsigned int n)
{
	unsigned int o = 0;

	while ((1U << o) < n)
		o++;
	return o;
}

/*
 * What KVM supports, with the hypervisor bit (without it Linux believes it
 * runs on bare metal, calibrates the TSC against the PIT and hangs), the
 * TSC-deadline timer KVM emulates but does not list (with it Linux needs
 * no PIT: it neither calibrates its LAPIC timer nor ticks with one) and the topology of @nr vCPUs,
 * one core each, vCPU @id having APIC id @id.
 */
static void fix_cpuid(struct kvm_cpuid2 *c, unsigned int id, unsigned int nr)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			e->ecx |= CPUID_HYPERVISOR | CPUID_TSC_DEADLINE;
			e->ebx = (e->ebx & 0x0000ffffU) | (id << 24) |
				 ((nr & 0xffU) << 16);
			if (nr > 1)
				e->edx |= CPUID_HTT;
			break;
		case 0xb:
		case 0x1f:
			/* Level 0: one thread per core; level 1: nr cores. */
			e->edx = id;
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1U << 8) | e->index;
			} else if (e->index == 1) {
				e->eax = order_of(nr);
				e->ebx = nr;
				e->ecx = (2U << 8) | e->index;
			} else {
				e->eax = 0;
				e->ebx = 0;
				e->ecx = e->index;
			}
			break;
		case 0x80000008:
			e->ecx = (e->ecx & ~0xffU) | ((nr - 1) & 0xffU);
			break;
		case 0x8000001e:
			e->eax = id;
			e->ebx = id & 0xffU;
			e->ecx = 0;
			break;
		default:
			break;
		}
	}
}

static int set_msrs(struct vcpu *vcpu, const struct kvm_msr_entry *m,
		    uint32_t n)
{
	struct kvm_msrs *msrs;
	int ret;

	msrs = calloc(1, sizeof(*msrs) + n * sizeof(*m));
	if (!msrs)
		return -ENOMEM;
	msrs->nmsrs = n;
	memcpy(msrs->entries, m, n * sizeof(*m));
	ret = ioctl(vcpu->fd, KVM_SET_MSRS, msrs);
	free(msrs);
	if (ret < 0)
		return -errno;
	/* KVM stops at the first MSR it refuses and returns how many it took. */
	return (uint32_t)ret == n ? 0 : -EINVAL;
}

static int lapic_lint(struct vcpu *vcpu)
{
	struct kvm_lapic_state lapic;
	uint32_t v;

	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &lapic) < 0)
		return -errno;
	/* LINT0 takes the PIC's ExtINT, LINT1 NMIs, as firmware leaves them. */
	memcpy(&v, &lapic.regs[APIC_LVT0], 4);
	v = (v & ~0x700U) | (APIC_MODE_EXTINT << 8);
	memcpy(&lapic.regs[APIC_LVT0], &v, 4);
	memcpy(&v, &lapic.regs[APIC_LVT1], 4);
	v = (v & ~0x700U) | (APIC_MODE_NMI << 8);
	memcpy(&lapic.regs[APIC_LVT1], &v, 4);
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &lapic) < 0)
		return -errno;
	return 0;
}

int vcpu__arch_init(struct vcpu *vcpu)
{
	static const struct kvm_msr_entry boot_msrs[] = {
		{ .index = MSR_IA32_SYSENTER_CS },
		{ .index = MSR_IA32_SYSENTER_ESP },
		{ .index = MSR_IA32_SYSENTER_EIP },
		{ .index = MSR_STAR },
		{ .index = MSR_CSTAR },
		{ .index = MSR_KERNEL_GS_BASE },
		{ .index = MSR_SYSCALL_MASK },
		{ .index = MSR_LSTAR },
		{ .index = MSR_IA32_TSC },
		{ .index = MSR_IA32_MISC_ENABLE,
		  .data = MISC_ENABLE_FAST_STRING },
		{ .index = MSR_MTRR_DEF_TYPE, .data = MTRR_ENABLE_WB },
	};
	struct vm *vm = vcpu->vm;
	struct kvm_cpuid2 *c;
	struct kvm_fpu fpu;
	int err;

	vcpu->arch.apic_id = vcpu->id;
	c = supported_cpuid(vm);
	if (!c)
		return -ENODEV;
	fix_cpuid(c, vcpu->id, vm->nr_vcpus);
	err = ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0 ? -errno : 0;
	free(c);
	if (err) {
		pr_err("vCPU %u: KVM_SET_CPUID2: %s", vcpu->id, strerror(-err));
		return err;
	}
	err = set_msrs(vcpu, boot_msrs, ARRAY_SIZE(boot_msrs));
	if (err) {
		pr_err("vCPU %u: setting the boot MSRs: %s", vcpu->id,
		       strerror(-err));
		return err;
	}
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f; /* FNINIT's control word: all exceptions masked */
	fpu.mxcsr = 0x1f80;
	if (ioctl(vcpu->fd, KVM_SET_FPU, &fpu) < 0) {
		err = -errno;
		pr_err("vCPU %u: KVM_SET_FPU: %s", vcpu->id, strerror(-err));
		return err;
	}
	err = lapic_lint(vcpu);
	if (err)
		pr_err("vCPU %u: local APIC setup: %s", vcpu->id,
		       strerror(-err));
	return err;
}

int vm__arch_add_devices(struct vm *vm, const struct vm_config *cfg)
{
	struct uart16550 *uart;
	struct device *kbc;
	int err;

	err = uart16550__new(vm, X86_UART_PORT, X86_UART_IRQ, cfg->console_in,
			     cfg->console_out, &uart);
	if (err)
		return err;
	err = vm__add_device_on(vm, &vm->arch.pio, uart16550__device(uart));
	if (err) {
		uart16550__device(uart)->ops->destroy(uart16550__device(uart));
		return err;
	}
	err = i8042__new(vm, X86_I8042_PORT, &kbc);
	if (err)
		return err;
	err = vm__add_device_on(vm, &vm->arch.pio, kbc);
	if (err)
		kbc->ops->destroy(kbc);
	return err;
}

/* The kernel file, mapped whole: both formats are read from memory. */
struct kernel_file {
	const uint8_t *data;
	size_t len;
};

static int map_kernel(const char *path, struct kernel_file *k)
{
	uint64_t size;
	void *p;
	int fd, err;

	err = loader__open(path, "kernel", &fd, &size);
	if (err)
		return err;
	if (!size || size > (512ULL << 20)) {
		pr_err("kernel %s: %llu bytes is not a kernel", path,
		       (unsigned long long)size);
		close(fd);
		return -ENOEXEC;
	}
	p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
	err = p == MAP_FAILED ? -errno : 0;
	close(fd);
	if (err) {
		pr_err("kernel %s: mmap: %s", path, strerror(-err));
		return err;
	}
	k->data = p;
	k->len = size;
	return 0;
}

/* What the loader put where, for the boot registers. */
struct boot_plan {
	enum x86_boot_mode mode;
	uint64_t entry;
	uint64_t initrd; /* before load_initrd(): the lowest address it may take */
	uint64_t initrd_size;
	uint64_t initrd_top; /* it must end below this (bzImage: initrd_addr_max) */
};

static void *guest(struct vm *vm, uint64_t gpa, uint64_t len)
{
	return mem__gpa_to_hva(&vm->mem, gpa, len);
}

static int load_elf(struct vm *vm, const char *path,
		    const struct kernel_file *k, struct boot_plan *plan)
{
	struct x86_elf elf;
	const char *why;
	unsigned int i;
	int err;

	err = x86_boot__parse_elf(k->data, k->len, &elf, &why);
	if (!err && !elf.pvh_entry) {
		/* Any static program is an ELF too: only a PVH note says "kernel". */
		why = "no PVH entry note (a vmlinux built with CONFIG_PVH boots)";
		err = -ENOEXEC;
	}
	if (err) {
		pr_err("kernel %s: not a bootable x86_64 ELF vmlinux: %s", path,
		       why);
		return -ENOEXEC;
	}
	for (i = 0; i < elf.nr_segs; i++) {
		const struct x86_elf_seg *s = &elf.segs[i];
		uint8_t *dst = guest(vm, s->paddr, s->memsz);

		if (!dst || s->paddr < X86_HIGH_RAM) {
			pr_err("kernel %s: its segment at 0x%llx (%llu KiB) and the initrd do not fit in %llu MiB of guest memory",
			       path, (unsigned long long)s->paddr,
			       (unsigned long long)(s->memsz >> 10),
			       (unsigned long long)(vm->mem.ram.size >> 20));
			return -E2BIG;
		}
		memcpy(dst, k->data + s->offset, s->filesz);
		memset(dst + s->filesz, 0, s->memsz - s->filesz);
	}
	plan->mode = X86_BOOT_PVH32;
	plan->entry = elf.pvh_entry;
	plan->initrd = elf.hi;
	plan->initrd_top = vm->mem.ram.size;
	return 0;
}

static int load_bzimage(struct vm *vm, const char *path,
			const struct kernel_file *k, struct x86_bzimage *bz,
			struct boot_plan *plan)
{
	const char *why;
	uint8_t *dst;
	int err;

	err = x86_boot__parse_bzimage(k->data, k->len, bz, &why);
	if (err) {
		pr_err("kernel %s: not a bootable x86_64 kernel (ELF vmlinux or bzImage): %s",
		       path, why);
		return -ENOEXEC;
	}
	/* The kernel decompresses itself within init_size of its load address. */
	dst = guest(vm, X86_BZIMAGE_LOAD,
		    bz->init_size > bz->kernel_size ? bz->init_size
						    : bz->kernel_size);
	if (!dst) {
		pr_err("kernel %s needs %llu MiB from 1 MiB: more than %llu MiB of guest memory",
		       path, (unsigned long long)(bz->init_size >> 20),
		       (unsigned long long)(vm->mem.ram.size >> 20));
		return -E2BIG;
	}
	memcpy(dst, k->data + bz->setup_size, bz->kernel_size);
	plan->mode = X86_BOOT_LINUX64;
	/* The 64-bit entry point is 0x200 past the protected-mode code. */
	plan->entry = X86_BZIMAGE_LOAD + 0x200;
	plan->initrd = X86_BZIMAGE_LOAD + bz->init_size;
	plan->initrd_top = vm->mem.ram.size;
	if (bz->initrd_addr_max && bz->initrd_addr_max < plan->initrd_top)
		plan->initrd_top = (uint64_t)bz->initrd_addr_max + 1;
	return 0;
}

/* The initrd goes at the top of RAM, page-aligned, above the kernel. */
static int load_initrd(struct vm *vm, const struct vm_config *cfg,
		       struct boot_plan *plan)
{
	uint64_t size, lowest = plan->initrd, gpa;
	void *dst;
	int fd, err;

	plan->initrd = 0;
	plan->initrd_size = 0;
	if (!cfg->initrd_path)
		return 0;
	err = loader__open(cfg->initrd_path, "initrd", &fd, &size);
	if (err)
		return err;
	gpa = (plan->initrd_top - size) & ~0xfffULL;
	if (size > plan->initrd_top || gpa < lowest) {
		pr_err("kernel and initrd (%llu KiB) do not fit in %llu MiB of guest memory",
		       (unsigned long long)(size >> 10),
		       (unsigned long long)(vm->mem.ram.size >> 20));
		close(fd);
		return -E2BIG;
	}
	dst = guest(vm, gpa, size);
	err = dst ? loader__read(fd, cfg->initrd_path, dst, size) : -E2BIG;
	close(fd);
	plan->initrd = gpa;
	plan->initrd_size = size;
	return err;
}

/*
 * The command line the guest gets: how the guest ends and where its
 * virtio-mmio devices are (x86 has no device tree for them), then the
 * user's, which may end with "-- ARGS" for init and so must come last.
 */
static int write_cmdline(struct vm *vm, const struct vm_config *cfg,
			 uint32_t *len)
{
	char *dst = guest(vm, X86_CMDLINE, X86_CMDLINE_MAX);
	size_t n, max = X86_CMDLINE_MAX;
	unsigned int i;

	if (!dst)
		return -E2BIG;
	n = (size_t)snprintf(dst, max, "%s", ARCH_CMDLINE);
	for (i = 0; i < vm->nr_devs && n < max; i++) {
		const struct device *d = vm->devs[i];

		if (d->base < X86_VIRTIO_BASE || !d->size ||
		    d->base >= X86_VIRTIO_BASE +
				       X86_VIRTIO_SLOTS * X86_VIRTIO_STRIDE)
			continue;
		n += (size_t)snprintf(dst + n, max - n,
				      " virtio_mmio.device=%llu@0x%llx:%d",
				      (unsigned long long)d->size,
				      (unsigned long long)d->base, d->irq);
	}
	if (n < max)
		n += (size_t)snprintf(dst + n, max - n, " %s", cfg->cmdline);
	if (n >= max) {
		pr_err("the kernel command line is longer than %llu bytes",
		       (unsigned long long)max - 1);
		return -E2BIG;
	}
	*len = (uint32_t)n + 1;
	return 0;
}

static int write_boot_data(struct vm *vm, const struct vm_config *cfg,
			   const struct kernel_file *k, bool bzimage,
			   const struct boot_plan *plan)
{
	struct x86_e820_entry e820[8];
	unsigned int nr;
	uint32_t cmdline_len;
	void *ebda, *info;
	int ret;

	ret = write_cmdline(vm, cfg, &cmdline_len);
	if (ret)
		return ret;
	nr = x86_boot__e820(vm->mem.ram.size, e820, ARRAY_SIZE(e820));
	ebda = guest(vm, X86_EBDA, X86_EBDA_END - X86_EBDA);
	ret = ebda ? x86_boot__mptable(ebda, 0xa0000 - X86_EBDA,
				       (uint32_t)X86_EBDA, vm->nr_vcpus)
		   : -E2BIG;
	if (ret < 0) {
		pr_err("cannot write the MP table: %s", strerror(-ret));
		return ret;
	}
	info = guest(vm, X86_BOOT_INFO, 0x1000);
	if (plan->mode == X86_BOOT_PVH32)
		ret = x86_boot__pvh_info(info, 0x1000, X86_BOOT_INFO,
					 guest(vm, X86_BOOT_MEMMAP, 0x1000),
					 0x1000, X86_BOOT_MEMMAP, X86_CMDLINE,
					 plan->initrd, plan->initrd_size, e820,
					 nr);
	else
		ret = x86_boot__zero_page(info, bzimage ? k->data : NULL,
					  bzimage ? k->len : 0, X86_CMDLINE,
					  cmdline_len, plan->initrd,
					  plan->initrd_size, e820, nr);
	if (ret < 0)
		pr_err("cannot write the boot information: %s", strerror(-ret));
	return ret < 0 ? ret : 0;
}

static void to_kvm_seg(uint64_t desc, uint16_t sel, struct kvm_segment *s)
{
	struct x86_seg x;

	x86_boot__seg(desc, sel, &x);
	memset(s, 0, sizeof(*s));
	s->base = x.base;
	s->limit = x.limit;
	s->selector = x.selector;
	s->type = x.type;
	s->present = x.present;
	s->dpl = x.dpl;
	s->db = x.db;
	s->s = x.s;
	s->l = x.l;
	s->g = x.g;
	s->avl = x.avl;
}

/*
 * The boot CPU's registers. PVH: 32-bit protected mode, paging off, EBX
 * the start info. 64-bit boot protocol: long mode on identity page tables,
 * RSI the zero page.
 */
static int set_boot_regs(struct vm *vm, const struct boot_plan *plan)
{
	struct vcpu *boot = &vm->vcpus[0];
	uint64_t *gdt = guest(vm, X86_GDT, GDT_ENTRIES * 8);
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_segment data;

	if (!gdt)
		return -E2BIG;
	x86_boot__gdt(gdt, GDT_ENTRIES, plan->mode);
	if (ioctl(boot->fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	to_kvm_seg(gdt[1], 1 * 8, &sregs.cs);
	to_kvm_seg(gdt[2], 2 * 8, &data);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
	to_kvm_seg(gdt[3], 3 * 8, &sregs.tr);
	sregs.gdt.base = X86_GDT;
	sregs.gdt.limit = GDT_ENTRIES * 8 - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = X86_CR0_PE | X86_CR0_ET;
	sregs.cr4 = 0;
	sregs.efer = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2; /* bit 1 is always set */
	regs.rip = plan->entry;
	if (plan->mode == X86_BOOT_PVH32) {
		regs.rbx = X86_BOOT_INFO;
	} else {
		x86_boot__page_tables(guest(vm, X86_PML4, 0x1000),
				      guest(vm, X86_PDPT, 0x1000),
				      guest(vm, X86_PD, 0x1000));
		sregs.cr3 = X86_PML4;
		sregs.cr4 |= X86_CR4_PAE;
		sregs.cr0 |= X86_CR0_PG;
		sregs.efer |= X86_EFER_LME | X86_EFER_LMA;
		regs.rsi = X86_BOOT_INFO;
		regs.rsp = BOOT_STACK;
		regs.rbp = BOOT_STACK;
	}
	if (ioctl(boot->fd, KVM_SET_SREGS, &sregs) < 0 ||
	    ioctl(boot->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	return 0;
}

int vm__arch_load(struct vm *vm, const struct vm_config *cfg)
{
	struct boot_plan plan;
	struct kernel_file k;
	struct x86_bzimage bz;
	bool bzimage;
	int err;

	err = map_kernel(cfg->kernel_path, &k);
	if (err)
		return err;
	memset(&plan, 0, sizeof(plan));
	bzimage = k.len < 4 || memcmp(k.data, "\177ELF", 4);
	if (bzimage)
		err = load_bzimage(vm, cfg->kernel_path, &k, &bz, &plan);
	else
		err = load_elf(vm, cfg->kernel_path, &k, &plan);
	if (!err)
		err = load_initrd(vm, cfg, &plan);
	if (!err)
		err = write_boot_data(vm, cfg, &k, bzimage, &plan);
	if (!err) {
		err = set_boot_regs(vm, &plan);
		if (err)
			pr_err("setting boot registers: %s", strerror(-err));
	}
	munmap((void *)k.data, k.len);
	return err;
}

int vm__arch_irq_line(struct vm *vm, uint32_t irq, bool level)
{
	struct kvm_irq_level l = { .irq = irq, .level = level };

	if (ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0)
		return -errno;
	return 0;
}

/* Port I/O: the UART and the i8042; anything else reads all-ones, as on a PC. */
static int handle_io(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	bool write = run->io.direction == KVM_EXIT_IO_OUT;
	uint32_t i;

	if (run->io.data_offset + (uint64_t)run->io.size * run->io.count >
	    vcpu->vm->run_size) {
		pr_err("vCPU %u: port I/O data outside kvm_run", vcpu->id);
		return -EIO;
	}
	for (i = 0; i < run->io.count; i++, data += run->io.size) {
		int ret = bus__dispatch(&vcpu->vm->arch.pio, run->io.port, data,
					run->io.size, write);

		if (ret == -ENOENT && !write)
			memset(data, 0xff, run->io.size);
	}
	return 0;
}

int vcpu__arch_handle_exit(struct vcpu *vcpu)
{
	switch (vcpu->run->exit_reason) {
	case KVM_EXIT_IO:
		return handle_io(vcpu);
	case KVM_EXIT_HLT:
		/* With the in-kernel local APIC a halt never comes here. */
		return 0;
	default:
		pr_err("vCPU %u: unexpected KVM exit reason %u", vcpu->id,
		       vcpu->run->exit_reason);
		return -EIO;
	}
}
