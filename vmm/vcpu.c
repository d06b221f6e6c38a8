// SPDX-License-Identifier: Apache-2.0
// vCPU threads: one KVM_RUN loop per vCPU, MMIO to the bus, system events to the VM.
#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "vcpu.h"

/*
 * The kick signal only needs to interrupt KVM_RUN (EINTR); its handler does
 * nothing. vm__new() installs it.
 */
#define VCPU_KICK_SIGNAL SIGUSR1

int vcpu__init(struct vcpu *vcpu, struct vm *vm, unsigned int id)
{
	void *run;
	int err;

	memset(vcpu, 0, sizeof(*vcpu));
	vcpu->vm = vm;
	vcpu->id = id;
	vcpu->fd = -1;
	vcpu->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (vcpu->fd < 0) {
		err = -errno;
		pr_err("KVM_CREATE_VCPU %u: %s", id, strerror(-err));
		return err;
	}
	run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		   vcpu->fd, 0);
	if (run == MAP_FAILED) {
		err = -errno;
		pr_err("mmap of vCPU %u's kvm_run: %s", id, strerror(-err));
		return err;
	}
	vcpu->run = run;
	return vcpu__arch_init(vcpu);
}

static int handle_system_event(struct vcpu *vcpu)
{
	switch (vcpu->run->system_event.type) {
	case KVM_SYSTEM_EVENT_SHUTDOWN:
		vm__request_stop(vcpu->vm, VM_EXIT_POWEROFF);
		return 0;
	case KVM_SYSTEM_EVENT_RESET:
		vm__request_stop(vcpu->vm, VM_EXIT_RESET);
		return 0;
	case KVM_SYSTEM_EVENT_CRASH:
		vm__request_stop(vcpu->vm, VM_EXIT_PANIC);
		return 0;
	default:
		pr_err("vCPU %u: unknown system event %u", vcpu->id,
		       vcpu->run->system_event.type);
		return -EINVAL;
	}
}

static int handle_mmio(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;
	int ret;

	ret = bus__dispatch(&vcpu->vm->mmio, run->mmio.phys_addr,
			    run->mmio.data, run->mmio.len, run->mmio.is_write);
	/* Like real hardware, an access to nothing reads zero and writes vanish. */
	if (ret == -ENOENT)
		pr_debug("vCPU %u: %s of %u bytes at unmapped 0x%llx", vcpu->id,
			 run->mmio.is_write ? "write" : "read", run->mmio.len,
			 (unsigned long long)run->mmio.phys_addr);
	else if (ret < 0)
		pr_debug("vCPU %u: bad MMIO access length %u", vcpu->id,
			 run->mmio.len);
	return 0;
}

static int handle_exit(struct vcpu *vcpu)
{
	struct kvm_run *run = vcpu->run;

	switch (run->exit_reason) {
	case KVM_EXIT_MMIO:
		return handle_mmio(vcpu);
	case KVM_EXIT_SYSTEM_EVENT:
		return handle_system_event(vcpu);
	case KVM_EXIT_SHUTDOWN:
		vm__request_stop(vcpu->vm, VM_EXIT_RESET);
		return 0;
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_FAIL_ENTRY:
		pr_err("vCPU %u: VM entry failed (hardware reason 0x%llx)",
		       vcpu->id,
		       (unsigned long long)
			       run->fail_entry.hardware_entry_failure_reason);
		return -EIO;
	case KVM_EXIT_INTERNAL_ERROR:
		pr_err("vCPU %u: KVM internal error, suberror %u", vcpu->id,
		       run->internal.suberror);
		return -EIO;
	default:
		return vcpu__arch_handle_exit(vcpu);
	}
}

/*
 * Waits while the VM is paused. The kick that brought us here left
 * immediate_exit set; it is cleared only after the wait, and the caller
 * checks stopping and paused again before the next KVM_RUN, so a later
 * pause or stop is never missed.
 */
static void park(struct vcpu *vcpu)
{
	struct vm *vm = vcpu->vm;

	/*
	 * An MMIO load or store that exited to us is finished by the kernel
	 * only on the next KVM_RUN (the register write-back and the PC step).
	 * Saved half-done, a restored guest would repeat it: enter once with
	 * immediate_exit set, which completes it and runs no guest code.
	 */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	if (ioctl(vcpu->fd, KVM_RUN, 0) == 0 || errno != EINTR)
		pr_debug("vCPU %u: completing the last exit before parking: %s",
			 vcpu->id, strerror(errno));
	pthread_mutex_lock(&vm->lock);
	vm->nr_parked++;
	pthread_cond_broadcast(&vm->parked);
	while (__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE))
		pthread_cond_wait(&vm->resumed, &vm->lock);
	vm->nr_parked--;
	pthread_mutex_unlock(&vm->lock);
	__atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_RELEASE);
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *vcpu = arg;
	struct vm *vm = vcpu->vm;

	while (!__atomic_load_n(&vm->stopping, __ATOMIC_ACQUIRE)) {
		if (__atomic_load_n(&vm->paused, __ATOMIC_ACQUIRE)) {
			park(vcpu);
			continue;
		}
		if (ioctl(vcpu->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			pr_err("vCPU %u: KVM_RUN: %s", vcpu->id,
			       strerror(errno));
			vm__request_stop(vm, VM_EXIT_ERROR);
			break;
		}
		if (handle_exit(vcpu) < 0) {
			vm__request_stop(vm, VM_EXIT_ERROR);
			break;
		}
	}
	pthread_mutex_lock(&vm->lock);
	vm->nr_live--;
	pthread_cond_broadcast(&vm->parked);
	pthread_mutex_unlock(&vm->lock);
	return NULL;
}

int vcpu__start(struct vcpu *vcpu)
{
	sigset_t all, old;
	int err;

	/*
	 * The thread starts with every signal blocked but the kick, so that
	 * process signals (SIGINT, SIGTERM) go to the launcher's thread.
	 */
	sigfillset(&all);
	sigdelset(&all, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	pthread_mutex_lock(&vcpu->vm->lock);
	vcpu->vm->nr_live++;
	pthread_mutex_unlock(&vcpu->vm->lock);
	err = pthread_create(&vcpu->thread, NULL, vcpu_thread, vcpu);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_mutex_lock(&vcpu->vm->lock);
		vcpu->vm->nr_live--;
		pthread_mutex_unlock(&vcpu->vm->lock);
		pr_err("vCPU %u: cannot start thread: %s", vcpu->id,
		       strerror(err));
		return -err;
	}
	vcpu->thread_started = true;
	return 0;
}

void vcpu__kick(struct vcpu *vcpu)
{
	if (!vcpu->thread_started)
		return;
	/*
	 * immediate_exit covers the window between the thread's check of
	 * vm->stopping and its entry into KVM_RUN; the signal covers a thread
	 * already inside the guest.
	 */
	__atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_RELEASE);
	pthread_kill(vcpu->thread, VCPU_KICK_SIGNAL);
}

void vcpu__join(struct vcpu *vcpu)
{
	if (!vcpu->thread_started)
		return;
	pthread_join(vcpu->thread, NULL);
	vcpu->thread_started = false;
}

void vcpu__exit(struct vcpu *vcpu)
{
	if (vcpu->run)
		munmap(vcpu->run, vcpu->vm->run_size);
	if (vcpu->fd >= 0)
		close(vcpu->fd);
	vcpu->run = NULL;
	vcpu->fd = -1;
}

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu__install_kick_handler(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;
	sigemptyset(&sa.sa_mask);
	/* No SA_RESTART: KVM_RUN must return EINTR. */
	if (sigaction(VCPU_KICK_SIGNAL, &sa, NULL) < 0)
		return -errno;
	return 0;
}
