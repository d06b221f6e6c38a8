/* SPDX-License-Identifier: Apache-2.0 */
/* One pool worker: a process that restores one VM, runs one invocation in it, and ends. */
#ifndef SANDBOX_POOL_WORKER_H
#define SANDBOX_POOL_WORKER_H

#include "../vmm/util.h"

/*
 * Runs in the forked worker process. Restores a VM from the snapshot at
 * @snap_path (its vCPUs not started, its vsock socket in a private
 * directory), sends POOL_READY on @fd (its end of a socketpair with the
 * daemon) and waits for one POOL_RUN. Runs it exactly as `sandbox run`
 * does (launcher__run_vm(); our stderr becomes the client's, so messages
 * reach the caller), sends POOL_RESULT with the exit status, frees the VM.
 * If the restore fails it sends POOL_RESULT with the status without
 * POOL_READY. The end of @fd before a POOL_RUN frees the VM. Returns the
 * process's exit status. Does not close @fd.
 */
int pool__worker(int fd, const char *snap_path) __must_check;

#endif
