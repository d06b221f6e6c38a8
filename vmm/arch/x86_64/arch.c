// SPDX-License-Identifier: Apache-2.0
// x86_64 arch hooks: the backend is not written yet, so VM creation fails cleanly here.
#include <errno.h>

#include "../../../snapshot/snap.h"
#include "../../log.h"
#include "../../vm.h"

int vm__arch_init(struct vm *vm, const struct vm_config *cfg)
{
	(void)vm;
	(void)cfg;
	pr_err("x86_64 guests are not supported yet; this build boots nothing (use an arm64 host or build with ARCH=arm64)");
	return -ENODEV;
}

int vcpu__arch_init(struct vcpu *vcpu)
{
	(void)vcpu;
	return -ENODEV;
}

int vm__arch_add_devices(struct vm *vm, const struct vm_config *cfg)
{
	(void)vm;
	(void)cfg;
	return -ENODEV;
}

int vm__arch_load(struct vm *vm, const struct vm_config *cfg)
{
	(void)vm;
	(void)cfg;
	return -ENODEV;
}

int vm__arch_irq_line(struct vm *vm, uint32_t irq, bool level)
{
	(void)vm;
	(void)irq;
	(void)level;
	return -ENODEV;
}

int vcpu__arch_handle_exit(struct vcpu *vcpu)
{
	(void)vcpu;
	return -ENODEV;
}

void vm__arch_exit(struct vm *vm)
{
	(void)vm;
}

uint32_t vm__arch_snap_id(void)
{
	return SNAP_ARCH_X86_64;
}

int vm__arch_save(struct vm *vm, struct state_buf *vcpus,
		  struct state_buf *irqchip)
{
	(void)vm;
	(void)vcpus;
	(void)irqchip;
	return -ENODEV;
}

int vm__arch_restore(struct vm *vm, struct state_reader *vcpus,
		     struct state_reader *irqchip)
{
	(void)vm;
	(void)vcpus;
	(void)irqchip;
	return -ENODEV;
}
