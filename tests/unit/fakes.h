/* SPDX-License-Identifier: Apache-2.0 */
/* Test doubles for what devices ask of their VM: interrupt lines and stop requests. */
#ifndef SANDBOX_TEST_FAKES_H
#define SANDBOX_TEST_FAKES_H

#include <stdbool.h>

#include "../../vmm/device.h"

#define FAKE_NR_IRQS 64

/* Last level driven on each line, and how many times each line changed. */
extern bool fake_irq_level[FAKE_NR_IRQS];
extern unsigned int fake_irq_changes[FAKE_NR_IRQS];
/* Last stop reason requested (VM_EXIT_NONE if none). */
extern enum vm_exit fake_stop_reason;

/* What vm__mem() hands out; tests that need guest memory set it. */
extern struct guest_mem *fake_mem;
/* ioeventfds and irqfds currently registered. */
extern int fake_ioeventfds;
extern int fake_irqfds;

void fakes_reset(void);

#endif
