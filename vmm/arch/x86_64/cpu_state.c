// SPDX-License-Identifier: Apache-2.0
// x86 snapshot records: KVM's structures as they are (one arch, one byte order), each behind its size.
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cpu_state.h"

/* Record tags: a record from another layout fails at its first tag. */
#define VCPU_TAG 0x58563031U /* "XV01" */
#define VM_TAG 0x584d3031U /* "XM01" */

/* A structure behind its size, so that a record of another layout is refused. */
static void put_struct(struct state_buf *b, const void *p, size_t len)
{
	state__put_u32(b, (uint32_t)len);
	state__put_bytes(b, p, len);
}

static void get_struct(struct state_reader *r, void *p, size_t len)
{
	if (state__get_u32(r) != len) {
		/* Fails the reader: a size that does not match is a bad record. */
		state__get_ptr(r, state__left(r) + 1);
		memset(p, 0, len);
		return;
	}
	state__get_bytes(r, p, len);
}

void x86_state__put_vcpu(struct state_buf *b, const struct x86_vcpu_state *s)
{
	uint32_t i;

	state__put_u32(b, VCPU_TAG);
	state__put_u32(b, s->nr_cpuid);
	state__put_bytes(b, s->cpuid, s->nr_cpuid * sizeof(s->cpuid[0]));
	put_struct(b, &s->mp_state, sizeof(s->mp_state));
	put_struct(b, &s->regs, sizeof(s->regs));
	put_struct(b, &s->sregs, sizeof(s->sregs));
	state__put_u32(b, s->xsave_size);
	state__put_bytes(b, s->xsave, s->xsave_size);
	put_struct(b, &s->xcrs, sizeof(s->xcrs));
	put_struct(b, &s->debugregs, sizeof(s->debugregs));
	put_struct(b, &s->lapic, sizeof(s->lapic));
	state__put_u32(b, s->nr_msrs);
	for (i = 0; i < s->nr_msrs; i++) {
		state__put_u32(b, s->msrs[i].index);
		state__put_u64(b, s->msrs[i].data);
	}
	put_struct(b, &s->events, sizeof(s->events));
}

int x86_state__get_vcpu(struct state_reader *r, struct x86_vcpu_state *s)
{
	uint32_t i;

	memset(s, 0, sizeof(*s));
	if (state__get_u32(r) != VCPU_TAG)
		return -EBADMSG;
	s->nr_cpuid = state__get_u32(r);
	if (s->nr_cpuid > X86_MAX_CPUID)
		return -EBADMSG;
	state__get_bytes(r, s->cpuid, s->nr_cpuid * sizeof(s->cpuid[0]));
	get_struct(r, &s->mp_state, sizeof(s->mp_state));
	get_struct(r, &s->regs, sizeof(s->regs));
	get_struct(r, &s->sregs, sizeof(s->sregs));
	s->xsave_size = state__get_u32(r);
	if (s->xsave_size < sizeof(struct kvm_xsave) ||
	    s->xsave_size > X86_MAX_XSAVE || state__rerr(r))
		return -EBADMSG;
	s->xsave = malloc(s->xsave_size);
	if (!s->xsave)
		return -ENOMEM;
	state__get_bytes(r, s->xsave, s->xsave_size);
	get_struct(r, &s->xcrs, sizeof(s->xcrs));
	if (s->xcrs.nr_xcrs > KVM_MAX_XCRS)
		return -EBADMSG;
	get_struct(r, &s->debugregs, sizeof(s->debugregs));
	get_struct(r, &s->lapic, sizeof(s->lapic));
	s->nr_msrs = state__get_u32(r);
	if (s->nr_msrs > X86_MAX_MSRS)
		return -EBADMSG;
	for (i = 0; i < s->nr_msrs; i++) {
		s->msrs[i].index = state__get_u32(r);
		s->msrs[i].data = state__get_u64(r);
	}
	get_struct(r, &s->events, sizeof(s->events));
	return state__rerr(r);
}

void x86_state__free_vcpu(struct x86_vcpu_state *s)
{
	free(s->xsave);
	s->xsave = NULL;
}

void x86_state__put_vm(struct state_buf *b, const struct x86_vm_state *s)
{
	unsigned int i;

	state__put_u32(b, VM_TAG);
	for (i = 0; i < 3; i++)
		put_struct(b, &s->chips[i], sizeof(s->chips[i]));
	put_struct(b, &s->clock, sizeof(s->clock));
	state__put_u32(b, s->tsc_khz);
}

int x86_state__get_vm(struct state_reader *r, struct x86_vm_state *s)
{
	unsigned int i;

	memset(s, 0, sizeof(*s));
	if (state__get_u32(r) != VM_TAG)
		return -EBADMSG;
	for (i = 0; i < 3; i++) {
		get_struct(r, &s->chips[i], sizeof(s->chips[i]));
		if (!state__rerr(r) && s->chips[i].chip_id != i)
			return -EBADMSG;
	}
	get_struct(r, &s->clock, sizeof(s->clock));
	s->tsc_khz = state__get_u32(r);
	if (!state__rerr(r) && !s->tsc_khz)
		return -EBADMSG;
	return state__rerr(r);
}
