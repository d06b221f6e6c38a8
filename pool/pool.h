/* SPDX-License-Identifier: Apache-2.0 */
/* The pool manager: VMs restored ahead of time, each handed to one `sandbox run`. */
#ifndef SANDBOX_POOL_H
#define SANDBOX_POOL_H

#include <stddef.h>

#include "../launcher/cli.h"
#include "../vmm/util.h"

/*
 * The default socket into @buf: $XDG_RUNTIME_DIR/sandbox/pool.sock when
 * XDG_RUNTIME_DIR is set, else /tmp/sandbox-pool-<uid>.sock. 0 or
 * -ENAMETOOLONG.
 */
int pool__default_socket(char *buf, size_t size) __must_check;

/*
 * The client side of `sandbox run`: hands the function (@fn_fd, its file,
 * opened and its header checked), argv, --timeout and our stdin, stdout and stderr to the
 * pool, and waits for the exit status. Returns 0 when the pool answered (or
 * --pool named a pool that cannot be reached): *@status is the exit status
 * to report, messages were printed. Returns -errno when the run should
 * restore inline instead: --no-pool, --snapshot or --mem-mode without
 * --pool, no pool listening on the default socket, the pool declined.
 */
int pool__client_run(const struct run_opts *o, int fn_fd,
		     int *status) __must_check;

/*
 * `sandbox pool status` (@o->metrics: `pool metrics`, the body of GET
 * /metrics) and `sandbox pool stop`. An exit status.
 */
int pool__client_status(const struct pool_opts *o) __must_check;
int pool__client_stop(const struct pool_opts *o) __must_check;

/*
 * `sandbox pool start`: runs the daemon until SIGTERM, SIGINT or `pool
 * stop` (drain: no new runs, the running ones finish, idle VMs are freed);
 * SIGHUP reloads the snapshot. With @o->daemon the calling process returns
 * as soon as the detached daemon listens (EXIT_OK) or failed to start (its
 * status). Returns an exit status. Worker and reload processes are forked
 * from here and return from this call too, with their own status, which
 * the caller reports as the process's exit status like any other.
 */
int pool__daemon(const struct pool_opts *o) __must_check;

#endif
