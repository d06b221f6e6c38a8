// SPDX-License-Identifier: Apache-2.0
// arm64 snapshot state: every vCPU register KVM lists, MP state, and the vGICv3.
#include <asm/kvm.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../../snapshot/snap.h"
#include "../../log.h"
#include "../../vm.h"

/* The largest register KVM exposes is an SVE Z register: 2048 bits. */
#define MAX_REG_BYTES 256
#define MAX_REGS 4096

/* GIC distributor registers (GICv3 architecture specification). */
#define GICD_CTLR 0x0000
#define GICD_IIDR 0x0008
#define GICD_IGROUPR 0x0080
#define GICD_ISENABLER 0x0100
#define GICD_ISPENDR 0x0200
#define GICD_ISACTIVER 0x0300
#define GICD_IPRIORITYR 0x0400
#define GICD_ICFGR 0x0c00
#define GICD_IROUTER 0x6000
/* Redistributor SGI/PPI frame, second 64 KiB page. */
#define GICR_SGI 0x10000
#define GICR_IGROUPR0 (GICR_SGI + 0x0080)
#define GICR_ISENABLER0 (GICR_SGI + 0x0100)
#define GICR_ISPENDR0 (GICR_SGI + 0x0200)
#define GICR_ISACTIVER0 (GICR_SGI + 0x0300)
#define GICR_IPRIORITYR0 (GICR_SGI + 0x0400)
#define GICR_ICFGR0 (GICR_SGI + 0x0c00)

/* CPU interface system registers as KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS encodes them. */
#define ICC(op1, crn, crm, op2) \
	((3U << 14) | ((op1) << 11) | ((crn) << 7) | ((crm) << 3) | (op2))
#define ICC_PMR_EL1 ICC(0, 4, 6, 0)
#define ICC_BPR0_EL1 ICC(0, 12, 8, 3)
#define ICC_AP0R_EL1(n) ICC(0, 12, 8, 4 + (n))
#define ICC_AP1R_EL1(n) ICC(0, 12, 9, (n))
#define ICC_BPR1_EL1 ICC(0, 12, 12, 3)
#define ICC_CTLR_EL1 ICC(0, 12, 12, 4)
#define ICC_SRE_EL1 ICC(0, 12, 12, 5)
#define ICC_IGRPEN0_EL1 ICC(0, 12, 12, 6)
#define ICC_IGRPEN1_EL1 ICC(0, 12, 12, 7)
#define ICC_CTLR_PRIBITS(v) ((((v) >> 8) & 7) + 1)

#define NR_IRQS (32 + ARM64_NR_SPIS)

uint32_t vm__arch_snap_id(void)
{
	return SNAP_ARCH_ARM64;
}

static unsigned int reg_bytes(uint64_t id)
{
	return 1U << ((id & KVM_REG_SIZE_MASK) >> KVM_REG_SIZE_SHIFT);
}

static int reg_list(struct vcpu *vcpu, struct kvm_reg_list **out)
{
	struct kvm_reg_list probe = { .n = 0 }, *list;

	/* The first call fails with E2BIG and says how many there are. */
	if (ioctl(vcpu->fd, KVM_GET_REG_LIST, &probe) == 0)
		return -EIO;
	if (errno != E2BIG)
		return -errno;
	if (probe.n > MAX_REGS)
		return -E2BIG;
	list = calloc(1, sizeof(*list) + probe.n * sizeof(list->reg[0]));
	if (!list)
		return -ENOMEM;
	list->n = probe.n;
	if (ioctl(vcpu->fd, KVM_GET_REG_LIST, list) < 0) {
		free(list);
		return -errno;
	}
	*out = list;
	return 0;
}

static int save_vcpu(struct vcpu *vcpu, struct state_buf *b)
{
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	struct kvm_reg_list *list = NULL;
	uint8_t val[MAX_REG_BYTES];
	uint64_t i;
	int err;

	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &mp) < 0 ||
	    ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &ev) < 0) {
		err = -errno;
		pr_err("vCPU %u: reading MP state or events: %s", vcpu->id,
		       strerror(-err));
		return err;
	}
	err = reg_list(vcpu, &list);
	if (err) {
		pr_err("vCPU %u: KVM_GET_REG_LIST: %s", vcpu->id,
		       strerror(-err));
		return err;
	}
	state__put_u64(b, vcpu->arch.mpidr);
	state__put_u32(b, mp.mp_state);
	state__put_u32(b, sizeof(ev));
	state__put_bytes(b, &ev, sizeof(ev));
	state__put_u32(b, (uint32_t)list->n);
	for (i = 0; i < list->n; i++) {
		uint64_t id = list->reg[i];
		struct kvm_one_reg reg = { .id = id, .addr = (uintptr_t)val };

		if (reg_bytes(id) > sizeof(val)) {
			err = -E2BIG;
			break;
		}
		if (ioctl(vcpu->fd, KVM_GET_ONE_REG, &reg) < 0) {
			err = -errno;
			break;
		}
		state__put_u64(b, id);
		state__put_bytes(b, val, reg_bytes(id));
	}
	if (err)
		pr_err("vCPU %u: reading register 0x%llx: %s", vcpu->id,
		       (unsigned long long)list->reg[i], strerror(-err));
	free(list);
	return err;
}

static int restore_vcpu(struct vcpu *vcpu, struct state_reader *r)
{
	struct kvm_mp_state mp;
	struct kvm_vcpu_events ev;
	uint32_t i, n;

	if (state__get_u64(r) != vcpu->arch.mpidr) {
		pr_err("vCPU %u: the snapshot's vCPU has another MPIDR",
		       vcpu->id);
		return -EBADMSG;
	}
	mp.mp_state = state__get_u32(r);
	if (state__get_u32(r) != sizeof(ev)) {
		pr_err("vCPU %u: the snapshot's vCPU events have another size",
		       vcpu->id);
		return -EBADMSG;
	}
	state__get_bytes(r, &ev, sizeof(ev));
	n = state__get_u32(r);
	if (state__rerr(r) || n > MAX_REGS)
		return -EBADMSG;
	/*
	 * Registers in KVM's own list order: core, then system registers
	 * (the timer's counter among them, so guest time continues from the
	 * snapshot, neither backwards nor jumping), then firmware ones.
	 */
	for (i = 0; i < n; i++) {
		uint64_t id = state__get_u64(r);
		const void *val;
		struct kvm_one_reg reg = { .id = id };

		if (state__rerr(r) || reg_bytes(id) > MAX_REG_BYTES ||
		    (id & KVM_REG_ARCH_MASK) != KVM_REG_ARM64)
			return -EBADMSG;
		val = state__get_ptr(r, reg_bytes(id));
		if (!val)
			return -EBADMSG;
		reg.addr = (uintptr_t)val;
		if (ioctl(vcpu->fd, KVM_SET_ONE_REG, &reg) < 0) {
			int err = -errno;

			pr_err("vCPU %u: this host's KVM refuses register 0x%llx: %s",
			       vcpu->id, (unsigned long long)id,
			       strerror(-err));
			/* The record passed its checksum: the host differs. */
			return err == -ENOENT || err == -EINVAL ? -EXDEV : err;
		}
	}
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(vcpu->fd, KVM_SET_MP_STATE, &mp) < 0) {
		int err = -errno;

		pr_err("vCPU %u: this host's KVM refuses the MP state or events: %s",
		       vcpu->id, strerror(-err));
		return err == -EINVAL ? -EXDEV : err;
	}
	return 0;
}

/*
 * The vGIC record is the list of attribute writes that recreate it, in the
 * order KVM wants them replayed: GICD_IIDR and GICD_CTLR first, then each
 * redistributor, the distributor's per-interrupt registers, SPI line levels,
 * and each CPU interface last. Each entry: group, attribute, value.
 */
struct gic_save {
	struct vm *vm;
	struct state_buf *b;
	uint32_t count;
	int err;
};

static uint64_t mpidr_attr(uint64_t mpidr)
{
	/* Aff3 moves from bits 39:32 down next to Aff2..Aff0. */
	return (((mpidr >> 32) & 0xff) << 24 | (mpidr & 0xffffff)) << 32;
}

static void gic_get(struct gic_save *g, uint32_t group, uint64_t attr,
		    bool wide)
{
	uint64_t v64 = 0;
	uint32_t v32 = 0;
	struct kvm_device_attr a = {
		.group = group,
		.attr = attr,
		.addr = wide ? (uintptr_t)&v64 : (uintptr_t)&v32,
	};

	if (g->err)
		return;
	if (ioctl(g->vm->arch.gic_fd, KVM_GET_DEVICE_ATTR, &a) < 0) {
		g->err = -errno;
		pr_err("vGICv3: reading group %u attribute 0x%llx: %s", group,
		       (unsigned long long)attr, strerror(-g->err));
		return;
	}
	state__put_u32(g->b, group);
	state__put_u64(g->b, attr);
	state__put_u64(g->b, wide ? v64 : v32);
	g->count++;
}

static void gic_dist(struct gic_save *g, uint32_t off)
{
	gic_get(g, KVM_DEV_ARM_VGIC_GRP_DIST_REGS, off, false);
}

/* One bit per interrupt (enable, pending, active, group): SPIs only. */
static void gic_dist_bits(struct gic_save *g, uint32_t base)
{
	for (uint32_t irq = 32; irq < NR_IRQS; irq += 32)
		gic_dist(g, base + irq / 8);
}

static void save_redist(struct gic_save *g, struct vcpu *vcpu)
{
	uint64_t m = mpidr_attr(vcpu->arch.mpidr);
	uint32_t group = KVM_DEV_ARM_VGIC_GRP_REDIST_REGS;

	gic_get(g, group, m | GICR_IGROUPR0, false);
	gic_get(g, group, m | GICR_ICFGR0, false);
	gic_get(g, group, m | (GICR_ICFGR0 + 4), false);
	for (uint32_t i = 0; i < 8; i++)
		gic_get(g, group, m | (GICR_IPRIORITYR0 + 4 * i), false);
	gic_get(g, group, m | GICR_ISPENDR0, false);
	gic_get(g, group, m | GICR_ISACTIVER0, false);
	gic_get(g, group, m | GICR_ISENABLER0, false);
}

static void save_cpu_if(struct gic_save *g, struct vcpu *vcpu)
{
	uint64_t m = mpidr_attr(vcpu->arch.mpidr);
	uint32_t group = KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
	uint64_t ctlr = 0;
	struct kvm_device_attr a = {
		.group = group,
		.attr = m | ICC_CTLR_EL1,
		.addr = (uintptr_t)&ctlr,
	};
	unsigned int pribits, nr_apr;

	if (g->err)
		return;
	if (ioctl(g->vm->arch.gic_fd, KVM_GET_DEVICE_ATTR, &a) < 0) {
		g->err = -errno;
		pr_err("vGICv3: reading ICC_CTLR_EL1: %s", strerror(-g->err));
		return;
	}
	/* The active-priority registers that exist depend on the priority bits. */
	pribits = ICC_CTLR_PRIBITS(ctlr);
	nr_apr = pribits >= 7 ? 4 : pribits == 6 ? 2 : 1;
	gic_get(g, group, m | ICC_SRE_EL1, true);
	gic_get(g, group, m | ICC_CTLR_EL1, true);
	gic_get(g, group, m | ICC_IGRPEN0_EL1, true);
	gic_get(g, group, m | ICC_IGRPEN1_EL1, true);
	gic_get(g, group, m | ICC_PMR_EL1, true);
	gic_get(g, group, m | ICC_BPR0_EL1, true);
	gic_get(g, group, m | ICC_BPR1_EL1, true);
	for (unsigned int i = 0; i < nr_apr; i++) {
		gic_get(g, group, m | ICC_AP0R_EL1(i), true);
		gic_get(g, group, m | ICC_AP1R_EL1(i), true);
	}
}

static int save_gic(struct vm *vm, struct state_buf *b)
{
	struct gic_save g = { .vm = vm };
	struct state_buf list;
	unsigned int i;
	uint32_t irq;

	state__init(&list);
	g.b = &list;
	gic_dist(&g, GICD_IIDR);
	gic_dist(&g, GICD_CTLR);
	for (i = 0; i < vm->nr_vcpus; i++)
		save_redist(&g, &vm->vcpus[i]);
	gic_dist_bits(&g, GICD_IGROUPR);
	for (irq = 32; irq < NR_IRQS; irq += 16)
		gic_dist(&g, GICD_ICFGR + irq / 4);
	for (irq = 32; irq < NR_IRQS; irq += 4)
		gic_dist(&g, GICD_IPRIORITYR + irq);
	for (irq = 32; irq < NR_IRQS; irq++) {
		gic_dist(&g, GICD_IROUTER + 8 * irq);
		gic_dist(&g, GICD_IROUTER + 8 * irq + 4);
	}
	gic_dist_bits(&g, GICD_ISPENDR);
	gic_dist_bits(&g, GICD_ISACTIVER);
	gic_dist_bits(&g, GICD_ISENABLER);
	for (irq = 32; irq < NR_IRQS; irq += 32)
		gic_get(&g, KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO,
			((uint64_t)VGIC_LEVEL_INFO_LINE_LEVEL
			 << KVM_DEV_ARM_VGIC_LINE_LEVEL_INFO_SHIFT) |
				irq,
			false);
	for (i = 0; i < vm->nr_vcpus; i++)
		save_cpu_if(&g, &vm->vcpus[i]);
	if (!g.err) {
		state__put_u32(b, g.count);
		state__put_bytes(b, list.data, list.len);
		g.err = state__err(&list) ?: state__err(b);
	}
	state__exit(&list);
	return g.err;
}

static int restore_gic(struct vm *vm, struct state_reader *r)
{
	uint32_t n = state__get_u32(r), i;

	if (state__rerr(r) || n > state__left(r) / 20)
		return -EBADMSG;
	for (i = 0; i < n; i++) {
		uint32_t group = state__get_u32(r);
		uint64_t attr = state__get_u64(r);
		uint64_t v64 = state__get_u64(r);
		uint32_t v32 = (uint32_t)v64;
		bool wide = group == KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS;
		struct kvm_device_attr a = {
			.group = group,
			.attr = attr,
			.addr = wide ? (uintptr_t)&v64 : (uintptr_t)&v32,
		};

		if (state__rerr(r) ||
		    (group != KVM_DEV_ARM_VGIC_GRP_DIST_REGS &&
		     group != KVM_DEV_ARM_VGIC_GRP_REDIST_REGS &&
		     group != KVM_DEV_ARM_VGIC_GRP_CPU_SYSREGS &&
		     group != KVM_DEV_ARM_VGIC_GRP_LEVEL_INFO) ||
		    (!wide && v64 > UINT32_MAX))
			return -EBADMSG;
		if (ioctl(vm->arch.gic_fd, KVM_SET_DEVICE_ATTR, &a) < 0) {
			int err = -errno;

			pr_err("vGICv3: this host's KVM refuses group %u attribute 0x%llx: %s",
			       group, (unsigned long long)attr, strerror(-err));
			return err == -EINVAL || err == -ENXIO ? -EXDEV : err;
		}
	}
	return 0;
}

int vm__arch_save(struct vm *vm, struct state_buf *vcpus,
		  struct state_buf *irqchip)
{
	unsigned int i;
	int err;

	state__put_u32(vcpus, vm->nr_vcpus);
	for (i = 0; i < vm->nr_vcpus; i++) {
		err = save_vcpu(&vm->vcpus[i], vcpus);
		if (err)
			return err;
	}
	/* No ITS: there are no LPI pending tables to flush into guest memory. */
	return save_gic(vm, irqchip);
}

int vm__arch_restore(struct vm *vm, struct state_reader *vcpus,
		     struct state_reader *irqchip)
{
	unsigned int i;
	int err;

	if (state__get_u32(vcpus) != vm->nr_vcpus || state__rerr(vcpus)) {
		pr_err("snapshot: vCPU record does not match its vCPU count");
		return -EBADMSG;
	}
	/* KVM's order: vCPUs (created and initialised by now), then the GIC. */
	for (i = 0; i < vm->nr_vcpus; i++) {
		err = restore_vcpu(&vm->vcpus[i], vcpus);
		if (err == -EBADMSG)
			pr_err("snapshot: vCPU %u: malformed record", i);
		if (err)
			return err;
	}
	if (state__left(vcpus)) {
		pr_err("snapshot: trailing bytes after the vCPUs");
		return -EBADMSG;
	}
	err = restore_gic(vm, irqchip);
	if (err == -EBADMSG)
		pr_err("snapshot: malformed vGIC record");
	if (!err && state__left(irqchip)) {
		pr_err("snapshot: trailing bytes after the vGIC");
		err = -EBADMSG;
	}
	return err;
}
