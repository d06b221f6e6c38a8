// SPDX-License-Identifier: Apache-2.0
// Records interrupt levels and stop requests so device tests can assert on them.
#include <errno.h>
#include <string.h>

#include "fakes.h"

bool fake_irq_level[FAKE_NR_IRQS];
unsigned int fake_irq_changes[FAKE_NR_IRQS];
enum vm_exit fake_stop_reason;

void fakes_reset(void)
{
	memset(fake_irq_level, 0, sizeof(fake_irq_level));
	memset(fake_irq_changes, 0, sizeof(fake_irq_changes));
	fake_stop_reason = VM_EXIT_NONE;
}

int irq__set_level(struct vm *vm, uint32_t irq, bool level)
{
	(void)vm;
	if (irq >= FAKE_NR_IRQS)
		return -EINVAL;
	if (fake_irq_level[irq] != level)
		fake_irq_changes[irq]++;
	fake_irq_level[irq] = level;
	return 0;
}

void vm__request_stop(struct vm *vm, enum vm_exit why)
{
	(void)vm;
	if (fake_stop_reason == VM_EXIT_NONE)
		fake_stop_reason = why;
}
