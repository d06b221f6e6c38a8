// SPDX-License-Identifier: Apache-2.0
// x86_64 snapshot state: each vCPU's registers, FPU, MSRs, LAPIC and events; PICs, IOAPIC, kvmclock.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "../../../snapshot/snap.h"
#include "../../log.h"
#include "../../vm.h"
#include "cpu_state.h"

uint32_t vm__arch_snap_id(void)
{
	return SNAP_ARCH_X86_64;
}

/* The MSRs KVM saves and restores for us, into *@out (the caller frees it). 0 or -errno. */
static int get_msr_list(struct vm *vm, struct kvm_msr_list **out)
{
	struct kvm_msr_list *l;
	int err;

	l = calloc(1, sizeof(*l) + X86_MAX_MSRS * sizeof(l->indices[0]));
	if (!l)
		return -ENOMEM;
	l->nmsrs = X86_MAX_MSRS;
	if (ioctl(vm->kvm_fd, KVM_GET_MSR_INDEX_LIST, l) < 0) {
		err = -errno;
		pr_err("KVM_GET_MSR_INDEX_LIST: %s", strerror(-err));
		free(l);
		return err;
	}
	*out = l;
	return 0;
}

/*
 * Reads every listed MSR. KVM_GET_MSRS stops at the first one it cannot
 * read (some the list names depend on CPU features the guest lacks): that
 * one is left out and the read goes on after it.
 */
static int get_msrs(struct vcpu *vcpu, const struct kvm_msr_list *list,
		    struct x86_vcpu_state *s)
{
	struct kvm_msrs *m;
	uint32_t i, done = 0;
	int ret = 0;

	m = calloc(1, sizeof(*m) + list->nmsrs * sizeof(m->entries[0]));
	if (!m)
		return -ENOMEM;
	s->nr_msrs = 0;
	while (done < list->nmsrs) {
		m->nmsrs = list->nmsrs - done;
		for (i = 0; i < m->nmsrs; i++) {
			m->entries[i].index = list->indices[done + i];
			m->entries[i].data = 0;
		}
		ret = ioctl(vcpu->fd, KVM_GET_MSRS, m);
		if (ret < 0) {
			ret = -errno;
			break;
		}
		memcpy(&s->msrs[s->nr_msrs], m->entries,
		       (uint32_t)ret * sizeof(m->entries[0]));
		s->nr_msrs += (uint32_t)ret;
		done += (uint32_t)ret + 1; /* skip the one it refused */
		ret = 0;
	}
	free(m);
	return ret;
}

static int get_xsave(struct vcpu *vcpu, struct x86_vcpu_state *s)
{
	int size = ioctl(vcpu->vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);
	unsigned long req = KVM_GET_XSAVE2;

	if (size <= (int)sizeof(struct kvm_xsave)) {
		size = sizeof(struct kvm_xsave);
		req = KVM_GET_XSAVE;
	}
	s->xsave = calloc(1, (size_t)size);
	if (!s->xsave)
		return -ENOMEM;
	s->xsave_size = (uint32_t)size;
	if (ioctl(vcpu->fd, req, s->xsave) < 0)
		return -errno;
	return 0;
}

static int save_vcpu(struct vcpu *vcpu, const struct kvm_msr_list *list,
		     struct state_buf *b)
{
	struct x86_vcpu_state *s;
	struct kvm_cpuid2 *c;
	const char *what;
	int err;

	s = calloc(1, sizeof(*s));
	c = calloc(1, sizeof(*c) + X86_MAX_CPUID * sizeof(c->entries[0]));
	if (!s || !c) {
		err = -ENOMEM;
		what = "memory";
		goto out;
	}
	c->nent = X86_MAX_CPUID;
	what = "KVM_GET_CPUID2";
	err = ioctl(vcpu->fd, KVM_GET_CPUID2, c) < 0 ? -errno : 0;
	if (err)
		goto out;
	s->nr_cpuid = c->nent;
	memcpy(s->cpuid, c->entries, c->nent * sizeof(c->entries[0]));
	what = "KVM_GET_MP_STATE";
	if (ioctl(vcpu->fd, KVM_GET_MP_STATE, &s->mp_state) < 0)
		goto fail;
	what = "KVM_GET_REGS";
	if (ioctl(vcpu->fd, KVM_GET_REGS, &s->regs) < 0)
		goto fail;
	what = "KVM_GET_SREGS";
	if (ioctl(vcpu->fd, KVM_GET_SREGS, &s->sregs) < 0)
		goto fail;
	what = "KVM_GET_XSAVE";
	err = get_xsave(vcpu, s);
	if (err)
		goto out;
	what = "KVM_GET_XCRS";
	if (ioctl(vcpu->fd, KVM_GET_XCRS, &s->xcrs) < 0)
		goto fail;
	what = "KVM_GET_DEBUGREGS";
	if (ioctl(vcpu->fd, KVM_GET_DEBUGREGS, &s->debugregs) < 0)
		goto fail;
	what = "KVM_GET_LAPIC";
	if (ioctl(vcpu->fd, KVM_GET_LAPIC, &s->lapic) < 0)
		goto fail;
	what = "KVM_GET_MSRS";
	err = get_msrs(vcpu, list, s);
	if (err)
		goto out;
	what = "KVM_GET_VCPU_EVENTS";
	if (ioctl(vcpu->fd, KVM_GET_VCPU_EVENTS, &s->events) < 0)
		goto fail;
	x86_state__put_vcpu(b, s);
	goto out;
fail:
	err = -errno;
out:
	if (err)
		pr_err("snapshot: vCPU %u: %s: %s", vcpu->id, what,
		       strerror(-err));
	if (s)
		x86_state__free_vcpu(s);
	free(s);
	free(c);
	return err;
}

static int restore_vcpu(struct vcpu *vcpu, struct state_reader *r)
{
	struct x86_vcpu_state *s;
	struct kvm_cpuid2 *c = NULL;
	struct kvm_msrs *m = NULL;
	const char *what = "record";
	int err;

	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	err = x86_state__get_vcpu(r, s);
	if (err)
		goto out;
	c = calloc(1, sizeof(*c) + s->nr_cpuid * sizeof(c->entries[0]));
	m = calloc(1, sizeof(*m) + s->nr_msrs * sizeof(m->entries[0]));
	if (!c || !m) {
		err = -ENOMEM;
		goto out;
	}
	c->nent = s->nr_cpuid;
	memcpy(c->entries, s->cpuid, s->nr_cpuid * sizeof(c->entries[0]));
	m->nmsrs = s->nr_msrs;
	memcpy(m->entries, s->msrs, s->nr_msrs * sizeof(m->entries[0]));
	what = "KVM_SET_CPUID2";
	if (ioctl(vcpu->fd, KVM_SET_CPUID2, c) < 0)
		goto fail;
	what = "KVM_SET_MP_STATE";
	if (ioctl(vcpu->fd, KVM_SET_MP_STATE, &s->mp_state) < 0)
		goto fail;
	what = "KVM_SET_REGS";
	if (ioctl(vcpu->fd, KVM_SET_REGS, &s->regs) < 0)
		goto fail;
	what = "KVM_SET_SREGS";
	if (ioctl(vcpu->fd, KVM_SET_SREGS, &s->sregs) < 0)
		goto fail;
	/* KVM_SET_XSAVE takes the larger KVM_CAP_XSAVE2 area as well. */
	what = "KVM_SET_XSAVE";
	if (ioctl(vcpu->fd, KVM_SET_XSAVE, s->xsave) < 0)
		goto fail;
	what = "KVM_SET_XCRS";
	if (ioctl(vcpu->fd, KVM_SET_XCRS, &s->xcrs) < 0)
		goto fail;
	what = "KVM_SET_DEBUGREGS";
	if (ioctl(vcpu->fd, KVM_SET_DEBUGREGS, &s->debugregs) < 0)
		goto fail;
	what = "KVM_SET_LAPIC";
	if (ioctl(vcpu->fd, KVM_SET_LAPIC, &s->lapic) < 0)
		goto fail;
	what = "KVM_SET_MSRS";
	err = ioctl(vcpu->fd, KVM_SET_MSRS, m);
	if (err < 0)
		goto fail;
	if ((uint32_t)err != s->nr_msrs) {
		pr_err("snapshot: vCPU %u: KVM refused MSR 0x%x", vcpu->id,
		       s->msrs[err].index);
		err = -EBADMSG;
		goto out;
	}
	err = 0;
	what = "KVM_SET_VCPU_EVENTS";
	if (ioctl(vcpu->fd, KVM_SET_VCPU_EVENTS, &s->events) < 0)
		goto fail;
	goto out;
fail:
	/* KVM rejecting what a record holds means the record is bad. */
	err = errno == EINVAL ? -EBADMSG : -errno;
out:
	if (err)
		pr_err("snapshot: vCPU %u: %s: %s", vcpu->id, what,
		       err == -EBADMSG ? "state does not fit this vCPU"
				       : strerror(-err));
	x86_state__free_vcpu(s);
	free(s);
	free(c);
	free(m);
	return err;
}

static int save_vm(struct vm *vm, struct state_buf *b)
{
	struct x86_vm_state s;
	const char *what;
	unsigned int i;
	int khz;

	memset(&s, 0, sizeof(s));
	what = "KVM_GET_IRQCHIP";
	for (i = 0; i < 3; i++) {
		s.chips[i].chip_id = i;
		if (ioctl(vm->vm_fd, KVM_GET_IRQCHIP, &s.chips[i]) < 0)
			goto fail;
	}
	what = "KVM_GET_CLOCK";
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &s.clock) < 0)
		goto fail;
	what = "KVM_GET_TSC_KHZ";
	khz = ioctl(vm->vcpus[0].fd, KVM_GET_TSC_KHZ, 0);
	if (khz <= 0)
		goto fail;
	s.tsc_khz = (uint32_t)khz;
	x86_state__put_vm(b, &s);
	return 0;
fail:
	pr_err("snapshot: %s: %s", what, strerror(errno));
	return -errno;
}

static int restore_vm(struct vm *vm, const struct x86_vm_state *s)
{
	struct kvm_clock_data clock;
	const char *what;
	unsigned int i;

	what = "KVM_SET_IRQCHIP";
	for (i = 0; i < 3; i++)
		if (ioctl(vm->vm_fd, KVM_SET_IRQCHIP, &s->chips[i]) < 0)
			goto fail;
	/*
	 * kvmclock goes on from where it was saved: guest time never runs
	 * backwards and does not jump by the time the snapshot sat on disk.
	 */
	memset(&clock, 0, sizeof(clock));
	clock.clock = s->clock.clock;
	what = "KVM_SET_CLOCK";
	if (ioctl(vm->vm_fd, KVM_SET_CLOCK, &clock) < 0)
		goto fail;
	return 0;
fail:
	pr_err("snapshot: %s: %s", what, strerror(errno));
	return errno == EINVAL ? -EBADMSG : -errno;
}

int vm__arch_save(struct vm *vm, struct state_buf *vcpus,
		  struct state_buf *irqchip)
{
	struct kvm_msr_list *list = NULL;
	unsigned int i;
	int err;

	err = get_msr_list(vm, &list);
	if (err)
		return err;
	state__put_u32(vcpus, vm->nr_vcpus);
	for (i = 0, err = 0; !err && i < vm->nr_vcpus; i++)
		err = save_vcpu(&vm->vcpus[i], list, vcpus);
	free(list);
	return err ? err : save_vm(vm, irqchip);
}

int vm__arch_restore(struct vm *vm, struct state_reader *vcpus,
		     struct state_reader *irqchip)
{
	struct x86_vm_state s;
	unsigned int i;
	int err;

	err = x86_state__get_vm(irqchip, &s);
	if (err) {
		pr_err("snapshot: the irqchip record does not fit");
		return err;
	}
	if (state__get_u32(vcpus) != vm->nr_vcpus) {
		pr_err("snapshot: the vCPU record does not match %u vCPUs",
		       vm->nr_vcpus);
		return -EBADMSG;
	}
	/* The guest's TSC runs at the rate it was calibrated for (before any vCPU state). */
	for (i = 0; i < vm->nr_vcpus; i++) {
		if (ioctl(vm->vcpus[i].fd, KVM_SET_TSC_KHZ,
			  (unsigned long)s.tsc_khz) < 0) {
			err = -errno;
			pr_err("snapshot: the guest's TSC ran at %u kHz; this host cannot give it that: %s",
			       s.tsc_khz, strerror(-err));
			return err;
		}
	}
	/* The irqchip before the vCPUs: the LAPICs refer to it. */
	err = restore_vm(vm, &s);
	for (i = 0; !err && i < vm->nr_vcpus; i++)
		err = restore_vcpu(&vm->vcpus[i], vcpus);
	return err;
}
