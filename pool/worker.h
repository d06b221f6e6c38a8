/* SPDX-License-Identifier: Apache-2.0 */
/* One pool worker: a process that restores one VM, runs one invocation in it, and ends. */
#ifndef SANDBOX_POOL_WORKER_H
#define SANDBOX_POOL_WORKER_H

#include "../vmm/util.h"

/*
 * Runs in the forked worker process. Restores a VM from the snapshot at
 * @snap_path (its vsock socket in a private directory), runs it, connects
 * to its agent and prepares it (INIT and WINDOW: invoke__prepare()), then
 * sends POOL_READY on @fd (its end of a socketpair with the daemon) and
 * waits for one POOL_RUN; the guest idles meanwhile. Runs it as `sandbox
 * run` does (launcher__run_vm(); our stderr becomes the client's, so
 * messages reach the caller), sends POOL_RESULT with the exit status as
 * soon as the function's output is written, then frees the VM. If the
 * restore or the preparation fails it sends POOL_RESULT with the status
 * without POOL_READY. The end of @fd before a POOL_RUN frees the VM. Returns the
 * process's exit status. Does not close @fd. The daemon verified the
 * snapshot's memory (@snap_path is its open file): the worker does not.
 */
int pool__worker(int fd, const char *snap_path) __must_check;

#endif
