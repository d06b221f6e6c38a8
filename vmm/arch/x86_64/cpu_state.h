/* SPDX-License-Identifier: Apache-2.0 */
/* x86 vCPU and VM state as KVM hands it out, and its snapshot records. */
#ifndef SANDBOX_X86_CPU_STATE_H
#define SANDBOX_X86_CPU_STATE_H

#include <linux/kvm.h>
#include <stdint.h>

#include "../../state.h"

#define X86_MAX_CPUID 256
#define X86_MAX_MSRS 512
/* An XSAVE area beyond 64 KiB would be a corrupt record, not a CPU. */
#define X86_MAX_XSAVE 0x10000U

/*
 * Everything KVM keeps for one vCPU, in the order KVM wants it back:
 * CPUID first, then MP state, registers, FPU/XSAVE, XCRs, debug registers,
 * the local APIC before the MSRs (the TSC deadline timer needs it), and
 * pending events last.
 */
struct x86_vcpu_state {
	uint32_t nr_cpuid;
	struct kvm_cpuid_entry2 cpuid[X86_MAX_CPUID];
	struct kvm_mp_state mp_state;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	uint32_t xsave_size; /* bytes at xsave: 4096, or KVM_CAP_XSAVE2's size */
	uint8_t *xsave; /* heap; x86_state__free_vcpu() frees it */
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_lapic_state lapic;
	uint32_t nr_msrs;
	struct kvm_msr_entry msrs[X86_MAX_MSRS];
	struct kvm_vcpu_events events;
};

/* The VM-wide part: both PICs and the IOAPIC, kvmclock, TSC rate (there is no PIT). */
struct x86_vm_state {
	struct kvm_irqchip chips[3]; /* KVM_IRQCHIP_PIC_MASTER, _SLAVE, _IOAPIC */
	struct kvm_clock_data clock;
	uint32_t tsc_khz;
};

/* Appends @s to @b (errors are sticky in @b). */
void x86_state__put_vcpu(struct state_buf *b, const struct x86_vcpu_state *s);
/*
 * Reads a record written by x86_state__put_vcpu() into @s (allocating
 * s->xsave). Returns 0, -EBADMSG for a record that does not fit (short,
 * counts or sizes out of range), or -ENOMEM. @s needs
 * x86_state__free_vcpu() either way.
 */
int x86_state__get_vcpu(struct state_reader *r,
			struct x86_vcpu_state *s) __must_check;
void x86_state__free_vcpu(struct x86_vcpu_state *s);

void x86_state__put_vm(struct state_buf *b, const struct x86_vm_state *s);
/* 0, or -EBADMSG for a record that does not fit. */
int x86_state__get_vm(struct state_reader *r,
		      struct x86_vm_state *s) __must_check;

#endif
