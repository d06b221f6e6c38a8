// SPDX-License-Identifier: Apache-2.0
// Records interrupt levels and stop requests so device tests can assert on them.
#include <errno.h>
#include <string.h>

#include "fakes.h"

bool fake_irq_level[FAKE_NR_IRQS];
unsigned int fake_irq_changes[FAKE_NR_IRQS];
enum vm_exit fake_stop_reason;
struct guest_mem *fake_mem;
int fake_ioeventfds;
int fake_irqfds;

void fakes_reset(void)
{
	memset(fake_irq_level, 0, sizeof(fake_irq_level));
	memset(fake_irq_changes, 0, sizeof(fake_irq_changes));
	fake_stop_reason = VM_EXIT_NONE;
	fake_mem = NULL;
	fake_ioeventfds = 0;
	fake_irqfds = 0;
}

const struct guest_mem *vm__mem(struct vm *vm)
{
	(void)vm;
	return fake_mem;
}

int vm__ioeventfd(struct vm *vm, uint64_t addr, uint32_t len,
		  uint64_t datamatch, int fd, bool assign)
{
	(void)vm;
	(void)addr;
	(void)len;
	(void)datamatch;
	(void)fd;
	fake_ioeventfds += assign ? 1 : -1;
	return 0;
}

int vm__irqfd(struct vm *vm, uint32_t irq, int fd, bool assign)
{
	(void)vm;
	(void)irq;
	(void)fd;
	fake_irqfds += assign ? 1 : -1;
	return 0;
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
