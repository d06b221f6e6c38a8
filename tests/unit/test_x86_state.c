// SPDX-License-Identifier: Apache-2.0
// x86 snapshot records: a vCPU's and the VM's KVM state come back as saved; bad records are refused.
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../vmm/arch/x86_64/cpu_state.h"

static struct x86_vcpu_state *sample_vcpu(void)
{
	struct x86_vcpu_state *s = calloc(1, sizeof(*s));
	uint32_t i;

	cr_assert_not_null(s);
	s->nr_cpuid = 3;
	for (i = 0; i < s->nr_cpuid; i++) {
		s->cpuid[i].function = i;
		s->cpuid[i].eax = 0x1000 + i;
		s->cpuid[i].ecx = 0x80000000U;
	}
	s->mp_state.mp_state = KVM_MP_STATE_HALTED;
	s->regs.rip = 0xffffffff81000000ULL;
	s->regs.rsp = 0x1234;
	s->regs.rflags = 0x246;
	s->sregs.cr0 = 0x80050033;
	s->sregs.cr3 = 0x2000;
	s->sregs.efer = 0xd01;
	s->sregs.cs.l = 1;
	s->xsave_size = sizeof(struct kvm_xsave) + 64;
	s->xsave = malloc(s->xsave_size);
	cr_assert_not_null(s->xsave);
	for (i = 0; i < s->xsave_size; i++)
		s->xsave[i] = (uint8_t)(i * 7);
	s->xcrs.nr_xcrs = 1;
	s->xcrs.xcrs[0].value = 7;
	s->debugregs.dr7 = 0x400;
	s->lapic.regs[0x20] = 0x05; /* APIC id register */
	s->nr_msrs = 4;
	for (i = 0; i < s->nr_msrs; i++) {
		s->msrs[i].index = 0xc0000080 + i;
		s->msrs[i].data = 0x1111111111111111ULL * (i + 1);
	}
	s->events.nmi.pending = 1;
	s->events.exception.nr = 14;
	return s;
}

static void free_vcpu(struct x86_vcpu_state *s)
{
	x86_state__free_vcpu(s);
	free(s);
}

Test(x86_state, vcpu_round_trip)
{
	struct x86_vcpu_state *in = sample_vcpu(), *out;
	struct state_reader r;
	struct state_buf b;

	out = calloc(1, sizeof(*out));
	cr_assert_not_null(out);
	state__init(&b);
	x86_state__put_vcpu(&b, in);
	cr_assert_eq(state__err(&b), 0);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vcpu(&r, out), 0);
	cr_assert_eq(state__left(&r), 0);
	cr_assert_eq(out->nr_cpuid, 3);
	cr_assert_eq(memcmp(out->cpuid, in->cpuid, 3 * sizeof(in->cpuid[0])),
		     0);
	cr_assert_eq(out->mp_state.mp_state, KVM_MP_STATE_HALTED);
	cr_assert_eq(memcmp(&out->regs, &in->regs, sizeof(in->regs)), 0);
	cr_assert_eq(memcmp(&out->sregs, &in->sregs, sizeof(in->sregs)), 0);
	cr_assert_eq(out->xsave_size, in->xsave_size);
	cr_assert_eq(memcmp(out->xsave, in->xsave, in->xsave_size), 0);
	cr_assert_eq(out->xcrs.xcrs[0].value, 7);
	cr_assert_eq(out->debugregs.dr7, 0x400);
	cr_assert_eq(out->lapic.regs[0x20], 0x05);
	cr_assert_eq(out->nr_msrs, 4);
	cr_assert_eq(out->msrs[3].index, 0xc0000083);
	cr_assert_eq(out->msrs[3].data, 0x4444444444444444ULL);
	cr_assert_eq(out->events.nmi.pending, 1);
	cr_assert_eq(out->events.exception.nr, 14);
	free_vcpu(in);
	free_vcpu(out);
	state__exit(&b);
}

/* Every strict prefix of a good record is refused, never read past. */
Test(x86_state, vcpu_truncated_records_fail)
{
	struct x86_vcpu_state *in = sample_vcpu(), *out;
	struct state_reader r;
	struct state_buf b;
	size_t len;

	out = calloc(1, sizeof(*out));
	cr_assert_not_null(out);
	state__init(&b);
	x86_state__put_vcpu(&b, in);
	for (len = 0; len < b.len; len += 97) {
		state__reader(&r, b.data, len);
		cr_assert_eq(x86_state__get_vcpu(&r, out), -EBADMSG,
			     "prefix of %zu bytes", len);
		x86_state__free_vcpu(out);
	}
	free_vcpu(in);
	free(out);
	state__exit(&b);
}

static uint8_t *find_u32(struct state_buf *b, uint32_t v, size_t from)
{
	size_t i;

	for (i = from; i + 4 <= b->len; i++)
		if (!memcmp(b->data + i, &v, 4))
			return b->data + i;
	return NULL;
}

Test(x86_state, vcpu_out_of_range_counts_fail)
{
	struct x86_vcpu_state *in = sample_vcpu(), *out;
	struct state_reader r;
	struct state_buf b;
	uint32_t big = X86_MAX_CPUID + 1, bad_tag = 0;
	uint8_t *p;

	out = calloc(1, sizeof(*out));
	cr_assert_not_null(out);
	state__init(&b);
	x86_state__put_vcpu(&b, in);
	/* The CPUID count follows the tag. */
	memcpy(b.data + 4, &big, 4);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vcpu(&r, out), -EBADMSG);
	x86_state__free_vcpu(out);
	big = 3;
	memcpy(b.data + 4, &big, 4);
	/* An XSAVE area smaller than KVM's struct. */
	p = find_u32(&b, in->xsave_size, 8);
	cr_assert_not_null(p);
	big = 16;
	memcpy(p, &big, 4);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vcpu(&r, out), -EBADMSG);
	x86_state__free_vcpu(out);
	/* Another tag: a record of another layout. */
	memcpy(b.data, &bad_tag, 4);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vcpu(&r, out), -EBADMSG);
	x86_state__free_vcpu(out);
	free_vcpu(in);
	free(out);
	state__exit(&b);
}

Test(x86_state, vm_round_trip_and_bad_records)
{
	struct x86_vm_state in, out;
	struct state_reader r;
	struct state_buf b;
	uint32_t wrong = 5;
	unsigned int i;

	memset(&in, 0, sizeof(in));
	for (i = 0; i < 3; i++)
		in.chips[i].chip_id = i;
	in.chips[2].chip.ioapic.base_address = 0xfec00000;
	in.chips[0].chip.pic.imr = 0xfb;
	in.clock.clock = 123456789;
	in.tsc_khz = 2500000;
	state__init(&b);
	x86_state__put_vm(&b, &in);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vm(&r, &out), 0);
	cr_assert_eq(state__left(&r), 0);
	cr_assert_eq(out.chips[2].chip.ioapic.base_address, 0xfec00000);
	cr_assert_eq(out.chips[0].chip.pic.imr, 0xfb);
	cr_assert_eq(out.clock.clock, 123456789);
	cr_assert_eq(out.tsc_khz, 2500000);

	state__reader(&r, b.data, b.len - 1);
	cr_assert_eq(x86_state__get_vm(&r, &out), -EBADMSG);
	/* A structure size that is not this build's: the record has another layout. */
	memcpy(b.data + 4, &wrong, 4);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vm(&r, &out), -EBADMSG);
	state__exit(&b);

	/* A zero TSC rate cannot be given back to KVM. */
	in.tsc_khz = 0;
	state__init(&b);
	x86_state__put_vm(&b, &in);
	state__reader(&r, b.data, b.len);
	cr_assert_eq(x86_state__get_vm(&r, &out), -EBADMSG);
	state__exit(&b);
}
