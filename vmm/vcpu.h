/* SPDX-License-Identifier: Apache-2.0 */
/* vCPUs: creation, the KVM_RUN loop on one thread each, and kicking them out of it. */
#ifndef SANDBOX_VCPU_H
#define SANDBOX_VCPU_H

#include "vm.h"

/*
 * Creates vCPU @id of @vm (KVM_CREATE_VCPU, kvm_run mapping, arch init) into
 * the caller's @vcpu. Returns 0 or -errno after logging. Pair with
 * vcpu__exit(), which is safe after a failed init.
 */
int vcpu__init(struct vcpu *vcpu, struct vm *vm, unsigned int id) __must_check;

/* Starts the vCPU's thread running KVM_RUN. 0 or -errno. */
int vcpu__start(struct vcpu *vcpu) __must_check;

/*
 * Makes the vCPU leave KVM_RUN and its thread return once the VM is stopping
 * (vm->stopping set first). Callable from any thread, repeatedly.
 */
void vcpu__kick(struct vcpu *vcpu);

/* Joins the vCPU's thread if it was started. */
void vcpu__join(struct vcpu *vcpu);

/*
 * Installs the no-op handler of the signal vcpu__kick() sends (no
 * SA_RESTART, so KVM_RUN returns EINTR). Process-wide and idempotent.
 * Returns 0 or -errno.
 */
int vcpu__install_kick_handler(void) __must_check;

/* Unmaps and closes what vcpu__init() made. */
void vcpu__exit(struct vcpu *vcpu);

#endif
